//! `rpload report`: result files merged into one Vegeta-style report (`report::render`), or
//! with `--sweep DIR` a sweep's folder rebuilt from its records and scenario, or copied at
//! another price into `--out` (`sweep::reprice`), or with `--sweep DIR...` the folders of a
//! sweep run in shards merged into `--out` (`sweep::merge`). This file only parses flags and
//! prints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::cost::{Catalog, Price};
use crate::report::{self, ReportType};
use crate::sweep::reprice;

/// Flags of `rpload report`.
#[derive(Debug, Clone, Default, Args)]
pub struct ReportArgs {
    /// Result files (JSON lines); several merge exactly into one report. None or `-`: stdin.
    pub files: Vec<PathBuf>,
    /// Report shard files (`attack --shard I/N`), or merge the folders of `sweep --shard
    /// I/N`, even when some of the N shards are not given, warning which; without it a
    /// missing shard is an error.
    #[arg(long)]
    pub allow_missing_shards: bool,
    /// Also break the figures down: `target` gives one report per target URL after the
    /// overall one (an attack over several --target replicas).
    #[arg(long, value_name = "target", conflicts_with = "sweep")]
    pub by: Option<String>,
    /// text, json, hist[0,100ms,1s] (buckets) or hdrplot.
    #[arg(long = "type", default_value = "text")]
    pub kind: String,
    /// Write the report here instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Rebuild a sweep's folder (steps.csv, summary.json, report.md, charts) from its
    /// results.jsonl and scenario.toml, without re-running it. Several folders: the pods'
    /// folders of one `sweep --shard I/N`, merged into --out and judged there.
    #[arg(long, value_name = "DIR", num_args = 1.., conflicts_with = "files")]
    pub sweep: Vec<PathBuf>,
    /// With --sweep: re-price the run at this catalog instance (NAME or NAME@REGION) into
    /// --out; with --price-per-hour, names the instance priced at that figure.
    #[arg(long, requires = "sweep")]
    pub instance: Option<String>,
    /// With --sweep: re-price the run at this price in USD per hour into --out.
    #[arg(long, requires = "sweep")]
    pub price_per_hour: Option<f64>,
    /// Extra pricing catalog for --instance (repeatable), same format as
    /// scenarios/pricing.toml.
    #[arg(long, value_name = "FILE", requires = "instance")]
    pub pricing: Vec<String>,
    /// With a new price: the folder the re-priced run is written to (a run folder of its
    /// own); the measured folder keeps its price and is not touched. With several --sweep
    /// folders: the merged run folder.
    #[arg(long, value_name = "DIR2", requires = "sweep")]
    pub out: Option<PathBuf>,
    /// Replace a run already in --out.
    #[arg(long, requires = "out")]
    pub force: bool,
}

/// `rpload report`.
pub async fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    match args.sweep.as_slice() {
        [] => {}
        [dir] => return super::print(sweep_command(dir, &args)?),
        dirs => return super::print(merge_command(dirs, &args)?),
    }
    let kind: ReportType = args.kind.parse()?;
    let by = args.by.as_deref().map(str::parse).transpose()?;
    let loaded = report::load(&args.files, args.allow_missing_shards, by)?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    report::render_loaded(&kind, &loaded, &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `rpload report --sweep DIR [--instance NAME | --price-per-hour X --out DIR2]`: the text
/// it prints, after rebuilding DIR (no new price) or writing the re-priced copy.
pub fn sweep_command(dir: &Path, args: &ReportArgs) -> anyhow::Result<String> {
    let sharded = crate::sweep::merge::check_whole(dir, args.allow_missing_shards)?;
    if args.instance.is_none() && args.price_per_hour.is_none() {
        if let Some(out) = &args.out {
            if sharded {
                // One pod's folder let through by --allow-missing-shards: merged like many.
                return merge_command(std::slice::from_ref(&dir.to_path_buf()), args);
            }
            anyhow::bail!(
                "--out {}: only with a new price (--instance NAME or --price-per-hour USD); `rpload report --sweep {}` alone rebuilds the run in place",
                out.display(),
                dir.display()
            );
        }
        return sweep_text(dir);
    }
    let Some(out) = &args.out else {
        anyhow::bail!(
            "--out: required with a new price; the run folder {} keeps the price it was measured at, so pass --out DIR2 for the re-priced copy",
            dir.display()
        );
    };
    let catalog = Catalog::with_files(&args.pricing)?;
    let price = Price::from_flags(&catalog, args.instance.as_deref(), args.price_per_hour)?;
    let r = reprice::reprice(dir, out, &price, args.force)?;
    let was = r
        .was
        .map_or_else(|| "no price".to_string(), |p| p.to_string());
    Ok(format!(
        "{}\nre-priced {} ({was}) at {price}: written to {}\n",
        report::table::sweep_table(&r.summary).trim_end(),
        dir.display(),
        r.dir.display()
    ))
}

/// `rpload report --sweep DIR`: rebuild every derived file, return the final table.
pub fn sweep_text(dir: &Path) -> anyhow::Result<String> {
    let s = crate::sweep::output::rebuild(dir)?;
    Ok(report::table::sweep_table(&s))
}

/// `rpload report --sweep DIR0 DIR1 ... --out MERGED`: the shards of one sweep as one run.
pub fn merge_command(dirs: &[PathBuf], args: &ReportArgs) -> anyhow::Result<String> {
    if args.instance.is_some() || args.price_per_hour.is_some() {
        anyhow::bail!(
            "--instance/--price-per-hour: merge the shard folders first, then re-price the merged folder with `rpload report --sweep MERGED --instance NAME --out DIR2`"
        );
    }
    let Some(out) = &args.out else {
        anyhow::bail!(
            "--out: required with several --sweep folders (the shards of one sweep); the merged run is written there and the shard folders are not touched"
        );
    };
    let m = crate::sweep::merge::merge(dirs, out, args.allow_missing_shards, args.force)?;
    let mut text = report::table::sweep_table(&m.summary)
        .trim_end()
        .to_string();
    for (step, shards) in &m.missing {
        let list: Vec<String> = shards.iter().map(u32::to_string).collect();
        text.push_str(&format!(
            "\nwarning: step {step} is short of shard(s) {} (--allow-missing-shards): its rate and verdict are of the shards present",
            list.join(", ")
        ));
    }
    text.push_str(&format!(
        "\nmerged {} records of {} shard folders into {}\n",
        m.records,
        dirs.len(),
        out.display()
    ));
    Ok(text)
}
