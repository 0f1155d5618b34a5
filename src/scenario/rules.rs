//! The thresholds a step is judged against: the fixed bounds of the sustainability rule and
//! the user's SLO and send-lag limit. Part of the scenario because a user writes them; the
//! judging itself is `analysis::verdict`'s.

use std::time::Duration;

use serde::{Serialize, Serializer};

use super::slo::Slo;

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
    /// The share of requests that must meet every SLO clause on their own (`--slo-attainment`);
    /// None judges the clauses' statistics over the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_attainment: Option<f64>,
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
            slo_attainment: None,
        }
    }
}

impl VerdictRules {
    /// The latency growth (s/s) at which the served rate falls to `min_served_ratio`.
    pub fn max_slope(&self) -> f64 {
        1.0 / self.min_served_ratio - 1.0
    }
}
