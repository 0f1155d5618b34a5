//! Property tests of sharded pacers: for every arrival process (constant, Poisson, gamma,
//! each steady or ramped, and a replay), the N shards' ticks together are exactly the
//! one-process schedule, index for index and nanosecond for nanosecond, and each shard's own
//! ticks come in order.

use std::time::Duration;

use proptest::prelude::*;

use super::{Arrival, Pacer, Ramp, Rate, Shard};

/// Every tick of `pacer`: (index in the whole schedule, intended offset).
fn ticks(mut pacer: Pacer) -> Vec<(u64, Duration)> {
    std::iter::from_fn(|| pacer.next_tick()).collect()
}

/// The N shards' ticks, merged by index.
fn union(make: &dyn Fn() -> Pacer, n: u32) -> Vec<(u64, Duration)> {
    let mut all: Vec<(u64, Duration)> = (0..n)
        .flat_map(|i| {
            let shard = Shard::new(i, n).unwrap();
            let own = ticks(make().sharded(shard));
            assert!(own.iter().all(|&(k, _)| shard.owns(k)), "shard {shard}");
            assert!(own.windows(2).all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0));
            own
        })
        .collect();
    all.sort_unstable();
    all
}

fn arrival(kind: u8, seed: u64, burstiness: f64) -> Arrival {
    match kind % 3 {
        0 => Arrival::Constant,
        1 => Arrival::Poisson { seed },
        _ => Arrival::Gamma { seed, burstiness },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn shards_of_a_steady_schedule_add_up_to_it(
        kind in 0u8..3,
        seed in any::<u64>(),
        burstiness in 0.1f64..5.0,
        rps in 1.0f64..2000.0,
        millis in 1u64..1500,
        max_hits in proptest::option::of(1u64..400),
        n in 1u32..7,
    ) {
        let rate = Rate { freq: rps, per: Duration::from_secs(1) };
        let make = || Pacer::new(
            rate,
            arrival(kind, seed, burstiness),
            Duration::from_millis(millis),
            max_hits,
        );
        let whole: Vec<(u64, Duration)> = ticks(make());
        prop_assert_eq!(union(&make, n), whole);
    }

    #[test]
    fn shards_of_a_ramp_add_up_to_it(
        kind in 0u8..3,
        seed in any::<u64>(),
        from in 0.0f64..300.0,
        to in 1.0f64..300.0,
        secs in 1u32..3,
        n in 1u32..6,
    ) {
        let ramp = Ramp::parse(&format!("{from}..{to}/{secs}s")).unwrap();
        let make = || Pacer::ramped(
            ramp.clone(),
            arrival(kind, seed, 0.5),
            Duration::from_secs(u64::from(secs) + 1),
            None,
        );
        let whole = ticks(make());
        prop_assert_eq!(union(&make, n), whole);
    }

    #[test]
    fn shards_of_a_replay_add_up_to_it(
        offsets in proptest::collection::vec(0u64..5_000, 0..200),
        speed in 0.25f64..4.0,
        n in 1u32..6,
    ) {
        let offsets: Vec<Duration> = offsets.into_iter().map(Duration::from_millis).collect();
        let make = || Pacer::replay(offsets.clone(), speed, Duration::from_secs(2), None);
        let whole = ticks(make());
        prop_assert_eq!(union(&make, n), whole);
    }
}

#[test]
fn a_shard_keeps_the_seeded_times_of_its_ticks() {
    // Shard 1 of 3 of a Poisson schedule: ticks 1, 4, 7, ... at the one-process times.
    let make = || {
        Pacer::new(
            Rate {
                freq: 100.0,
                per: Duration::from_secs(1),
            },
            Arrival::Poisson { seed: 7 },
            Duration::from_secs(2),
            None,
        )
    };
    let whole = ticks(make());
    let own = ticks(make().sharded(Shard::new(1, 3).unwrap()));
    assert!(!own.is_empty());
    let want: Vec<(u64, Duration)> = whole.into_iter().filter(|(k, _)| k % 3 == 1).collect();
    assert_eq!(own, want);
}
