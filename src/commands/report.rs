//! `rpload report`: result files merged into one Vegeta-style report (`report::render`), or
//! with `--sweep DIR` a sweep's folder rebuilt from its records and scenario.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::report::{self, ReportType};

/// Flags of `rpload report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Result files (JSON lines); several merge exactly into one report. None or `-`: stdin.
    pub files: Vec<std::path::PathBuf>,
    /// text, json, hist[0,100ms,1s] (buckets) or hdrplot.
    #[arg(long = "type", default_value = "text")]
    pub kind: String,
    /// Write the report here instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<std::path::PathBuf>,
    /// Rebuild a sweep's folder (steps.csv, summary.json, report.md, charts) from its
    /// results.jsonl and scenario.toml, without re-running it.
    #[arg(long, value_name = "DIR", conflicts_with = "files")]
    pub sweep: Option<std::path::PathBuf>,
}

/// `rpload report`.
pub async fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.sweep {
        return super::print(sweep_text(dir)?);
    }
    let kind: ReportType = args.kind.parse()?;
    let metrics = report::load(&args.files)?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    report::render(&kind, &metrics, &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `rpload report --sweep DIR`: rebuild every derived file, return the final table.
pub fn sweep_text(dir: &std::path::Path) -> anyhow::Result<String> {
    let s = crate::sweep::output::rebuild(dir)?;
    Ok(report::table::sweep_table(&s))
}
