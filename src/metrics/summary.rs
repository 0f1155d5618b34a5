//! The figures a report shows (`Summary`, with its `Bytes` and `Tokens`): plain serialisable
//! data that `Metrics::summary` fills and every renderer reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Percentiles;

/// Byte totals as Vegeta reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bytes {
    pub total: u64,
    pub mean: f64,
}

impl Bytes {
    pub(super) fn new(total: u64, requests: u64) -> Self {
        let mean = if requests == 0 {
            0.0
        } else {
            total as f64 / requests as f64
        };
        Self { total, mean }
    }
}

/// Token totals. Output tokens and rates count successful requests only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tokens {
    pub input_total: u64,
    pub output_total: u64,
    pub output_per_second: f64,
    /// Input plus output tokens of successful requests per second (the cost basis).
    pub total_per_second: f64,
    /// Output tokens over every request, failed ones included (e.g. cut-off streams).
    pub output_all_requests: u64,
    /// How many records took their output count from each source (`server`, `tokenizer`,
    /// `estimate`).
    pub sources: BTreeMap<String, u64>,
    /// The same for input counts; empty for records written before they said.
    #[serde(default)]
    pub input_sources: BTreeMap<String, u64>,
}

/// Everything a report shows about a set of records (`report --type json` serialises it).
/// Durations are ns, rates per second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub requests: u64,
    /// Requests over the span of intended send times (the achieved send rate).
    pub rate: f64,
    /// Successful requests per second, first intended send to last end.
    pub throughput: f64,
    /// Fraction of requests that succeeded, 0..1.
    pub success: f64,
    /// Last intended send minus first, ns.
    pub duration: u64,
    /// Last end minus last intended send, ns.
    pub wait: u64,
    pub earliest: String,
    pub latest: String,
    pub end: String,
    /// Every request's latency, failures included (Vegeta's `latencies`).
    pub latencies: Percentiles,
    /// Successful requests' latency only.
    #[serde(default)]
    pub latencies_ok: Percentiles,
    /// Successful requests' `end - sent`.
    #[serde(default)]
    pub service_ok: Percentiles,
    /// TTFT, ITL and TPOT of successful requests.
    pub ttft: Percentiles,
    pub itl: Percentiles,
    pub tpot: Percentiles,
    pub send_lag: Percentiles,
    /// Per-request receive lag (`Record::recv_lag_ns`).
    #[serde(default)]
    pub recv_lag: Percentiles,
    pub bytes_in: Bytes,
    pub bytes_out: Bytes,
    pub status_codes: BTreeMap<String, u64>,
    pub error_kinds: BTreeMap<String, u64>,
    /// Distinct error messages (at most `MAX_DISTINCT_ERRORS`), sorted.
    pub errors: Vec<String>,
    pub tokens: Tokens,
    /// Requests that waited for a free in-flight slot.
    pub capped: u64,
    /// The send-lag p99 allowed for this schedule ([`send_lag_allowance_ns`]).
    #[serde(default)]
    pub send_lag_allowance: u64,
    /// The receive-lag p99 allowed ([`recv_lag_allowance_ns`](super::recv_lag_allowance_ns)).
    #[serde(default)]
    pub recv_lag_allowance: u64,
    /// Send- and receive-lag p99 within their allowances and no request waited for the
    /// in-flight cap.
    pub client_kept_up: bool,
    /// What was sent: prompt, asked-for and generated lengths, TTFT per turn (LLM APIs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<super::workload::WorkloadSummary>,
}
