//! Whether one step was sustainable, when a sweep stops, and which rate is the headline.
//!
//! A step is sustainable when the target kept pace with its arrivals (`pace`: the latency of
//! its successful requests does not grow across the step by more than the 5% the served-rate
//! bound allows, with 95% confidence), at least 99% of requests succeeded, the client kept up
//! (send-lag p99 within what the schedule allows, no request waited for the in-flight cap, sends
//! at the scheduled rate) and every SLO clause holds on successful requests. A step whose
//! requests cannot tell (too few, or a trend within its own noise of the bound) is
//! *undetermined*: never the headline, never a reason to stop. Every figure comes from the step
//! itself, so the verdict printed live is the final one. `scenarios/README.md` has the
//! reasoning. Pure: numbers in, verdicts out.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::pace::{MIN_TREND_REQUESTS, PaceCall, PaceEstimate};
use super::slo::{Clause, Family, Slo, Stat};
use crate::metrics::send_lag_allowance_ns;

/// Percentiles of one timing distribution, in nanoseconds.
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
    /// Requests that waited for a free in-flight slot.
    pub capped: u64,
    /// The client's `--max-inflight`, for naming it when it was the limit.
    pub max_inflight: Option<u64>,
    pub latency: Pcts,
    pub service: Option<Pcts>,
    pub ttft: Option<Pcts>,
    pub itl: Option<Pcts>,
    pub tpot: Option<Pcts>,
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

/// The thresholds of a verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictRules {
    pub min_success_ratio: f64,
    /// Served rate over the arrival rate (the pace bound).
    pub min_served_ratio: f64,
    /// An explicit send-lag p99 bound (`--max-send-lag`); None derives it per step.
    #[serde(serialize_with = "ser_opt_duration_ms", rename = "max_send_lag_p99_ms")]
    pub max_send_lag: Option<Duration>,
    pub slo: Slo,
}

fn ser_opt_duration_ms<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64() * 1e3),
        None => s.serialize_none(),
    }
}

impl Default for VerdictRules {
    fn default() -> Self {
        Self {
            min_success_ratio: 0.99,
            min_served_ratio: 0.95,
            max_send_lag: None,
            slo: Slo::default(),
        }
    }
}

impl VerdictRules {
    /// The latency growth (s/s) at which the served rate falls to `min_served_ratio`.
    pub fn max_slope(&self) -> f64 {
        1.0 / self.min_served_ratio - 1.0
    }
}

/// One reason a step was not sustainable.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    NoRequests,
    Success {
        ratio: f64,
        min: f64,
    },
    /// The target fell behind: latency grew across the step.
    FellBehind {
        served_rps: f64,
        arrival_rps: f64,
        min_ratio: f64,
        slope: f64,
    },
    ClientLagged {
        p99_ns: f64,
        max_ns: f64,
        explicit: bool,
    },
    /// Requests left slower than the schedule placed them.
    ClientSlow {
        sent_rps: f64,
        arrival_rps: f64,
    },
    InflightCap {
        capped: u64,
        cap: Option<u64>,
    },
    Slo {
        clause: Clause,
        measured_ns: f64,
    },
    NotMeasured {
        clause: Clause,
    },
}

impl Failure {
    /// A stable name for the rule, for `summary.json`.
    pub fn rule(&self) -> &'static str {
        match self {
            Failure::NoRequests => "no_requests",
            Failure::Success { .. } => "success",
            Failure::FellBehind { .. } => "pace",
            Failure::ClientLagged { .. } => "send_lag",
            Failure::ClientSlow { .. } => "send_rate",
            Failure::InflightCap { .. } => "inflight_cap",
            Failure::Slo { .. } => "slo",
            Failure::NotMeasured { .. } => "slo_not_measured",
        }
    }

    /// (measured, limit) in the rule's own unit (ratio, req/s, ms, count).
    fn values(&self) -> (Option<f64>, Option<f64>) {
        match self {
            Failure::NoRequests => (Some(0.0), None),
            Failure::Success { ratio, min } => (Some(*ratio), Some(*min)),
            Failure::FellBehind {
                served_rps,
                arrival_rps,
                min_ratio,
                ..
            } => (Some(*served_rps), Some(arrival_rps * min_ratio)),
            Failure::ClientLagged { p99_ns, max_ns, .. } => {
                (Some(p99_ns / 1e6), Some(max_ns / 1e6))
            }
            Failure::ClientSlow {
                sent_rps,
                arrival_rps,
            } => (Some(*sent_rps), Some(*arrival_rps)),
            Failure::InflightCap { capped, .. } => (Some(*capped as f64), Some(0.0)),
            Failure::Slo {
                clause,
                measured_ns,
            } => (Some(measured_ns / 1e6), Some(clause.limit_ns / 1e6)),
            Failure::NotMeasured { clause } => (None, Some(clause.limit_ns / 1e6)),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NoRequests => write!(f, "no requests were sent"),
            Failure::Success { ratio, min } => {
                write!(f, "success {:.2}% < {:.0}%", ratio * 100.0, min * 100.0)
            }
            Failure::FellBehind {
                served_rps,
                arrival_rps,
                min_ratio,
                slope,
            } => write!(
                f,
                "fell behind: served {served_rps:.2}/s < {:.0}% of {arrival_rps:.2}/s arriving (latency grew {:.0} ms per s)",
                min_ratio * 100.0,
                slope * 1e3
            ),
            Failure::ClientLagged {
                p99_ns,
                max_ns,
                explicit,
            } => write!(
                f,
                "client fell behind: send-lag p99 {:.3}ms > {:.3}ms{}",
                p99_ns / 1e6,
                max_ns / 1e6,
                if *explicit { " (--max-send-lag)" } else { "" }
            ),
            Failure::ClientSlow {
                sent_rps,
                arrival_rps,
            } => write!(
                f,
                "client fell behind: sent {sent_rps:.2}/s of {arrival_rps:.2}/s scheduled"
            ),
            Failure::InflightCap { capped, cap } => match cap {
                Some(cap) => write!(
                    f,
                    "client fell behind: {capped} requests waited for the in-flight cap (--max-inflight {cap})"
                ),
                None => write!(
                    f,
                    "client fell behind: {capped} requests waited for the in-flight cap (--max-inflight)"
                ),
            },
            Failure::Slo {
                clause,
                measured_ns,
            } => {
                write!(
                    f,
                    "SLO {clause} missed: {} {:.1}ms",
                    clause.metric(),
                    measured_ns / 1e6
                )
            }
            Failure::NotMeasured { clause } => {
                write!(
                    f,
                    "SLO {clause} not measurable: no {} data from successful requests",
                    clause.family.name()
                )
            }
        }
    }
}

/// Why the requests of a step cannot tell whether it was sustainable.
#[derive(Debug, Clone, PartialEq)]
pub enum Doubt {
    /// Too few successful requests for a trend.
    TooFew { successes: u64 },
    /// The latency trend is within its own 95% margin of the bound.
    Noisy {
        slope: f64,
        margin: f64,
        max_slope: f64,
    },
    /// No request lived wholly between the step's fill and drain, and its latency was not flat.
    Transient { slope: f64, margin: f64 },
}

impl Doubt {
    pub fn rule(&self) -> &'static str {
        match self {
            Doubt::TooFew { .. } => "too_few",
            Doubt::Noisy { .. } => "pace_noisy",
            Doubt::Transient { .. } => "pace_transient",
        }
    }
}

impl fmt::Display for Doubt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Doubt::TooFew { successes } => write!(
                f,
                "too few requests to judge: {successes} succeeded, a trend needs {MIN_TREND_REQUESTS} (raise the rate, --step-duration or --repeat)"
            ),
            Doubt::Noisy {
                slope,
                margin,
                max_slope,
            } => write!(
                f,
                "too few requests to judge: latency grew {:.0} +/- {:.0} ms per s, too close to the {:.0} ms per s bound (lengthen --step-duration)",
                slope * 1e3,
                margin * 1e3,
                max_slope * 1e3
            ),
            Doubt::Transient { slope, margin } => write!(
                f,
                "too few requests to judge: the step is about as short as its latency, every request overlapped its fill or drain (latency changed {:.0} +/- {:.0} ms per s); lengthen --step-duration",
                slope * 1e3,
                margin * 1e3
            ),
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

/// One reason as data (`summary.json`): the rule, what was measured, its limit, the sentence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub rule: &'static str,
    pub measured: Option<f64>,
    pub limit: Option<f64>,
    pub message: String,
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
            Status::Unsustainable => self
                .failures
                .iter()
                .map(|f| {
                    let (measured, limit) = f.values();
                    Reason {
                        rule: f.rule(),
                        measured,
                        limit,
                        message: f.to_string(),
                    }
                })
                .collect(),
            Status::Undetermined => self
                .doubts
                .iter()
                .map(|d| {
                    let (measured, limit) = match d {
                        Doubt::TooFew { successes } => {
                            (Some(*successes as f64), Some(MIN_TREND_REQUESTS as f64))
                        }
                        Doubt::Noisy {
                            slope, max_slope, ..
                        } => (Some(*slope), Some(*max_slope)),
                        Doubt::Transient { slope, .. } => (Some(*slope), None),
                    };
                    Reason {
                        rule: d.rule(),
                        measured,
                        limit,
                        message: d.to_string(),
                    }
                })
                .collect(),
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
    judge_pace(fig, rules, &mut v);
    judge_client(fig, rules, &mut v);
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
        headline_rps: f64,
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
                headline_rps,
                fail_under,
            } => write!(
                f,
                "the highest sustainable rate {headline_rps} req/s is below --fail-under {fail_under}"
            ),
        }
    }
}

/// The sweep's outcome from its headline and request counts.
pub fn sweep_outcome(
    headline_rps: Option<f64>,
    requests: u64,
    successes: u64,
    fail_under: Option<f64>,
) -> SweepOutcome {
    if requests == 0 || successes == 0 {
        return SweepOutcome::AllFailed;
    }
    match (headline_rps, fail_under) {
        (None, _) => SweepOutcome::NoSustainable,
        (Some(h), Some(f)) if h < f => SweepOutcome::BelowFailUnder {
            headline_rps: h,
            fail_under: f,
        },
        _ => SweepOutcome::Passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::pace::PaceData;

    /// One simulated request: intended send (s), latency (s), success.
    type Req = (f64, f64, bool);

    /// A tiny deterministic jitter source (no clock, no global state).
    struct Lcg(u64);
    impl Lcg {
        /// Uniform in [-1, 1).
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    /// One worker, first come first served, each request `service` s (+/- 0.5% jitter, about
    /// what a loopback server shows): the study's FastAPI app. Capacity `1 / service`.
    fn fifo(rate: f64, duration: f64, service: f64) -> Vec<Req> {
        let mut jitter = Lcg(7);
        let n = (rate * duration).round().max(1.0) as usize;
        let mut free_at = 0.0f64;
        (0..n)
            .map(|i| {
                let t = i as f64 / rate;
                let end = t.max(free_at) + service * (1.0 + 0.005 * jitter.next());
                free_at = end;
                (t, end - t, true)
            })
            .collect()
    }

    /// Continuous batching: up to `batch` sequences decode together, each needs 20 steps, a
    /// step takes 5 ms + 0.5 ms per sequence; waiting requests join between steps (TGI's
    /// shape). Capacity `batch / (20 x step(batch))`: 61.5 req/s for a batch of 16.
    fn batching(rate: f64, duration: f64, batch: usize) -> Vec<Req> {
        let n = (rate * duration).round().max(1.0) as usize;
        let arrive: Vec<f64> = (0..n).map(|i| i as f64 / rate).collect();
        let mut end = vec![0.0; n];
        let (mut now, mut next) = (0.0f64, 0usize);
        let mut active: Vec<(usize, u32)> = Vec::new();
        while next < n || !active.is_empty() {
            while active.len() < batch && next < n && arrive[next] <= now {
                active.push((next, 20));
                next += 1;
            }
            if active.is_empty() {
                now = arrive[next];
                continue;
            }
            now += 0.005 + 0.0005 * active.len() as f64;
            for a in active.iter_mut() {
                a.1 -= 1;
                if a.1 == 0 {
                    end[a.0] = now;
                }
            }
            active.retain(|a| a.1 > 0);
        }
        (0..n)
            .map(|i| (arrive[i], end[i] - arrive[i], true))
            .collect()
    }

    const BATCH_CAPACITY: f64 = 16.0 / (20.0 * 0.013);

    fn figures(offered: f64, reqs: &[Req]) -> StepFigures {
        let mut pace = PaceData::default();
        let mut lat: Vec<f64> = Vec::new();
        for &(t, l, ok) in reqs {
            let ns = |s: f64| (s * 1e9) as u64;
            pace.add(ns(t), ns(t), ns(l), ok);
            if ok {
                lat.push(l);
            }
        }
        lat.sort_by(f64::total_cmp);
        let ok = lat.len() as f64 / reqs.len().max(1) as f64;
        let p50 = lat.get(lat.len() / 2).copied().unwrap_or(0.0) * 1e9;
        StepFigures {
            offered_rps: offered,
            requests: reqs.len() as u64,
            success_ratio: ok,
            pace: pace.estimate(offered, ok, VerdictRules::default().max_slope()),
            send_lag_p99_ns: 200_000.0,
            latency: Pcts {
                p50,
                p95: p50,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn status(offered: f64, reqs: &[Req]) -> (Status, String) {
        let v = judge(&figures(offered, reqs), &VerdictRules::default());
        (v.status(), v.describe())
    }

    #[test]
    fn fifo_at_0_9_and_1_1_of_capacity_in_bursts_and_long_steps() {
        let capacity = 1.0 / 0.3;
        for duration in [1.0, 2.0, 10.0, 60.0] {
            let below = capacity * 0.9;
            let (s, why) = status(below, &fifo(below, duration, 0.3));
            assert_eq!(s, Status::Sustainable, "x0.9 for {duration} s: {why}");
            let above = capacity * 1.1;
            let (s, why) = status(above, &fifo(above, duration, 0.3));
            assert_eq!(s, Status::Unsustainable, "x1.1 for {duration} s: {why}");
            assert!(why.starts_with("fell behind"), "{why}");
        }
    }

    #[test]
    fn the_studys_one_second_bursts_of_one_to_six() {
        // One request at a time in 0.3 s: capacity 3.33 req/s.
        let want = [
            Status::Undetermined,
            Status::Undetermined,
            Status::Sustainable,
            Status::Unsustainable,
            Status::Unsustainable,
            Status::Unsustainable,
        ];
        for (rate, want) in (1..=6).zip(want) {
            let reqs = fifo(rate as f64, 1.0, 0.3);
            let f = figures(rate as f64, &reqs);
            let (s, why) = status(rate as f64, &reqs);
            assert_eq!(s, want, "{rate} req/s: {why}");
            // The served rate is never above what the server can do, nor the arrivals.
            assert!(
                f.pace.served_rps <= capacity_or(rate as f64) + 0.05,
                "{f:?}"
            );
        }
        let (_, why) = status(1.0, &fifo(1.0, 1.0, 0.3));
        assert!(
            why.starts_with("too few requests to judge: 1 succeeded"),
            "{why}"
        );
    }

    fn capacity_or(rate: f64) -> f64 {
        rate.min(1.0 / 0.3)
    }

    #[test]
    fn batching_at_0_9_and_1_1_of_capacity_in_bursts_and_long_steps() {
        for duration in [1.0, 10.0, 30.0] {
            let below = BATCH_CAPACITY * 0.9;
            let (s, why) = status(below, &batching(below, duration, 16));
            assert_eq!(s, Status::Sustainable, "x0.9 for {duration} s: {why}");
        }
        for duration in [10.0, 30.0] {
            let above = BATCH_CAPACITY * 1.1;
            let (s, why) = status(above, &batching(above, duration, 16));
            assert_eq!(s, Status::Unsustainable, "x1.1 for {duration} s: {why}");
        }
        // A 1 s burst at x1.1 leaves a backlog of about 5 requests (80 ms) behind a 260 ms
        // batch whose latencies move in whole decode steps: never called sustainable, and
        // called unsustainable once the overload is clear of that scatter.
        let above = BATCH_CAPACITY * 1.1;
        let (s, why) = status(above, &batching(above, 1.0, 16));
        assert_ne!(s, Status::Sustainable, "x1.1 burst: {why}");
        let far = BATCH_CAPACITY * 1.3;
        let (s, why) = status(far, &batching(far, 1.0, 16));
        assert_eq!(s, Status::Unsustainable, "x1.3 burst: {why}");
    }

    #[test]
    fn failures_fail_the_step_without_moving_the_trend() {
        // 3% of requests shed with a 0.7 ms 429, below capacity: unsustainable for success,
        // and the pace of the successes is still judged on them alone.
        let mut reqs = fifo(3.0, 10.0, 0.3);
        for (i, r) in reqs.iter_mut().enumerate() {
            if i % 33 == 5 {
                *r = (r.0, 0.0007, false);
            }
        }
        let v = judge(&figures(3.0, &reqs), &VerdictRules::default());
        assert_eq!(v.status(), Status::Unsustainable);
        assert!(matches!(v.failures[..], [Failure::Success { .. }]), "{v:?}");
        // Every request failed: unsustainable, not "too few".
        let all_failed: Vec<Req> = (0..10).map(|i| (i as f64 * 0.1, 0.001, false)).collect();
        let v = judge(&figures(10.0, &all_failed), &VerdictRules::default());
        assert_eq!(v.status(), Status::Unsustainable);
        assert!(
            v.describe().starts_with("success 0.00%"),
            "{}",
            v.describe()
        );
    }

    #[test]
    fn an_overloaded_step_fails_on_its_own_figures() {
        // The first step of a sweep already overloaded: no other step is needed to see it.
        let (s, why) = status(10.0, &fifo(10.0, 10.0, 0.2));
        assert_eq!(s, Status::Unsustainable, "{why}");
        let f = figures(10.0, &fifo(10.0, 10.0, 0.2));
        assert!((f.pace.served_rps - 5.0).abs() < 0.2, "{:?}", f.pace);
    }

    #[test]
    fn a_noisy_trend_near_the_bound_is_undetermined() {
        // 6% latency growth (just past the 5.3% bound) buried in +/- 100 ms of scatter.
        let mut jitter = Lcg(3);
        let reqs: Vec<Req> = (0..20)
            .map(|i| {
                let t = i as f64 * 0.05;
                (t, 0.3 + 0.06 * t + 0.1 * jitter.next(), true)
            })
            .collect();
        let v = judge(&figures(20.0, &reqs), &VerdictRules::default());
        assert_eq!(v.status(), Status::Undetermined, "{v:?}");
        assert!(matches!(v.doubts[..], [Doubt::Noisy { .. }]));
    }

    #[test]
    fn client_rules() {
        let rules = VerdictRules::default();
        let base = figures(30.0, &fifo(30.0, 10.0, 0.01));
        // 30 req/s against a 100 ms target with 5 ms of send lag (a busy core): kept up.
        let mut f = base.clone();
        f.latency.p50 = 100e6;
        f.send_lag_p99_ns = 5e6;
        assert!(judge(&f, &rules).sustainable(), "{:?}", judge(&f, &rules));
        // Twice the allowance: the client fell behind.
        f.send_lag_p99_ns = 20e6;
        let v = judge(&f, &rules);
        assert!(
            matches!(v.failures[..], [Failure::ClientLagged { max_ns, explicit: false, .. }] if max_ns == 10e6)
        );
        // An explicit --max-send-lag wins.
        let explicit = VerdictRules {
            max_send_lag: Some(Duration::from_millis(50)),
            ..VerdictRules::default()
        };
        assert!(judge(&f, &explicit).sustainable());
        // Requests held back by the in-flight cap name it.
        let mut f = base.clone();
        f.capped = 12;
        f.max_inflight = Some(2);
        assert_eq!(
            judge(&f, &rules).describe(),
            "client fell behind: 12 requests waited for the in-flight cap (--max-inflight 2)"
        );
        // Sends that left at 80% of the scheduled rate.
        let mut f = base;
        f.pace.sent_rps = Some(24.0);
        assert!(
            judge(&f, &rules)
                .describe()
                .contains("sent 24.00/s of 30.00/s")
        );
    }

    #[test]
    fn slo_clauses_and_reasons_as_data() {
        let rules = VerdictRules {
            slo: Slo::parse("p95<150ms,ttft_p95<500ms").unwrap(),
            ..Default::default()
        };
        let mut f = figures(3.0, &fifo(3.0, 10.0, 0.2));
        f.latency.p95 = 200e6;
        let v = judge(&f, &rules);
        assert_eq!(
            v.describe(),
            "SLO p95<150ms missed: p95 200.0ms; SLO ttft_p95<500ms not measurable: no ttft data from successful requests"
        );
        let reasons = v.reasons();
        assert_eq!(reasons[0].rule, "slo");
        assert_eq!(
            (reasons[0].measured, reasons[0].limit),
            (Some(200.0), Some(150.0))
        );
        f.ttft = Some(Pcts {
            p95: 4e8,
            ..Default::default()
        });
        f.latency.p95 = 1e8;
        assert!(judge(&f, &rules).sustainable());
        let none = StepFigures::default();
        assert_eq!(judge(&none, &rules).failures, [Failure::NoRequests]);
    }

    #[test]
    fn sweep_outcomes() {
        assert_eq!(
            sweep_outcome(Some(10.0), 100, 100, None),
            SweepOutcome::Passed
        );
        assert_eq!(
            sweep_outcome(Some(10.0), 100, 0, None),
            SweepOutcome::AllFailed
        );
        assert_eq!(sweep_outcome(None, 0, 0, None), SweepOutcome::AllFailed);
        assert_eq!(
            sweep_outcome(None, 100, 90, None),
            SweepOutcome::NoSustainable
        );
        assert_eq!(
            sweep_outcome(Some(10.0), 100, 100, Some(25.0)).to_string(),
            "the highest sustainable rate 10 req/s is below --fail-under 25"
        );
        assert_eq!(
            sweep_outcome(Some(25.0), 100, 100, Some(25.0)),
            SweepOutcome::Passed
        );
    }

    #[test]
    fn stop_rule_and_headline() {
        use Status::{Sustainable as S, Undetermined as D, Unsustainable as U};
        assert!(!should_stop(&[S, U], true));
        assert!(should_stop(&[S, U, U], true));
        assert!(!should_stop(&[S, U, U], false));
        assert!(!should_stop(&[U, S, U], true));
        // Undetermined rates neither count nor break a run of unsustainable ones.
        assert!(!should_stop(&[D, D, U], true));
        assert!(should_stop(&[U, D, U], true));
        assert!(!should_stop(&[U, U, D], true));
        assert_eq!(headline(&[(10.0, S), (20.0, S), (30.0, U)]), Some(1));
        assert_eq!(
            headline(&[(10.0, S), (20.0, U), (30.0, S), (40.0, U)]),
            Some(2)
        );
        assert_eq!(headline(&[(10.0, D), (20.0, U)]), None);
        assert_eq!(Status::fold([S, D]), D);
        assert_eq!(Status::fold([S, U, D]), U);
        assert_eq!(Status::fold([S, S]), S);
    }
}
