//! report.md's "Server metrics" section: per step what the server's `/metrics` said (queue
//! time, batch size, KV-cache use, request latency, tokens/s), the client-vs-server latency gap,
//! which metric each figure was read from, and the steps whose scrapes failed. Reads only
//! [`SweepSummary`]; empty when the sweep was not scraped.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::analysis::summary::SweepSummary;
use crate::report::markdown::fmt_latency_ms;
use crate::scenario::plan::fmt_rate;

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| fmt_latency_ms(s * 1e3))
}

/// A gap can be negative (the server's clock and the client's disagree on what a request is).
fn gap(v: Option<f64>) -> String {
    match v {
        Some(s) if s < 0.0 => format!("-{}", fmt_latency_ms(-s * 1e3)),
        v => secs(v),
    }
}

/// The section, or "" when no step has server figures.
pub fn section(s: &SweepSummary) -> String {
    if s.steps.iter().all(|r| r.server.is_none()) {
        return String::new();
    }
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "## Server metrics\n");
    let _ = writeln!(
        w,
        "Scraped from the server's Prometheus `/metrics` before, every second during, and after each step (`server-metrics.jsonl`); counters and histograms are end-minus-start deltas (server tok/s: the tokens generated over the step's duration), gauges the mean of the scrapes taken while the step sent. The **gap** is the client's mean latency of successes minus the server's mean request duration: the network, queueing outside the server (connection pools, proxies, the listen queue) and the client's own overhead.\n"
    );
    let _ = writeln!(
        w,
        "| step | {} | scrapes ok/failed | queue mean | batch size | KV cache | server latency mean | server p95 | client mean | gap | server tok/s |",
        match s.axis {
            crate::scenario::plan::Axis::Rate => "offered",
            crate::scenario::plan::Axis::Concurrency => "users",
        }
    );
    let _ = writeln!(
        w,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut sources: BTreeMap<&str, &str> = BTreeMap::new();
    let mut failures = Vec::new();
    for r in &s.steps {
        let Some(f) = &r.server else { continue };
        for (k, v) in &f.sources {
            sources.entry(k).or_insert(v);
        }
        if let Some(e) = &f.error {
            failures.push(format!(
                "step {}: {} of {} failed ({})",
                r.step,
                f.failed_scrapes,
                f.scrapes + f.failed_scrapes,
                e.replace('|', "/")
            ));
        }
        let client = (r.requests > r.errors).then(|| r.latency_ms.mean / 1e3);
        let _ = writeln!(
            w,
            "| {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.step,
            fmt_rate(r.level()),
            f.scrapes,
            f.failed_scrapes,
            secs(f.queue_time_s),
            f.batch_size.map_or("-".into(), |b| format!("{b:.2}")),
            f.kv_cache_usage
                .map_or("-".into(), |k| format!("{:.1}%", k * 100.0)),
            secs(f.request_latency_s),
            secs(f.request_latency_p95_s),
            secs(client),
            gap(f.latency_gap_s),
            f.tokens_per_s.map_or("-".into(), |t| format!("{t:.1}")),
        );
    }
    let _ = writeln!(w);
    if !sources.is_empty() {
        let read: Vec<String> = sources
            .iter()
            .map(|(k, v)| format!("{k} from `{v}`"))
            .collect();
        let _ = writeln!(w, "Read: {}.\n", read.join(", "));
    }
    if !failures.is_empty() {
        let _ = writeln!(w, "Failed scrapes: {}.\n", failures.join("; "));
    }
    o
}
