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
