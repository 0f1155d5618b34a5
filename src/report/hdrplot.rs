//! `--type hdrplot`: the percentile distribution text that HdrHistogram's online plotter reads
//! (`Value(ms) Percentile TotalCount 1/(1-Percentile)`), straight from the HDR histogram.

use std::io::Write;

use crate::metrics::Dist;

pub fn render(latency: &Dist, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}",
        "Value(ms)", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let hist = latency.histogram();
    if latency.count() == 0 {
        return Ok(());
    }
    let mut total = 0u64;
    for v in hist.iter_quantiles(5) {
        total = total.saturating_add(v.count_since_last_iteration());
        let q = v.quantile_iterated_to();
        let inverse = if q >= 1.0 {
            10_000_000.0
        } else {
            1.0 / (1.0 - q)
        };
        writeln!(
            out,
            "{:>12.6} {:>14.6} {:>10} {:>14.2}",
            v.value_iterated_to() as f64 / 1e6,
            q,
            total,
            inverse
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_at_the_whole_count_and_percentile_one() {
        let mut d = Dist::default();
        for ms in 1..=100u64 {
            d.record(ms * 1_000_000);
        }
        let mut out = Vec::new();
        render(&d, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let last: Vec<&str> = text.lines().last().unwrap().split_whitespace().collect();
        assert_eq!(last[1], "1.000000");
        assert_eq!(last[2], "100");
        assert!(text.lines().count() > 10);
    }
}
