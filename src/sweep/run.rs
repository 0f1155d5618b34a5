//! The sweep driver: an unmeasured warm-up at the first rate, then for each rate of the plan
//! (and each repeat) an optional unmeasured warm-up, one measured step through a [`StepRunner`]
//! (the attacker, on one connection pool for the whole sweep), every record appended to
//! `results.jsonl` with its `step`, a verdict, a cool-down, and the stop rule. After every step
//! the derived files are rebuilt, so an interrupted or crashed sweep keeps everything measured.
//! Ctrl-C is heard in every phase (warm-ups and cool-downs too).
//!
//! The shell of the sweep: it owns the clock (progress, cool-down sleeps) and the files; the
//! decisions are `verdict`'s pure functions.

use std::fs::File;
use std::future::Future;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use clap::Parser;

use crate::attack::{AttackConfig, Control, Sink};
use crate::cli::SweepArgs;
use crate::cost::Price;
use crate::exit::{self, Interrupted, RunFailed};
use crate::pacer::Rate;
use crate::record::{Record, RecordWriter};
use crate::scenario::{RateSpec, Scenario, ScenarioFile};
use crate::sweep::plan::fmt_rate;

use super::output;
use super::summary::{StepData, SweepSummary};
use super::verdict::{self, Status, SweepOutcome};

/// One attack the driver asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    /// Step index (`step` of its records); None for a warm-up, whose records are dropped.
    pub step: Option<u32>,
    pub rps: f64,
    pub duration: Duration,
}

/// Runs one attack at a constant offered rate and hands every record to `sink` as it ends.
/// A failed request is a record with an error, never an `Err`; `Err` means the step could not
/// run at all (bad configuration, the client could not start).
pub trait StepRunner {
    fn run_step(
        &mut self,
        spec: &StepSpec,
        sink: &mut dyn FnMut(Record),
    ) -> impl Future<Output = Result<()>>;
}

/// Where and how a sweep runs.
pub struct DriveConfig<'a> {
    pub scenario: &'a Scenario,
    pub price: Option<Price>,
    pub dir: &'a Path,
    /// Progress bars on stderr.
    pub progress: bool,
}

/// Runs the sweep and returns its summary (also written to `cfg.dir`).
pub async fn drive<R: StepRunner>(cfg: &DriveConfig<'_>, runner: &mut R) -> Result<SweepSummary> {
    let sc = cfg.scenario;
    output::prepare_dir(cfg.dir)?;
    let mut as_run = sc.file.clone();
    if sc.target.is_none() {
        as_run.target = None;
    }
    if let Some(p) = &cfg.price {
        // Freeze the price so `report --sweep` needs no catalog.
        as_run.cost.instance = Some(match &p.region {
            Some(r) => format!("{}@{r}", p.instance),
            None => p.instance.clone(),
        });
        as_run.cost.price_per_hour = Some(p.usd_per_hour);
        as_run.cost.pricing.clear();
    }
    output::write_scenario(cfg.dir, &as_run)?;
    let results_path = cfg.dir.join(output::RESULTS_JSONL);
    let file = File::create(&results_path)
        .with_context(|| format!("creating {}", results_path.display()))?;
    let mut writer = RecordWriter::new(BufWriter::new(file));

    let planned = sc.steps();
    let mut rate_status: Vec<Status> = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    if let (false, Some(&first)) = (sc.initial_warmup.is_zero(), sc.plan.rates().first()) {
        if cfg.progress {
            eprintln!(
                "warming up: {} at {} req/s, unmeasured (--initial-warmup 0s skips it)",
                crate::pacer::format_duration(sc.initial_warmup),
                fmt_rate(first)
            );
        }
        if let Err(e) = warm_up(runner, first, sc.initial_warmup).await {
            failure = Some(e.context("warm-up before the first step"));
        }
    }
    'rates: for (ri, &rps) in sc.plan.rates().iter().enumerate() {
        if failure.is_some() {
            break;
        }
        // The rate's status as the summary folds it (repeats pooled when they cannot tell).
        let mut status = Status::Undetermined;
        for p in planned.iter().filter(|p| p.rate_index == ri) {
            if !sc.warmup.is_zero()
                && let Err(e) = warm_up(runner, rps, sc.warmup).await
            {
                failure = Some(e.context(format!("warm-up before step {}", p.step)));
                break 'rates;
            }
            let bar = step_bar(cfg.progress, p.step, planned.len(), rps, sc.step_duration);
            let mut data = StepData::default();
            let mut write_err: Option<std::io::Error> = None;
            let mut last_msg = Instant::now();
            let spec = StepSpec {
                step: Some(p.step),
                rps,
                duration: sc.step_duration,
            };
            let result = {
                let mut sink = |mut r: Record| {
                    r.step = Some(p.step);
                    if write_err.is_none()
                        && let Err(e) = writer.write(&r).and_then(|()| writer.flush())
                    {
                        write_err = Some(e);
                    }
                    data.add(&r);
                    bar.inc(1);
                    if last_msg.elapsed() >= Duration::from_millis(200) {
                        last_msg = Instant::now();
                        bar.set_message(live_figures(&data));
                    }
                };
                // Ctrl-C ends the step where it is; what ended so far is kept.
                tokio::select! {
                    r = runner.run_step(&spec, &mut sink) => r,
                    _ = tokio::signal::ctrl_c() => Err(anyhow::Error::new(Interrupted)),
                }
            };
            if let Some(e) = write_err {
                failure = Some(
                    anyhow::Error::new(e).context(format!("writing {}", results_path.display())),
                );
                bar.abandon();
                break 'rates;
            }
            // Keep everything measured on disk even if a later step dies; the row is the one
            // the final report will show (a step is judged on its own requests).
            let so_far = output::rebuild(cfg.dir)?;
            let row = so_far.steps.iter().find(|r| r.step == p.step);
            if let Some(rate) = so_far.rates.iter().find(|r| r.rate_index == ri) {
                status = rate.status;
            }
            bar.finish_with_message(format!(
                "{} | {}",
                live_figures(&data),
                row.map_or("no requests".to_string(), |r| match r.status {
                    Status::Sustainable => "sustainable".to_string(),
                    Status::Unsustainable => r.verdict.clone(),
                    Status::Undetermined => format!("undetermined: {}", r.verdict),
                })
            ));
            if let Err(e) = result {
                failure = Some(e.context(format!("step {} at {} req/s", p.step, fmt_rate(rps))));
                break 'rates;
            }
            let last = p.step as usize + 1 == planned.len();
            if !last && !sc.cooldown.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(sc.cooldown) => {}
                    _ = tokio::signal::ctrl_c() => {
                        failure = Some(anyhow::Error::new(Interrupted).context("during a cool-down"));
                        break 'rates;
                    }
                }
            }
        }
        rate_status.push(status);
        if verdict::should_stop(&rate_status, sc.early_stop) {
            if cfg.progress {
                eprintln!(
                    "stopping early: {} unsustainable rates in a row (pass --no-early-stop to run every step)",
                    verdict::STOP_AFTER_UNSUSTAINABLE
                );
            }
            break;
        }
    }
    drop(writer);
    if cfg.progress {
        // Leave the last bar's line before the final table goes to stdout.
        eprintln!();
    }
    let summary = output::rebuild(cfg.dir)?;
    match failure {
        Some(e) if e.downcast_ref::<Interrupted>().is_some() => Err(e.context(format!(
            "sweep interrupted; what was measured is in {}",
            cfg.dir.display()
        ))),
        Some(e) => Err(e.context(RunFailed(format!(
            "sweep stopped; what was measured is in {}",
            cfg.dir.display()
        )))),
        None => Ok(summary),
    }
}

/// Unmeasured traffic at `rps` for `duration` (its records are dropped); Ctrl-C ends it.
async fn warm_up<R: StepRunner>(runner: &mut R, rps: f64, duration: Duration) -> Result<()> {
    let spec = StepSpec {
        step: None,
        rps,
        duration,
    };
    let mut discard = |_r: Record| {};
    tokio::select! {
        r = runner.run_step(&spec, &mut discard) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::Error::new(Interrupted)),
    }
}

fn step_bar(enabled: bool, step: u32, steps: usize, rps: f64, duration: Duration) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let expected = (rps * duration.as_secs_f64()).round().max(1.0) as u64;
    let style = ProgressStyle::with_template("step {prefix} [{bar:30}] {pos:>6}/{len:<6} {msg}")
        .expect("static template")
        .progress_chars("=> ");
    let bar = ProgressBar::new(expected).with_style(style);
    bar.set_prefix(format!("{}/{} @ {} req/s", step + 1, steps, fmt_rate(rps)));
    bar
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

/// The command-line overrides as a scenario layer.
pub fn overrides(a: &SweepArgs) -> Result<ScenarioFile> {
    let mut f = ScenarioFile {
        name: a.name.clone(),
        target: a.target.clone(),
        api: a.api.clone(),
        model: a.model.clone(),
        prompts: a.prompts.clone(),
        max_new_tokens: a.max_new_tokens,
        temperature: a.temperature,
        top_p: a.top_p,
        stream: a.stream.then_some(true),
        seed: a.seed,
        timeout: a.timeout.clone(),
        max_inflight: a.max_inflight,
        arrival: a.arrival.clone(),
        top_k: a.top_k,
        stop: a.stop.clone(),
        ignore_eos: a.ignore_eos.then_some(true),
        tokenizer: a.tokenizer.clone(),
        body_template: a.body_template.clone(),
        text_pointer: a.text_pointer.clone(),
        tokens_pointer: a.tokens_pointer.clone(),
        strip_prompt: a.strip_prompt.clone(),
        insecure: a.insecure.then_some(true),
        ..Default::default()
    };
    for h in &a.headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("--header `{h}` must look like `Name: value`"))?;
        f.headers.insert(k.trim().to_string(), v.trim().to_string());
    }
    f.sweep.rps = a.rps.clone().map(RateSpec::Text);
    f.sweep.step = a.step;
    f.sweep.step_duration = a.step_duration.clone();
    f.sweep.warmup = a.warmup.clone();
    f.sweep.initial_warmup = a.initial_warmup.clone();
    f.sweep.cooldown = a.cooldown.clone();
    f.sweep.repeat = a.repeat;
    f.sweep.early_stop = a.no_early_stop.then_some(false);
    f.sweep.slo = a.slo.clone();
    f.sweep.max_send_lag = a.max_send_lag.clone();
    f.sweep.fail_under = a.fail_under;
    f.cost.instance = a.instance.clone();
    f.cost.price_per_hour = a.price_per_hour;
    f.cost.pricing = a.pricing.clone();
    f.cost.tokens_per_request = a.tokens_per_request;
    Ok(f)
}

/// New tokens per request against the embedded server unless the scenario or a flag says.
pub const EMBEDDED_MAX_NEW_TOKENS: u32 = 20;

/// Everything checked before the first request: the merged, validated scenario, its price,
/// and a writable output folder.
pub struct Prepared {
    pub scenario: Scenario,
    pub price: Option<Price>,
    pub dir: PathBuf,
    /// The attack, checked; None when the embedded server is to be started first.
    pub runner: Option<AttackRunner>,
}

/// Merges `--scenario` with the flags, validates, resolves the price and prepares `--out`.
pub fn prepare(a: &SweepArgs) -> Result<Prepared> {
    let base = match &a.scenario {
        Some(path) => ScenarioFile::load(path)?,
        None => ScenarioFile::default(),
    };
    let mut file = base.merge(overrides(a)?);
    if file.target.is_none() && file.name.is_none() {
        // The title is all a report says about the embedded server, so it names what ran.
        file.name = Some(format!(
            "embedded {} model, {} engine",
            a.serve_model, a.serve_engine
        ));
    }
    if file.target.is_none() && file.max_new_tokens.is_none() {
        // The study's classification length: the attacker's own default (64) puts the tiny
        // model's knee below the study plan's first rate on a 2-core CPU, and the main job must
        // show a sustainable step before the knee.
        file.max_new_tokens = Some(EMBEDDED_MAX_NEW_TOKENS);
    }
    let scenario = file.validate()?;
    let price = scenario.resolve_price()?;
    if let Some(p) = &scenario.file.prompts {
        let path = crate::scenario::resolve_relative(p, a.scenario.as_deref());
        if !path.exists() {
            anyhow::bail!(
                "prompts: {} does not exist (pass --prompts FILE.jsonl)",
                path.display()
            );
        }
    }
    let runner = match &scenario.target {
        Some(t) => Some(AttackRunner::new(&scenario, t, a.scenario.as_deref())?),
        None => None,
    };
    let dir = a.out.clone().unwrap_or_else(|| default_dir(&scenario.name));
    output::prepare_dir(&dir)?;
    Ok(Prepared {
        scenario,
        price,
        dir,
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
pub async fn run_cli(a: SweepArgs) -> Result<std::process::ExitCode> {
    let mut prepared = prepare(&a)?;
    let (mut runner, server) = match prepared.runner.take() {
        Some(r) => (r, None),
        None => {
            let cfg = embedded_server_config(&a)?;
            let server = crate::server::spawn_embedded(cfg)
                .await
                .context("starting the embedded reference server")?;
            let target = format!("http://{}", server.addr());
            if !a.quiet {
                eprintln!(
                    "no --target: started the embedded reference server (model {}, engine {}) at {target}",
                    a.serve_model, a.serve_engine
                );
            }
            match AttackRunner::new(&prepared.scenario, &target, a.scenario.as_deref()) {
                Ok(r) => (r, Some(server)),
                Err(e) => {
                    server.shutdown().await;
                    return Err(e);
                }
            }
        }
    };
    let cfg = DriveConfig {
        scenario: &prepared.scenario,
        price: prepared.price.clone(),
        dir: &prepared.dir,
        progress: !a.quiet,
    };
    let result = drive(&cfg, &mut runner).await;
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
        summary.headline.as_ref().map(|h| h.target_rps),
        requests,
        requests - errors,
        fail_under,
    )
}

/// The embedded server's settings from `--serve-model` / `--serve-engine`, checked by the
/// server's own flag parser.
pub fn embedded_server_config(a: &SweepArgs) -> Result<crate::server::ServerConfig> {
    let argv = [
        "rpload",
        "serve",
        "--model",
        &a.serve_model,
        "--engine",
        &a.serve_engine,
        "--port",
        "0",
    ];
    let cli = crate::cli::Cli::try_parse_from(argv)
        .map_err(|e| anyhow::anyhow!("--serve-model/--serve-engine: {e}"))?;
    let crate::cli::Command::Serve(args) = cli.command else {
        unreachable!("argv starts with the serve subcommand")
    };
    Ok(crate::server::ServerConfig::from_args(&args)?)
}

/// The attacker behind `sweep`: the scenario's attack options checked once by `attack`'s own
/// setup (so a bad API, prompt file or header fails before the first request), then run once
/// per step at the step's rate and duration.
pub struct AttackRunner {
    base: AttackConfig,
    /// One pool for every step and warm-up, so warm-ups open the connections steps use.
    client: reqwest::Client,
}

impl AttackRunner {
    /// Builds the attack for `target` from the scenario; paths resolve next to `scenario_file`
    /// when they do not exist from the working directory.
    pub fn new(sc: &Scenario, target: &str, scenario_file: Option<&Path>) -> Result<Self> {
        let f = &sc.file;
        let mut argv: Vec<String> = vec!["rpload".into(), "attack".into()];
        let mut flag = |name: &str, value: String| {
            argv.push(format!("--{name}"));
            argv.push(value);
        };
        flag("target", target.to_string());
        flag("api", sc.api.clone());
        flag("timeout", format!("{}ms", sc.timeout.as_millis()));
        flag("name", sc.name.clone());
        if let Some(p) = &f.prompts {
            flag(
                "prompts",
                crate::scenario::resolve_relative(p, scenario_file)
                    .display()
                    .to_string(),
            );
        }
        if let Some(v) = f.max_new_tokens {
            flag("max-new-tokens", v.to_string());
        }
        if let Some(v) = f.temperature {
            flag("temperature", v.to_string());
        }
        if let Some(v) = f.top_p {
            flag("top-p", v.to_string());
        }
        if let Some(v) = f.seed {
            flag("seed", v.to_string());
        }
        if let Some(v) = f.max_inflight {
            flag("max-inflight", v.to_string());
        }
        if let Some(v) = &f.arrival {
            flag("arrival", v.clone());
        }
        if let Some(v) = &f.model {
            flag("model", v.clone());
        }
        for (k, v) in &f.headers {
            flag("header", format!("{k}: {v}"));
        }
        if let Some(v) = f.top_k {
            flag("top-k", v.to_string());
        }
        for v in &f.stop {
            flag("stop", v.clone());
        }
        if let Some(v) = &f.tokenizer {
            flag(
                "tokenizer",
                crate::scenario::resolve_relative(v, scenario_file)
                    .display()
                    .to_string(),
            );
        }
        if let Some(v) = &f.body_template {
            flag("body-template", v.clone());
        }
        if let Some(v) = &f.text_pointer {
            flag("text-pointer", v.clone());
        }
        if let Some(v) = &f.tokens_pointer {
            flag("tokens-pointer", v.clone());
        }
        if let Some(v) = &f.strip_prompt {
            flag("strip-prompt", v.clone());
        }
        for (on, name) in [
            (f.stream, "--stream"),
            (f.ignore_eos, "--ignore-eos"),
            (f.insecure, "--insecure"),
        ] {
            if on == Some(true) {
                argv.push(name.into());
            }
        }
        let cli = crate::cli::Cli::try_parse_from(&argv)
            .map_err(|e| anyhow::anyhow!("scenario attack options: {e}"))?;
        let crate::cli::Command::Attack(args) = cli.command else {
            unreachable!("argv starts with the attack subcommand")
        };
        let base = crate::attack::setup::config(&args)?;
        let client = crate::attack::client(&base.client)?;
        Ok(Self { base, client })
    }
}

/// Adapts the driver's record callback to the attacker's sink.
struct FnSink<'a>(&'a mut dyn FnMut(Record));

impl Sink for FnSink<'_> {
    fn record(&mut self, record: Record) -> std::io::Result<()> {
        (self.0)(record);
        Ok(())
    }
}

impl StepRunner for AttackRunner {
    async fn run_step(&mut self, spec: &StepSpec, sink: &mut dyn FnMut(Record)) -> Result<()> {
        let mut cfg = self.base.clone();
        cfg.rate = Rate {
            freq: spec.rps,
            per: Duration::from_secs(1),
        };
        cfg.duration = spec.duration;
        cfg.step = spec.step;
        crate::attack::run_with_client(
            cfg,
            self.client.clone(),
            Control::default(),
            &mut FnSink(sink),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::Requests;
    use crate::attack::api::fastapi::StripPrompt;

    fn runner(toml: &str, args: &[&str]) -> Result<AttackRunner> {
        let mut argv = vec!["rpload", "sweep"];
        argv.extend_from_slice(args);
        let crate::cli::Command::Sweep(a) = crate::cli::Cli::parse_from(argv).command else {
            unreachable!()
        };
        let file = ScenarioFile::parse(toml, "s.toml")?.merge(overrides(&a)?);
        let sc = file.validate()?;
        AttackRunner::new(&sc, "http://127.0.0.1:9", None)
    }

    fn strip_prompt(r: &AttackRunner) -> StripPrompt {
        let Requests::Api { api, .. } = &r.base.requests else {
            panic!("an API attack")
        };
        api.fastapi.strip_prompt
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
