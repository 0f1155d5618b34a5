//! `--type hist[...]`: latency counts in `[lo, hi)` buckets, the last one open-ended, with a
//! bar scaled to 75 characters, as Vegeta prints it.

use std::io::Write;

use super::text::duration;
use crate::metrics::Dist;

pub fn render(latency: &Dist, bounds: &[u64], out: &mut dyn Write) -> std::io::Result<()> {
    let counts = latency.bucket_counts(bounds);
    let total = latency.count().max(1) as f64;
    writeln!(out, "{:<20}{:<10}{:<10}Histogram", "Bucket", "#", "%")?;
    for (i, count) in counts.iter().enumerate() {
        let lo = duration(bounds[i]);
        let hi = bounds
            .get(i + 1)
            .map_or("+Inf".to_owned(), |b| duration(*b));
        let share = *count as f64 / total;
        let bar = "#".repeat((share * 75.0).round() as usize);
        writeln!(
            out,
            "{:<20}{:<10}{:<10}{bar}",
            format!("[{lo}, {hi}]"),
            count,
            format!("{:.2}%", share * 100.0)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_bars() {
        let mut d = Dist::default();
        for ms in [1u64, 1, 1, 50] {
            d.record(ms * 1_000_000);
        }
        let mut out = Vec::new();
        render(&d, &[0, 10_000_000], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1].starts_with("[0s, 10ms]") && lines[1].contains("75.00%"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("[10ms, +Inf]") && lines[2].contains("25.00%"),
            "{text}"
        );
        assert_eq!(lines[1].matches('#').count(), 56);
    }
}
