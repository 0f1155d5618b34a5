//! Which target each request goes to when an attack has several (`--target` repeated, one
//! per replica): the policy ([`Balance`]), the pure choice ([`choose`]), and the counts of
//! requests in flight per target that least-inflight reads ([`Balancer`]).
//!
//! Round-robin goes by the request's index in the whole schedule (`seq % n`), not by the
//! order requests happen to be sent in, so shards and workers that never talk still send the
//! same request to the same target as one process would, and a file of records can be
//! re-checked against it. Least-inflight reads this process's own counts; across shards
//! (separate processes) each balances its own requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `--balance`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastInflight,
}

/// A `--balance` that is not one of the policies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown --balance {0:?}: use round-robin or least-inflight")]
pub struct UnknownBalance(pub String);

impl std::str::FromStr for Balance {
    type Err = UnknownBalance;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "round-robin" => Ok(Balance::RoundRobin),
            "least-inflight" => Ok(Balance::LeastInflight),
            other => Err(UnknownBalance(other.to_owned())),
        }
    }
}

/// The target for request `seq` out of `loads.len()` targets with `loads[i]` requests in
/// flight. Least-inflight breaks ties starting from the round-robin choice, so targets that
/// are equally loaded (an idle start, or replicas that keep up) still share the requests
/// evenly instead of all going to the first.
pub fn choose(policy: Balance, seq: u64, loads: &[usize]) -> usize {
    let n = loads.len();
    let start = (seq % n as u64) as usize;
    match policy {
        Balance::RoundRobin => start,
        Balance::LeastInflight => (0..n)
            .map(|k| (start + k) % n)
            .min_by_key(|&i| loads[i])
            .expect("at least one target"),
    }
}

/// The per-target in-flight counts of one attack, shared by all of its workers.
#[derive(Debug)]
pub struct Balancer {
    policy: Balance,
    inflight: Vec<AtomicUsize>,
}

impl Balancer {
    pub fn new(policy: Balance, targets: usize) -> Arc<Self> {
        Arc::new(Self {
            policy,
            inflight: (0..targets.max(1)).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    /// Picks the target of request `seq` and counts it in flight until the lease drops.
    pub fn pick(self: &Arc<Self>, seq: u64) -> Lease {
        let n = self.inflight.len();
        let index = match (self.policy, n) {
            (_, 1) => 0,
            // Reading the counts costs an atomic load per target; round-robin needs none.
            (Balance::RoundRobin, _) => (seq % n as u64) as usize,
            (Balance::LeastInflight, _) => {
                let loads: Vec<usize> = self
                    .inflight
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .collect();
                choose(Balance::LeastInflight, seq, &loads)
            }
        };
        self.lease(index)
    }

    /// Counts one more request in flight on `index` (a conversation's later turns stay on the
    /// target of its first).
    pub fn lease(self: &Arc<Self>, index: usize) -> Lease {
        // Only least-inflight reads the counts; round-robin skips the shared writes (the
        // count and the Arc's), which at tens of thousands of requests a second are
        // cache-line traffic between workers.
        let counted = self.policy == Balance::LeastInflight && self.inflight.len() > 1;
        Lease {
            index,
            counted: counted.then(|| {
                self.inflight[index].fetch_add(1, Ordering::Relaxed);
                self.clone()
            }),
        }
    }
}

/// One request's place on a target; ends its count when dropped.
#[derive(Debug)]
pub struct Lease {
    pub index: usize,
    /// The balancer whose count this lease holds (least-inflight only).
    counted: Option<Arc<Balancer>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(b) = &self.counted {
            b.inflight[self.index].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_goes_by_request_index() {
        let picks: Vec<usize> = (0..7)
            .map(|s| choose(Balance::RoundRobin, s, &[5, 0, 9]))
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn least_inflight_picks_the_least_loaded_and_spreads_ties() {
        assert_eq!(choose(Balance::LeastInflight, 0, &[3, 1, 2]), 1);
        assert_eq!(choose(Balance::LeastInflight, 7, &[3, 1, 2]), 1);
        // All equal: the round-robin choice, so an idle start alternates.
        let picks: Vec<usize> = (0..4)
            .map(|s| choose(Balance::LeastInflight, s, &[0, 0]))
            .collect();
        assert_eq!(picks, vec![0, 1, 0, 1]);
        // A tie between two of three starts from the round-robin choice and wraps.
        assert_eq!(choose(Balance::LeastInflight, 2, &[1, 4, 1]), 2);
        assert_eq!(choose(Balance::LeastInflight, 1, &[1, 4, 1]), 2);
        assert_eq!(choose(Balance::LeastInflight, 0, &[1, 4, 1]), 0);
    }

    #[test]
    fn leases_count_in_flight_until_dropped() {
        let b = Balancer::new(Balance::LeastInflight, 2);
        let first = b.pick(0);
        assert_eq!(first.index, 0);
        // Target 0 is busy: the next two go to 1, then 0 and 1 are level at 1 vs 2.
        let second = b.pick(0);
        assert_eq!(second.index, 1);
        let third = b.pick(1);
        assert_eq!(third.index, 1);
        assert_eq!(b.pick(5).index, 0);
        drop(second);
        drop(third);
        // Target 1 drained while 0 still holds one.
        assert_eq!(b.pick(0).index, 1);
        drop(first);
        let loads: Vec<usize> = b
            .inflight
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        assert_eq!(loads, vec![0, 0], "every lease gave its count back");
    }

    #[test]
    fn one_target_takes_everything_and_counts_nothing() {
        let b = Balancer::new(Balance::LeastInflight, 1);
        let l = b.pick(9);
        assert_eq!((l.index, l.counted.is_some()), (0, false));
        assert!("random".parse::<Balance>().is_err());
        assert_eq!("least-inflight".parse(), Ok(Balance::LeastInflight));
    }
}
