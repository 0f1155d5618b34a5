//! One step's server figures from its scrapes: histograms and counters as the end scrape minus
//! the start scrape (the first and last that answered), gauges as the mean of the scrapes
//! taken while the step sent, the p95 of a histogram from its bucket deltas (interpolated in
//! the bucket, as Prometheus' `histogram_quantile`). Metrics no figure reads are kept raw:
//! a counter's delta, a gauge's last value, a histogram's sum and count deltas.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Family, Kind, NAMES, Phase, ScrapeLine};

/// What the server said about one step. A figure is None when the server exports none of its
/// names, or fewer than two scrapes answered (a delta needs both ends).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ServerFigures {
    /// Scrapes that answered and parsed, and those that did not.
    pub scrapes: u32,
    pub failed_scrapes: u32,
    /// The first failure, as the warning printed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Seconds between the first and last scrape that answered (the deltas' window).
    pub span_s: f64,
    /// Mean seconds a request waited in the server's queue.
    pub queue_time_s: Option<f64>,
    /// Mean running batch.
    pub batch_size: Option<f64>,
    /// Mean KV-cache use, 0..1.
    pub kv_cache_usage: Option<f64>,
    /// Mean seconds a request spent in the server, and its p95.
    pub request_latency_s: Option<f64>,
    pub request_latency_p95_s: Option<f64>,
    /// Tokens generated (the delta), and per second of the step's duration: the delta also
    /// holds the drain of the step's last requests, as the client's token rates do.
    pub generated_tokens: Option<f64>,
    pub tokens_per_s: Option<f64>,
    /// Client mean latency of successes minus `request_latency_s` (set by `attach`).
    pub latency_gap_s: Option<f64>,
    /// Figure -> the metric it was read from.
    pub sources: BTreeMap<String, String>,
    /// `name` or `name{labels}` of every other metric: a counter's delta, a gauge's last
    /// value, `name_sum`/`name_count` deltas of a histogram or summary.
    pub other: BTreeMap<String, f64>,
}

/// A histogram's series added up at one scrape: sum, count and the cumulative buckets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hist {
    pub sum: f64,
    pub count: f64,
    pub buckets: Vec<(f64, f64)>,
}

impl Hist {
    /// All series of `f` added up (buckets matched by `le`).
    pub fn of(f: &Family) -> Self {
        let mut h = Hist::default();
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in &f.series {
            h.sum += s.sum.unwrap_or(0.0);
            h.count += s.count.unwrap_or(0.0);
            for &(le, c) in &s.buckets {
                // Bounds are positive in practice; total order by bits keeps them sorted.
                buckets.entry(le.to_bits()).or_insert((le, 0.0)).1 += c;
            }
        }
        let mut v: Vec<(f64, f64)> = buckets.into_values().collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        h.buckets = v;
        h
    }

    /// `self - start`, bucket by bucket; None if a count went down (the server restarted).
    pub fn delta(&self, start: &Hist) -> Option<Hist> {
        if self.count < start.count {
            return None;
        }
        let before = |le: f64| {
            start
                .buckets
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0.0, |b| b.1)
        };
        Some(Hist {
            sum: self.sum - start.sum,
            count: self.count - start.count,
            buckets: self
                .buckets
                .iter()
                .map(|&(le, c)| (le, c - before(le)))
                .collect(),
        })
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The `q` quantile (0..1), linear within its bucket from the bucket below (0 for the
    /// first); past the last finite bound, that bound. None without buckets or observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 || self.buckets.is_empty() {
            return None;
        }
        let rank = q * self.count;
        let mut lower = (0.0, 0.0);
        for &(le, c) in &self.buckets {
            if c >= rank {
                let (lo, below) = lower;
                if c <= below {
                    return Some(le);
                }
                return Some(lo + (le - lo) * (rank - below) / (c - below));
            }
            lower = (le, c);
        }
        Some(lower.0)
    }
}

/// The first family of `names` in `line`, with the name it matched.
fn find<'a>(line: &'a ScrapeLine, names: &[&'static str]) -> Option<(&'static str, &'a Family)> {
    names
        .iter()
        .find_map(|n| line.families.iter().find(|f| f.name == *n).map(|f| (*n, f)))
}

/// A counter's, gauge's or untyped family's series added up.
fn total(f: &Family) -> f64 {
    f.series.iter().filter_map(|s| s.value).sum()
}

/// Its series' mean (a gauge of a fraction per engine).
fn average(f: &Family) -> Option<f64> {
    let v: Vec<f64> = f.series.iter().filter_map(|s| s.value).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// `name{labels}`, or `name` when unlabelled.
fn key(name: &str, labels: &str) -> String {
    if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{labels}}}")
    }
}

/// The figures of one step's scrapes, in the order taken, for a step that sent for `step_s`
/// seconds (None: no scrape at all).
pub fn step_figures(lines: &[&ScrapeLine], step_s: f64) -> Option<ServerFigures> {
    if lines.is_empty() {
        return None;
    }
    let ok: Vec<&ScrapeLine> = lines
        .iter()
        .copied()
        .filter(|l| l.error.is_none())
        .collect();
    let mut f = ServerFigures {
        scrapes: ok.len() as u32,
        failed_scrapes: (lines.len() - ok.len()) as u32,
        error: lines.iter().find_map(|l| l.error.clone()),
        ..ServerFigures::default()
    };
    let (Some(&start), Some(&end)) = (ok.first(), ok.last()) else {
        return Some(f);
    };
    if ok.len() < 2 {
        return Some(f);
    }
    f.span_s = end.t_s - start.t_s;
    // Gauges while the step sent; the start and end scrapes see an idle server.
    let during: Vec<&ScrapeLine> = ok
        .iter()
        .copied()
        .filter(|l| l.phase == Phase::During)
        .collect();
    let gauge_lines = if during.is_empty() { &ok } else { &during };
    let mut source = |figure: &str, name: &str| {
        f.sources.insert(figure.to_string(), name.to_string());
    };

    // A series missing from the start scrape had not been touched yet: servers create them
    // on first use, from zero.
    let hist_delta = |names: &[&'static str]| {
        let (name, e) = find(end, names)?;
        let s = find(start, &[name]).map_or_else(Hist::default, |(_, s)| Hist::of(s));
        Some((name, Hist::of(e).delta(&s)?))
    };
    if let Some((name, d)) = hist_delta(NAMES.queue_time) {
        f.queue_time_s = d.mean();
        source("queue_time_s", name);
    }
    if let Some((name, d)) = hist_delta(NAMES.request_latency) {
        f.request_latency_s = d.mean();
        f.request_latency_p95_s = d.quantile(0.95);
        source("request_latency_s", name);
    }

    let gauge_mean = |names: &[&'static str], per_scrape: fn(&Family) -> Option<f64>| {
        let name = gauge_lines.iter().find_map(|l| find(l, names))?.0;
        let v: Vec<f64> = gauge_lines
            .iter()
            .filter_map(|l| find(l, &[name]).and_then(|(_, g)| per_scrape(g)))
            .collect();
        Some((name, mean(&v)?))
    };
    if let Some((name, v)) = gauge_mean(NAMES.batch_size_gauge, |g| Some(total(g))) {
        f.batch_size = Some(v);
        source("batch_size", name);
    } else if let Some((name, d)) = hist_delta(NAMES.batch_size_histogram) {
        f.batch_size = d.mean();
        source("batch_size", name);
    }
    if let Some((name, v)) = gauge_mean(NAMES.kv_cache_usage, average) {
        f.kv_cache_usage = Some(v);
        source("kv_cache_usage", name);
    }

    let counter = find(end, NAMES.generated_tokens_counter).map(|(name, e)| {
        let before = find(start, &[name]).map_or(0.0, |(_, s)| total(s));
        (name, total(e) - before)
    });
    let tokens = counter
        .or_else(|| hist_delta(NAMES.generated_tokens_histogram).map(|(name, d)| (name, d.sum)));
    if let Some((name, tokens)) = tokens.filter(|(_, t)| *t >= 0.0) {
        f.generated_tokens = Some(tokens);
        f.tokens_per_s = (step_s > 0.0).then(|| tokens / step_s);
        source("tokens_per_s", name);
    }

    f.other = others(start, end);
    Some(f)
}

/// Every metric no figure reads, per series.
fn others(start: &ScrapeLine, end: &ScrapeLine) -> BTreeMap<String, f64> {
    let mapped: Vec<&str> = NAMES.all().collect();
    let mut out = BTreeMap::new();
    for fam in end
        .families
        .iter()
        .filter(|f| !mapped.contains(&f.name.as_str()))
    {
        let before = start.families.iter().find(|f| f.name == fam.name);
        let prior =
            |labels: &str| before.and_then(|b| b.series.iter().find(|s| s.labels == labels));
        for s in &fam.series {
            match fam.kind {
                Kind::Counter => {
                    if let Some(v) = s.value {
                        let p = prior(&s.labels).and_then(|p| p.value).unwrap_or(0.0);
                        out.insert(key(&fam.name, &s.labels), v - p);
                    }
                }
                Kind::Gauge | Kind::Untyped => {
                    if let Some(v) = s.value {
                        out.insert(key(&fam.name, &s.labels), v);
                    }
                }
                Kind::Histogram | Kind::Summary => {
                    let p = prior(&s.labels);
                    for (suffix, now, then) in [
                        ("_sum", s.sum, p.map_or(Some(0.0), |p| p.sum)),
                        ("_count", s.count, p.map_or(Some(0.0), |p| p.count)),
                    ] {
                        if let (Some(now), Some(then)) = (now, then) {
                            out.insert(
                                key(&format!("{}{suffix}", fam.name), &s.labels),
                                now - then,
                            );
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Series;
    use super::*;

    fn hist(sum: f64, count: f64, buckets: &[(f64, f64)]) -> Hist {
        Hist {
            sum,
            count,
            buckets: buckets.to_vec(),
        }
    }

    #[test]
    fn histogram_deltas_and_quantiles() {
        let start = hist(1.0, 2.0, &[(0.1, 1.0), (1.0, 2.0), (10.0, 2.0)]);
        let end = hist(5.0, 12.0, &[(0.1, 1.0), (1.0, 8.0), (10.0, 12.0)]);
        let d = end.delta(&start).unwrap();
        assert_eq!(d, hist(4.0, 10.0, &[(0.1, 0.0), (1.0, 6.0), (10.0, 10.0)]));
        assert_eq!(d.mean(), Some(0.4));
        // rank 9.5 in (1, 10]: 6 below, 4 inside -> 1 + 9 x 3.5 / 4.
        assert!((d.quantile(0.95).unwrap() - 8.875).abs() < 1e-12);
        // rank 3 in (0.1, 1]: 0 below -> 0.1 + 0.9 x 3 / 6.
        assert!((d.quantile(0.3).unwrap() - 0.55).abs() < 1e-12);
        // A count that went down is a restart: no delta.
        assert_eq!(start.delta(&end), None);
        // Everything past the last finite bound reads as that bound.
        assert_eq!(hist(9.0, 3.0, &[(1.0, 1.0)]).quantile(0.95), Some(1.0));
        assert_eq!(hist(0.0, 0.0, &[(1.0, 0.0)]).quantile(0.5), None);
    }

    fn line(step: u32, t_s: f64, phase: Phase, families: Vec<Family>) -> ScrapeLine {
        ScrapeLine {
            step,
            t_s,
            phase,
            error: None,
            families,
        }
    }

    fn gauge(name: &str, values: &[f64]) -> Family {
        Family {
            name: name.into(),
            kind: Kind::Gauge,
            series: values
                .iter()
                .enumerate()
                .map(|(i, v)| Series {
                    labels: format!("engine=\"{i}\""),
                    value: Some(*v),
                    ..Series::default()
                })
                .collect(),
        }
    }

    fn counter(name: &str, v: f64) -> Family {
        Family {
            name: name.into(),
            kind: Kind::Counter,
            series: vec![Series {
                value: Some(v),
                ..Series::default()
            }],
        }
    }

    #[test]
    fn gauges_average_the_scrapes_taken_while_sending() {
        let kv = "vllm:kv_cache_usage_perc";
        let run = "vllm:num_requests_running";
        let lines = [
            line(
                0,
                0.0,
                Phase::Start,
                vec![gauge(kv, &[0.0]), gauge(run, &[0.0])],
            ),
            line(
                0,
                1.0,
                Phase::During,
                vec![gauge(kv, &[0.2, 0.4]), gauge(run, &[3.0, 1.0])],
            ),
            line(
                0,
                2.0,
                Phase::During,
                vec![gauge(kv, &[0.5]), gauge(run, &[6.0])],
            ),
            line(
                0,
                2.5,
                Phase::End,
                vec![gauge(kv, &[0.0]), gauge(run, &[0.0])],
            ),
        ];
        let refs: Vec<&ScrapeLine> = lines.iter().collect();
        let f = step_figures(&refs, 4.0).unwrap();
        // KV: per scrape the mean over engines (0.3, 0.5); batch: the sum (4, 6).
        assert!((f.kv_cache_usage.unwrap() - 0.4).abs() < 1e-12);
        assert_eq!(f.batch_size, Some(5.0));
        assert_eq!(f.span_s, 2.5);
        assert_eq!(f.sources["kv_cache_usage"], kv);
        assert_eq!(f.queue_time_s, None);
    }

    #[test]
    fn counters_over_the_span_and_failures_counted() {
        let name = "vllm:generation_tokens_total";
        let mut failed = line(1, 1.0, Phase::During, Vec::new());
        failed.error = Some("timed out".into());
        let lines = [
            line(
                1,
                0.0,
                Phase::Start,
                vec![counter(name, 100.0), counter("x_total", 1.0)],
            ),
            failed,
            line(
                1,
                4.0,
                Phase::End,
                vec![counter(name, 300.0), counter("x_total", 5.0)],
            ),
        ];
        let refs: Vec<&ScrapeLine> = lines.iter().collect();
        let f = step_figures(&refs, 4.0).unwrap();
        assert_eq!(f.tokens_per_s, Some(50.0));
        assert_eq!((f.scrapes, f.failed_scrapes), (2, 1));
        assert_eq!(f.error.as_deref(), Some("timed out"));
        assert_eq!(f.other["x_total"], 4.0);

        // A series the start scrape lacks was created during the step, from zero.
        let late = [&lines[0], &lines[2]];
        let mut end = lines[2].clone();
        end.families.push(counter("y_total", 3.0));
        let f = step_figures(&[late[0], &end], 4.0).unwrap();
        assert_eq!(f.other["y_total"], 3.0);

        // One scrape that answered has no delta: counts only.
        let alone = [&lines[0], &lines[1]];
        let f = step_figures(&alone, 4.0).unwrap();
        assert_eq!((f.scrapes, f.tokens_per_s), (1, None));
        assert_eq!(step_figures(&[], 4.0), None);
    }
}
