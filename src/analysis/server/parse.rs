//! Prometheus text exposition format -> [`Family`]s, through `prom_text_format_parser` (its
//! grammar takes vLLM's `vllm:` names). A histogram's `_bucket`, `_sum` and `_count` lines
//! become one [`Series`] per label set without `le`; a summary keeps its sum and count.

use std::collections::BTreeMap;

use prom_text_format_parser::{Metric, ScrapeParseError, Type, ValueType};

use super::{Family, Kind, Series};

/// Text that is not the Prometheus format.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not Prometheus text: {0}")]
pub struct ParseError(pub String);

/// A sample value as Go writes it (`+Inf`, `NaN`, `1.5e+06`); None for NaN, which JSON
/// cannot hold.
fn number(text: &str) -> Option<f64> {
    let v = match text.to_ascii_lowercase().as_str() {
        "+inf" | "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        t => t.parse().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

/// Parses a whole scrape. Families the parser could assemble are kept even when others could
/// not be (one odd metric must not hide the rest); text with no family at all is an error.
pub fn parse(text: &str) -> Result<Vec<Family>, ParseError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let (metrics, error) = prom_text_format_parser::parse_scrape(text);
    if metrics.is_empty()
        && let Some(e) = error
    {
        return Err(ParseError(describe(&e)));
    }
    Ok(metrics.iter().map(family).collect())
}

fn describe(e: &ScrapeParseError) -> String {
    match e {
        ScrapeParseError::Parse(m) => m.lines().next().unwrap_or("").to_string(),
        ScrapeParseError::Collect(errors) => errors
            .first()
            .map(|m| format!("line {}: {}", m.line_no.start + 1, m.error))
            .unwrap_or_default(),
    }
}

fn family(m: &Metric) -> Family {
    let kind = match m.kind {
        Type::Counter => Kind::Counter,
        Type::Gauge => Kind::Gauge,
        Type::Histogram => Kind::Histogram,
        Type::Summary => Kind::Summary,
        Type::Untyped => Kind::Untyped,
    };
    // Series keyed by their labels without `le`/`quantile`, in first-seen order.
    let mut order: Vec<String> = Vec::new();
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    for sample in &m.samples {
        let mut le = None;
        let mut labels: Vec<(&str, &str)> = Vec::new();
        for l in sample.labels.iter() {
            match (kind, l.key.as_str()) {
                (Kind::Histogram, "le") => le = number(&l.value),
                (Kind::Summary, "quantile") => {}
                _ => labels.push((&l.key, &l.value)),
            }
        }
        labels.sort();
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let labels = labels.join(",");
        let s = series.entry(labels.clone()).or_insert_with(|| {
            order.push(labels.clone());
            Series {
                labels,
                ..Series::default()
            }
        });
        let v = number(&sample.value.value);
        match (kind, sample.value.value_type) {
            (Kind::Histogram | Kind::Summary, ValueType::Sum) => s.sum = v,
            (Kind::Histogram | Kind::Summary, ValueType::Count) => s.count = v,
            (Kind::Histogram, ValueType::Sample) => {
                // The +Inf bucket is the count; JSON cannot hold the bound.
                if let (Some(le), Some(c)) = (le.filter(|b| b.is_finite()), v) {
                    s.buckets.push((le, c));
                }
            }
            (Kind::Summary, ValueType::Sample) => {}
            _ => s.value = v,
        }
    }
    let mut out: Vec<Series> = order.iter().filter_map(|k| series.remove(k)).collect();
    for s in &mut out {
        s.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Family {
        name: m.name.clone(),
        kind,
        series: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_fold_into_series_and_colons_parse() {
        let text = "\
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"0.5\",model_name=\"m\"} 1.0
vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"m\"} 3.0
vllm:e2e_request_latency_seconds_count{engine=\"0\",model_name=\"m\"} 3.0
vllm:e2e_request_latency_seconds_sum{engine=\"0\",model_name=\"m\"} 2.25
# TYPE up gauge
up NaN
";
        let f = parse(text).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, "vllm:e2e_request_latency_seconds");
        assert_eq!(f[0].kind, Kind::Histogram);
        assert_eq!(
            f[0].series,
            vec![Series {
                labels: "engine=\"0\",model_name=\"m\"".into(),
                value: None,
                sum: Some(2.25),
                count: Some(3.0),
                buckets: vec![(0.5, 1.0)],
            }]
        );
        assert_eq!(f[1].series[0].value, None, "NaN is no value");
        assert_eq!(parse("").unwrap(), Vec::new());
        assert!(parse("<html>oops</html>").is_err());
    }
}
