//! How a search went, for the reports: the policy asked once more on the levels as judged
//! (so the outcome is the one the driver reached, or None when the search was cut short), the
//! bracket it ended in, and the spread of its answer's runs when `--confirm` re-ran it.

use serde::Serialize;

use super::{RateRow, StepRow};
use crate::analysis::search::{self, Next, Outcome, Probed};
use crate::scenario::plan::{Axis, fmt_rate};
use crate::scenario::search::Search;

/// A search's course and answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchSummary {
    pub lo: f64,
    pub hi: f64,
    pub precision: f64,
    pub confirm: u32,
    /// Steps run (probes and confirmations).
    pub steps: usize,
    /// None: the search did not finish (interrupted, or a step could not run).
    pub outcome: Option<Outcome>,
    /// The answer's runs, when it ran more than once.
    pub spread: Option<Spread>,
}

/// The range of an answer's figures over its runs (`--confirm`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub runs: u32,
    pub served_rps_min: f64,
    pub served_rps_max: f64,
    pub latency_p95_ms_min: f64,
    pub latency_p95_ms_max: f64,
}

impl SearchSummary {
    /// The level the search answered with (None: it failed at its lower bound or did not end).
    pub fn answer(&self) -> Option<f64> {
        match self.outcome? {
            Outcome::Found { level, .. } | Outcome::AtUpperBound { level } => Some(level),
            Outcome::FailsAtStart { .. } => None,
        }
    }

    /// What the search found, in a sentence or two (the table's and report's last lines).
    pub fn describe(&self, axis: Axis) -> String {
        let lvl = |x: f64| axis.fmt_level(x);
        let head = format!(
            "search {}..{} within {}%, {} steps: ",
            fmt_rate(self.lo),
            fmt_rate(self.hi),
            fmt_rate(self.precision * 100.0),
            self.steps
        );
        let body = match self.outcome {
            Some(Outcome::Found { level, above }) => format!(
                "the capacity is between {} (held) and {} (did not)",
                lvl(level),
                lvl(above)
            ),
            Some(Outcome::AtUpperBound { level }) => format!(
                "even the upper bound {} held; the capacity is at least that (raise the bound to find it)",
                lvl(level)
            ),
            Some(Outcome::FailsAtStart { level }) => format!(
                "the lower bound {} already fails; lower it to find the capacity",
                lvl(level)
            ),
            None => "stopped before it ended (the steps so far are kept)".to_string(),
        };
        let spread = self.spread.map_or(String::new(), |s| {
            format!(
                "; its {} runs served {:.2}..{:.2} req/s at p95 {:.1}..{:.1} ms",
                s.runs,
                s.served_rps_min,
                s.served_rps_max,
                s.latency_p95_ms_min,
                s.latency_p95_ms_max
            )
        });
        format!("{head}{body}{spread}")
    }
}

/// The summary of `search` from its levels' rows and its steps.
pub(super) fn summarize(s: &Search, rates: &[RateRow], steps: &[StepRow]) -> SearchSummary {
    let history: Vec<Probed> = rates
        .iter()
        .map(|r| Probed {
            level: r.level(),
            status: r.status,
            runs: r.repeats,
        })
        .collect();
    let outcome = match search::next(s, &history) {
        Next::Done(o) => Some(o),
        Next::Probe { .. } => None,
    };
    let mut out = SearchSummary {
        lo: s.lo,
        hi: s.hi,
        precision: s.precision,
        confirm: s.confirm,
        steps: steps.len(),
        outcome,
        spread: None,
    };
    let Some(answer) = out.answer() else {
        return out;
    };
    let runs: Vec<&StepRow> = steps.iter().filter(|r| r.level() == answer).collect();
    if runs.len() > 1 {
        let range = |f: fn(&StepRow) -> f64| {
            runs.iter()
                .map(|r| f(r))
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                    (lo.min(x), hi.max(x))
                })
        };
        let (served_rps_min, served_rps_max) = range(|r| r.served_rps);
        let (latency_p95_ms_min, latency_p95_ms_max) = range(|r| r.latency_ms.p95);
        out.spread = Some(Spread {
            runs: runs.len() as u32,
            served_rps_min,
            served_rps_max,
            latency_p95_ms_min,
            latency_p95_ms_max,
        });
    }
    out
}
