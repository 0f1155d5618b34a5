//! What responses may make the attacker hold in memory. Each request may read up to
//! `max_body` bytes of a body it must keep (a whole JSON answer, or the text a stream carries);
//! all requests in flight together hold at most `total`. Without the shared bound, 10,000
//! requests in flight against a server answering 64 MiB each would need 640 GB; with it, a run
//! against such a server stays at `total` plus the attacker's own few MiB, and the requests
//! that did not fit fail as `body` errors with a message saying which flag to raise.
//!
//! Bytes are reserved before they are buffered and given back when the request ends (the
//! [`Hold`] is dropped), so the bound holds at every instant, not on average.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Why a chunk could not be kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "the response body is longer than --max-body-size {}; raise it if the server really sends such answers",
        crate::size::format_size(*.0 as u64)
    )]
    Body(usize),
    #[error(
        "response bodies in flight together passed {} (twice --max-body-size); raise --max-body-size or lower --max-inflight",
        crate::size::format_size(*.0 as u64)
    )]
    InFlight(usize),
}

/// The shared bound of one attack.
#[derive(Debug)]
pub struct Budget {
    max_body: usize,
    total: usize,
    used: AtomicUsize,
}

impl Budget {
    pub fn new(max_body: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            max_body,
            total,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes held by requests in flight now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// A request's share, empty until it reserves.
    pub fn hold(self: &Arc<Self>) -> Hold {
        Hold {
            budget: self.clone(),
            held: 0,
        }
    }
}

/// One request's reserved bytes; returned to the budget on drop.
#[derive(Debug)]
pub struct Hold {
    budget: Arc<Budget>,
    held: usize,
}

impl Hold {
    /// Reserves `n` more bytes for this request, or says which bound they would pass.
    pub fn reserve(&mut self, n: usize) -> Result<(), Refused> {
        let b = &self.budget;
        let wanted = self.held.saturating_add(n);
        if wanted > b.max_body {
            return Err(Refused::Body(b.max_body));
        }
        let mut used = b.used.load(Ordering::Relaxed);
        loop {
            let next = used.saturating_add(n);
            if next > b.total {
                return Err(Refused::InFlight(b.total));
            }
            match b
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => used = now,
            }
        }
        self.held = wanted;
        Ok(())
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_past_its_own_bound_is_refused() {
        let b = Budget::new(100, 1000);
        let mut h = b.hold();
        h.reserve(60).unwrap();
        assert_eq!(h.reserve(41), Err(Refused::Body(100)));
        h.reserve(40).unwrap();
        assert_eq!(b.used(), 100);
        drop(h);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn requests_together_stay_under_the_total_and_give_it_back() {
        let b = Budget::new(100, 250);
        let mut holds: Vec<Hold> = (0..3).map(|_| b.hold()).collect();
        holds[0].reserve(100).unwrap();
        holds[1].reserve(100).unwrap();
        assert_eq!(holds[2].reserve(51), Err(Refused::InFlight(250)));
        holds[2].reserve(50).unwrap();
        assert_eq!(b.used(), 250);
        holds.remove(0);
        assert_eq!(b.used(), 150);
        let mut late = b.hold();
        late.reserve(100).unwrap();
        assert_eq!(b.used(), 250);
    }

    #[test]
    fn the_bound_holds_across_threads() {
        let b = Budget::new(10, 1000);
        let kept: Vec<Vec<Hold>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    let b = b.clone();
                    s.spawn(move || {
                        let mut holds = Vec::new();
                        for _ in 0..100 {
                            let mut h = b.hold();
                            if h.reserve(10).is_ok() {
                                holds.push(h);
                            }
                        }
                        holds
                    })
                })
                .collect();
            // Every worker's holds stay alive until all have finished.
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let n: usize = kept.iter().map(Vec::len).sum();
        assert_eq!(n, 100, "exactly the total's worth of 10-byte holds fit");
    }
}
