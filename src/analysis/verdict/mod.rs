//! Whether one step was sustainable, when a sweep stops, and which rate is the headline.
//!
//! A step is sustainable when the target kept pace with its arrivals (`pace`: the latency of
//! its successful requests does not grow across the step by more than the 5% the served-rate
//! bound allows, with 95% confidence), at least 99% of requests succeeded, the client kept up
//! (send-lag p99 within what the schedule allows, no request waited for the in-flight cap, sends
//! at the scheduled rate, answers read within the receive-lag allowance) and every SLO clause holds on successful requests (or, with
//! `--slo-attainment`, enough requests met every clause on their own: `goodput`). A step whose
//! requests cannot tell (too few, or a trend within its own noise of the bound) is
//! *undetermined*: never the headline, never a reason to stop.
//!
//! A closed-loop step (`--concurrency`) has no arrivals to keep pace with and no schedule for
//! the client to keep: it is sustainable when 99% succeeded, the SLO holds and its added users
//! still bought throughput over the level below (`scaling`, from Little's law).
//!
//! Every figure comes from the step itself (and, for a closed loop, the levels before it), so
//! the verdict printed live is the final one. `scenarios/README.md` has the reasoning. Pure:
//! numbers in, verdicts out.

use std::fmt;

use serde::Serialize;

mod reasons;

pub use reasons::{Doubt, Failure, Reason};

use super::pace::{MIN_TREND_REQUESTS, PaceCall, PaceEstimate};
use super::scaling::{self, ScalingCall};
use crate::metrics::{Percentiles, send_lag_allowance_ns};
use crate::scenario::plan::Axis;
use crate::scenario::rules::VerdictRules;
use crate::scenario::slo::{Family, Stat};

/// Percentiles of one timing distribution as floats. Verdicts read them in nanoseconds;
/// reports keep them in milliseconds (`summary::Ms`). Both come from [`Pcts::scaled`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Pcts {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Pcts {
    /// `p` with every figure divided by `unit_ns` (1.0: ns, 1e6: ms).
    pub fn scaled(p: &Percentiles, unit_ns: f64) -> Self {
        let f = |v: u64| v as f64 / unit_ns;
        Self {
            mean: f(p.mean),
            p50: f(p.p50),
            p90: f(p.p90),
            p95: f(p.p95),
            p99: f(p.p99),
            p999: f(p.p999),
            max: f(p.max),
        }
    }

    /// The figure-by-figure mean of several steps' percentiles (a rate's repeats).
    pub fn mean_of(all: &[Pcts]) -> Pcts {
        let n = all.len().max(1) as f64;
        let avg = |f: fn(&Pcts) -> f64| all.iter().map(f).sum::<f64>() / n;
        Pcts {
            mean: avg(|m| m.mean),
            p50: avg(|m| m.p50),
            p90: avg(|m| m.p90),
            p95: avg(|m| m.p95),
            p99: avg(|m| m.p99),
            p999: avg(|m| m.p999),
            max: avg(|m| m.max),
        }
    }

    /// The statistic an SLO clause names.
    pub fn get(&self, stat: Stat) -> f64 {
        match stat {
            Stat::Mean => self.mean,
            Stat::P50 => self.p50,
            Stat::P90 => self.p90,
            Stat::P95 => self.p95,
            Stat::P99 => self.p99,
            Stat::P999 => self.p999,
            Stat::Max => self.max,
        }
    }
}

/// What a verdict looks at, for one step (one burst/repeat at one rate). Timing distributions
/// are of successful requests only.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepFigures {
    pub offered_rps: f64,
    pub requests: u64,
    pub success_ratio: f64,
    pub pace: PaceEstimate,
    pub send_lag_p99_ns: f64,
    /// Receive-lag p99 and its allowance ([`crate::metrics::recv_lag_allowance_ns`]), over all requests.
    pub recv_lag_p99_ns: f64,
    pub recv_lag_limit_ns: f64,
    /// Requests that waited for a free in-flight slot.
    pub capped: u64,
    /// The client's `--max-inflight`, for naming it when it was the limit.
    pub max_inflight: Option<u64>,
    pub latency: Pcts,
    pub service: Option<Pcts>,
    pub ttft: Option<Pcts>,
    pub itl: Option<Pcts>,
    pub tpot: Option<Pcts>,
    /// The share of requests that met every SLO clause on their own (`goodput`).
    pub attainment: Option<f64>,
    /// A closed-loop step's level, and the level below it (None: the first level).
    pub closed_loop: Option<ClosedLoop>,
}

/// What a closed-loop step is judged on beside success and the SLO.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClosedLoop {
    pub here: scaling::Level,
    pub below: Option<scaling::Level>,
}

impl StepFigures {
    fn family(&self, family: Family) -> Option<&Pcts> {
        match family {
            Family::Latency => Some(&self.latency),
            Family::Service => self.service.as_ref(),
            Family::Ttft => self.ttft.as_ref(),
            Family::Itl => self.itl.as_ref(),
            Family::Tpot => self.tpot.as_ref(),
        }
    }

    /// The send-lag p99 this step may have: the explicit `--max-send-lag`, else derived from
    /// its schedule and latency ([`send_lag_allowance_ns`]).
    pub fn send_lag_limit_ns(&self, rules: &VerdictRules) -> f64 {
        match rules.max_send_lag {
            Some(d) => d.as_nanos() as f64,
            None => send_lag_allowance_ns(self.offered_rps, self.latency.p50 as u64) as f64,
        }
    }
}

/// The three outcomes of a step (or a rate, its repeats folded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Sustainable,
    Unsustainable,
    #[default]
    Undetermined,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sustainable => "sustainable",
            Status::Unsustainable => "unsustainable",
            Status::Undetermined => "undetermined",
        }
    }

    /// A rate's status from its repeats: unsustainable if any is, sustainable if all are.
    pub fn fold(all: impl IntoIterator<Item = Status>) -> Status {
        let mut out = Status::Sustainable;
        let mut any = false;
        for s in all {
            any = true;
            match s {
                Status::Unsustainable => return Status::Unsustainable,
                Status::Undetermined => out = Status::Undetermined,
                Status::Sustainable => {}
            }
        }
        if any { out } else { Status::Undetermined }
    }
}

/// The outcome of one step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    pub failures: Vec<Failure>,
    pub doubts: Vec<Doubt>,
}

impl Verdict {
    pub fn status(&self) -> Status {
        if !self.failures.is_empty() {
            Status::Unsustainable
        } else if !self.doubts.is_empty() {
            Status::Undetermined
        } else {
            Status::Sustainable
        }
    }

    pub fn sustainable(&self) -> bool {
        self.status() == Status::Sustainable
    }

    /// `ok`, the failures joined with `; `, or (undetermined) the doubts.
    pub fn describe(&self) -> String {
        match self.status() {
            Status::Sustainable => "ok".into(),
            Status::Unsustainable => join(&self.failures),
            Status::Undetermined => join(&self.doubts),
        }
    }

    /// What [`describe`](Self::describe) says, as data.
    pub fn reasons(&self) -> Vec<Reason> {
        match self.status() {
            Status::Sustainable => Vec::new(),
            Status::Unsustainable => self.failures.iter().map(Failure::reason).collect(),
            Status::Undetermined => self.doubts.iter().map(Doubt::reason).collect(),
        }
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Judges one step.
pub fn judge(fig: &StepFigures, rules: &VerdictRules) -> Verdict {
    let mut v = Verdict::default();
    if fig.requests == 0 {
        v.failures.push(Failure::NoRequests);
        return v;
    }
    if fig.success_ratio < rules.min_success_ratio {
        v.failures.push(Failure::Success {
            ratio: fig.success_ratio,
            min: rules.min_success_ratio,
        });
    }
    match &fig.closed_loop {
        Some(c) => judge_scaling(c, &mut v),
        None => {
            judge_pace(fig, rules, &mut v);
            judge_client(fig, rules, &mut v);
        }
    }
    // Open or closed loop, timings read late are the client's, not the target's.
    if fig.recv_lag_p99_ns > fig.recv_lag_limit_ns {
        v.failures.push(Failure::ClientRecvLagged {
            p99_ns: fig.recv_lag_p99_ns,
            max_ns: fig.recv_lag_limit_ns,
        });
    }
    if let Some(min) = rules.slo_attainment {
        // DistServe's test instead of the statistics: each request judged on its own.
        let measured = fig.attainment.unwrap_or(0.0);
        if measured < min {
            v.failures.push(Failure::Attainment {
                measured,
                min,
                slo: rules.slo.clone(),
            });
        }
        return v;
    }
    for clause in &rules.slo.clauses {
        match fig.family(clause.family) {
            Some(p) => {
                let measured_ns = p.get(clause.stat);
                if !clause.holds(measured_ns) {
                    v.failures.push(Failure::Slo {
                        clause: *clause,
                        measured_ns,
                    });
                }
            }
            None => v.failures.push(Failure::NotMeasured { clause: *clause }),
        }
    }
    v
}

/// The pace rule: `pace` calls it (each decision on the window whose bias works against it,
/// with 95% intervals); this turns the call into a failure or a doubt.
fn judge_pace(fig: &StepFigures, rules: &VerdictRules, v: &mut Verdict) {
    let p = &fig.pace;
    let (slope, margin) = (p.slope.unwrap_or(0.0), p.slope_margin.unwrap_or(0.0));
    match p.call {
        PaceCall::KeptPace => {}
        PaceCall::FellBehind => v.failures.push(Failure::FellBehind {
            served_rps: p.served_rps,
            arrival_rps: p.arrival_rps,
            min_ratio: rules.min_served_ratio,
            slope,
        }),
        PaceCall::Noisy => v.doubts.push(Doubt::Noisy {
            slope,
            margin,
            max_slope: rules.max_slope(),
        }),
        PaceCall::Transient => v.doubts.push(Doubt::Transient { slope, margin }),
        PaceCall::TooFew => v.doubts.push(Doubt::TooFew {
            successes: p.successes,
        }),
    }
}

/// The scaling rule of a closed loop: too few successes cannot tell; the first level has
/// nothing below to compare with; later ones must still turn added users into throughput.
fn judge_scaling(c: &ClosedLoop, v: &mut Verdict) {
    if c.here.successes < MIN_TREND_REQUESTS {
        v.doubts.push(Doubt::TooFew {
            successes: c.here.successes,
        });
        return;
    }
    let Some(s) = c.below.and_then(|b| scaling::compare(&b, &c.here)) else {
        return;
    };
    match s.call {
        ScalingCall::Scales => {}
        ScalingCall::Plateau => v.failures.push(Failure::Plateau(s)),
        ScalingCall::Noisy => v.doubts.push(Doubt::ScalingNoisy(s)),
    }
}

/// The client rule: lag within the schedule's allowance, sends at the scheduled rate, and no
/// request held back by the in-flight cap.
fn judge_client(fig: &StepFigures, rules: &VerdictRules, v: &mut Verdict) {
    let max_ns = fig.send_lag_limit_ns(rules);
    if fig.send_lag_p99_ns > max_ns {
        v.failures.push(Failure::ClientLagged {
            p99_ns: fig.send_lag_p99_ns,
            max_ns,
            explicit: rules.max_send_lag.is_some(),
        });
    }
    if let Some(sent) = fig.pace.sent_rps
        && sent < rules.min_served_ratio * fig.pace.arrival_rps
    {
        v.failures.push(Failure::ClientSlow {
            sent_rps: sent,
            arrival_rps: fig.pace.arrival_rps,
        });
    }
    if fig.capped > 0 {
        v.failures.push(Failure::InflightCap {
            capped: fig.capped,
            cap: fig.max_inflight,
        });
    }
}

/// A rate's status from its repeats: unsustainable if any is, sustainable if every one is.
/// When some could not tell (their only doubts are about pace: too few requests, a noisy or a
/// transient trend), the trend of all repeats pooled decides: repeats replicate one schedule,
/// so together they hold the evidence each lacks (`pace::PaceData::pooled`).
pub fn fold_repeats(repeats: &[Status], pooled: PaceCall) -> Status {
    let folded = Status::fold(repeats.iter().copied());
    if folded != Status::Undetermined || repeats.len() < 2 {
        return folded;
    }
    match pooled {
        PaceCall::KeptPace => Status::Sustainable,
        PaceCall::FellBehind => Status::Unsustainable,
        _ => Status::Undetermined,
    }
}

/// How many unsustainable rates in a row end a sweep (design: two).
pub const STOP_AFTER_UNSUSTAINABLE: usize = 2;

/// Whether the sweep should stop given the status of the rates run so far (repeats folded).
/// Undetermined rates neither count nor break a run: they say nothing about the target.
pub fn should_stop(rates: &[Status], early_stop: bool) -> bool {
    let judged: Vec<Status> = rates
        .iter()
        .copied()
        .filter(|s| *s != Status::Undetermined)
        .collect();
    early_stop
        && rates.last() == Some(&Status::Unsustainable)
        && judged.len() >= STOP_AFTER_UNSUSTAINABLE
        && judged[judged.len() - STOP_AFTER_UNSUSTAINABLE..]
            .iter()
            .all(|s| *s == Status::Unsustainable)
}

/// Index of the headline: the highest offered rate whose status is sustainable.
pub fn headline(rates: &[(f64, Status)]) -> Option<usize> {
    rates
        .iter()
        .enumerate()
        .filter(|(_, (_, s))| *s == Status::Sustainable)
        .max_by(|a, b| a.1.0.total_cmp(&b.1.0))
        .map(|(i, _)| i)
}

/// Whether a whole sweep passed, for its exit status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SweepOutcome {
    Passed,
    /// Not one request succeeded (a target that is down, or refuses everything).
    AllFailed,
    NoSustainable,
    BelowFailUnder {
        axis: Axis,
        /// The headline's level: a rate, or users.
        headline: f64,
        fail_under: f64,
    },
}

impl fmt::Display for SweepOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SweepOutcome::Passed => write!(f, "passed"),
            SweepOutcome::AllFailed => write!(f, "every request failed"),
            SweepOutcome::NoSustainable => write!(f, "no step was sustainable"),
            SweepOutcome::BelowFailUnder {
                axis,
                headline,
                fail_under,
            } => {
                let what = match axis {
                    Axis::Rate => "rate",
                    Axis::Concurrency => "concurrency",
                };
                write!(
                    f,
                    "the highest sustainable {what} {} is below --fail-under {fail_under}",
                    axis.fmt_level(*headline)
                )
            }
        }
    }
}

/// The sweep's outcome from its headline's level (on `axis`) and request counts.
pub fn sweep_outcome(
    axis: Axis,
    headline: Option<f64>,
    requests: u64,
    successes: u64,
    fail_under: Option<f64>,
) -> SweepOutcome {
    if requests == 0 || successes == 0 {
        return SweepOutcome::AllFailed;
    }
    match (headline, fail_under) {
        (None, _) => SweepOutcome::NoSustainable,
        (Some(h), Some(f)) if h < f => SweepOutcome::BelowFailUnder {
            axis,
            headline: h,
            fail_under: f,
        },
        _ => SweepOutcome::Passed,
    }
}

#[cfg(test)]
mod tests;
