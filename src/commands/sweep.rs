//! `rpload sweep`: its flags (the attack's options, the `[sweep]` and `[cost]` sections and the
//! embedded server's options, each flattened from the struct that owns it), laid over
//! `--scenario`; the embedded server when there is no target; the driver with the run folder
//! as its sink and progress bars as its observer; the final table and the exit status.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::analysis::summary::{StepData, StepRow, SweepSummary};
use crate::analysis::verdict::{self, Status, SweepOutcome};
use crate::attack::options::AttackOptions;
use crate::cost::Price;
use crate::exit::{self, RunFailed};
use crate::record::Record;
use crate::scenario::plan::Axis;
use crate::scenario::{CostSection, PlannedStep, Scenario, ScenarioFile, SweepSection};
use crate::server::{ServerConfig, ServerOptions};
use crate::sweep::output::{self, RunFolder};
use crate::sweep::run::{DriveConfig, Observer, drive};
use crate::sweep::runner::AttackRunner;
use crate::sweep::scrape::{self, ScrapeConfig, Scraping};

/// Flags of `rpload sweep`. Each overrides the same field of `--scenario`.
#[derive(Debug, Clone, Default, Args)]
pub struct SweepArgs {
    /// Scenario TOML (see scenarios/); flags override its fields.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    #[command(
        flatten,
        next_help_heading = "Attack options (also a scenario's top level)"
    )]
    pub attack: AttackOptions,
    #[command(
        flatten,
        next_help_heading = "Rate plan and verdicts (a scenario's [sweep])"
    )]
    pub sweep: SweepSection,
    /// Run every step even after two unsustainable ones in a row.
    #[arg(long, help_heading = "Rate plan and verdicts (a scenario's [sweep])")]
    pub no_early_stop: bool,
    /// Search for the highest sustainable level between the bounds of --rps A..B (or
    /// --concurrency A..B): probe A, double until a level fails, then bisect to --precision.
    /// Every probe is a step of the run folder.
    #[arg(long, help_heading = "Rate plan and verdicts (a scenario's [sweep])")]
    pub search: bool,
    #[command(flatten, next_help_heading = "Cost (a scenario's [cost])")]
    pub cost: CostSection,
    /// The embedded server's model: a preset (tiny, pythia-70m, redpajama-3b, redpajama-7b)
    /// or a HuggingFace folder [default: tiny].
    #[arg(
        long,
        help_heading = "Embedded server, without --target (a scenario's [serve])"
    )]
    pub serve_model: Option<String>,
    #[command(
        flatten,
        next_help_heading = "Embedded server, without --target (a scenario's [serve])"
    )]
    pub serve: ServerOptions,
    /// Output folder (default reports/<run-id>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace the run in --out if it already holds one (its results.jsonl is truncated).
    #[arg(long)]
    pub force: bool,
    /// No progress bars (the final table is still printed).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// `attack` only: taken here to refuse it by name (a sweep does not run in shards yet).
    #[arg(long, hide = true, value_name = "I/N")]
    pub shard: Option<String>,
    /// `attack` only, like --shard.
    #[arg(long, hide = true, value_name = "RFC3339")]
    pub start_at: Option<String>,
}

/// New tokens per request against the embedded server unless the scenario or a flag says.
pub const EMBEDDED_MAX_NEW_TOKENS: u32 = 20;

impl SweepArgs {
    /// The command line as a scenario layer.
    pub fn overrides(&self) -> ScenarioFile {
        let mut sweep = self.sweep.clone();
        if self.no_early_stop {
            sweep.early_stop = Some(false);
        }
        if self.search {
            sweep.search = Some(true);
        }
        ScenarioFile {
            attack: self.attack.clone(),
            description: None,
            sweep,
            cost: self.cost.clone(),
            serve: ServerOptions {
                model: self.serve_model.clone(),
                ..self.serve.clone()
            },
        }
    }

    /// `--scenario` with the flags laid over it, and the embedded server's defaults filled in
    /// when there is no target.
    pub fn scenario_file(&self) -> Result<ScenarioFile> {
        let base = match &self.scenario {
            Some(path) => ScenarioFile::load(path)?,
            None => ScenarioFile::default(),
        };
        let mut file = base.merge(self.overrides());
        if embedded(&file) {
            // The as-run scenario names the model and engine that ran, so it reproduces the run.
            file.serve.model = Some(file.serve.model().to_string());
            file.serve.engine = Some(file.serve.engine().to_string());
            let a = &mut file.attack;
            if a.name.is_none() {
                // The title is all a report says about the embedded server, so it names what ran.
                a.name = Some(format!(
                    "embedded {} model, {} engine",
                    file.serve.model(),
                    file.serve.engine()
                ));
            }
            if a.workers.is_none() {
                // The server computes on the same cores: one attacker thread leaves it the rest.
                a.workers = Some(1);
            }
            if a.max_new_tokens.is_none() {
                // The study's classification length: the attacker's own default (64) puts the
                // tiny model's knee below the study plan's first rate on a 2-core CPU, and the
                // main job must show a sustainable step before the knee.
                a.max_new_tokens = Some(EMBEDDED_MAX_NEW_TOKENS);
            }
        }
        Ok(file)
    }

    /// The embedded server this sweep starts (None: it has a target).
    pub fn embedded_server(&self) -> Result<Option<ServerConfig>> {
        let file = self.scenario_file()?;
        if !embedded(&file) {
            return Ok(None);
        }
        Ok(Some(ServerConfig::from_options(&file.serve)?))
    }
}

/// No `--target` and no `--targets`: the sweep runs against the embedded server.
fn embedded(file: &ScenarioFile) -> bool {
    file.attack.target.is_none() && file.attack.targets.is_none()
}

/// Everything checked before the first request: the merged, validated scenario, its price,
/// the embedded server's settings, and a writable output folder.
pub struct Prepared {
    pub scenario: Scenario,
    pub price: Option<Price>,
    pub dir: PathBuf,
    /// Some when the embedded server is to be started first.
    pub server: Option<ServerConfig>,
    /// The attack, checked; None when it waits for the embedded server's address.
    pub runner: Option<AttackRunner>,
}

/// Merges `--scenario` with the flags, validates, resolves the price and prepares `--out`.
pub fn prepare(a: &SweepArgs) -> Result<Prepared> {
    // A sweep across pods needs every step's start fixed up front and verdicts made at the
    // merge; until that exists, say so rather than run N uncoordinated sweeps.
    if let Some(flag) = [("shard", &a.shard), ("start-at", &a.start_at)]
        .into_iter()
        .find_map(|(name, v)| v.as_ref().map(|_| name))
    {
        anyhow::bail!(
            "--{flag} is for `rpload attack`: a sweep does not run in shards yet; run `rpload attack --shard I/N --start-at T` at each rate and merge the files with `rpload report`, or sweep from one machine"
        );
    }
    let file = a.scenario_file()?;
    let server = embedded(&file)
        .then(|| ServerConfig::from_options(&file.serve))
        .transpose()?;
    let scenario = file.validate()?;
    // Checked before the model loads; the embedded server's own address comes later.
    if let Some(flag) = &file.sweep.server_metrics {
        let placeholder = server.as_ref().map(|_| "http://127.0.0.1:9");
        scrape::metrics_url(flag, scenario.target.as_deref().or(placeholder))?;
    }
    let price = scenario.resolve_price()?;
    let scenario_path = a.scenario.as_deref();
    if let Some(p) = &scenario.file.attack.prompts {
        let path = crate::attack::options::resolve_relative(&p.to_string_lossy(), scenario_path);
        if !path.exists() {
            anyhow::bail!(
                "prompts: {} does not exist (pass --prompts FILE.jsonl)",
                path.display()
            );
        }
    }
    // The attack is checked now even when the embedded server's address is not known yet, so
    // a bad option fails before the model loads; nothing is sent from this placeholder.
    let placeholder = server.as_ref().map(|_| "http://127.0.0.1:9");
    let checked = AttackRunner::new(&scenario, placeholder, scenario_path)?;
    let runner = server.is_none().then_some(checked);
    let dir = a.out.clone().unwrap_or_else(|| default_dir(&scenario.name));
    output::prepare_dir(&dir, a.force)?;
    Ok(Prepared {
        scenario,
        price,
        dir,
        server,
        runner,
    })
}

/// `reports/<UTC time>-<name>`.
pub fn default_dir(name: &str) -> PathBuf {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    PathBuf::from("reports").join(format!("{stamp}-{slug}"))
}

/// `rpload sweep`. Without a target, starts the embedded reference server first and stops
/// it after the last step.
pub async fn run(a: SweepArgs) -> Result<ExitCode> {
    let mut prepared = prepare(&a)?;
    let (runner, server, target) = match (prepared.runner.take(), prepared.server.take()) {
        (Some(r), _) => (r, None, prepared.scenario.target.clone()),
        (None, server_cfg) => {
            let cfg = server_cfg.context("a sweep without a target has the embedded server")?;
            let described = cfg.describe();
            let server = crate::server::spawn_embedded(cfg)
                .await
                .context("starting the embedded reference server")?;
            let target = format!("http://{}", server.addr());
            if !a.quiet {
                eprintln!(
                    "no --target: started the embedded reference server ({described}) at {target}"
                );
            }
            let scenario_path = a.scenario.as_deref();
            match AttackRunner::new(&prepared.scenario, Some(&target), scenario_path) {
                Ok(r) => (r, Some(server), Some(target)),
                Err(e) => {
                    server.shutdown().await;
                    return Err(e);
                }
            }
        }
    };
    let control = crate::attack::Control::default();
    let _interrupts = super::interrupt::install(&control, runner.base().timeout);
    let mut runner = runner.with_control(control.clone());
    let cfg = DriveConfig {
        scenario: &prepared.scenario,
        price: prepared.price.clone(),
        stop: control.stop.clone(),
    };
    let mut folder = RunFolder::new(&prepared.dir);
    let mut bars = Bars::new(!a.quiet);
    let result = match &prepared.scenario.file.sweep.server_metrics {
        Some(flag) => {
            let scraping = scrape::metrics_url(flag, target.as_deref())
                .map_err(anyhow::Error::new)
                .and_then(|url| {
                    let cfg = ScrapeConfig {
                        url,
                        path: prepared.dir.join(scrape::SERVER_METRICS_JSONL),
                        timeout: scrape::SCRAPE_TIMEOUT,
                        every: scrape::SCRAPE_EVERY,
                    };
                    let bar = bars.shared.clone();
                    let warn = Box::new(move |line: String| {
                        let bar = bar.lock().unwrap_or_else(|p| p.into_inner());
                        bar.suspend(|| eprintln!("{line}"));
                    });
                    Scraping::new(runner, cfg, warn)
                });
            match scraping {
                Ok(mut r) => drive(&cfg, &mut r, &mut folder, &mut bars).await,
                Err(e) => Err(e),
            }
        }
        None => drive(&cfg, &mut runner, &mut folder, &mut bars).await,
    };
    if let Some(server) = server {
        server.shutdown().await;
    }
    // Whatever fails once the sweep has started (rebuilding its files, say) is the run failing,
    // not bad input.
    let summary = result.map_err(|e| match exit::code(&e) {
        exit::BAD_INPUT => e.context(RunFailed(format!(
            "sweep stopped; what was measured is in {}",
            prepared.dir.display()
        ))),
        _ => e,
    })?;
    print!("{}", crate::report::table::sweep_table(&summary));
    println!("reports in {}", prepared.dir.display());
    let outcome = outcome(&summary, prepared.scenario.fail_under);
    if outcome != SweepOutcome::Passed {
        eprintln!("rpload: {outcome} (exit status 1)");
    }
    Ok(exit::status(outcome != SweepOutcome::Passed))
}

/// Whether the sweep passed, from its summary.
pub fn outcome(summary: &SweepSummary, fail_under: Option<f64>) -> SweepOutcome {
    let requests = summary.steps.iter().map(|r| r.requests).sum::<u64>();
    let errors = summary.steps.iter().map(|r| r.errors).sum::<u64>();
    verdict::sweep_outcome(
        summary.axis,
        summary.headline.as_ref().map(|h| h.level()),
        requests,
        requests - errors,
        fail_under,
    )
}

/// A step's load as the progress lines say it: `40 req/s`, `8 users`.
fn load(p: &PlannedStep) -> String {
    match p.concurrency {
        Some(users) => Axis::Concurrency.fmt_level(f64::from(users)),
        None => Axis::Rate.fmt_level(p.rps),
    }
}

/// Progress on stderr: a line for the warm-up, a bar per step with live figures, its verdict
/// when it ends, and why the sweep stopped early.
struct Bars {
    enabled: bool,
    bar: ProgressBar,
    /// The current bar, for warnings printed from inside a step (`--server-metrics`).
    shared: Arc<Mutex<ProgressBar>>,
    last_msg: Instant,
}

impl Bars {
    fn new(enabled: bool) -> Self {
        Self {
            enabled,
            bar: ProgressBar::hidden(),
            shared: Arc::new(Mutex::new(ProgressBar::hidden())),
            last_msg: Instant::now(),
        }
    }
}

impl Observer for Bars {
    fn warming_up(&mut self, first: &PlannedStep, duration: Duration) {
        if self.enabled {
            eprintln!(
                "warming up: {} at {}, unmeasured (--initial-warmup 0s skips it)",
                crate::pacer::format_duration(duration),
                load(first)
            );
        }
    }

    fn step_started(&mut self, p: &PlannedStep, steps: Option<usize>, duration: Duration) {
        if !self.enabled {
            return;
        }
        // A closed loop's count is whatever its users manage: a counter, not a bar.
        self.bar = if p.concurrency.is_some() {
            let style = ProgressStyle::with_template("step {prefix} {pos:>6} requests {msg}")
                .expect("static template");
            ProgressBar::no_length().with_style(style)
        } else {
            let expected = (p.rps * duration.as_secs_f64()).round().max(1.0) as u64;
            let style =
                ProgressStyle::with_template("step {prefix} [{bar:30}] {pos:>6}/{len:<6} {msg}")
                    .expect("static template")
                    .progress_chars("=> ");
            ProgressBar::new(expected).with_style(style)
        };
        let of = steps.map_or(" (search)".to_string(), |n| format!("/{n}"));
        self.bar
            .set_prefix(format!("{}{of} @ {}", p.step + 1, load(p)));
        *self.shared.lock().unwrap_or_else(|p| p.into_inner()) = self.bar.clone();
        self.last_msg = Instant::now();
    }

    fn record(&mut self, _record: &Record, so_far: &StepData) {
        self.bar.inc(1);
        if self.last_msg.elapsed() >= Duration::from_millis(200) {
            self.last_msg = Instant::now();
            self.bar.set_message(live_figures(so_far));
        }
    }

    fn step_ended(&mut self, so_far: &StepData, row: Option<&StepRow>) {
        let verdict = row.map_or("no requests".to_string(), |r| match r.status {
            Status::Sustainable => "sustainable".to_string(),
            Status::Unsustainable => r.verdict.clone(),
            Status::Undetermined => format!("undetermined: {}", r.verdict),
        });
        self.bar
            .finish_with_message(format!("{} | {verdict}", live_figures(so_far)));
    }

    fn stopped_early(&mut self) {
        if self.enabled {
            eprintln!(
                "stopping early: {} unsustainable levels of the plan in a row (pass --no-early-stop to run every step)",
                verdict::STOP_AFTER_UNSUSTAINABLE
            );
        }
    }

    fn finished(&mut self) {
        if self.enabled {
            // Leave the last bar's line before the final table goes to stdout.
            eprintln!();
        }
    }
}

/// `ok 99.8% p50 120ms p90 180ms` from what has ended so far.
fn live_figures(data: &StepData) -> String {
    let s = data.metrics.summary();
    format!(
        "ok {:.1}% p50 {:.0}ms p90 {:.0}ms",
        s.success * 100.0,
        s.latencies.p50 as f64 / 1e6,
        s.latencies.p90 as f64 / 1e6
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::Requests;
    use crate::attack::api::fastapi::StripPrompt;
    use clap::Parser;

    fn args(flags: &[&str]) -> SweepArgs {
        let mut argv = vec!["rpload", "sweep", "--rps", "1", "--out"];
        let dir = std::env::temp_dir().join("rpload-sweep-args-test");
        let dir = dir.to_str().unwrap().to_string();
        argv.push(&dir);
        argv.extend_from_slice(flags);
        match crate::commands::Cli::parse_from(argv).command {
            crate::commands::Command::Sweep(a) => *a,
            other => unreachable!("{other:?}"),
        }
    }

    /// Options a sweep used to drop reach the attacker, from flags and from a file.
    #[test]
    fn every_attack_option_reaches_the_attacker() {
        let a = args(&[
            "--target",
            "http://127.0.0.1:9",
            "--repetition-penalty",
            "1.2",
            "--gen-seed",
            "7",
            "--http1",
            "--no-keepalive",
            "--prompt",
            "hello there",
            "--max-requests",
            "3",
            "--max-new-tokens",
            "5",
        ]);
        let p = prepare(&a).unwrap();
        let base = p.runner.as_ref().unwrap().base();
        assert_eq!(base.max_requests, Some(3));
        assert!(!base.client.http2 && !base.client.keepalive);
        let Requests::Api {
            api,
            workload: prompts,
        } = &base.requests
        else {
            panic!("an API attack")
        };
        assert_eq!(api.params.repetition_penalty, Some(1.2));
        assert_eq!(api.params.seed, Some(7));
        assert_eq!(api.params.max_new_tokens, 5);
        assert_eq!(prompts.len(), 1);
        assert_eq!(api.kind, crate::attack::api::ApiKind::Tgi);

        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("s.toml");
        std::fs::write(
            &scenario,
            "target = \"http://127.0.0.1:9\"\napi = \"http\"\nmethod = \"POST\"\n[sweep]\nrps = \"2\"\n",
        )
        .unwrap();
        let p = prepare(&args(&["--scenario", scenario.to_str().unwrap()])).unwrap();
        let Requests::Targets(t) = &p.runner.as_ref().unwrap().base().requests else {
            panic!("plain http")
        };
        assert_eq!(t[0].method, reqwest::Method::POST);
    }

    /// Every server flag works on a target-less sweep, and the as-run scenario names the model.
    #[test]
    fn the_embedded_server_takes_every_serve_option() {
        let a = args(&[
            "--serve-model",
            "tiny",
            "--engine",
            "single",
            "--max-concurrent-requests",
            "7",
            "--max-batch-size",
            "3",
            "--threads",
            "1",
            "--weights-seed",
            "5",
        ]);
        let cfg = a.embedded_server().unwrap().unwrap();
        assert_eq!(cfg.engine, crate::server::scheduler::SchedulerKind::Single);
        assert_eq!(cfg.max_concurrent_requests, 7);
        assert_eq!(cfg.max_batch_size, Some(3));
        assert_eq!(cfg.threads, Some(1));
        assert!(matches!(
            cfg.model,
            crate::server::engine::ModelSpec::Preset { seed: 5, .. }
        ));
        let file = a.scenario_file().unwrap();
        assert_eq!(file.serve.model.as_deref(), Some("tiny"));
        assert!(file.to_toml().contains("[serve]"), "{}", file.to_toml());
        let e = args(&["--dtype", "f8"]).embedded_server().unwrap_err();
        assert!(e.to_string().contains("--dtype `f8`"), "{e}");
        let remote = args(&["--target", "http://127.0.0.1:9"]);
        assert!(remote.embedded_server().unwrap().is_none());
    }

    fn runner(toml: &str, args: &[&str]) -> Result<AttackRunner> {
        let mut argv = vec!["rpload", "sweep"];
        argv.extend_from_slice(args);
        let crate::commands::Command::Sweep(a) = crate::commands::Cli::parse_from(argv).command
        else {
            unreachable!()
        };
        let file = ScenarioFile::parse(toml, "s.toml")?.merge(a.overrides());
        let sc = file.validate()?;
        AttackRunner::new(&sc, Some("http://127.0.0.1:9"), None)
    }

    fn strip_prompt(r: &AttackRunner) -> StripPrompt {
        let Requests::Api { api, .. } = &r.base().requests else {
            panic!("an API attack")
        };
        api.fastapi.strip_prompt
    }

    #[test]
    fn a_sweep_refuses_shards() {
        for flag in [
            &["--shard", "0/2"][..],
            &["--start-at", "2026-12-04T03:00:00Z"],
        ] {
            let mut argv = vec!["rpload", "sweep", "--target", "http://127.0.0.1:9"];
            argv.extend_from_slice(flag);
            let crate::commands::Command::Sweep(a) = crate::commands::Cli::parse_from(argv).command
            else {
                unreachable!()
            };
            let e = prepare(&a).err().unwrap().to_string();
            assert!(
                e.contains("is for `rpload attack`: a sweep does not run in shards yet"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_sweep_refuses_a_ramp() {
        let plain = "[sweep]\nrps = \"1,2\"\n";
        let want = "--ramp is for `rpload attack`: a sweep's steps set their own rates (--rps)";
        let flag = runner(plain, &["--ramp", "1..10/5s"]).err().unwrap();
        assert!(format!("{flag:#}").starts_with(want), "{flag:#}");
        let file = runner("ramp = \"1..10/5s\"\n[sweep]\nrps = \"1\"\n", &[]).err();
        assert!(format!("{:#}", file.unwrap()).starts_with(want));
    }

    #[test]
    fn strip_prompt_reaches_the_attacker_from_file_and_flag() {
        let toml = "api = \"fastapi\"\nstrip_prompt = \"never\"\n[sweep]\nrps = \"1\"\n";
        assert_eq!(
            strip_prompt(&runner(toml, &[]).unwrap()),
            StripPrompt::Never
        );
        let flag = runner(toml, &["--strip-prompt", "always"]).unwrap();
        assert_eq!(strip_prompt(&flag), StripPrompt::Always);
        let plain = "api = \"fastapi\"\n[sweep]\nrps = \"1\"\n";
        assert_eq!(
            strip_prompt(&runner(plain, &[]).unwrap()),
            StripPrompt::Auto
        );
        let bad = runner(plain, &["--strip-prompt", "maybe"]).err().unwrap();
        assert!(
            format!("{bad:#}").contains("--strip-prompt \"maybe\" is not known"),
            "{bad:#}"
        );
    }
}
