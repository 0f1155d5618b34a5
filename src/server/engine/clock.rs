//! The time the scheduler stamps requests and steps with. A real model runs on the wall clock;
//! a [`super::fake::FakeEngine`] runs on a [`VirtualClock`] that moves only by its scripted step
//! costs, so queue and inference times in tests are exact sums of those costs whatever the
//! machine's load. Must not sleep or know about steps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Which clock [`Clock::now`] reads.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    Wall,
    Virtual(VirtualClock),
}

impl Clock {
    pub fn now(&self) -> Instant {
        match self {
            Self::Wall => Instant::now(),
            Self::Virtual(v) => v.now(),
        }
    }
}

/// A clock that stands still until [`VirtualClock::advance`]; clones share one time.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    /// Virtual instants are `base + elapsed`: an `Instant` cannot be built from a number, and
    /// only differences between them are ever read.
    base: Instant,
    elapsed_ns: Arc<AtomicU64>,
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualClock {
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            elapsed_ns: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Virtual time since the clock was made.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_ns.load(Ordering::Acquire))
    }

    pub fn now(&self) -> Instant {
        self.base + self.elapsed()
    }

    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_ns.fetch_add(ns, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_time_moves_only_when_advanced_and_clones_share_it() {
        let clock = VirtualClock::new();
        let shared = Clock::Virtual(clock.clone());
        let t0 = shared.now();
        assert_eq!(shared.now(), t0);
        clock.advance(Duration::from_millis(7));
        assert_eq!(shared.now().duration_since(t0), Duration::from_millis(7));
        assert_eq!(clock.elapsed(), Duration::from_millis(7));
    }
}
