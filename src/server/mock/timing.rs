//! The mock engine's timing policy, as plain data: when each token of a request is due
//! ([`Timing::plan`], with optional seeded jitter) and when a request may start under a
//! concurrency limit ([`Slots`]). Every time here is a [`Duration`] since the mock's own epoch,
//! so the rules are exact and tested without a clock; `mock/mod.rs` turns them into sleeps.
//! Must not read the clock, sleep, or know about requests beyond their token counts.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// The shape of a jittered delay: each delay is multiplied by `1 + x`, with `x` drawn from
/// `[-fraction, +fraction]` (uniform) or from N(0, fraction) (normal), and never below 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    Uniform(f64),
    Normal(f64),
}

/// What `--ttft`, `--itl`, `--tokens`, `--mock-jitter` and `--mock-seed` set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Time from a request's start to its first token.
    pub ttft: Duration,
    /// Time between two tokens of a request.
    pub itl: Duration,
    /// Tokens per answer when the request does not say (its `max_new_tokens` / `max_tokens`
    /// wins).
    pub tokens: usize,
    pub jitter: Option<Jitter>,
    /// With the request's index, the seed of its jitter: the same run gives the same delays.
    pub seed: u64,
}

/// When each token of one request is due, from the request's start.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// No jitter: token `k` is due at `ttft + k x itl`, computed, not stored.
    Fixed {
        ttft: Duration,
        itl: Duration,
        tokens: usize,
    },
    /// Jittered: every due time, drawn once when the request arrives (its service time must be
    /// known then to book a slot).
    Drawn(Vec<Duration>),
}

impl Plan {
    pub fn tokens(&self) -> usize {
        match self {
            Self::Fixed { tokens, .. } => *tokens,
            Self::Drawn(due) => due.len(),
        }
    }

    /// When token `k` (0-based) is due after the start.
    pub fn due(&self, k: usize) -> Duration {
        match self {
            Self::Fixed { ttft, itl, .. } => *ttft + *itl * k as u32,
            Self::Drawn(due) => due[k.min(due.len().saturating_sub(1))],
        }
    }

    /// How long the request holds its slot: until its last token is due.
    pub fn service(&self) -> Duration {
        self.due(self.tokens().saturating_sub(1))
    }
}

impl Timing {
    /// The plan of the `index`-th request, for `tokens` tokens (at least 1).
    pub fn plan(&self, index: u64, tokens: usize) -> Plan {
        let tokens = tokens.max(1);
        let Some(jitter) = self.jitter else {
            return Plan::Fixed {
                ttft: self.ttft,
                itl: self.itl,
                tokens,
            };
        };
        // Spread consecutive indices over the seed space, so request 1 of seed 0 does not
        // replay request 0 of seed 1.
        let mut rng = StdRng::seed_from_u64(self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut at = Duration::ZERO;
        let due = (0..tokens)
            .map(|k| {
                let base = if k == 0 { self.ttft } else { self.itl };
                at += scaled(base, jitter, &mut rng);
                at
            })
            .collect();
        Plan::Drawn(due)
    }

    /// Requests per second that `slots` concurrent requests of `--tokens` tokens sustain
    /// without jitter: `slots / (ttft + (tokens - 1) x itl)`.
    pub fn capacity(&self, slots: usize) -> f64 {
        let service = self.ttft + self.itl * (self.tokens.max(1) as u32 - 1);
        slots as f64 / service.as_secs_f64()
    }
}

fn scaled(base: Duration, jitter: Jitter, rng: &mut StdRng) -> Duration {
    let x = match jitter {
        Jitter::Uniform(f) if f > 0.0 => rng.random_range(-f..=f),
        Jitter::Normal(f) if f > 0.0 => Normal::new(0.0, f).map_or(0.0, |n| n.sample(rng)),
        _ => 0.0,
    };
    base.mul_f64((1.0 + x).max(0.0))
}

/// A concurrency limit as a FIFO queue in front of `N` identical servers: each request, in
/// arrival order, takes the slot that frees first and starts when both it and the slot are
/// there. Slots free at their booked end (the last token's due time), not when a task gets
/// round to noticing, so the capacity is exactly `N / service` whatever the machine's load.
/// A client that leaves early does not give its slot back: its time was booked on arrival.
#[derive(Debug, Clone)]
pub struct Slots {
    /// When each slot is next free.
    free_at: Vec<Duration>,
}

impl Slots {
    /// `n` slots (at least 1), all free at the epoch.
    pub fn new(n: usize) -> Self {
        Self {
            free_at: vec![Duration::ZERO; n.max(1)],
        }
    }

    /// Books a request that arrived at `arrival` and holds a slot for `service`; returns when
    /// it starts. Call in arrival order.
    pub fn book(&mut self, arrival: Duration, service: Duration) -> Duration {
        let (i, free) = self
            .free_at
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|&(_, t)| t)
            .expect("at least one slot");
        let start = arrival.max(free);
        self.free_at[i] = start + service;
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn timing(jitter: Option<Jitter>) -> Timing {
        Timing {
            ttft: ms(50),
            itl: ms(20),
            tokens: 100,
            jitter,
            seed: 7,
        }
    }

    #[test]
    fn fixed_plan_is_ttft_then_one_itl_per_token() {
        let p = timing(None).plan(0, 3);
        assert_eq!((p.due(0), p.due(1), p.due(2)), (ms(50), ms(70), ms(90)));
        assert_eq!(p.service(), ms(90));
        assert_eq!(timing(None).plan(0, 1).service(), ms(50));
        assert_eq!(timing(None).plan(0, 0).tokens(), 1, "at least one token");
    }

    #[test]
    fn capacity_is_slots_over_service_time() {
        let t = Timing {
            tokens: 1,
            ..timing(None)
        };
        assert!((t.capacity(2) - 40.0).abs() < 1e-9);
        assert!((timing(None).capacity(1) - 1.0 / 2.03).abs() < 1e-9);
    }

    #[test]
    fn jitter_is_seeded_bounded_and_centred() {
        let t = timing(Some(Jitter::Uniform(0.1)));
        assert_eq!(
            t.plan(3, 50),
            t.plan(3, 50),
            "same seed and index, same plan"
        );
        assert_ne!(t.plan(3, 50), t.plan(4, 50));
        let mut gaps = Vec::new();
        for i in 0..200 {
            let p = t.plan(i, 10);
            assert!(p.due(0) >= ms(45) && p.due(0) <= ms(55), "{:?}", p.due(0));
            for k in 1..10 {
                let gap = p.due(k) - p.due(k - 1);
                assert!(gap >= ms(18) && gap <= ms(22), "{gap:?}");
                gaps.push(gap.as_secs_f64());
            }
        }
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.020).abs() < 0.0005, "mean itl {mean}");
        let normal = timing(Some(Jitter::Normal(0.1)));
        let p = normal.plan(0, 1000);
        let mean_gap = (p.due(999) - p.due(0)).as_secs_f64() / 999.0;
        assert!(
            (mean_gap - 0.020).abs() < 0.0005,
            "normal mean itl {mean_gap}"
        );
        assert!(p.due(1) > p.due(0), "delays never go below zero");
    }

    #[test]
    fn slots_queue_in_arrival_order_and_free_at_the_booked_end() {
        let mut s = Slots::new(2);
        // Three arrive at once: two start, the third waits for the first slot to free.
        assert_eq!(s.book(ms(0), ms(50)), ms(0));
        assert_eq!(s.book(ms(0), ms(50)), ms(0));
        assert_eq!(s.book(ms(1), ms(50)), ms(50));
        // A late arrival after both are free starts on arrival.
        assert_eq!(s.book(ms(500), ms(50)), ms(500));
    }

    #[test]
    fn a_saturated_queue_serves_exactly_the_capacity() {
        let mut s = Slots::new(2);
        // 1000 requests at once, 50 ms each on 2 slots: the last starts at 499 x 50 ms.
        let starts: Vec<Duration> = (0..1000).map(|_| s.book(ms(0), ms(50))).collect();
        assert_eq!(*starts.last().unwrap(), ms(499 * 50));
        assert!(
            starts.windows(2).all(|w| w[0] <= w[1]),
            "FIFO: no overtaking"
        );
    }
}
