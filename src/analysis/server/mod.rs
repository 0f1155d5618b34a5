//! The server's own view of a sweep step, from the Prometheus scrapes `sweep --server-metrics`
//! took during it: what one scrape is as stored in `server-metrics.jsonl` ([`ScrapeLine`],
//! [`Family`], [`Series`]), the table mapping TGI's, vLLM's and rpload's metric names to the
//! per-step figures ([`NAMES`]), and [`attach`], the pass that puts each step's
//! [`ServerFigures`] on its row after `summary::build`.
//!
//! [`parse`] turns exposition text into families; [`figures`] does the arithmetic (histogram
//! deltas, quantiles, gauge means). No clock, no I/O: the scraper (`sweep::scrape`) owns both.

pub mod figures;
pub mod parse;

use serde::{Deserialize, Serialize};

pub use figures::{ServerFigures, step_figures};

use super::summary::SweepSummary;

/// A metric family's type, as its `# TYPE` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// One label set of a family. A counter, gauge or untyped series has `value`; a histogram or
/// summary has `sum` and `count`, and a histogram whose buckets a figure reads keeps them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Series {
    /// `method="decode",model="x"`, sorted by name, without `le`; empty when unlabelled.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub labels: String,
    /// None also for NaN, which JSON cannot hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<f64>,
    /// Cumulative `(le, count)` of the finite buckets, ascending; the `+Inf` bucket is
    /// `count`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<(f64, f64)>,
}

/// A metric family of one scrape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Family {
    pub name: String,
    pub kind: Kind,
    pub series: Vec<Series>,
}

/// When in its step a scrape was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the step's first request.
    Start,
    /// While the step sent (every second).
    During,
    /// After its last request ended.
    End,
}

/// One line of `server-metrics.jsonl`: a scrape, or why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrapeLine {
    pub step: u32,
    /// Seconds since the step's start scrape was sent.
    pub t_s: f64,
    pub phase: Phase,
    /// Why the scrape failed (None: it answered and parsed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub families: Vec<Family>,
}

/// Which metric names feed each figure, first match wins. Sources: TGI's
/// `docs/source/reference/metrics.md` (huggingface/text-generation-inference); vLLM's
/// `vllm/v1/metrics/loggers.py` (vllm-project/vllm); `rpload_kv_cache_usage` is rpload's own
/// (TGI exports no KV-cache gauge).
pub struct Names {
    /// Histograms of seconds a request waited before it was scheduled.
    pub queue_time: &'static [&'static str],
    /// Gauges of the running batch (summed over series, e.g. vLLM's engines).
    pub batch_size_gauge: &'static [&'static str],
    /// Histograms of the batch size, when no gauge is exported.
    pub batch_size_histogram: &'static [&'static str],
    /// Gauges of KV-cache use, 0..1 (averaged over series).
    pub kv_cache_usage: &'static [&'static str],
    /// Histograms of a request's whole time in the server, seconds.
    pub request_latency: &'static [&'static str],
    /// Counters of generated tokens.
    pub generated_tokens_counter: &'static [&'static str],
    /// Histograms of generated tokens per request (their sum is the tokens generated).
    pub generated_tokens_histogram: &'static [&'static str],
}

/// The mapping README's "Server metrics" table shows.
pub const NAMES: Names = Names {
    queue_time: &[
        "tgi_request_queue_duration",
        "vllm:request_queue_time_seconds",
    ],
    batch_size_gauge: &["tgi_batch_current_size", "vllm:num_requests_running"],
    batch_size_histogram: &["tgi_batch_next_size"],
    kv_cache_usage: &[
        "rpload_kv_cache_usage",
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
    ],
    request_latency: &["tgi_request_duration", "vllm:e2e_request_latency_seconds"],
    generated_tokens_counter: &["vllm:generation_tokens_total"],
    generated_tokens_histogram: &["tgi_request_generated_tokens"],
};

impl Names {
    /// Every name a figure reads (the rest go to [`ServerFigures::other`]).
    pub fn all(&self) -> impl Iterator<Item = &'static str> {
        [
            self.queue_time,
            self.batch_size_gauge,
            self.batch_size_histogram,
            self.kv_cache_usage,
            self.request_latency,
            self.generated_tokens_counter,
            self.generated_tokens_histogram,
        ]
        .into_iter()
        .flatten()
        .copied()
    }
}

impl Family {
    /// Drops the buckets no figure reads, so a scrape line stays small (TGI's batch-size
    /// histogram alone has a thousand buckets).
    pub fn compact(mut self) -> Self {
        if !NAMES.request_latency.contains(&self.name.as_str()) {
            for s in &mut self.series {
                s.buckets.clear();
            }
        }
        self
    }
}

/// Puts each step's server figures on its row (steps without scrapes keep `server: None`),
/// and the client-vs-server latency gap where both sides measured a mean.
pub fn attach(summary: &mut SweepSummary, scrapes: &[ScrapeLine]) {
    for row in &mut summary.steps {
        let lines: Vec<&ScrapeLine> = scrapes.iter().filter(|l| l.step == row.step).collect();
        let Some(mut f) = step_figures(&lines, summary.step_duration_s) else {
            continue;
        };
        let successes = row.requests - row.errors;
        f.latency_gap_s = match (successes > 0, f.request_latency_s) {
            (true, Some(server)) => Some(row.latency_ms.mean / 1e3 - server),
            _ => None,
        };
        row.server = Some(f);
    }
}
