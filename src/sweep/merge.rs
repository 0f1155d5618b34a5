//! The merge of a sweep run in shards: `rpload report --sweep DIR... --out MERGED`.
//!
//! Each pod of `sweep --shard I/N` wrote a run folder with the scenario as run and its shard's
//! records of every step (each step a schedule of its own, with its own id). The merge checks
//! that the folders are the shards of one sweep (the same scenario, and per step one schedule
//! cut into the same N shards, each shard once and none missing), writes every record into one
//! run folder, and rebuilds it: the verdicts, headline and cost are made here, from all of a
//! step's requests, exactly as for a sweep run from one machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::output::{self, RESULTS_JSONL, SCENARIO_TOML};
use crate::analysis::summary::SweepSummary;
use crate::metrics::shards::ShardCensus;
use crate::record::{self, Record, RecordWriter};

/// What a merge wrote, and the shards it was short of (with `allow_missing`).
pub struct Merged {
    pub summary: SweepSummary,
    pub records: u64,
    /// Per step, the shards no folder had (only with `allow_missing`).
    pub missing: BTreeMap<u32, Vec<u32>>,
}

/// Merges the shard folders `dirs` into `out` (a new run folder; an existing run only with
/// `force`) and rebuilds it.
pub fn merge(dirs: &[PathBuf], out: &Path, allow_missing: bool, force: bool) -> Result<Merged> {
    let scenario = same_scenario(dirs)?;
    let (mut records, census) = read(dirs)?;
    if records.is_empty() {
        anyhow::bail!("the folders hold no measured records: nothing to merge");
    }
    let mut missing = BTreeMap::new();
    for (step, c) in &census {
        let short = c
            .check(allow_missing)
            .with_context(|| format!("step {step}"))?;
        if let Some(m) = short.filter(|m| !m.is_empty()) {
            missing.insert(*step, m);
        }
    }
    // In step order, then in the schedule's order, as one process would have written them.
    records.sort_by_key(|r| (r.step, r.intended_ns, r.seq));
    output::prepare_dir(out, force)?;
    std::fs::write(out.join(SCENARIO_TOML), scenario)
        .with_context(|| format!("writing {}", out.join(SCENARIO_TOML).display()))?;
    let path = out.join(RESULTS_JSONL);
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = RecordWriter::new(std::io::BufWriter::new(file));
    for r in &records {
        w.write(r)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    let summary = output::rebuild(out)?;
    Ok(Merged {
        summary,
        records: records.len() as u64,
        missing,
    })
}

/// Every measured record of `dirs`, and per step the shards each folder holds.
fn read(dirs: &[PathBuf]) -> Result<(Vec<Record>, BTreeMap<u32, ShardCensus>)> {
    let mut records: Vec<Record> = Vec::new();
    let mut census: BTreeMap<u32, ShardCensus> = BTreeMap::new();
    for dir in dirs {
        let name = dir.display().to_string();
        let mut seen_steps = std::collections::BTreeSet::new();
        let path = dir.join(RESULTS_JSONL);
        for rec in record::open(&path)? {
            let rec = rec?;
            let Some(step) = rec.step else { continue };
            if rec.shards.is_none() && dirs.len() > 1 {
                anyhow::bail!(
                    "{}: step {step} has records of an unsharded sweep; --sweep with several folders merges the folders of `sweep --shard I/N`, one per shard",
                    path.display()
                );
            }
            let c = census.entry(step).or_default();
            if seen_steps.insert(step) {
                c.file(&name);
            }
            c.add(&rec);
            records.push(rec);
        }
    }
    Ok((records, census))
}

/// Refuses to judge one pod's folder of a sweep run in shards as if it were the whole run:
/// each of its steps holds only 1/N of the requests. A merged folder holds every shard and
/// passes; `allow_missing` lets a short one through, as the merge does. Returns whether the
/// folder's records are of a sweep in shards.
pub fn check_whole(dir: &Path, allow_missing: bool) -> Result<bool> {
    if !dir.join(RESULTS_JSONL).exists() {
        // Not a run folder, or a packed one: the rebuild says which, and how to unpack it.
        return Ok(false);
    }
    let (records, census) = read(&[dir.to_path_buf()])?;
    let Some(n) = records.iter().find_map(|r| r.shards) else {
        return Ok(false);
    };
    for (step, c) in &census {
        c.check(allow_missing).with_context(|| {
            format!(
                "{} step {step}: this folder is one pod's part of a sweep run in {n} shards; merge the {n} pods' folders with `rpload report --sweep DIR_0 ... DIR_{} --out MERGED`",
                dir.display(),
                n - 1
            )
        })?;
    }
    Ok(true)
}

/// The scenario every folder ran: byte for byte the same `scenario.toml` (the pods took the
/// same flags), or an error naming the two folders that differ.
fn same_scenario(dirs: &[PathBuf]) -> Result<String> {
    let read = |dir: &PathBuf| {
        let path = dir.join(SCENARIO_TOML);
        std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {}: each --sweep folder must be written by `rpload sweep --shard`",
                path.display()
            )
        })
    };
    let first = read(&dirs[0])?;
    for dir in &dirs[1..] {
        if read(dir)? != first {
            anyhow::bail!(
                "{} and {} ran different scenarios ({SCENARIO_TOML} differs): pass the folders of one sharded sweep, whose pods took the same flags",
                dirs[0].display(),
                dir.display()
            );
        }
    }
    Ok(first)
}
