//! Helpers shared by the sweep tests: synthetic records of a target with a known capacity,
//! and a step runner that produces them without a network.
#![allow(dead_code)]

use std::path::Path;

use rpload::record::{ErrorKind, Record, RecordWriter, TokensSource};
use rpload::sweep::output;
use rpload::sweep::run::{StepRunner, StepSpec};

/// A model target: serves `capacity` req/s; below it every request takes `service_s`
/// (growing slightly with load); above it requests queue and one in 25 is refused with 429.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    pub capacity: f64,
    pub service_s: f64,
}

/// Records of one step at `rps` for `step_s` seconds starting `start_s` after a fixed epoch.
pub fn step_records(
    m: Model,
    rps: f64,
    step_s: f64,
    start_s: f64,
    step: Option<u32>,
) -> Vec<Record> {
    let base = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let n = (rps * step_s).round() as u64;
    let saturated = rps > m.capacity;
    (0..n)
        .map(|seq| {
            let intended_s = seq as f64 / rps;
            let queue_s = if saturated {
                seq as f64 * (1.0 / m.capacity - 1.0 / rps)
            } else {
                0.0
            };
            let service_s = m.service_s + rps / 1000.0 + (seq % 7) as f64 * 0.005;
            let latency_s = service_s + queue_s;
            let ok = !(saturated && seq % 25 == 0);
            let intended_ns = (intended_s * 1e9) as u64;
            Record {
                attack: "synthetic".into(),
                seq,
                code: if ok { 200 } else { 429 },
                timestamp: base + time::Duration::seconds_f64(start_s + intended_s),
                latency: (latency_s * 1e9) as u64,
                bytes_out: 450,
                bytes_in: if ok { 80 } else { 60 },
                error: if ok {
                    String::new()
                } else {
                    "429 Too Many Requests".into()
                },
                method: "POST".into(),
                url: "http://127.0.0.1:9/generate_stream".into(),
                intended_ns,
                sent_ns: intended_ns + 50_000,
                ttft_ns: ok.then_some((latency_s * 0.3 * 1e9) as u64),
                itl_ns: if ok {
                    vec![(latency_s * 0.7 / 3.0 * 1e9) as u64; 3]
                } else {
                    vec![]
                },
                tokens_in: ok.then_some(100),
                tokens_in_source: ok.then_some(TokensSource::Server),
                tokens_out: ok.then_some(4),
                tokens_source: ok.then_some(TokensSource::Server),
                error_kind: (!ok).then_some(ErrorKind::Status429),
                capped: false,
                step,
                tokens_out_requested: None,
                session: None,
                turn: None,
                shard: None,
                shards: None,
                schedule: None,
                recv_lag_ns: None,
            }
        })
        .collect()
}

/// Records of a whole sweep: each rate `repeats` times, steps numbered in order.
pub fn sweep_records(m: Model, rates: &[f64], step_s: f64, repeats: u32) -> Vec<Record> {
    let mut out = Vec::new();
    let mut step = 0;
    for &rps in rates {
        for _ in 0..repeats {
            out.extend(step_records(
                m,
                rps,
                step_s,
                f64::from(step) * (step_s + 4.0),
                Some(step),
            ));
            step += 1;
        }
    }
    out
}

/// Writes a run folder by hand: scenario text and records.
pub fn write_run(dir: &Path, scenario: &str, records: &[Record]) {
    std::fs::write(dir.join(output::SCENARIO_TOML), scenario).unwrap();
    let file = std::fs::File::create(dir.join(output::RESULTS_JSONL)).unwrap();
    let mut w = RecordWriter::new(std::io::BufWriter::new(file));
    for r in records {
        w.write(r).unwrap();
    }
    w.flush().unwrap();
}

/// A [`StepRunner`] over [`Model`], instant; fails with an error at step `die_at` after
/// producing half of that step's records (a target that dies mid-sweep).
pub struct ModelRunner {
    pub model: Model,
    pub calls: Vec<StepSpec>,
    pub die_at: Option<u32>,
    clock_s: f64,
}

impl ModelRunner {
    pub fn new(model: Model) -> Self {
        Self {
            model,
            calls: Vec::new(),
            die_at: None,
            clock_s: 0.0,
        }
    }
}

impl StepRunner for ModelRunner {
    #[allow(clippy::manual_async_fn)]
    fn run_step(
        &mut self,
        spec: &StepSpec,
        sink: &mut dyn FnMut(Record),
    ) -> impl std::future::Future<Output = anyhow::Result<()>> {
        self.calls.push(spec.clone());
        let recs = step_records(
            self.model,
            spec.rps,
            spec.duration.as_secs_f64(),
            self.clock_s,
            None,
        );
        self.clock_s += spec.duration.as_secs_f64() + 4.0;
        let dying = spec.step.is_some() && spec.step == self.die_at;
        let keep = if dying { recs.len() / 2 } else { recs.len() };
        for r in recs.into_iter().take(keep) {
            sink(r);
        }
        async move {
            if dying {
                anyhow::bail!("connection refused: the target went away")
            }
            Ok(())
        }
    }
}

/// A loopback TGI `/generate` of known capacity: `slots` requests at once, each held for
/// `hold`, the rest queue in arrival order; it sustains exactly `slots / hold` requests per
/// second. With `shed_above`, a request that finds that many already in the server is refused
/// at once with 429 (a server that sheds load). Stops when dropped.
pub struct CapacityServer {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl CapacityServer {
    pub async fn start(slots: usize, hold: std::time::Duration, shed_above: Option<usize>) -> Self {
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let sem = Arc::new(tokio::sync::Semaphore::new(slots));
        let in_server = Arc::new(AtomicUsize::new(0));
        let handler = move |axum::Json(_body): axum::Json<serde_json::Value>| {
            let (sem, in_server) = (sem.clone(), in_server.clone());
            async move {
                let before = in_server.fetch_add(1, Ordering::SeqCst);
                if shed_above.is_some_and(|q| before >= q) {
                    in_server.fetch_sub(1, Ordering::SeqCst);
                    return (StatusCode::TOO_MANY_REQUESTS, "{\"error\":\"busy\"}").into_response();
                }
                let permit = sem.acquire().await.expect("never closed");
                tokio::time::sleep(hold).await;
                drop(permit);
                in_server.fetch_sub(1, Ordering::SeqCst);
                axum::Json(serde_json::json!({
                    "generated_text": " sports",
                    "details": {"generated_tokens": 1, "finish_reason": "length"}
                }))
                .into_response()
            }
        };
        let app = axum::Router::new().route("/generate", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            stop: Some(tx),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for CapacityServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Runs `rpload sweep -q --out DIR ARGS...` in-process; returns its exit status (or the error's
/// status, as `main` would map it) and the run folder's summary when one was written.
pub async fn sweep_cli(
    dir: &Path,
    args: &[&str],
) -> (u8, Option<rpload::analysis::summary::SweepSummary>) {
    use clap::Parser;
    let out = dir.display().to_string();
    let mut argv = vec!["rpload", "sweep", "-q", "--out", &out];
    argv.extend_from_slice(args);
    let cli = rpload::commands::Cli::try_parse_from(argv).expect("flags parse");
    let code = match rpload::run_async(cli).await {
        Ok(code) => {
            if code == std::process::ExitCode::SUCCESS {
                0
            } else {
                rpload::exit::FAILED
            }
        }
        Err(e) => rpload::exit::code(&e),
    };
    let summary = output::rebuild(dir).ok();
    (code, summary)
}

/// `(offered rate, status)` of every step, for assertion messages too.
pub fn statuses(s: &rpload::analysis::summary::SweepSummary) -> Vec<(f64, &'static str)> {
    s.steps
        .iter()
        .map(|r| (r.level(), r.status.as_str()))
        .collect()
}

/// Every step's rate, served rate and verdict, for assertion messages.
pub fn explain(s: &rpload::analysis::summary::SweepSummary) -> String {
    s.steps
        .iter()
        .map(|r| {
            format!(
                "{} (r{}): served {:.2}, trend {:?} ms/s, lag p99 {:.2}/{:.2} ms: {}",
                match r.target_concurrency {
                    Some(n) => format!("{n} users"),
                    None => format!("{} req/s", r.target_rps),
                },
                r.repeat,
                r.served_rps,
                r.latency_trend_ms_per_s,
                r.send_lag_p99_ms,
                r.send_lag_limit_ms,
                r.verdict
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Held by each timing-sensitive sweep test of a binary, so they run one at a time: cargo runs
/// a binary's tests in parallel threads, and on a 2-core machine four sweeps beside each other
/// make every client lag (which the verdict rightly flags).
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs the sweep a scenario text describes through the real attacker into `dir` (its own
/// `target`; at most 60 s) and returns its summary.
pub async fn drive_scenario(text: &str, dir: &Path) -> rpload::analysis::summary::SweepSummary {
    use rpload::sweep::run::{DriveConfig, Silent, drive};
    let sc = rpload::scenario::ScenarioFile::parse(text, "test.toml")
        .unwrap()
        .validate()
        .unwrap();
    let mut runner = rpload::sweep::runner::AttackRunner::new(&sc, None, None).unwrap();
    let cfg = DriveConfig {
        scenario: &sc,
        price: sc.resolve_price().unwrap(),
        stop: Default::default(),
        timeline: None,
    };
    let mut folder = output::RunFolder::new(dir);
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        drive(&cfg, &mut runner, &mut folder, &mut Silent),
    )
    .await
    .expect("the sweep ends within 60 s")
    .expect("the sweep runs")
}
