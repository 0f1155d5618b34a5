//! `rpload sweep`'s progress on stderr: a line for the warm-up, a bar per step with live
//! figures, its verdict when it ends (or, in a pod of a sweep in shards, that the verdict is
//! made at the merge), and why the sweep stopped early. The driver's [`Observer`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::analysis::summary::{StepData, StepRow};
use crate::analysis::verdict::{self, Status};
use crate::record::Record;
use crate::scenario::PlannedStep;
use crate::scenario::plan::Axis;
use crate::sweep::run::Observer;

/// A step's load as the progress lines say it: `40 req/s`, `8 users`.
fn load(p: &PlannedStep) -> String {
    match p.concurrency {
        Some(users) => Axis::Concurrency.fmt_level(f64::from(users)),
        None => Axis::Rate.fmt_level(p.rps),
    }
}

/// Progress on stderr: a line for the warm-up, a bar per step with live figures, its verdict
/// when it ends, and why the sweep stopped early.
pub struct Bars {
    enabled: bool,
    bar: ProgressBar,
    /// The current bar, for warnings printed from inside a step (`--server-metrics`).
    pub shared: Arc<Mutex<ProgressBar>>,
    last_msg: Instant,
    /// A pod of a sweep in shards: what a step's end says instead of a verdict.
    pub judged_at_merge: Option<String>,
    /// The shards a step is cut into (1 unless `sweep --shard`): a pod's bar counts its share.
    pub shards: u32,
}

impl Bars {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            bar: ProgressBar::hidden(),
            shared: Arc::new(Mutex::new(ProgressBar::hidden())),
            last_msg: Instant::now(),
            judged_at_merge: None,
            shards: 1,
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
            let whole = p.rps * duration.as_secs_f64();
            let expected = (whole / f64::from(self.shards)).round().max(1.0) as u64;
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
        if let Some(note) = &self.judged_at_merge {
            let figures = live_figures(so_far);
            self.bar.finish_with_message(format!("{figures} | {note}"));
            return;
        }
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
