//! Why a step was not sustainable ([`Failure`]) or could not be judged ([`Doubt`]): each with
//! the sentence a person reads and, for `summary.json`, a stable rule name and the measured value
//! against its limit.

use std::fmt;

use serde::Serialize;

use crate::analysis::pace::MIN_TREND_REQUESTS;
use crate::analysis::scaling::Scaling;
use crate::scenario::slo::{Clause, Slo};

/// One reason as data (`summary.json`): the rule, what was measured, its limit, the sentence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub rule: &'static str,
    pub measured: Option<f64>,
    pub limit: Option<f64>,
    pub message: String,
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
    /// The client read answers later than they arrived (its receive loop was overloaded).
    ClientRecvLagged {
        p99_ns: f64,
        max_ns: f64,
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
    /// Too few requests met every SLO clause on their own (`--slo-attainment`).
    Attainment {
        measured: f64,
        min: f64,
        slo: Slo,
    },
    /// A closed loop's added users bought less throughput than waiting.
    Plateau(Scaling),
}

impl Failure {
    /// A stable name for the rule, for `summary.json`.
    pub fn rule(&self) -> &'static str {
        match self {
            Failure::NoRequests => "no_requests",
            Failure::Success { .. } => "success",
            Failure::FellBehind { .. } => "pace",
            Failure::ClientLagged { .. } => "send_lag",
            Failure::ClientRecvLagged { .. } => "recv_lag",
            Failure::ClientSlow { .. } => "send_rate",
            Failure::InflightCap { .. } => "inflight_cap",
            Failure::Slo { .. } => "slo",
            Failure::NotMeasured { .. } => "slo_not_measured",
            Failure::Attainment { .. } => "slo_attainment",
            Failure::Plateau(_) => "scaling",
        }
    }

    /// As data: the rule, the measured value against its limit (in the rule's own unit: ratio,
    /// req/s, ms, count), the sentence.
    pub fn reason(&self) -> Reason {
        let (measured, limit) = self.values();
        Reason {
            rule: self.rule(),
            measured,
            limit,
            message: self.to_string(),
        }
    }

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
            Failure::ClientLagged { p99_ns, max_ns, .. }
            | Failure::ClientRecvLagged { p99_ns, max_ns } => {
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
            Failure::Attainment { measured, min, .. } => (Some(*measured), Some(*min)),
            Failure::Plateau(s) => (Some(s.gain), Some(s.needed)),
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
            Failure::ClientRecvLagged { p99_ns, max_ns } => write!(
                f,
                "client fell behind reading: receive-lag p99 {:.3}ms > {:.3}ms",
                p99_ns / 1e6,
                max_ns / 1e6
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
            Failure::Attainment { measured, min, slo } => write!(
                f,
                "SLO attainment {:.1}% < {:.0}%: too few requests met {slo} on their own",
                measured * 100.0,
                min * 100.0
            ),
            Failure::Plateau(s) => write!(
                f,
                "throughput stopped growing: x{:.2} from {} to {} users, scaling needs more than x{:.2} (the added users mostly waited)",
                s.gain, s.below_users, s.users, s.needed
            ),
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
    /// A closed loop's throughput gain is within its own noise of what scaling needs.
    ScalingNoisy(Scaling),
}

impl Doubt {
    pub fn rule(&self) -> &'static str {
        match self {
            Doubt::TooFew { .. } => "too_few",
            Doubt::Noisy { .. } => "pace_noisy",
            Doubt::Transient { .. } => "pace_transient",
            Doubt::ScalingNoisy(_) => "scaling_noisy",
        }
    }

    /// As data, like [`Failure::reason`].
    pub fn reason(&self) -> Reason {
        let (measured, limit) = match self {
            Doubt::TooFew { successes } => {
                (Some(*successes as f64), Some(MIN_TREND_REQUESTS as f64))
            }
            Doubt::Noisy {
                slope, max_slope, ..
            } => (Some(*slope), Some(*max_slope)),
            Doubt::Transient { slope, .. } => (Some(*slope), None),
            Doubt::ScalingNoisy(s) => (Some(s.gain), Some(s.needed)),
        };
        Reason {
            rule: self.rule(),
            measured,
            limit,
            message: self.to_string(),
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
            Doubt::ScalingNoisy(s) => write!(
                f,
                "too few requests to judge: throughput x{:.2} (x{:.2}..x{:.2}) from {} to {} users, too close to the x{:.2} scaling needs (lengthen --step-duration)",
                s.gain,
                s.gain / s.spread,
                s.gain * s.spread,
                s.below_users,
                s.users,
                s.needed
            ),
        }
    }
}
