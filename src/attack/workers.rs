//! `--workers N`: one process's part of the schedule cut again into N in-process parts, each
//! driven on a runtime thread of its own (with its own pacer thread and connection pool), all
//! handing their records to the one sink on the caller's runtime. A part is a shard of the
//! process's shard (`pacer::Shard::part`), so the parts together send exactly what one driver
//! would: the same ticks at the same offsets, the same request at every index.
//!
//! Why threads of their own rather than one multi-threaded runtime: a request is a few
//! microseconds of work, and a work-stealing runtime moves it between threads (futex wake-ups,
//! cache misses) for more than it costs; a part that never leaves its thread costs nothing
//! to the others. It adds sending where a core is free: beside a server on the same two cores
//! it did not raise the ceiling (`bench/README.md`, "Attacker threads").

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;

use tokio::runtime::Runtime;

use super::clock::ClockKind;
use super::{AttackConfig, Shared, drive};
use crate::pacer::Shard;
use crate::record::Record;

/// The workers that run `cfg`: `cfg.workers`, but never more than this process has ticks
/// (`--max-requests`) or closed-loop users for, so every part has work of its own; and one
/// on tokio's clock (tests on paused time), which belongs to the caller's runtime.
pub(super) fn count(cfg: &AttackConfig) -> usize {
    if cfg.clock != ClockKind::Thread {
        return 1;
    }
    let shard = cfg.shard();
    let mut n = cfg.workers.max(1) as u64;
    if cfg.rate.is_unlimited() {
        n = n.min(shard.share_of(cfg.max_inflight as u64));
    }
    if let Some(max) = cfg.max_requests {
        n = n.min(shard.share_of(max));
    }
    n.max(1) as usize
}

/// The running drivers; [`Drivers::join`] returns how many requests they scheduled.
pub(super) enum Drivers {
    /// One part, on the caller's runtime.
    Here(tokio::task::JoinHandle<u64>),
    /// Several, each on its own thread and runtime.
    Threads(Vec<std::thread::JoinHandle<u64>>),
}

/// The runtimes of `count` workers: none for one (it runs on the caller's).
pub(super) fn runtimes(count: usize) -> anyhow::Result<Vec<Runtime>> {
    if count == 1 {
        return Ok(Vec::new());
    }
    (0..count)
        .map(|_| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a worker's runtime")
        })
        .collect()
}

/// Opens each worker's connections (`warm`) on the runtime that will use them, all workers at
/// once, and hands the runtimes back: a current-thread runtime keeps the connections' tasks
/// between one `block_on` and the next.
pub(super) async fn warm(
    runtimes: Vec<Runtime>,
    clients: &[reqwest::Client],
    cfg: &Arc<AttackConfig>,
    budget: std::time::Duration,
) -> anyhow::Result<Vec<Runtime>> {
    let count = clients.len() as u32;
    let part = |w: usize| {
        cfg.shard()
            .part(Shard::new(w as u32, count).expect("w < count"))
    };
    if runtimes.is_empty() {
        super::warm::open(&clients[0], cfg, part(0), budget).await;
        return Ok(runtimes);
    }
    let threads: Vec<_> = (runtimes.into_iter().zip(clients.iter().cloned()))
        .enumerate()
        .map(|(w, (runtime, client))| {
            let (cfg, part) = (cfg.clone(), part(w));
            std::thread::spawn(move || {
                runtime.block_on(super::warm::open(&client, &cfg, part, budget));
                runtime
            })
        })
        .collect();
    let joined = tokio::task::spawn_blocking(move || {
        threads.into_iter().map(|t| t.join()).collect::<Vec<_>>()
    })
    .await?;
    joined
        .into_iter()
        .map(|r| r.map_err(|_| anyhow::anyhow!("a worker thread panicked while warming up")))
        .collect()
}

/// Starts one driver per part, on `runtimes` (one each; none when there is one part: it runs
/// on the caller's); every record goes to `records`.
pub(super) fn start(
    parts: Vec<Arc<Shared>>,
    runtimes: Vec<Runtime>,
    records: mpsc::UnboundedSender<Record>,
) -> anyhow::Result<Drivers> {
    if parts.len() == 1 {
        let part = parts.into_iter().next().expect("one part");
        return Ok(Drivers::Here(tokio::spawn(drive(part, records))));
    }
    let mut threads = Vec::with_capacity(parts.len());
    for (w, (part, runtime)) in parts.into_iter().zip(runtimes).enumerate() {
        let records = records.clone();
        let thread = std::thread::Builder::new()
            .name(format!("rpload-worker-{w}"))
            .spawn(move || runtime.block_on(forward(part, records)))
            .context("spawning a worker thread")?;
        threads.push(thread);
    }
    Ok(Drivers::Threads(threads))
}

/// Drives `part` on this thread's runtime and forwards its records, returning only when its
/// last request has ended: the runtime, and every request task on it, ends with the thread.
async fn forward(part: Arc<Shared>, records: mpsc::UnboundedSender<Record>) -> u64 {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(drive(part, tx));
    // Every request task holds a sender: the channel closes when the last one is done.
    while let Some(record) = rx.recv().await {
        if records.send(record).is_err() {
            break;
        }
    }
    driver.await.unwrap_or(0)
}

impl Drivers {
    pub(super) async fn join(self) -> anyhow::Result<u64> {
        match self {
            Drivers::Here(task) => Ok(task.await?),
            Drivers::Threads(threads) => {
                let joined = tokio::task::spawn_blocking(move || {
                    threads.into_iter().map(|t| t.join()).collect::<Vec<_>>()
                })
                .await?;
                let mut scheduled = 0;
                for one in joined {
                    scheduled += one.map_err(|_| anyhow::anyhow!("a worker thread panicked"))?;
                }
                Ok(scheduled)
            }
        }
    }
}
