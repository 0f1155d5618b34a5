//! The sweep's final table on stdout: one line per step with its latencies (successful
//! requests), errors, each SLO clause's figure with the goodput and SLO attainment, and the
//! verdict; then the headline, and how a search ended. Reads only [`SweepSummary`].

use std::fmt::Write;

use crate::analysis::summary::SweepSummary;
use crate::cost::fmt_sig;
use crate::report::markdown::{clause_value_ms, fmt_latency_ms, verdict_text};
use crate::scenario::plan::{Axis, fmt_rate};

/// Renders the table.
pub fn sweep_table(s: &SweepSummary) -> String {
    let mut o = String::new();
    let clauses = &s.rules.slo.clauses;
    let slo_heads: String = clauses
        .iter()
        .map(|c| format!(" {:>10}", c.metric()))
        .chain((!clauses.is_empty()).then(|| format!(" {:>8} {:>7}", "good/s", "attain")))
        .collect();
    let _ = writeln!(
        o,
        "{:>5} {:>9} {:>9} {:>9} {:>8} {:>6} {:>10} {:>10} {:>10}{slo_heads} {:>11}  verdict",
        "step",
        match s.axis {
            Axis::Rate => "offered",
            Axis::Concurrency => "users",
        },
        "served",
        "thruput",
        "success",
        "errors",
        "p50",
        "p90",
        "p99",
        "$/1K tok"
    );
    for r in &s.steps {
        let slo_cells: String = clauses
            .iter()
            .map(|c| {
                let v = clause_value_ms(r, c).map_or("-".into(), fmt_latency_ms);
                format!(" {v:>10}")
            })
            .chain((!clauses.is_empty()).then(|| {
                let attain = r
                    .slo_attainment
                    .map_or("-".into(), |a| format!("{:.1}%", a * 100.0));
                format!(" {:>8.2} {attain:>7}", r.goodput_rps)
            }))
            .collect();
        let _ = writeln!(
            o,
            "{:>5} {:>9} {:>9.2} {:>9.2} {:>7.2}% {:>6} {:>10} {:>10} {:>10}{slo_cells} {:>11}  {}",
            r.step,
            fmt_rate(r.level()),
            r.served_rps,
            r.throughput_rps,
            r.success_ratio * 100.0,
            r.errors,
            fmt_latency_ms(r.latency_ms.p50),
            fmt_latency_ms(r.latency_ms.p90),
            fmt_latency_ms(r.latency_ms.p99),
            r.cost
                .usd_per_1k_tokens
                .map(|c| fmt_sig(c, 3))
                .unwrap_or_else(|| "-".into()),
            verdict_text(r.status, &r.verdict),
        );
    }
    match &s.headline {
        Some(h) => {
            let _ = writeln!(
                o,
                "highest sustainable {} (served {:.2} req/s, p90 {}{})",
                h.describe(),
                h.served_rps,
                fmt_latency_ms(h.latency_p90_ms),
                h.cost
                    .usd_per_1k_tokens
                    .map(|c| format!(", {} USD per 1K tokens", fmt_sig(c, 3)))
                    .unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(o, "no step was sustainable");
        }
    }
    for t in &s.by_target {
        let _ = match &t.headline {
            Some(h) => writeln!(
                o,
                "  {}: highest sustainable {} (served {:.2} req/s, p90 {})",
                t.target,
                h.describe(),
                h.served_rps,
                fmt_latency_ms(h.latency_p90_ms)
            ),
            None => writeln!(o, "  {}: no step was sustainable", t.target),
        };
    }
    if let Some(search) = &s.search {
        let _ = writeln!(o, "{}", search.describe(s.axis));
    } else if s.stopped_early {
        let _ = writeln!(
            o,
            "stopped after {} of {} planned steps",
            s.steps.len(),
            s.planned_steps
        );
    }
    o
}
