//! `steps.csv`: one row per sweep step. The first 17 columns are the contract of design.md
//! section 3, in that order; more follow. Fixed decimal places so reruns diff cleanly; an
//! empty cell means "not measured" (no streaming data, no price, nothing succeeded) or "not
//! this axis" (`target_rps` of a closed-loop step, `target_concurrency` of a rate step) or "not
//! scraped" (the `server_*` columns without `--server-metrics`, or when its scrapes failed).

use crate::analysis::summary::{Ms, StepRow, SweepSummary};
use crate::cost::fmt_sig;

/// The contract columns, in order (tests check the header starts with these).
pub const STEP_COLUMNS: [&str; 17] = [
    "target_rps",
    "achieved_rps",
    "throughput_rps",
    "success_ratio",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "itl_p50_ms",
    "tpot_p50_ms",
    "output_tokens_per_s",
    "cost_per_1k_tokens_usd",
    "cost_per_1k_output_tokens_usd",
    "sustainable",
];

/// Columns after the contract ones. Latencies, TTFT, ITL and TPOT are of successful requests.
pub const EXTRA_COLUMNS: [&str; 33] = [
    "step",
    "repeat",
    "requests",
    "served_rps",
    "latency_mean_ms",
    "ttft_p99_ms",
    "itl_p95_ms",
    "input_tokens_per_s",
    "send_lag_p99_ms",
    "capped",
    "cost_per_1k_requests_usd",
    "study_cost_per_1k_tokens_usd",
    "window_cost_p90_usd",
    "error_kinds",
    "verdict",
    "status",
    "errors",
    "latency_trend_ms_per_s",
    "latency_trend_margin_ms_per_s",
    "trend_window",
    "trend_left_out",
    "sent_rps",
    "send_lag_limit_ms",
    "service_p50_ms",
    "service_p95_ms",
    "cost_per_1m_tokens_usd",
    "target_concurrency",
    "throughput_gain",
    "goodput_rps",
    "slo_attainment",
    "cost_per_1k_good_tokens_usd",
    "recv_lag_p99_ms",
    "recv_lag_limit_ms",
];

/// The server's own figures (`sweep --server-metrics`), last: empty when not scraped.
pub const SERVER_COLUMNS: [&str; 7] = [
    "server_queue_time_s",
    "server_batch_size",
    "server_kv_cache_usage",
    "server_request_latency_s",
    "server_request_latency_p95_s",
    "server_tokens_per_s",
    "server_latency_gap_s",
];

/// A step's [`SERVER_COLUMNS`] cells.
fn server_cells(r: &StepRow) -> [String; 7] {
    let f = r.server.as_ref();
    let cell =
        |v: Option<f64>, places: usize| v.map(|v| format!("{v:.places$}")).unwrap_or_default();
    [
        cell(f.and_then(|f| f.queue_time_s), 6),
        cell(f.and_then(|f| f.batch_size), 3),
        cell(f.and_then(|f| f.kv_cache_usage), 4),
        cell(f.and_then(|f| f.request_latency_s), 6),
        cell(f.and_then(|f| f.request_latency_p95_s), 6),
        cell(f.and_then(|f| f.tokens_per_s), 3),
        cell(f.and_then(|f| f.latency_gap_s), 6),
    ]
}

fn f3(x: f64) -> String {
    format!("{x:.3}")
}

fn opt_ms(m: Option<Ms>, f: fn(&Ms) -> f64) -> String {
    m.map(|m| f3(f(&m))).unwrap_or_default()
}

fn usd(x: Option<f64>) -> String {
    x.map(|v| fmt_sig(v, 4)).unwrap_or_default()
}

/// Renders steps.csv.
pub fn steps_csv(s: &SweepSummary) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let header: Vec<&str> = STEP_COLUMNS
        .iter()
        .chain(EXTRA_COLUMNS.iter())
        .chain(SERVER_COLUMNS.iter())
        .copied()
        .collect();
    w.write_record(&header).expect("writing to memory");
    for r in &s.steps {
        let errors: Vec<String> = r
            .error_kinds
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let row = [
            // A closed loop has no offered rate: the cell stays empty, the users go in
            // target_concurrency.
            match r.target_concurrency {
                Some(_) => String::new(),
                None => f3(r.target_rps),
            },
            f3(r.achieved_rps),
            f3(r.throughput_rps),
            format!("{:.4}", r.success_ratio),
            f3(r.latency_ms.p50),
            f3(r.latency_ms.p90),
            f3(r.latency_ms.p95),
            f3(r.latency_ms.p99),
            f3(r.latency_ms.max),
            opt_ms(r.ttft_ms, |m| m.p50),
            opt_ms(r.ttft_ms, |m| m.p95),
            opt_ms(r.itl_ms, |m| m.p50),
            opt_ms(r.tpot_ms, |m| m.p50),
            f3(r.output_tokens_per_s),
            usd(r.cost.usd_per_1k_tokens),
            usd(r.cost.usd_per_1k_output_tokens),
            r.sustainable.to_string(),
            r.step.to_string(),
            r.repeat.to_string(),
            r.requests.to_string(),
            f3(r.served_rps),
            f3(r.latency_ms.mean),
            opt_ms(r.ttft_ms, |m| m.p99),
            opt_ms(r.itl_ms, |m| m.p95),
            f3(r.input_tokens_per_s),
            f3(r.send_lag_p99_ms),
            r.capped.to_string(),
            usd(r.cost.usd_per_1k_requests),
            usd(r.cost.study_usd_per_1k_tokens),
            usd(r.cost.window_usd_p90),
            errors.join(" "),
            r.verdict.clone(),
            r.status.as_str().to_string(),
            r.errors.to_string(),
            r.latency_trend_ms_per_s.map(f3).unwrap_or_default(),
            r.latency_trend_margin_ms_per_s.map(f3).unwrap_or_default(),
            r.trend_window.as_str().to_string(),
            r.trend_left_out.to_string(),
            r.sent_rps.map(f3).unwrap_or_default(),
            f3(r.send_lag_limit_ms),
            opt_ms(r.service_ms, |m| m.p50),
            opt_ms(r.service_ms, |m| m.p95),
            usd(r.cost.usd_per_1m_tokens),
            r.target_concurrency
                .map(|n| n.to_string())
                .unwrap_or_default(),
            r.scaling
                .map(|g| format!("{:.4}", g.gain))
                .unwrap_or_default(),
            f3(r.goodput_rps),
            r.slo_attainment
                .map(|a| format!("{a:.4}"))
                .unwrap_or_default(),
            usd(r.cost.usd_per_1k_good_tokens),
            f3(r.recv_lag_p99_ms),
            f3(r.recv_lag_limit_ms),
        ];
        w.write_record(row.into_iter().chain(server_cells(r)))
            .expect("writing to memory");
    }
    String::from_utf8(w.into_inner().expect("flushing to memory")).expect("csv of utf-8 strings")
}
