//! Renderers. Result files are read into one `Metrics` (several files merge exactly) and
//! rendered as Vegeta's report types: `text`, `json`, `hist[...]` and `hdrplot`. A sweep's
//! numbers (`analysis::summary`) are rendered by `csv`, `markdown`, `png` and `table`; two
//! sweeps compared (`analysis::compare`) by `compare`.
//! Renderers format; they compute no statistics of their own and judge nothing.

mod chart;
pub mod compare;
pub mod csv;
pub mod hdrplot;
pub mod hist;
pub mod markdown;
pub mod png;
mod search_chart;
pub mod server;
pub mod table;
pub mod text;
pub mod text_backend;

use std::io::Write;
use std::path::PathBuf;

use crate::metrics::Metrics;

/// The report types `--type` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportType {
    Text,
    Json,
    /// Bucket lower bounds in ns.
    Hist(Vec<u64>),
    HdrPlot,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportTypeError {
    #[error("unknown report --type {0:?}: use text, json, hdrplot or hist[0,100ms,1s]")]
    Unknown(String),
    #[error("--type {text:?}: bucket {bucket:?} is not a duration such as 100ms")]
    Bucket { text: String, bucket: String },
    #[error("--type {0:?}: buckets must be given in increasing order")]
    Order(String),
}

impl std::str::FromStr for ReportType {
    type Err = ReportTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => return Ok(ReportType::Text),
            "json" => return Ok(ReportType::Json),
            "hdrplot" => return Ok(ReportType::HdrPlot),
            _ => {}
        }
        let inner = s
            .strip_prefix("hist[")
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(|| ReportTypeError::Unknown(s.to_owned()))?;
        let mut bounds = Vec::new();
        for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let d = crate::pacer::parse_duration(part).map_err(|_| ReportTypeError::Bucket {
                text: s.to_owned(),
                bucket: part.to_owned(),
            })?;
            bounds.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        }
        if bounds.is_empty() {
            return Err(ReportTypeError::Bucket {
                text: s.to_owned(),
                bucket: String::new(),
            });
        }
        if bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ReportTypeError::Order(s.to_owned()));
        }
        // As Vegeta: a [0, b0) bucket comes first when b0 > 0.
        if bounds[0] > 0 {
            bounds.insert(0, 0);
        }
        Ok(ReportType::Hist(bounds))
    }
}

/// `report --by`: the breakdown shown after the overall figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// One report per target URL (the records' `url`), e.g. per replica of `--target` x N.
    Target,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown report --by {0:?}: use target")]
pub struct UnknownBy(pub String);

impl std::str::FromStr for By {
    type Err = UnknownBy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "target" => Ok(By::Target),
            other => Err(UnknownBy(other.to_owned())),
        }
    }
}

/// The figures of one report: all records, and with `--by` the same records grouped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub all: Metrics,
    /// By target URL, in URL order; empty without `--by`.
    pub groups: std::collections::BTreeMap<String, Metrics>,
}

/// Reads every file (stdin when none) into one `Metrics` (and with `by`, one per group as
/// well). Shard files (`attack --shard`) must be the shards of one schedule, all of them
/// unless `allow_missing_shards` (then a warning on stderr names the missing ones).
pub fn load(
    files: &[PathBuf],
    allow_missing_shards: bool,
    by: Option<By>,
) -> anyhow::Result<Loaded> {
    let stdin = [PathBuf::from("-")];
    let files = if files.is_empty() { &stdin[..] } else { files };
    let mut loaded = Loaded::default();
    let mut census = crate::metrics::shards::ShardCensus::default();
    for path in files {
        census.file(&path.display().to_string());
        for record in crate::record::open(path)? {
            let record = record?;
            census.add(&record);
            loaded.all.add(&record);
            if by == Some(By::Target) {
                // Looked up before inserting: one allocation per target, not per record.
                match loaded.groups.get_mut(&record.url) {
                    Some(m) => m.add(&record),
                    None => {
                        let mut m = Metrics::default();
                        m.add(&record);
                        loaded.groups.insert(record.url.clone(), m);
                    }
                }
            }
        }
    }
    if let Some(missing) = census.check(allow_missing_shards)? {
        let list: Vec<String> = missing.iter().map(u32::to_string).collect();
        eprintln!(
            "warning: --allow-missing-shards: reporting without shard(s) {}; the figures are of a short run",
            list.join(", ")
        );
    }
    Ok(loaded)
}

/// Renders `loaded`: the overall report, then one per group under a `target URL` heading.
/// JSON is one object, `{"all": ..., "by_target": {URL: ...}}`, when grouped.
pub fn render_loaded(
    kind: &ReportType,
    loaded: &Loaded,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if loaded.groups.is_empty() {
        return render(kind, &loaded.all, out);
    }
    if *kind == ReportType::Json {
        let by: std::collections::BTreeMap<&str, _> = (loaded.groups.iter())
            .map(|(url, m)| (url.as_str(), m.summary()))
            .collect();
        let v = serde_json::json!({"all": loaded.all.summary(), "by_target": by});
        serde_json::to_writer(&mut *out, &v).map_err(std::io::Error::other)?;
        return writeln!(out);
    }
    render(kind, &loaded.all, out)?;
    for (url, m) in &loaded.groups {
        writeln!(out, "\ntarget {url}")?;
        render(kind, m, out)?;
    }
    Ok(())
}

/// Renders `metrics` as `kind`.
pub fn render(kind: &ReportType, metrics: &Metrics, out: &mut dyn Write) -> std::io::Result<()> {
    match kind {
        ReportType::Text => text::render(&metrics.summary(), out),
        ReportType::Json => {
            serde_json::to_writer(&mut *out, &metrics.summary()).map_err(std::io::Error::other)?;
            writeln!(out)
        }
        ReportType::Hist(bounds) => hist::render(&metrics.latency, bounds, out),
        ReportType::HdrPlot => hdrplot::render(&metrics.latency, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_types_parse() {
        assert_eq!("text".parse::<ReportType>().unwrap(), ReportType::Text);
        assert_eq!(
            "hist[0,100ms,1s]".parse::<ReportType>().unwrap(),
            ReportType::Hist(vec![0, 100_000_000, 1_000_000_000])
        );
        assert_eq!(
            "hist[2ms]".parse::<ReportType>().unwrap(),
            ReportType::Hist(vec![0, 2_000_000])
        );
        assert!(matches!(
            "hist[1s,1ms]".parse::<ReportType>(),
            Err(ReportTypeError::Order(_))
        ));
        assert!(matches!(
            "hist[x]".parse::<ReportType>(),
            Err(ReportTypeError::Bucket { .. })
        ));
        assert!(matches!(
            "csv".parse::<ReportType>(),
            Err(ReportTypeError::Unknown(_))
        ));
    }
}
