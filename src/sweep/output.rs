//! The run folder `reports/<run-id>/`: `scenario.toml` (as run, price resolved),
//! `results.jsonl` (every record, with its `step`), `server-metrics.jsonl` (the server's
//! scrapes, with `--server-metrics`), and everything derived from them:
//! `steps.csv`, `summary.json`, `report.md` and the PNG charts.
//!
//! Derived files are only ever written by [`rebuild`], from `scenario.toml` + `results.jsonl`
//! (+ `server-metrics.jsonl`),
//! both live (after each step) and by `rpload report --sweep DIR`, so the two are
//! byte-identical by construction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use std::fs::File;
use std::io::BufWriter;

use super::run::RunSink;
use crate::record::{self, Record, RecordWriter};
use crate::report;
use crate::scenario::ScenarioFile;

use crate::analysis::summary::{self, StepData, SweepInput, SweepSummary};
use crate::scenario::slo::Slo;

pub const SCENARIO_TOML: &str = "scenario.toml";
pub const RESULTS_JSONL: &str = "results.jsonl";
pub const STEPS_CSV: &str = "steps.csv";
pub const SUMMARY_JSON: &str = "summary.json";
pub const REPORT_MD: &str = "report.md";

/// What reports call a target-less run's endpoint.
pub const EMBEDDED_TARGET: &str = "embedded reference server (rpload serve)";

/// How reports name a run's endpoints: its targets (credentials redacted), or the embedded
/// server's name when it had none.
pub fn shown_targets(targets: &[String]) -> String {
    if targets.is_empty() {
        return EMBEDDED_TARGET.to_string();
    }
    let shown: Vec<String> = targets.iter().map(|t| crate::redact::url(t)).collect();
    shown.join(", ")
}

/// Creates `dir` (and parents) and proves it writable, before any request is sent. A folder
/// that already holds a run is refused unless `force`: a typo in `--out` must not erase a
/// measured run.
pub fn prepare_dir(dir: &Path, force: bool) -> Result<()> {
    if !force && dir.join(RESULTS_JSONL).exists() {
        anyhow::bail!(
            "output folder {}: already holds a run ({RESULTS_JSONL}); pass --force to replace it, or another --out",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "output folder {}: cannot create it; pass --out with a writable folder",
            dir.display()
        )
    })?;
    let probe = dir.join(".rpload-write-test");
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "output folder {}: cannot write into it; pass --out with a writable folder",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The run folder as the driver's sink: `scenario.toml` at the start, every record appended to
/// `results.jsonl` (flushed as it comes, so a crash loses nothing that ended), and the derived
/// files rebuilt after each step.
pub struct RunFolder {
    dir: PathBuf,
    writer: Option<RecordWriter<BufWriter<File>>>,
    /// False for a pod of a sweep in shards: its share of each step cannot be judged, so it
    /// writes the scenario and the records only (the merge derives the rest).
    derive: bool,
}

impl RunFolder {
    /// A sink writing into `dir` (made writable by [`prepare_dir`] first).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            writer: None,
            derive: true,
        }
    }

    /// A sink that writes the scenario and the records, and derives nothing on disk.
    pub fn records_only(mut self) -> Self {
        self.derive = false;
        self
    }
}

impl RunSink for RunFolder {
    fn begin(&mut self, as_run: &ScenarioFile) -> Result<()> {
        // `commands::sweep` checked for an earlier run before the embedded server loaded.
        prepare_dir(&self.dir, true)?;
        write_scenario(&self.dir, as_run)?;
        // A replaced run's scrapes must not be read as this run's.
        let _ = std::fs::remove_file(self.dir.join(super::scrape::SERVER_METRICS_JSONL));
        let path = self.dir.join(RESULTS_JSONL);
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        self.writer = Some(RecordWriter::new(BufWriter::new(file)));
        Ok(())
    }

    fn replan(&mut self, as_run: &ScenarioFile) -> Result<()> {
        write_scenario(&self.dir, as_run)
    }

    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the run folder was not started"))?;
        w.write(record).and_then(|()| w.flush())
    }

    fn rebuild(&mut self) -> Result<SweepSummary> {
        if self.derive {
            rebuild(&self.dir)
        } else {
            summarize(&self.dir, None)
        }
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }
}

/// Writes the scenario as run.
pub fn write_scenario(dir: &Path, file: &ScenarioFile) -> Result<()> {
    let path = dir.join(SCENARIO_TOML);
    std::fs::write(&path, file.to_toml()).with_context(|| format!("writing {}", path.display()))
}

/// Reads `results.jsonl` into per-step data (and with `by_target`, per target URL as well),
/// each request judged against `slo`; records without a step are skipped.
pub fn load_steps(path: &Path, slo: &Slo, by_target: bool) -> Result<Steps> {
    let mut steps = Steps::default();
    if !path.exists() {
        return Ok(steps);
    }
    for rec in record::open(path)? {
        let rec = rec?;
        if let Some(step) = rec.step {
            steps
                .all
                .entry(step)
                .or_insert_with(|| StepData::new(slo))
                .add(&rec);
            if by_target {
                let per = match steps.by_target.get_mut(&rec.url) {
                    Some(per) => per,
                    None => steps.by_target.entry(rec.url.clone()).or_default(),
                };
                per.entry(step)
                    .or_insert_with(|| StepData::new(slo))
                    .add(&rec);
            }
        }
    }
    Ok(steps)
}

/// A sweep's records folded by step, and (several targets) by target URL and step.
#[derive(Debug, Default)]
pub struct Steps {
    pub all: BTreeMap<u32, StepData>,
    pub by_target: BTreeMap<String, BTreeMap<u32, StepData>>,
}

/// Recomputes every derived file in `dir` from `scenario.toml` and `results.jsonl`.
pub fn rebuild(dir: &Path) -> Result<SweepSummary> {
    let summary = summarize(dir, None)?;
    write_derived(dir, &summary)?;
    Ok(summary)
}

/// The numbers of the run in `dir`, optionally re-judged with another SLO; writes nothing.
pub fn summarize(dir: &Path, slo: Option<&Slo>) -> Result<SweepSummary> {
    let scenario_path = dir.join(SCENARIO_TOML);
    if !scenario_path.exists() {
        anyhow::bail!(
            "{} has no {SCENARIO_TOML}: --sweep needs a folder written by `rpload sweep`",
            dir.display()
        );
    }
    let file = ScenarioFile::load(&scenario_path)?;
    let mut scenario = file
        .validate()
        .with_context(|| format!("checking {}", scenario_path.display()))?;
    if let Some(slo) = slo {
        scenario.rules.slo = slo.clone();
    }
    let price = scenario.resolve_price()?;
    let several = scenario.target.len() > 1;
    let steps = load_steps(&dir.join(RESULTS_JSONL), &scenario.rules.slo, several)?;
    let mut summary = summary::build(&SweepInput {
        scenario: &scenario,
        price: price.as_ref(),
        target: shown_targets(&scenario.target),
        steps: &steps.all,
        by_target: &steps.by_target,
    });
    let scrapes = load_scrapes(&dir.join(super::scrape::SERVER_METRICS_JSONL))?;
    crate::analysis::server::attach(&mut summary, &scrapes);
    Ok(summary)
}

/// Reads `server-metrics.jsonl` (none: no scrapes). A line cut short by a crash is skipped:
/// the scrapes are the server's side of the run, not its records.
pub fn load_scrapes(path: &Path) -> Result<Vec<crate::analysis::server::ScrapeLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Writes steps.csv, summary.json, report.md and the charts.
pub fn write_derived(dir: &Path, s: &SweepSummary) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut put = |name: &str, text: String| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    put(STEPS_CSV, report::csv::steps_csv(s))?;
    put(SUMMARY_JSON, serde_json::to_string_pretty(s)? + "\n")?;
    put(REPORT_MD, report::markdown::report_md(s))?;
    written.extend(report::png::render_all(s, dir)?);
    Ok(written)
}
