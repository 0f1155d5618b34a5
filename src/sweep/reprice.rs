//! Re-pricing a run without re-running it (`rpload report --sweep DIR --instance NAME --out
//! DIR2`): a new run folder holding the original records, the scenario with the new price
//! frozen in, and every derived file rebuilt at that price. The measured folder is only read:
//! it keeps the price it was measured at.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::output::{self, RESULTS_JSONL, SCENARIO_TOML};
use crate::analysis::summary::SweepSummary;
use crate::cost::Price;
use crate::scenario::ScenarioFile;

/// What a re-pricing wrote.
#[derive(Debug, Clone)]
pub struct Repriced {
    /// The new run folder.
    pub dir: PathBuf,
    /// The price the run was measured at (None when it had none).
    pub was: Option<Price>,
    /// Its numbers at the new price (the table `report --sweep` prints).
    pub summary: SweepSummary,
}

/// Copies the run in `from` to `to` at `price` and rebuilds every derived file there. `to`
/// must not be `from` (the measured folder keeps its price), and a `to` that already holds a
/// run is refused unless `force`.
pub fn reprice(from: &Path, to: &Path, price: &Price, force: bool) -> Result<Repriced> {
    let scenario_path = from.join(SCENARIO_TOML);
    let results = from.join(RESULTS_JSONL);
    if !scenario_path.exists() {
        anyhow::bail!(
            "--sweep {}: no {SCENARIO_TOML}; pass a folder written by `rpload sweep`",
            from.display()
        );
    }
    if !results.exists() {
        let packed = from.join(format!("{RESULTS_JSONL}.xz"));
        let hint = if packed.exists() {
            format!(
                "its records are packed: run `xz -dk {}` first",
                packed.display()
            )
        } else {
            "pass a folder written by `rpload sweep`".to_string()
        };
        anyhow::bail!(
            "--sweep {}: no {RESULTS_JSONL} to re-price; {hint}",
            from.display()
        );
    }
    if same_folder(from, to) {
        anyhow::bail!(
            "--out {}: is the run folder itself; a run folder keeps the price it was measured at, so pass another --out for the re-priced copy",
            to.display()
        );
    }
    // Read before anything is written, so a bad scenario leaves no half-made folder.
    let was = output::summarize(from, None)
        .with_context(|| format!("reading run {}", from.display()))?
        .price;
    let mut file = ScenarioFile::load(&scenario_path)?;
    freeze_price(&mut file, price);

    output::prepare_dir(to, force)?;
    output::write_scenario(to, &file)?;
    let copy = to.join(RESULTS_JSONL);
    // A copy, not a hard link: a later `sweep --force --out DIR2` truncates results.jsonl in
    // place, which through a link would erase the measured run too.
    std::fs::copy(&results, &copy).with_context(|| {
        format!(
            "copying {} to {}; pass --out with a writable folder",
            results.display(),
            copy.display()
        )
    })?;
    let summary = output::rebuild(to)?;
    Ok(Repriced {
        dir: to.to_path_buf(),
        was,
        summary,
    })
}

/// Writes `price` into `[cost]` as a sweep freezes it: `instance` (with its region) and
/// `price_per_hour`, the extra catalogs dropped, so the folder rebuilds without any catalog.
pub fn freeze_price(file: &mut ScenarioFile, price: &Price) {
    file.cost.instance = Some(match &price.region {
        Some(r) => format!("{}@{r}", price.instance),
        None => price.instance.clone(),
    });
    file.cost.price_per_hour = Some(price.usd_per_hour);
    file.cost.pricing.clear();
}

/// Whether `a` and `b` are one folder (`b` may not exist yet, then it is not `a`).
fn same_folder(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
