//! Vegeta's text report (latencies over every request, as Vegeta counts them), extended with a
//! success-only latency line when some requests failed and the token-level rows (TTFT, ITL, TPOT
//! of successful requests, send lag, tokens).

use std::io::Write;

use crate::metrics::{Percentiles, Summary, Tokens};

/// Formats ns like Go's `time.Duration` after rounding: `1.234s`, `5.401ms`, `80.5µs`.
pub fn duration(ns: u64) -> String {
    let f = ns as f64;
    if ns == 0 {
        "0s".into()
    } else if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{}µs", trim(f / 1e3))
    } else if ns < 1_000_000_000 {
        format!("{}ms", trim(f / 1e6))
    } else if ns < 60_000_000_000 {
        format!("{}s", trim(f / 1e9))
    } else {
        let mins = ns / 60_000_000_000;
        let rest = ns % 60_000_000_000;
        format!("{mins}m{}s", trim(rest as f64 / 1e9))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn row(out: &mut dyn Write, label: &str, cols: &str, values: &str) -> std::io::Result<()> {
    writeln!(out, "{label:<14}{cols:<37}{values}")
}

fn dist(p: &Percentiles) -> String {
    [p.min, p.mean, p.p50, p.p90, p.p95, p.p99, p.max]
        .iter()
        .map(|v| duration(*v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which counts are guesses (4 characters a token), so nobody reads an estimate as measured:
/// `input estimated for 25 requests, output for 3`.
fn estimate_note(t: &Tokens) -> Option<String> {
    let estimated =
        |m: &std::collections::BTreeMap<String, u64>| m.get("estimate").copied().filter(|&n| n > 0);
    let plural = |n: u64| if n == 1 { "request" } else { "requests" };
    match (estimated(&t.input_sources), estimated(&t.sources)) {
        (None, None) => None,
        (Some(i), None) => Some(format!("input estimated for {i} {}", plural(i))),
        (None, Some(o)) => Some(format!("output estimated for {o} {}", plural(o))),
        (Some(i), Some(o)) => Some(format!(
            "input estimated for {i} {}, output for {o}",
            plural(i)
        )),
    }
}

pub fn render(s: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    let pct = "[min, mean, 50, 90, 95, 99, max]";
    row(
        out,
        "Requests",
        "[total, rate, throughput]",
        &format!("{}, {:.2}, {:.2}", s.requests, s.rate, s.throughput),
    )?;
    row(
        out,
        "Duration",
        "[total, attack, wait]",
        &format!(
            "{}, {}, {}",
            duration(s.duration.saturating_add(s.wait)),
            duration(s.duration),
            duration(s.wait)
        ),
    )?;
    row(out, "Latencies", pct, &dist(&s.latencies))?;
    // Vegeta's line mixes failures in (a 1 ms 429 pulls p50 down); this one does not.
    if s.latencies_ok.count != s.latencies.count {
        row(out, "Latencies (ok)", pct, &dist(&s.latencies_ok))?;
    }
    if s.ttft.count > 0 {
        row(out, "TTFT", pct, &dist(&s.ttft))?;
    }
    if s.itl.count > 0 {
        row(out, "ITL", pct, &dist(&s.itl))?;
    }
    if s.tpot.count > 0 {
        row(out, "TPOT", pct, &dist(&s.tpot))?;
    }
    row(out, "Send lag", pct, &dist(&s.send_lag))?;
    if s.recv_lag.max > 0 {
        row(out, "Recv lag", pct, &dist(&s.recv_lag))?;
    }
    if !s.tokens.sources.is_empty() || !s.tokens.input_sources.is_empty() {
        let mut values = format!(
            "{}, {}, {:.2}",
            s.tokens.input_total, s.tokens.output_total, s.tokens.output_per_second
        );
        if let Some(note) = estimate_note(&s.tokens) {
            values.push_str(&format!("  ({note})"));
        }
        row(out, "Tokens", "[input, output, output/s]", &values)?;
    }
    if let Some(w) = &s.workload {
        let len = |l: &crate::metrics::workload::Lengths| {
            format!(
                "{}, {:.1}, {}, {}, {}, {}",
                l.min, l.mean, l.p50, l.p90, l.p99, l.max
            )
        };
        let shape = "[min, mean, 50, 90, 99, max]";
        row(out, "Prompt tokens", shape, &len(&w.input))?;
        if w.requested.count > 0 {
            row(out, "Output asked", shape, &len(&w.requested))?;
        }
        if w.output.count > 0 {
            row(out, "Output tokens", shape, &len(&w.output))?;
        }
        let last = crate::metrics::workload::TURN_ROWS;
        for t in &w.turns {
            let label = if t.turn == last {
                format!("TTFT turn {last}+")
            } else {
                format!("TTFT turn {}", t.turn)
            };
            row(out, &label, pct, &dist(&t.ttft))?;
        }
    }
    row(
        out,
        "Bytes In",
        "[total, mean]",
        &format!("{}, {:.2}", s.bytes_in.total, s.bytes_in.mean),
    )?;
    row(
        out,
        "Bytes Out",
        "[total, mean]",
        &format!("{}, {:.2}", s.bytes_out.total, s.bytes_out.mean),
    )?;
    row(
        out,
        "Success",
        "[ratio]",
        &format!("{:.2}%", s.success * 100.0),
    )?;
    let codes: Vec<String> = s
        .status_codes
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    row(out, "Status Codes", "[code:count]", &codes.join("  "))?;
    if !s.error_kinds.is_empty() {
        let kinds: Vec<String> = s
            .error_kinds
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        row(out, "Error Kinds", "[kind:count]", &kinds.join("  "))?;
    }
    if s.capped > 0 || !s.client_kept_up {
        row(
            out,
            "Client",
            "[capped, kept up, send lag allowed, recv lag allowed]",
            &format!(
                "{}, {}, {}, {}",
                s.capped,
                s.client_kept_up,
                duration(s.send_lag_allowance),
                duration(s.recv_lag_allowance)
            ),
        )?;
    }
    writeln!(out, "Error Set:")?;
    for e in &s.errors {
        writeln!(out, "{e}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens_line(input: &[(&str, u64)], output: &[(&str, u64)]) -> String {
        let map = |v: &[(&str, u64)]| v.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        let s = Summary {
            tokens: Tokens {
                input_total: 30,
                output_total: 12,
                sources: map(output),
                input_sources: map(input),
                ..Tokens::default()
            },
            ..Summary::default()
        };
        let mut out = Vec::new();
        render(&s, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        text.lines()
            .find(|l| l.starts_with("Tokens"))
            .unwrap_or("")
            .to_owned()
    }

    #[test]
    fn estimated_tokens_are_named_for_input_and_output() {
        let both = tokens_line(&[("estimate", 3)], &[("estimate", 1), ("server", 2)]);
        assert!(
            both.ends_with("30, 12, 0.00  (input estimated for 3 requests, output for 1)"),
            "{both}"
        );
        let input = tokens_line(&[("estimate", 1)], &[("tokenizer", 1)]);
        assert!(
            input.ends_with("  (input estimated for 1 request)"),
            "{input}"
        );
        let output = tokens_line(&[("server", 2)], &[("estimate", 2)]);
        assert!(
            output.ends_with("  (output estimated for 2 requests)"),
            "{output}"
        );
        let measured = tokens_line(&[("tokenizer", 2)], &[("server", 2)]);
        assert!(measured.ends_with("30, 12, 0.00"), "{measured}");
        // Files written before input sources existed still get their row.
        let old = tokens_line(&[], &[("estimate", 2)]);
        assert!(old.ends_with("(output estimated for 2 requests)"), "{old}");
        assert_eq!(tokens_line(&[], &[]), "");
    }

    #[test]
    fn durations_read_like_go() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(512), "512ns");
        assert_eq!(duration(80_500), "80.5µs");
        assert_eq!(duration(5_401_000), "5.401ms");
        assert_eq!(duration(1_234_000_000), "1.234s");
        assert_eq!(duration(90_000_000_000), "1m30s");
    }
}
