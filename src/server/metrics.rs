//! Server-side counters, gauges and histograms under TGI's metric names, rendered as Prometheus
//! text for `GET /metrics`. Durations are in seconds with TGI's buckets (0.00015 s x1.5, 35 of
//! them); counts use linear buckets. Must not know HTTP or the model.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// The KV-cache gauge's name (`analysis::server::NAMES` maps it).
pub const KV_CACHE_USAGE: &str = "rpload_kv_cache_usage";

/// A cumulative histogram with fixed upper bounds.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: Vec<f64>) -> Self {
        let n = bounds.len();
        Self {
            bounds,
            counts: vec![0; n],
            sum: 0.0,
            count: 0,
        }
    }

    fn durations() -> Self {
        // Rounded so the `le` labels print as short decimals.
        Self::new(
            (0..35)
                .map(|i| (0.00015 * 1.5f64.powi(i) * 1e9).round() / 1e9)
                .collect(),
        )
    }

    fn linear(step: f64, n: usize) -> Self {
        Self::new((1..=n).map(|i| step * i as f64).collect())
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug)]
struct Inner {
    counters: BTreeMap<(&'static str, String), u64>,
    gauges: BTreeMap<&'static str, f64>,
    histograms: BTreeMap<(&'static str, String), Histogram>,
    /// Linear bucket steps sized from the server's token limits.
    input_step: f64,
    total_step: f64,
}

/// Shared by the HTTP handlers and the worker thread. A std mutex: no await while held.
#[derive(Debug)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn new(max_input_tokens: usize, max_total_tokens: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                counters: BTreeMap::new(),
                gauges: BTreeMap::new(),
                histograms: BTreeMap::new(),
                input_step: (max_input_tokens as f64 / 100.0).max(1.0),
                total_step: (max_total_tokens as f64 / 100.0).max(1.0),
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A poisoned lock only means a panic elsewhere mid-update; the numbers are still usable.
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    fn count(inner: &mut Inner, name: &'static str, labels: String) {
        *inner.counters.entry((name, labels)).or_default() += 1;
    }

    fn hist(inner: &mut Inner, name: &'static str, labels: String, v: f64) {
        let (input_step, total_step) = (inner.input_step, inner.total_step);
        inner
            .histograms
            .entry((name, labels))
            .or_insert_with(|| match name {
                "tgi_request_input_length" => Histogram::linear(input_step, 100),
                "tgi_request_generated_tokens" | "tgi_request_max_new_tokens" => {
                    Histogram::linear(total_step, 100)
                }
                "tgi_batch_next_size" => Histogram::linear(1.0, 1024),
                _ => Histogram::durations(),
            })
            .observe(v);
    }

    pub fn request_received(&self) {
        self.with(|i| Self::count(i, "tgi_request_count", String::new()));
    }

    /// `err` is TGI's label: overloaded, validation, generation, incomplete or dropped.
    pub fn request_failure(&self, err: &str) {
        self.with(|i| Self::count(i, "tgi_request_failure", format!("err=\"{err}\"")));
    }

    pub fn validation_time(&self, secs: f64) {
        self.with(|i| Self::hist(i, "tgi_request_validation_duration", String::new(), secs));
    }

    pub fn observe_queue(&self, secs: f64) {
        self.with(|i| Self::hist(i, "tgi_request_queue_duration", String::new(), secs));
    }

    /// A finished request: its timings (seconds) and token counts.
    pub fn request_success(&self, s: &RequestSample) {
        self.with(|i| {
            Self::count(i, "tgi_request_success", String::new());
            Self::hist(i, "tgi_request_duration", String::new(), s.total);
            Self::hist(
                i,
                "tgi_request_inference_duration",
                String::new(),
                s.inference,
            );
            Self::hist(
                i,
                "tgi_request_mean_time_per_token_duration",
                String::new(),
                s.per_token,
            );
            Self::hist(
                i,
                "tgi_request_input_length",
                String::new(),
                s.input_tokens as f64,
            );
            Self::hist(
                i,
                "tgi_request_generated_tokens",
                String::new(),
                s.generated_tokens as f64,
            );
            Self::hist(
                i,
                "tgi_request_max_new_tokens",
                String::new(),
                s.max_new_tokens as f64,
            );
        });
    }

    pub fn observe_batch(&self, method: &str, size: usize, secs: f64) {
        let label = format!("method=\"{method}\"");
        self.with(|i| {
            Self::count(i, "tgi_batch_inference_count", label.clone());
            Self::count(i, "tgi_batch_inference_success", label.clone());
            Self::hist(i, "tgi_batch_forward_duration", label.clone(), secs);
            Self::hist(i, "tgi_batch_inference_duration", label, secs);
            Self::hist(i, "tgi_batch_next_size", String::new(), size as f64);
        });
    }

    pub fn set_gauges(&self, queue: usize, batch: usize, batch_tokens: usize) {
        self.with(|i| {
            i.gauges.insert("tgi_queue_size", queue as f64);
            i.gauges.insert("tgi_batch_current_size", batch as f64);
            i.gauges
                .insert("tgi_batch_current_max_tokens", batch_tokens as f64);
        });
    }

    /// `rpload_kv_cache_usage`: the KV cache's share in use, 0..1 (TGI exports no such gauge;
    /// this is vLLM's `vllm:kv_cache_usage_perc` under rpload's name).
    pub fn set_kv_usage(&self, usage: f64) {
        self.with(|i| {
            i.gauges.insert(KV_CACHE_USAGE, usage.clamp(0.0, 1.0));
        });
    }

    /// `--engine mock`: how late its first token woke after the due time
    /// (`rpload_mock_first_token_lateness_seconds`), and the mean over its tokens
    /// (`rpload_mock_token_lateness_seconds`, one observation per request). What the timer
    /// itself adds, so a client's error can be told from the mock's.
    pub fn observe_mock_first_token(&self, late: std::time::Duration) {
        self.with(|i| {
            Self::hist(
                i,
                "rpload_mock_first_token_lateness_seconds",
                String::new(),
                late.as_secs_f64(),
            )
        });
    }

    pub fn observe_mock_lateness(&self, mean: std::time::Duration) {
        self.with(|i| {
            Self::hist(
                i,
                "rpload_mock_token_lateness_seconds",
                String::new(),
                mean.as_secs_f64(),
            )
        });
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.with(|i| {
            let mut out = String::new();
            let mut last = "";
            for ((name, labels), v) in &i.counters {
                if *name != last {
                    let _ = writeln!(out, "# TYPE {name} counter");
                    last = name;
                }
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
            for (name, v) in &i.gauges {
                let _ = writeln!(out, "# TYPE {name} gauge\n{name} {v}");
            }
            let mut last = "";
            for ((name, labels), h) in &i.histograms {
                if *name != last {
                    let _ = writeln!(out, "# TYPE {name} histogram");
                    last = name;
                }
                h.render(&mut out, name, labels);
            }
            out
        })
    }
}

/// What one finished request contributes to the histograms.
#[derive(Debug, Clone, Copy)]
pub struct RequestSample {
    pub total: f64,
    pub inference: f64,
    pub per_token: f64,
    pub input_tokens: usize,
    pub generated_tokens: usize,
    pub max_new_tokens: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_cumulative_buckets() {
        let m = Metrics::new(100, 200);
        m.request_received();
        m.request_received();
        m.request_failure("overloaded");
        m.set_gauges(3, 2, 40);
        m.set_kv_usage(0.25);
        m.observe_batch("decode", 2, 0.0002);
        let text = m.render();
        assert!(text.contains("tgi_request_count 2\n"), "{text}");
        assert!(text.contains("tgi_request_failure{err=\"overloaded\"} 1\n"));
        assert!(text.contains("tgi_queue_size 3\n"));
        assert!(text.contains("tgi_batch_current_size 2\n"));
        assert!(text.contains("# TYPE rpload_kv_cache_usage gauge\nrpload_kv_cache_usage 0.25\n"));
        assert!(
            text.contains(
                "tgi_batch_forward_duration_bucket{method=\"decode\",le=\"0.00015\"} 0\n"
            )
        );
        assert!(
            text.contains(
                "tgi_batch_forward_duration_bucket{method=\"decode\",le=\"0.000225\"} 1\n"
            )
        );
        assert!(text.contains("tgi_batch_forward_duration_count{method=\"decode\"} 1\n"));
    }
}
