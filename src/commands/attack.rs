//! `rpload attack`: its flags (the shared [`AttackOptions`] plus the schedule and the results
//! file), the results file, the progress line, Ctrl-C handling, and the exit status
//! (`--fail-on-errors`; `exit` has the table).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use crate::attack::options::AttackOptions;
use crate::attack::setup::{self, Schedule, SetupError};
use crate::attack::{AttackConfig, Control, Progress, Sink};
use crate::exit::{self, Interrupted, RunFailed};
use crate::metrics::Metrics;
use crate::record::{Record, RecordWriter};

/// Flags of `rpload attack`: the options every attack shares, then this command's schedule
/// (a sweep sets rate and duration per step instead) and output.
#[derive(Debug, Clone, Args)]
pub struct AttackArgs {
    #[command(flatten)]
    pub options: AttackOptions,
    /// Requests per period: `50`, `50/s`, `1/5s`. 0 runs a closed loop of --max-inflight
    /// users. --ramp replaces it [default: 50/1s].
    #[arg(long, short = 'r', allow_hyphen_values = true)]
    pub rate: Option<String>,
    /// How long to schedule requests (`10s`, `1m30s`; 0 = until Ctrl-C or --max-requests).
    #[arg(long, short = 'd', default_value = "10s", allow_hyphen_values = true)]
    pub duration: String,
    /// Results file (JSON lines); `-` or omitted writes to stdout.
    #[arg(long, short = 'o')]
    pub output: Option<std::path::PathBuf>,
    /// Exit 1 when more than this share of requests failed, e.g. 5% or 0.05 (for CI gates).
    #[arg(long, value_name = "RATIO")]
    pub fail_on_errors: Option<String>,
    /// Send shard I of N of the schedule (I from 0): the ticks k with k % N == I, each at the
    /// time the whole schedule has it, and closed-loop users u with u % N == I. `auto/N` takes
    /// I from JOB_COMPLETION_INDEX, as a Kubernetes Indexed Job sets it. `rpload report` merges
    /// the N files.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Wait until this instant (RFC 3339, e.g. 2026-12-04T03:00:00Z), then start the schedule;
    /// give every shard the same one (their clocks synchronised, as NTP keeps them). Without
    /// it the attack starts at once.
    #[arg(long, value_name = "RFC3339")]
    pub start_at: Option<String>,
}

/// `--rate` when none is given (and no --ramp).
pub const DEFAULT_RATE: &str = "50/1s";

impl AttackArgs {
    pub fn rate(&self) -> &str {
        self.rate.as_deref().unwrap_or(DEFAULT_RATE)
    }
}

/// The checked attack these flags describe; every problem is found here, before a request
/// (but `--model auto`'s question to the server, which [`run`] asks before the first).
pub fn config(args: &AttackArgs) -> Result<AttackConfig, SetupError> {
    if args.rate.is_some() && args.options.ramp.is_some() {
        return Err(SetupError::RampWithRate);
    }
    let schedule = Schedule::parse(args.rate(), &args.duration)?;
    let mut cfg = setup::config(&args.options, &schedule)?;
    let job_index = std::env::var(crate::pacer::shard::JOB_INDEX_VAR).ok();
    crate::attack::shard::apply(
        &mut cfg,
        &args.options,
        args.shard.as_deref(),
        args.start_at.as_deref(),
        job_index.as_deref(),
        time::OffsetDateTime::now_utc(),
    )?;
    Ok(cfg)
}

/// `rpload attack`.
pub async fn run(args: AttackArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = config(&args)?;
    // One client for the model question and the attack, so the attack reuses its connection.
    let client = crate::attack::client(&cfg.client)?;
    crate::attack::models::resolve(&mut cfg, &client).await?;
    let fail_on_errors = args
        .fail_on_errors
        .as_deref()
        .map(parse_error_ratio)
        .transpose()?;
    let out: Box<dyn Write + Send> = match &args.output {
        Some(p) if p.as_os_str() != "-" => Box::new(
            std::fs::File::create(p)
                .with_context(|| format!("creating results file {}", p.display()))?,
        ),
        _ => Box::new(std::io::stdout()),
    };
    if let crate::attack::Requests::Api { workload, .. } = &cfg.requests {
        for note in workload.notes() {
            eprintln!("rpload: {note}");
        }
    }
    if let Some(at) = cfg.start_at {
        let shard = cfg.sharding.as_ref().map_or_else(String::new, |s| {
            format!("shard {} of schedule {} ", s.shard, s.schedule)
        });
        let wait = (at - time::OffsetDateTime::now_utc())
            .as_seconds_f64()
            .max(0.0);
        let at = at.format(&time::format_description::well_known::Rfc3339);
        eprintln!(
            "rpload: {shard}waits {wait:.1} s for --start-at {}",
            at.unwrap_or_default()
        );
    }
    let control = Control::default();
    let _interrupts = super::interrupt::install(&control, cfg.timeout);
    let mut sink = FileSink {
        writer: RecordWriter::new(std::io::BufWriter::with_capacity(1 << 16, out)),
        progress: ProgressLine::new(&cfg, control.progress.clone()),
        requests: 0,
        errors: 0,
        cancelled: 0,
    };
    let kept = "every finished request before it was written";
    let stats = crate::attack::run_with_clients(cfg, &[client], control, &mut sink)
        .await
        .map_err(|e| e.context(RunFailed(format!("the attack stopped; {kept}"))))?;
    sink.writer
        .flush()
        .context("writing results")
        .map_err(|e| e.context(RunFailed("the results file is incomplete".into())))?;
    sink.progress.finish();
    if stats.interrupted {
        let cancelled = sink.cancelled;
        return Err(anyhow::Error::new(Interrupted).context(format!(
            "stopped: {} records written, one per request sent ({cancelled} of them cancelled in flight)",
            stats.completed
        )));
    }
    if let Some(max) = fail_on_errors {
        let ratio = sink.errors as f64 / sink.requests.max(1) as f64;
        if ratio > max {
            eprintln!(
                "rpload: {} of {} requests failed ({:.2}%), above --fail-on-errors {:.2}%",
                sink.errors,
                sink.requests,
                ratio * 100.0,
                max * 100.0
            );
            return Ok(exit::status(true));
        }
    }
    Ok(exit::status(false))
}

/// `5%` or `0.05` -> 0.05; refuses anything outside 0..=100%.
pub fn parse_error_ratio(text: &str) -> anyhow::Result<f64> {
    let t = text.trim();
    let value = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    };
    match value {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => anyhow::bail!(
            "--fail-on-errors `{text}` is not a share of requests between 0 and 100%; write e.g. 5% or 0.05"
        ),
    }
}

struct FileSink<W: Write> {
    writer: RecordWriter<W>,
    progress: ProgressLine,
    requests: u64,
    errors: u64,
    cancelled: u64,
}

impl<W: Write> Sink for FileSink<W> {
    fn record(&mut self, record: Record) -> std::io::Result<()> {
        self.requests += 1;
        if !record.is_success() {
            self.errors += 1;
        }
        if record.error_kind == Some(crate::record::ErrorKind::Cancelled) {
            self.cancelled += 1;
        }
        self.writer.write(&record)?;
        self.progress.add(&record);
        Ok(())
    }

    fn idle(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

/// The live line on stderr (only when it is a terminal): sent, ok, errors, p50, p99, tokens/s.
struct ProgressLine {
    bar: Option<indicatif::ProgressBar>,
    metrics: Metrics,
    progress: Arc<Progress>,
    started: Instant,
    last_draw: Instant,
}

impl ProgressLine {
    fn new(cfg: &AttackConfig, progress: Arc<Progress>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .expect("static template"),
            );
            bar.set_prefix(cfg.rate.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            metrics: Metrics::default(),
            progress,
            started: Instant::now(),
            last_draw: Instant::now(),
        }
    }

    fn add(&mut self, record: &Record) {
        let Some(bar) = &self.bar else { return };
        self.metrics.add(record);
        if self.last_draw.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last_draw = Instant::now();
        let ms = |ns: u64| ns as f64 / 1e6;
        let lat = &self.metrics.latency;
        let errors = self.metrics.requests - self.metrics.successes;
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "sent {}  ok {}  errors {}  in-flight {}  p50 {:.1}ms  p99 {:.1}ms  {:.0} tok/s",
            self.progress.sent.load(Ordering::Relaxed),
            self.metrics.successes,
            errors,
            self.progress.inflight.load(Ordering::Relaxed),
            ms(lat.quantile(50.0)),
            ms(lat.quantile(99.0)),
            self.metrics.summary_tokens_out() as f64 / secs,
        ));
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::Requests;
    use clap::Parser;

    fn args(extra: &[&str]) -> AttackArgs {
        let mut argv = vec!["rpload", "attack"];
        argv.extend_from_slice(extra);
        match crate::commands::Cli::parse_from(argv).command {
            crate::commands::Command::Attack(a) => *a,
            _ => unreachable!(),
        }
    }

    fn err(extra: &[&str]) -> String {
        config(&args(extra)).unwrap_err().to_string()
    }

    #[test]
    fn bad_input_is_named_before_any_request() {
        let t = ["--target", "http://127.0.0.1:9"];
        assert!(err(&["--api", "grpc", "--target", "http://x"]).contains("unknown --api \"grpc\""));
        assert!(err(&[&t[..], &["--rate", "fast"]].concat()).starts_with("--rate: invalid rate"));
        assert!(
            err(&[&t[..], &["--duration", "10"]].concat())
                .starts_with("--duration: invalid duration")
        );
        assert!(
            err(&[&t[..], &["--arrival", "burst"]].concat()).contains("constant, poisson or gamma")
        );
        assert!(
            err(&[&t[..], &["--rate", "0", "--duration", "0"]].concat()).contains("closed loop")
        );
        assert!(err(&[&t[..], &["--max-rate", "5"]].concat()).contains("--rate 0"));
        assert!(err(&["--api", "tgi"]).contains("no target"));
        assert!(err(&[&t[..], &["-H", "nocolon"]].concat()).starts_with("--header:"));
        let e = err(&[
            "--api",
            "tgi",
            "--target",
            "http://127.0.0.1:9",
            "--prompts",
            "/nonexistent/p.jsonl",
        ]);
        assert!(e.contains("/nonexistent/p.jsonl"), "{e}");
        let e = err(&[
            "--api",
            "fastapi",
            "--target",
            "http://127.0.0.1:9",
            "--body-template",
            "{}",
        ]);
        assert!(e.contains("{{prompt}}"), "{e}");
        let e = err(&[
            "--api",
            "fastapi",
            "--target",
            "http://127.0.0.1:9",
            "--strip-prompt",
            "sometimes",
        ]);
        assert!(
            e.starts_with("--strip-prompt \"sometimes\" is not known; use auto"),
            "{e}"
        );
    }

    #[test]
    fn bad_arrivals_and_ramps_are_named_with_their_fix() {
        let t = ["--target", "http://127.0.0.1:9"];
        let with = |extra: &[&str]| err(&[&t[..], extra].concat());
        let e = with(&["--burstiness", "0.5"]);
        assert_eq!(
            e,
            "--burstiness shapes gamma arrivals only; add --arrival gamma (or drop --burstiness)"
        );
        assert!(
            with(&["--arrival", "poisson", "--burstiness", "2"]).contains("add --arrival gamma")
        );
        for b in ["0", "-1", "NaN", "inf", "0.001"] {
            let e = with(&["--arrival", "gamma", "--burstiness", b]);
            assert!(e.starts_with("--burstiness "), "{b}: {e}");
            assert!(e.contains("must be a number of at least 0.01"), "{b}: {e}");
        }
        let e = with(&["--ramp", "10..100/30s", "--rate", "5"]);
        assert!(e.starts_with("--ramp sets the rate itself"), "{e}");
        assert!(e.contains("drop --rate"), "{e}");
        let e = with(&["--ramp", "10..100"]);
        assert!(
            e.starts_with("--ramp: invalid ramp `10..100`: stage `10..100` has no /DURATION"),
            "{e}"
        );
        assert!(e.contains("\n         ^"), "{e}");
        let e = with(&["--ramp", "10..100/30s"]);
        assert_eq!(
            e,
            "--ramp lasts 30s, longer than --duration 10s; raise --duration to at least 30s or shorten the ramp"
        );
        let e = with(&["--ramp", "10..2000000/1s"]);
        assert!(
            e.starts_with("--ramp 10..2000000/1s: reaches 2000000 req/s"),
            "{e}"
        );
        let e = with(&["--ramp", "10..100/1s", "--max-rate", "5"]);
        assert!(
            e.contains("--max-rate only applies to a closed loop"),
            "{e}"
        );
        for api in ["tgi", "fastapi"] {
            let e = with(&["--api", api, "--stream"]);
            assert_eq!(
                e,
                format!(
                    "--stream is for the OpenAI kinds, not --api {api}; for TGI streaming use --api tgi-stream"
                )
            );
        }
        assert!(
            config(&args(
                &[&t[..], &["--api", "tgi-stream", "--stream"]].concat()
            ))
            .is_ok()
        );
    }

    #[test]
    fn gamma_arrivals_and_a_ramp_reach_the_config() {
        let t = ["--target", "http://127.0.0.1:9"];
        let c = config(&args(
            &[
                &t[..],
                &["--arrival", "gamma", "--burstiness", "0.25", "--seed", "3"],
            ]
            .concat(),
        ))
        .unwrap();
        assert_eq!(
            c.arrival,
            crate::pacer::Arrival::Gamma {
                seed: 3,
                burstiness: 0.25
            }
        );
        assert!(c.ramp.is_none());
        let c = config(&args(
            &[
                &t[..],
                &["--ramp", "0..40/5s,40..10/5s", "--duration", "20s"],
            ]
            .concat(),
        ))
        .unwrap();
        let ramp = c.ramp.expect("a ramp");
        assert_eq!(ramp.stages().len(), 2);
        // The open loop runs at the ramp's pace; `rate` carries its peak.
        assert_eq!(c.rate.per_second(), 40.0);
        // --duration 0 lets the last rate hold until Ctrl-C or --max-requests.
        assert!(
            config(&args(
                &[&t[..], &["--ramp", "1..2/1m", "--duration", "0"]].concat()
            ))
            .is_ok()
        );
    }

    #[test]
    fn a_valid_llm_attack() {
        let c = config(&args(&[
            "--api",
            "openai-chat",
            "--target",
            "http://127.0.0.1:9",
            "--rate",
            "5/s",
            "--duration",
            "2s",
            "--stream",
            "--max-new-tokens",
            "8",
        ]))
        .unwrap();
        assert_eq!(c.rate.per_second(), 5.0);
        let Requests::Api {
            api,
            workload: prompts,
        } = c.requests
        else {
            panic!("expected an API attack")
        };
        assert_eq!(
            &*api.targets[0].url,
            "http://127.0.0.1:9/v1/chat/completions"
        );
        assert!(api.params.stream);
        assert_eq!(prompts.len(), 1);
    }
}
