//! The pacer: a pure schedule of intended send times. No clock, no I/O: the attacker asks it
//! when hit `n` is due and sleeps until then, so every request knows when it *should* have left
//! and latency can be measured from that instant (coordinated-omission free).
//!
//! Arrivals (constant, Poisson, gamma) are drawn at unit rate in "operational time" and mapped
//! to real time through the inverse of the cumulative rate: `n / rate` for a steady rate, the
//! [`Ramp`]'s Λ⁻¹ for a ramp, so every arrival process composes with every rate shape. A replay
//! schedule instead hands out given offsets (a trace's), optionally sped up.
//!
//! The syntax users type for rates and durations is [`syntax`]'s; ramps are [`ramp`]'s; which
//! ticks are one shard's (`--shard i/N`) is [`shard`]'s: a sharded pacer draws the whole
//! schedule and keeps its own ticks, so every shard sees the same seeded draws.

pub mod ramp;
pub mod shard;
#[cfg(test)]
mod shard_props;
mod syntax;

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Exp1, Gamma};

pub use ramp::Ramp;
pub use shard::{Shard, ShardError};
pub use syntax::{ParseError, Rate, format_duration, parse_duration, parse_rate};

/// How arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// Evenly spaced, as Vegeta and wrk2.
    Constant,
    /// Exponential gaps with the same mean (a Poisson process), reproducible from a seed.
    Poisson { seed: u64 },
    /// Gamma gaps of shape `burstiness` and the same mean, reproducible from a seed: their
    /// coefficient of variation is `1 / sqrt(burstiness)`, so below 1 arrivals come in bursts,
    /// at 1 this is Poisson, above 1 they are more even (vLLM's `--burstiness`).
    Gamma { seed: u64, burstiness: f64 },
}

/// What the attacker should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Sleep this long, then ask again.
    Wait(Duration),
    /// Send the next hit now (it was due at the returned intended offset).
    Fire(Duration),
    /// The schedule is over.
    Stop,
}

/// A schedule of intended send offsets from the attack start.
#[derive(Debug, Clone)]
pub struct Pacer {
    times: Times,
    /// Hits due at or after this end the schedule (`duration`); `None` = unbounded.
    limit: Option<Duration>,
    max_hits: Option<u64>,
    /// Ticks of the whole schedule drawn so far (every shard's, not only this one's).
    hits: u64,
    /// The ticks this pacer hands out: `k % N == i`.
    shard: Shard,
}

#[derive(Debug, Clone)]
enum Times {
    /// Arrivals drawn at unit rate, then warped to real time.
    Drawn {
        gaps: Gaps,
        /// Operational time of the next random arrival (constant ones are `hits` itself).
        next_op: f64,
        warp: Warp,
    },
    /// Given offsets, ascending, divided by `speed`.
    Replay { offsets: Vec<Duration>, speed: f64 },
}

/// Gaps between arrivals in operational time, mean 1.
#[derive(Debug, Clone)]
enum Gaps {
    Constant,
    Poisson(Box<StdRng>),
    Gamma(Box<StdRng>, Gamma<f64>),
}

/// Operational time (expected arrivals so far) to real time.
#[derive(Debug, Clone)]
enum Warp {
    Steady(Rate),
    Ramp(Ramp),
}

impl Warp {
    /// Nanoseconds from the start at which `op` arrivals are due; `None`: never.
    fn ns_at(&self, op: f64) -> Option<f64> {
        match self {
            // Multiplied out from the rate's own numbers so `n * interval` is exact where it
            // can be (3/s: hit 3000 at exactly 1000 s) and never drifts.
            Warp::Steady(rate) => Some(op * rate.per.as_nanos() as f64 / rate.freq),
            Warp::Ramp(ramp) => ramp.time_of(op).map(|s| s * 1e9),
        }
    }
}

impl Gaps {
    fn new(arrival: Arrival) -> Self {
        let rng = |seed| Box::new(StdRng::seed_from_u64(seed));
        match arrival {
            Arrival::Constant => Gaps::Constant,
            Arrival::Poisson { seed } => Gaps::Poisson(rng(seed)),
            Arrival::Gamma { seed, burstiness } => {
                assert!(
                    burstiness.is_finite() && burstiness > 0.0,
                    "gamma arrivals need a positive burstiness"
                );
                // Shape B, scale 1/B: mean 1, variance 1/B.
                let gamma = Gamma::new(burstiness, 1.0 / burstiness).expect("positive shape");
                Gaps::Gamma(rng(seed), gamma)
            }
        }
    }
}

impl Pacer {
    /// A schedule at `rate` (must be > 0) that stops after `duration` (zero = never) or
    /// `max_hits` hits.
    pub fn new(rate: Rate, arrival: Arrival, duration: Duration, max_hits: Option<u64>) -> Self {
        assert!(rate.per_second() > 0.0, "a pacer needs a positive rate");
        Self::drawn(Warp::Steady(rate), arrival, duration, max_hits)
    }

    /// A schedule whose rate follows `ramp` (then holds its last rate), arrivals spaced by
    /// `arrival` around that changing rate.
    pub fn ramped(ramp: Ramp, arrival: Arrival, duration: Duration, max_hits: Option<u64>) -> Self {
        Self::drawn(Warp::Ramp(ramp), arrival, duration, max_hits)
    }

    /// A schedule of given intended offsets (a trace's), each divided by `speed` (2 = twice
    /// as fast), cut at `duration` (zero = never) or `max_hits`. Offsets out of order are
    /// sorted: a merged trace sends the same requests at the same times either way. `speed`
    /// must be finite and above 0 (the flag is checked before this is built).
    pub fn replay(
        mut offsets: Vec<Duration>,
        speed: f64,
        duration: Duration,
        max_hits: Option<u64>,
    ) -> Self {
        assert!(
            speed.is_finite() && speed > 0.0,
            "a replay needs a positive speed"
        );
        offsets.sort_unstable();
        Self {
            times: Times::Replay { offsets, speed },
            limit: (!duration.is_zero()).then_some(duration),
            max_hits,
            hits: 0,
            shard: Shard::WHOLE,
        }
    }

    fn drawn(warp: Warp, arrival: Arrival, duration: Duration, max_hits: Option<u64>) -> Self {
        Self {
            times: Times::Drawn {
                gaps: Gaps::new(arrival),
                next_op: 0.0,
                warp,
            },
            limit: (!duration.is_zero()).then_some(duration),
            max_hits,
            hits: 0,
            shard: Shard::WHOLE,
        }
    }

    /// This schedule cut to `shard`: it hands out only the ticks `k` with `k % N == i`, each at
    /// the time the whole schedule has it. Duration and `max_hits` stay the whole schedule's.
    pub fn sharded(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// The intended offset of the next hit, advancing the schedule; `None` when it is over.
    pub fn next_due(&mut self) -> Option<Duration> {
        self.next_tick().map(|(_, due)| due)
    }

    /// The next tick of this shard: its index in the whole schedule and its intended offset.
    /// The other shards' ticks are drawn and passed over, so a seeded draw is the same in
    /// every shard.
    pub fn next_tick(&mut self) -> Option<(u64, Duration)> {
        loop {
            let k = self.hits;
            let due = self.next_of_all()?;
            if self.shard.owns(k) {
                return Some((k, due));
            }
        }
    }

    /// The next tick of the whole schedule, whichever shard it belongs to.
    fn next_of_all(&mut self) -> Option<Duration> {
        if self.max_hits.is_some_and(|m| self.hits >= m) {
            return None;
        }
        let due = match &mut self.times {
            Times::Drawn {
                gaps,
                next_op,
                warp,
            } => {
                let op = match gaps {
                    // Constant spacing is `n` itself (not an accumulation), so it never drifts.
                    Gaps::Constant => self.hits as f64,
                    // The first arrival is at 0 like the constant schedule, so a run starts
                    // at once.
                    Gaps::Poisson(rng) => {
                        let op = *next_op;
                        *next_op += Distribution::<f64>::sample(&Exp1, &mut **rng);
                        op
                    }
                    Gaps::Gamma(rng, gamma) => {
                        let op = *next_op;
                        *next_op += gamma.sample(&mut **rng);
                        op
                    }
                };
                // `as` saturates: a time past u64 nanoseconds (584 years) is past any limit.
                Duration::from_nanos(warp.ns_at(op)?.round() as u64)
            }
            Times::Replay { offsets, speed } => {
                let offset = *offsets.get(usize::try_from(self.hits).ok()?)?;
                if *speed == 1.0 {
                    offset
                } else {
                    Duration::from_nanos((offset.as_nanos() as f64 / *speed).round() as u64)
                }
            }
        };
        if self.limit.is_some_and(|l| due >= l) {
            return None;
        }
        self.hits += 1;
        Some(due)
    }

    /// Vegeta's pacer shape: given the elapsed time, fire the next hit or say how long to wait.
    /// `pending` is the next hit's due time that the caller peeked earlier, if any.
    pub fn pace(elapsed: Duration, pending: Option<Duration>) -> Next {
        match pending {
            None => Next::Stop,
            Some(due) if due <= elapsed => Next::Fire(due),
            Some(due) => Next::Wait(due - elapsed),
        }
    }

    /// Ticks of the whole schedule drawn so far (a shard's own and the others').
    pub fn hits(&self) -> u64 {
        self.hits
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn constant_schedule_table() {
        // (rate, duration, expected intended offsets in ms)
        let cases: &[(&str, u64, &[u64])] = &[
            ("10/s", 500, &[0, 100, 200, 300, 400]),
            ("1/5s", 12_000, &[0, 5_000, 10_000]),
            ("4/s", 1_000, &[0, 250, 500, 750]),
        ];
        for (rate, dur, want) in cases {
            let mut p = Pacer::new(parse_rate(rate).unwrap(), Arrival::Constant, ms(*dur), None);
            let got: Vec<u64> = std::iter::from_fn(|| p.next_due())
                .map(|d| d.as_millis() as u64)
                .collect();
            assert_eq!(&got, want, "{rate} for {dur}ms");
        }
    }

    #[test]
    fn constant_schedule_does_not_drift() {
        // 3 per second has a non-integer ns interval; hit 3000 must land exactly on 1000 s.
        let mut p = Pacer::new(
            parse_rate("3/s").unwrap(),
            Arrival::Constant,
            Duration::ZERO,
            None,
        );
        let mut last = Duration::ZERO;
        for _ in 0..=3000 {
            last = p.next_due().unwrap();
        }
        assert_eq!(last, Duration::from_secs(1000));
    }

    #[test]
    fn max_hits_stops_the_schedule() {
        let mut p = Pacer::new(
            parse_rate("1000").unwrap(),
            Arrival::Constant,
            Duration::ZERO,
            Some(3),
        );
        assert_eq!(std::iter::from_fn(|| p.next_due()).count(), 3);
        assert_eq!(p.hits(), 3);
    }

    #[test]
    fn poisson_is_seeded_and_has_the_right_mean() {
        let rate = parse_rate("200/s").unwrap();
        let run = |seed| {
            let mut p = Pacer::new(
                rate,
                Arrival::Poisson { seed },
                Duration::from_secs(50),
                None,
            );
            std::iter::from_fn(|| p.next_due()).collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        // 10,000 expected arrivals in 50 s; a Poisson count has sd 100, so 4 sd is 400.
        assert!((a.len() as i64 - 10_000).abs() < 400, "{}", a.len());
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(a[0], Duration::ZERO);
    }

    #[test]
    fn pace_fires_or_waits() {
        assert_eq!(Pacer::pace(ms(5), Some(ms(3))), Next::Fire(ms(3)));
        assert_eq!(Pacer::pace(ms(5), Some(ms(9))), Next::Wait(ms(4)));
        assert_eq!(Pacer::pace(ms(5), None), Next::Stop);
    }

    /// Gaps between successive offsets, seconds.
    fn gaps(dues: &[Duration]) -> Vec<f64> {
        dues.windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect()
    }

    fn mean_and_cv(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt() / mean)
    }

    fn all(mut p: Pacer) -> Vec<Duration> {
        std::iter::from_fn(|| p.next_due()).collect()
    }

    #[test]
    fn gamma_gaps_have_the_mean_and_spread_asked_for() {
        // 100 req/s: the mean gap is 10 ms whatever the burstiness; the CV is 1/sqrt(B).
        let rate = parse_rate("100/s").unwrap();
        for (b, seed) in [(0.25, 1), (1.0, 2), (4.0, 3)] {
            let arrival = Arrival::Gamma {
                seed,
                burstiness: b,
            };
            let dues = all(Pacer::new(rate, arrival, Duration::ZERO, Some(20_001)));
            assert_eq!(dues[0], Duration::ZERO, "B = {b}: the first hit is at once");
            let (mean, cv) = mean_and_cv(&gaps(&dues));
            assert!((mean / 0.01 - 1.0).abs() < 0.03, "B = {b}: mean gap {mean}");
            let want = 1.0 / f64::sqrt(b);
            assert!(
                (cv / want - 1.0).abs() < 0.05,
                "B = {b}: CV {cv}, want {want}"
            );
        }
    }

    #[test]
    fn gamma_is_seeded() {
        let rate = parse_rate("50/s").unwrap();
        let run = |seed| {
            let arrival = Arrival::Gamma {
                seed,
                burstiness: 0.5,
            };
            all(Pacer::new(rate, arrival, Duration::from_secs(10), None))
        };
        let a = run(11);
        assert_eq!(a, run(11));
        assert_ne!(a, run(12));
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert!(a.iter().all(|&d| d < Duration::from_secs(10)));
    }

    /// Arrivals in each `window`-second slice of `dues`, beside what the ramp's Λ expects.
    fn per_window(ramp: &Ramp, dues: &[Duration], window: f64, windows: usize) -> Vec<(f64, f64)> {
        (0..windows)
            .map(|i| {
                let (lo, hi) = (i as f64 * window, (i + 1) as f64 * window);
                let got = dues
                    .iter()
                    .filter(|d| (lo..hi).contains(&d.as_secs_f64()))
                    .count() as f64;
                (got, ramp.cumulative(hi) - ramp.cumulative(lo))
            })
            .collect()
    }

    #[test]
    fn a_constant_ramp_follows_the_integral_of_its_rate() {
        // 10 -> 100 req/s over 30 s, then 100 req/s until 40 s: 1650 + 1000 hits.
        let ramp = Ramp::parse("10..100/30s").unwrap();
        let dues = all(Pacer::ramped(
            ramp.clone(),
            Arrival::Constant,
            Duration::from_secs(40),
            None,
        ));
        assert_eq!(dues.len(), 2650);
        for (got, want) in per_window(&ramp, &dues, 1.0, 40) {
            assert!(
                (got - want).abs() <= 1.0,
                "{got} hits in a window that expects {want}"
            );
        }
        // The first gaps are those of 10 req/s, the last ones those of 100 req/s.
        let g = gaps(&dues);
        assert!((g[0] - 0.1).abs() < 0.005, "first gap {}", g[0]);
        assert!(
            (g[g.len() - 1] - 0.01).abs() < 1e-6,
            "last gap {}",
            g[g.len() - 1]
        );
        // Hit n is due exactly when Λ reaches n.
        for (n, d) in dues.iter().enumerate().step_by(97) {
            let lambda = ramp.cumulative(d.as_secs_f64());
            assert!(
                (lambda - n as f64).abs() < 1e-3,
                "hit {n} at {d:?}: Λ = {lambda}"
            );
        }
    }

    #[test]
    fn every_arrival_process_composes_with_a_ramp() {
        // Up from 0, hold, down to 0: the schedule ends on its own when the rate does.
        let ramp = Ramp::parse("0..200/10s,200..200/10s,200..0/10s").unwrap();
        for arrival in [
            Arrival::Poisson { seed: 4 },
            Arrival::Gamma {
                seed: 5,
                burstiness: 4.0,
            },
        ] {
            let dues = all(Pacer::ramped(ramp.clone(), arrival, Duration::ZERO, None));
            // 1000 + 2000 + 1000 expected; Poisson's count has sd 63, gamma's is tighter.
            let n = dues.len() as f64;
            assert!((n - 4000.0).abs() < 250.0, "{arrival:?}: {n} hits");
            assert!(dues.last().unwrap().as_secs_f64() < 30.0);
            for (got, want) in per_window(&ramp, &dues, 5.0, 6) {
                // Five-second windows expect 250..1000 hits; 4 Poisson sd at most.
                assert!(
                    (got - want).abs() < 4.0 * want.sqrt() + 1.0,
                    "{arrival:?}: {got} hits in a window that expects {want}"
                );
            }
        }
    }

    #[test]
    fn a_ramp_respects_duration_and_max_hits() {
        let ramp = Ramp::parse("50..50/1s").unwrap();
        let dues = all(Pacer::ramped(
            ramp.clone(),
            Arrival::Constant,
            Duration::from_millis(500),
            None,
        ));
        assert_eq!(dues.len(), 25);
        let dues = all(Pacer::ramped(
            ramp,
            Arrival::Constant,
            Duration::ZERO,
            Some(7),
        ));
        assert_eq!(dues.len(), 7);
        assert_eq!(dues[6], ms(120));
    }

    #[test]
    fn replay_hands_out_the_offsets_divided_by_the_speed() {
        let offsets: Vec<Duration> = [0, 100, 100, 250, 1000].into_iter().map(ms).collect();
        let got = all(Pacer::replay(offsets.clone(), 1.0, Duration::ZERO, None));
        assert_eq!(got, offsets);
        let got = all(Pacer::replay(offsets.clone(), 2.0, Duration::ZERO, None));
        assert_eq!(got, [0, 50, 50, 125, 500].map(ms));
        let got = all(Pacer::replay(offsets.clone(), 0.5, Duration::ZERO, None));
        assert_eq!(got, [0, 200, 200, 500, 2000].map(ms));
        // A third of a millisecond rounds to the nearest nanosecond.
        let got = all(Pacer::replay(vec![ms(1)], 3.0, Duration::ZERO, None));
        assert_eq!(got, [Duration::from_nanos(333_333)]);
    }

    #[test]
    fn replay_is_bounded_and_sorts_its_input() {
        let offsets: Vec<Duration> = [400, 0, 300, 100, 200].into_iter().map(ms).collect();
        let got = all(Pacer::replay(offsets.clone(), 1.0, Duration::ZERO, None));
        assert_eq!(got, [0, 100, 200, 300, 400].map(ms));
        // The duration applies to the sped-up times: 2x puts 400 ms at 200 ms.
        let got = all(Pacer::replay(offsets.clone(), 2.0, ms(150), None));
        assert_eq!(got, [0, 50, 100].map(ms));
        let mut p = Pacer::replay(offsets, 1.0, Duration::ZERO, Some(2));
        assert_eq!(std::iter::from_fn(|| p.next_due()).count(), 2);
        assert_eq!(p.hits(), 2);
        assert!(all(Pacer::replay(Vec::new(), 1.0, Duration::ZERO, None)).is_empty());
    }
}
