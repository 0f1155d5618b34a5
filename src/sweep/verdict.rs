//! Whether one step was sustainable, when a sweep stops, and which rate is the headline.
//!
//! Design section 5: a step is sustainable when success >= 99%, achieved throughput >= 95% of
//! the offered rate (measured as the *served* rate, `summary::served_rps`, so a target that
//! keeps up passes whatever its latency), the client kept up (send-lag p99 <= 1 ms and the
//! in-flight cap never hit) and every SLO clause holds. Pure: numbers in, verdicts out.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::slo::{Clause, Family, Slo, Stat};

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

/// What a verdict looks at, for one step (one burst/repeat at one rate).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepFigures {
    pub offered_rps: f64,
    pub requests: u64,
    pub success_ratio: f64,
    /// The served rate (successes per second, drain excluded), compared with `offered_rps`.
    pub throughput_rps: f64,
    pub send_lag_p99_ns: f64,
    /// Ticks that found the in-flight cap full.
    pub inflight_cap_hits: u64,
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
}

/// The thresholds of a verdict. Defaults are design.md's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictRules {
    pub min_success_ratio: f64,
    pub min_throughput_ratio: f64,
    #[serde(serialize_with = "ser_duration_ms")]
    pub max_send_lag_p99: Duration,
    pub slo: Slo,
}

fn ser_duration_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

impl Default for VerdictRules {
    fn default() -> Self {
        Self {
            min_success_ratio: 0.99,
            min_throughput_ratio: 0.95,
            max_send_lag_p99: Duration::from_millis(1),
            slo: Slo::default(),
        }
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
    Throughput {
        achieved: f64,
        offered: f64,
        min_ratio: f64,
    },
    ClientLagged {
        p99_ns: f64,
        max_ns: f64,
    },
    InflightCap {
        hits: u64,
    },
    Slo {
        clause: Clause,
        measured_ns: f64,
    },
    NotMeasured {
        clause: Clause,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NoRequests => write!(f, "no requests were sent"),
            Failure::Success { ratio, min } => {
                write!(f, "success {:.2}% < {:.0}%", ratio * 100.0, min * 100.0)
            }
            Failure::Throughput {
                achieved,
                offered,
                min_ratio,
            } => write!(
                f,
                "served {achieved:.2}/s < {:.0}% of the offered {offered}/s",
                min_ratio * 100.0
            ),
            Failure::ClientLagged { p99_ns, max_ns } => write!(
                f,
                "client fell behind: send-lag p99 {:.3}ms > {:.3}ms",
                p99_ns / 1e6,
                max_ns / 1e6
            ),
            Failure::InflightCap { hits } => {
                write!(f, "client fell behind: in-flight cap hit {hits} times")
            }
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
                    "SLO {clause} not measurable: no {} data (a streaming api is needed)",
                    clause.family.name()
                )
            }
        }
    }
}

/// The outcome of one step: sustainable when `failures` is empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    pub failures: Vec<Failure>,
}

impl Verdict {
    pub fn sustainable(&self) -> bool {
        self.failures.is_empty()
    }

    /// `ok`, or the reasons joined with `; `.
    pub fn describe(&self) -> String {
        if self.failures.is_empty() {
            "ok".into()
        } else {
            self.failures
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        }
    }
}

/// Judges one step.
pub fn judge(fig: &StepFigures, rules: &VerdictRules) -> Verdict {
    let mut failures = Vec::new();
    if fig.requests == 0 {
        failures.push(Failure::NoRequests);
        return Verdict { failures };
    }
    if fig.success_ratio < rules.min_success_ratio {
        failures.push(Failure::Success {
            ratio: fig.success_ratio,
            min: rules.min_success_ratio,
        });
    }
    if fig.throughput_rps < rules.min_throughput_ratio * fig.offered_rps {
        failures.push(Failure::Throughput {
            achieved: fig.throughput_rps,
            offered: fig.offered_rps,
            min_ratio: rules.min_throughput_ratio,
        });
    }
    let max_lag = rules.max_send_lag_p99.as_nanos() as f64;
    if fig.send_lag_p99_ns > max_lag {
        failures.push(Failure::ClientLagged {
            p99_ns: fig.send_lag_p99_ns,
            max_ns: max_lag,
        });
    }
    if fig.inflight_cap_hits > 0 {
        failures.push(Failure::InflightCap {
            hits: fig.inflight_cap_hits,
        });
    }
    for clause in &rules.slo.clauses {
        match fig.family(clause.family) {
            Some(p) => {
                let measured_ns = p.get(clause.stat);
                if !clause.holds(measured_ns) {
                    failures.push(Failure::Slo {
                        clause: *clause,
                        measured_ns,
                    });
                }
            }
            None => failures.push(Failure::NotMeasured { clause: *clause }),
        }
    }
    Verdict { failures }
}

/// How many unsustainable rates in a row end a sweep (design: two).
pub const STOP_AFTER_UNSUSTAINABLE: usize = 2;

/// Whether the sweep should stop given the verdicts of the rates run so far (one bool per
/// rate, all repeats of a rate folded into one).
pub fn should_stop(rate_verdicts: &[bool], early_stop: bool) -> bool {
    early_stop
        && rate_verdicts.len() >= STOP_AFTER_UNSUSTAINABLE
        && rate_verdicts[rate_verdicts.len() - STOP_AFTER_UNSUSTAINABLE..]
            .iter()
            .all(|ok| !ok)
}

/// Index of the headline: the highest offered rate whose verdict is sustainable.
pub fn headline(rates: &[(f64, bool)]) -> Option<usize> {
    rates
        .iter()
        .enumerate()
        .filter(|(_, (_, ok))| *ok)
        .max_by(|a, b| a.1.0.total_cmp(&b.1.0))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good(rps: f64) -> StepFigures {
        StepFigures {
            offered_rps: rps,
            requests: 100,
            success_ratio: 1.0,
            throughput_rps: rps * 0.99,
            send_lag_p99_ns: 200_000.0,
            inflight_cap_hits: 0,
            latency: Pcts {
                mean: 1e8,
                p50: 1e8,
                p90: 1.5e8,
                p95: 2e8,
                p99: 3e8,
                p999: 4e8,
                max: 5e8,
            },
            ..Default::default()
        }
    }

    #[test]
    fn each_rule_on_its_own() {
        let rules = VerdictRules::default();
        assert!(judge(&good(10.0), &rules).sustainable());

        let mut f = good(10.0);
        f.success_ratio = 0.98;
        assert!(matches!(
            judge(&f, &rules).failures[..],
            [Failure::Success { .. }]
        ));

        let mut f = good(10.0);
        f.throughput_rps = 9.4;
        assert!(matches!(
            judge(&f, &rules).failures[..],
            [Failure::Throughput { .. }]
        ));
        f.throughput_rps = 9.5;
        assert!(judge(&f, &rules).sustainable());

        let mut f = good(10.0);
        f.send_lag_p99_ns = 1.5e6;
        assert!(matches!(
            judge(&f, &rules).failures[..],
            [Failure::ClientLagged { .. }]
        ));

        let mut f = good(10.0);
        f.inflight_cap_hits = 3;
        let v = judge(&f, &rules);
        assert_eq!(
            v.describe(),
            "client fell behind: in-flight cap hit 3 times"
        );

        let f = StepFigures {
            requests: 0,
            ..good(10.0)
        };
        assert_eq!(judge(&f, &rules).failures, [Failure::NoRequests]);
    }

    #[test]
    fn slo_clauses() {
        let rules = VerdictRules {
            slo: Slo::parse("p95<150ms,ttft_p95<500ms").unwrap(),
            ..Default::default()
        };
        let v = judge(&good(10.0), &rules);
        assert_eq!(v.failures.len(), 2);
        assert_eq!(
            v.describe(),
            "SLO p95<150ms missed: p95 200.0ms; SLO ttft_p95<500ms not measurable: no ttft data (a streaming api is needed)"
        );
        let mut f = good(10.0);
        f.ttft = Some(Pcts {
            p95: 4e8,
            ..Default::default()
        });
        f.latency.p95 = 1e8;
        assert!(judge(&f, &rules).sustainable());
    }

    #[test]
    fn stop_rule_and_headline() {
        assert!(!should_stop(&[true, false], true));
        assert!(should_stop(&[true, false, false], true));
        assert!(!should_stop(&[true, false, false], false));
        assert!(!should_stop(&[false, true, false], true));
        assert_eq!(
            headline(&[(10.0, true), (20.0, true), (30.0, false)]),
            Some(1)
        );
        assert_eq!(
            headline(&[(10.0, true), (20.0, false), (30.0, true), (40.0, false)]),
            Some(2)
        );
        assert_eq!(headline(&[(10.0, false)]), None);
    }
}
