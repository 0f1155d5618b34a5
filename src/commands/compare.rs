//! `rpload compare BASE NEW`: two run folders side by side, exit status 1 when NEW regresses
//! beyond `--tolerance`. Resolves the paths, rebuilds each run's summary from its records
//! (writing nothing into either run), and hands them to `analysis::compare`; the output is
//! `report::compare`'s.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::analysis::compare::{self, CompareError, Tolerance};
use crate::report::compare::{self as render, CHART_PNG, COMPARE_MD, Runs, Style};
use crate::sweep::output::{self, RESULTS_JSONL, SCENARIO_TOML};

/// Flags of `rpload compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The run compared against: a folder written by `rpload sweep`, or a file inside one
    /// (summary.json, results.jsonl, steps.csv).
    #[arg(value_name = "BASE")]
    pub base: PathBuf,
    /// The run under test, given as BASE is.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// How much worse NEW may be before it counts as a regression (`10%` or `0.1`; 0 to
    /// 1000%): its headline level lower, its p95 latency at a level both measured higher, or
    /// its cost per 1K tokens higher. Exactly at the tolerance passes.
    #[arg(long, default_value = "10%", allow_hyphen_values = true)]
    pub tolerance: String,
    /// Write compare.md and compare-latency.png (p95 latency of both runs) into this folder;
    /// the report is printed either way.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// How the report is printed: markdown (as compare.md) or text (aligned columns).
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    pub format: Format,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Markdown,
    Text,
}

/// `rpload compare`.
pub fn run(args: &CompareArgs) -> anyhow::Result<ExitCode> {
    // Every input is checked before anything is computed.
    let tolerance: Tolerance = args.tolerance.parse()?;
    let base_dir = run_dir("BASE", &args.base)?;
    let new_dir = run_dir("NEW", &args.new)?;
    let base = output::summarize(&base_dir, None).context("reading BASE")?;
    let new = output::summarize(&new_dir, None).context("reading NEW")?;
    let c = compare::compare(&base, &new, tolerance)?;
    let (base_path, new_path) = (
        args.base.display().to_string(),
        args.new.display().to_string(),
    );
    let runs = Runs {
        base: &base,
        new: &new,
        base_path: &base_path,
        new_path: &new_path,
    };
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| {
            format!(
                "--out {}: cannot create it; pass a writable folder",
                out.display()
            )
        })?;
        let chart = out.join(CHART_PNG);
        render::render_chart(&c, &runs, &chart)?;
        let md = out.join(COMPARE_MD);
        std::fs::write(
            &md,
            render::render(&c, &runs, Style::Markdown, Some(CHART_PNG)),
        )
        .with_context(|| format!("writing {}", md.display()))?;
        eprintln!("wrote {} and {}", md.display(), chart.display());
    }
    let style = match args.format {
        Format::Markdown => Style::Markdown,
        Format::Text => Style::Text,
    };
    print!("{}", render::render(&c, &runs, style, None));
    Ok(crate::exit::status(c.regressed()))
}

/// The run folder `path` names: itself, or the folder of a file inside one; refused unless it
/// holds both files a sweep writes first.
fn run_dir(which: &'static str, path: &Path) -> Result<PathBuf, CompareError> {
    let dir = if path.is_file() {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    } else {
        path.to_path_buf()
    };
    let missing = [SCENARIO_TOML, RESULTS_JSONL]
        .into_iter()
        .find(|f| !dir.join(f).is_file());
    match missing {
        None => Ok(dir),
        Some(missing) => Err(CompareError::NotARun {
            which,
            path: path.display().to_string(),
            missing: if path.exists() {
                missing
            } else {
                "such file or folder"
            },
        }),
    }
}
