//! `rpload sweep`: its flags (the attack's options, the `[sweep]` and `[cost]` sections and the
//! embedded server's options, each flattened from the struct that owns it), laid over
//! `--scenario`; the embedded server when there is no target; the driver with the run folder
//! as its sink and progress bars as its observer; the final table and the exit status.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::analysis::summary::SweepSummary;
use crate::analysis::verdict::{self, SweepOutcome};
use crate::attack::options::AttackOptions;
use crate::cost::Price;
use crate::exit::{self, RunFailed};
use crate::scenario::{CostSection, Scenario, ScenarioFile, SweepSection};
use crate::server::{ServerConfig, ServerOptions};
use crate::sweep::output::{self, RunFolder};
use crate::sweep::run::{DriveConfig, drive};
use crate::sweep::runner::AttackRunner;
use crate::sweep::scrape::{self, ScrapeConfig, Scraping};

use super::sweep_bars::Bars;
use super::sweep_shards::{self, SweepShard};

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
    /// Run shard I of N of every step (`auto/N`: I from JOB_COMPLETION_INDEX, as a
    /// Kubernetes Indexed Job sets it), one pod per shard against one --target; needs
    /// --start-at. Every step runs; the verdicts are made when `rpload report --sweep DIR...
    /// --out MERGED` merges the pods' folders.
    #[arg(long, value_name = "I/N", help_heading = "Many machines")]
    pub shard: Option<String>,
    /// With --shard: the instant (RFC 3339, the same in every pod) the sweep starts; every
    /// phase's start follows from it (each warm-up and step gets its duration, --timeout and
    /// 1 s; then the cool-down).
    #[arg(long, value_name = "RFC3339", help_heading = "Many machines")]
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
    file.attack.target.is_empty() && file.attack.targets.is_none()
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
    /// `--shard`: this process's part of a sweep run in shards.
    pub shard: Option<SweepShard>,
}

/// Merges `--scenario` with the flags, validates, resolves the price and prepares `--out`.
pub fn prepare(a: &SweepArgs) -> Result<Prepared> {
    let file = a.scenario_file()?;
    let job_index = std::env::var(crate::pacer::shard::JOB_INDEX_VAR).ok();
    let shard = super::sweep_shards::check(
        a.shard.as_deref(),
        a.start_at.as_deref(),
        &file,
        job_index.as_deref(),
        time::OffsetDateTime::now_utc(),
    )?;
    let server = embedded(&file)
        .then(|| ServerConfig::from_options(&file.serve))
        .transpose()?;
    let scenario = file.validate()?;
    // Checked before the model loads; the embedded server's own address comes later.
    if let Some(flag) = &file.sweep.server_metrics {
        let placeholder = server.as_ref().map(|_| "http://127.0.0.1:9");
        // With several targets `auto` reads the first one's /metrics.
        let first = scenario.target.first().map(String::as_str);
        scrape::metrics_url(flag, first.or(placeholder))?;
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
    let runner = server.is_none().then_some(checked).map(|r| match shard {
        Some(s) => r.sharded(s.shard),
        None => r,
    });
    let dir = a.out.clone().unwrap_or_else(|| default_dir(&scenario.name));
    output::prepare_dir(&dir, a.force)?;
    Ok(Prepared {
        scenario,
        price,
        dir,
        server,
        runner,
        shard,
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
        (Some(r), _) => (r, None, prepared.scenario.target.first().cloned()),
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
    let timeline = prepared
        .shard
        .map(|s| sweep_shards::timeline(&prepared.scenario, runner.base().timeout, s.start));
    if let (Some(s), Some(t), false) = (&prepared.shard, &timeline, a.quiet) {
        eprintln!(
            "{}",
            sweep_shards::announce(s, t, prepared.scenario.steps().len())
        );
    }
    let cfg = DriveConfig {
        scenario: &prepared.scenario,
        price: prepared.price.clone(),
        stop: control.stop.clone(),
        timeline,
    };
    let mut folder = RunFolder::new(&prepared.dir);
    let mut bars = Bars::new(!a.quiet);
    if let Some(s) = &prepared.shard {
        // A pod sees its share of each step: what it could judge would be wrong.
        folder = folder.records_only();
        bars.judged_at_merge = Some(format!("shard {}: judged at the merge", s.shard));
        bars.shards = s.shard.count();
    }
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
    if let Some(s) = &prepared.shard {
        let records = summary.steps.iter().map(|r| r.requests).sum();
        print!("{}", sweep_shards::finished(s, &prepared.dir, records));
        return Ok(ExitCode::SUCCESS);
    }
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
    fn a_sweep_in_shards_refuses_what_it_cannot_do() {
        let cases: [(&[&str], &str); 5] = [
            (&["--shard", "0/2"], "--shard needs --start-at"),
            (&["--start-at", "2099-01-01T00:00:00Z"], "pass --shard I/N"),
            (
                &["--shard", "0/2", "--start-at", "2001-01-01T00:00:00Z"],
                "in the past",
            ),
            (&["--shard", "2/2", "--start-at", "+"], "--shard"),
            (
                &[
                    "--shard",
                    "0/2",
                    "--start-at",
                    "+",
                    "--search",
                    "--rps",
                    "1..8",
                ],
                "a search picks each next level",
            ),
        ];
        let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(60))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        for (flags, want) in cases {
            let mut argv = vec!["rpload", "sweep", "--target", "http://127.0.0.1:9"];
            argv.extend(
                flags
                    .iter()
                    .map(|f| if *f == "+" { soon.as_str() } else { f }),
            );
            let crate::commands::Command::Sweep(a) = crate::commands::Cli::parse_from(argv).command
            else {
                unreachable!()
            };
            let e = format!("{:#}", prepare(&a).err().unwrap());
            assert!(e.contains(want), "{flags:?}: {e}");
        }
        // No target: each pod would start a server of its own.
        let argv = ["rpload", "sweep", "--shard", "0/2", "--start-at", &soon];
        let crate::commands::Command::Sweep(a) = crate::commands::Cli::parse_from(argv).command
        else {
            unreachable!()
        };
        let e = prepare(&a).err().unwrap().to_string();
        assert!(e.contains("needs --target"), "{e}");
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
