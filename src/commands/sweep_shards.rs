//! `sweep --shard I/N --start-at T`: the flags checked (with the pod's `JOB_COMPLETION_INDEX`
//! for `auto/N`), what a sweep in shards may not do, and the timeline every pod computes the
//! same way. Each pod sends its shard of every step and writes its own run folder; the
//! verdicts are made when `rpload report --sweep DIR... --out MERGED` merges them
//! (`sweep::merge`).

use std::time::Duration;

use anyhow::Result;
use time::OffsetDateTime;

use crate::pacer::Shard;
use crate::scenario::{Scenario, ScenarioFile};
use crate::sweep::timeline::{Phases, Timeline};

/// One pod's part of a sweep run in shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepShard {
    pub shard: Shard,
    pub start: OffsetDateTime,
}

/// Checks `--shard` and `--start-at` against the scenario they run. `job_index` is the pod's
/// `JOB_COMPLETION_INDEX`, `now` the wall clock `--start-at` is checked against.
pub fn check(
    shard: Option<&str>,
    start_at: Option<&str>,
    file: &ScenarioFile,
    job_index: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<SweepShard>> {
    let (shard, start) = match (shard, start_at) {
        (None, None) => return Ok(None),
        (Some(_), None) => anyhow::bail!(
            "--shard needs --start-at: the pods of a sweep start every step at instants computed from one shared start; pass the same --start-at to every pod"
        ),
        (None, Some(_)) => anyhow::bail!(
            "--start-at is for a sweep run in shards: pass --shard I/N (or auto/N) with it, or drop it"
        ),
        (Some(s), Some(t)) => (s, t),
    };
    if file.attack.target.is_empty() && file.attack.targets.is_none() {
        anyhow::bail!(
            "--shard: a sweep in shards needs --target, the one endpoint every pod sends to (each pod would otherwise start an embedded server of its own)"
        );
    }
    if file.sweep.search == Some(true) {
        anyhow::bail!(
            "--shard with --search: a search picks each next level from the verdicts so far, which only the merge makes; sweep a grid (--rps A..B --step S) in shards, or search from one machine"
        );
    }
    if file.sweep.server_metrics.is_some() {
        anyhow::bail!(
            "--shard with --server-metrics: N pods would scrape the server N times over; scrape it from one place, or drop --server-metrics"
        );
    }
    let shard = Shard::parse(shard, job_index)?;
    let start = crate::attack::shard::start_at(start, now)?;
    Ok(Some(SweepShard { shard, start }))
}

/// Every phase's start for `sc`, whose requests time out after `timeout`.
pub fn timeline(sc: &Scenario, timeout: Duration, start: OffsetDateTime) -> Timeline {
    let phases = Phases {
        initial_warmup: sc.initial_warmup,
        warmup: sc.warmup,
        cooldown: sc.cooldown,
        step: sc.step_duration,
        timeout,
    };
    Timeline::plan(start, &phases, sc.steps().len())
}

/// What a pod prints before it waits.
pub fn announce(s: &SweepShard, t: &Timeline, steps: usize) -> String {
    let at = |x: OffsetDateTime| {
        x.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    format!(
        "shard {} of a sweep in shards: {steps} steps from {} (each phase's start fixed by --start-at), done by {}; verdicts are made at the merge",
        s.shard,
        at(s.start),
        at(t.end)
    )
}

/// What a pod prints when its steps are done: where its folder is and how to merge.
pub fn finished(s: &SweepShard, dir: &std::path::Path, records: u64) -> String {
    let n = s.shard.count();
    format!(
        "shard {}: {records} measured records in {}\nmerge the {n} shard folders and judge the steps with: rpload report --sweep DIR_0 ... DIR_{} --out MERGED\n",
        s.shard,
        dir.display(),
        n - 1
    )
}
