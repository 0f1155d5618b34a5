//! The attacker's time: where "now" comes from and how the pacer waits for each tick.
//!
//! Production uses [`ClockKind::Thread`]: a dedicated OS thread sleeps until each tick is due,
//! because tokio's timer rounds to whole milliseconds while a thread sleep overshoots by tens of
//! microseconds. [`ClockKind::Tokio`] puts the same loop on tokio's timer so a test under
//! `#[tokio::test(start_paused = true)]` runs on virtual time: intended times, latencies and
//! send lags come out exact, and a ten-second schedule takes no wall time. Either way the pacer
//! only computes times (`crate::pacer`); this module only waits for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::pacer::Pacer;

/// Which clock an attack runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClockKind {
    /// Wall time, with the pacer on its own thread (sub-millisecond send precision).
    #[default]
    Thread,
    /// tokio's clock, pausable in tests; millisecond timer resolution.
    Tokio,
}

/// A started clock: the attack's origin on the chosen time source.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    Thread(std::time::Instant),
    Tokio(tokio::time::Instant),
}

impl Clock {
    pub fn start(kind: ClockKind) -> Self {
        match kind {
            ClockKind::Thread => Clock::Thread(std::time::Instant::now()),
            ClockKind::Tokio => Clock::Tokio(tokio::time::Instant::now()),
        }
    }

    /// Time since the attack began.
    pub fn elapsed(&self) -> Duration {
        match self {
            Clock::Thread(t) => t.elapsed(),
            Clock::Tokio(t) => t.elapsed(),
        }
    }
}

/// Sleeps until the wall-clock instant `at` (`--start-at`); false when `stop` came first.
/// Coarse sleeps of at most a second re-read the wall clock (NTP may step it while we wait);
/// the last few milliseconds are a thread sleep, since tokio's timer wakes on whole
/// milliseconds and the shards' clocks should start within a wake-up of each other.
pub async fn wait_until(at: time::OffsetDateTime, stop: &CancellationToken) -> bool {
    let left = || Duration::try_from(at - time::OffsetDateTime::now_utc()).unwrap_or_default();
    const FINE: Duration = Duration::from_millis(5);
    while left() > FINE {
        let nap = (left() - FINE).min(Duration::from_secs(1));
        tokio::select! {
            () = stop.cancelled() => return false,
            () = tokio::time::sleep(nap) => {}
        }
    }
    let rest = left();
    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    !stop.is_cancelled()
}

/// One scheduled request: its sequence number and when it was due.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    pub seq: u64,
    pub intended: Duration,
}

/// A running pacer; [`PacerHandle::stop`] ends it and waits for it.
pub struct PacerHandle {
    inner: Inner,
}

enum Inner {
    Thread {
        stop: Arc<AtomicBool>,
        thread: std::thread::JoinHandle<()>,
    },
    Tokio(tokio::task::JoinHandle<()>),
}

/// Starts handing `pacer`'s ticks to `ticks` as each comes due on `clock`. A late wake-up
/// hands over every tick already due at once; each keeps its own intended time.
pub fn spawn_pacer(clock: Clock, pacer: Pacer, ticks: mpsc::UnboundedSender<Tick>) -> PacerHandle {
    let inner = match clock {
        Clock::Thread(start) => {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            let thread = std::thread::Builder::new()
                .name("rpload-pacer".into())
                .spawn(move || pace_thread(pacer, start, &flag, &ticks))
                .expect("spawning the pacer thread");
            Inner::Thread { stop, thread }
        }
        Clock::Tokio(start) => Inner::Tokio(tokio::spawn(pace_tokio(pacer, start, ticks))),
    };
    PacerHandle { inner }
}

impl PacerHandle {
    pub async fn stop(self) {
        match self.inner {
            Inner::Thread { stop, thread } => {
                stop.store(true, Ordering::Relaxed);
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            Inner::Tokio(task) => {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

fn pace_thread(
    mut pacer: Pacer,
    start: std::time::Instant,
    stop: &AtomicBool,
    ticks: &mpsc::UnboundedSender<Tick>,
) {
    // The tick's index in the whole schedule is its `seq`: a shard's requests keep the numbers
    // (and so the prompts) they have in the one-process run.
    while let Some((seq, due)) = pacer.next_tick() {
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let elapsed = start.elapsed();
            if elapsed >= due {
                break;
            }
            // Sleep in slices of at most 50 ms so a stop is noticed promptly.
            std::thread::sleep((due - elapsed).min(Duration::from_millis(50)));
        }
        if ticks.send(Tick { seq, intended: due }).is_err() {
            return;
        }
    }
}

async fn pace_tokio(
    mut pacer: Pacer,
    start: tokio::time::Instant,
    ticks: mpsc::UnboundedSender<Tick>,
) {
    while let Some((seq, due)) = pacer.next_tick() {
        tokio::time::sleep_until(start + due).await;
        if ticks.send(Tick { seq, intended: due }).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacer::{Arrival, parse_rate};

    #[tokio::test(start_paused = true)]
    async fn on_paused_time_every_tick_arrives_exactly_when_due() {
        let rate = parse_rate("20/s").unwrap();
        let pacer = Pacer::new(rate, Arrival::Constant, Duration::from_secs(1), None);
        let clock = Clock::start(ClockKind::Tokio);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = spawn_pacer(clock, pacer, tx);
        let mut got = Vec::new();
        while let Some(t) = rx.recv().await {
            assert_eq!(
                clock.elapsed(),
                t.intended,
                "tick {} handed over late",
                t.seq
            );
            got.push(t);
        }
        handle.stop().await;
        assert_eq!(got.len(), 20);
        assert!(
            got.iter()
                .all(|t| t.intended == Duration::from_millis(50) * t.seq as u32)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_replay_pacer_hands_over_its_offsets_on_time() {
        let offsets = [0, 30, 30, 500, 1200].map(Duration::from_millis).to_vec();
        let pacer = Pacer::replay(offsets, 2.0, Duration::from_millis(550), None);
        let clock = Clock::start(ClockKind::Tokio);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = spawn_pacer(clock, pacer, tx);
        let mut got = Vec::new();
        while let Some(t) = rx.recv().await {
            assert_eq!(
                clock.elapsed(),
                t.intended,
                "tick {} handed over late",
                t.seq
            );
            got.push((t.seq, t.intended.as_millis()));
        }
        handle.stop().await;
        // Halved by the speed; 1200 ms becomes 600 ms, past the 550 ms duration.
        assert_eq!(got, [(0, 0), (1, 15), (2, 15), (3, 250)]);
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_a_tokio_pacer_ends_its_ticks() {
        let rate = parse_rate("10/s").unwrap();
        let pacer = Pacer::new(rate, Arrival::Constant, Duration::ZERO, None);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = spawn_pacer(Clock::start(ClockKind::Tokio), pacer, tx);
        for _ in 0..3 {
            rx.recv().await.unwrap();
        }
        handle.stop().await;
        while rx.try_recv().is_ok() {}
        assert!(rx.recv().await.is_none(), "the sender is gone once stopped");
    }
}
