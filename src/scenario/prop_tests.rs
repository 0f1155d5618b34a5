//! Property tests of what a user types into a scenario (rate plans, SLOs, the TOML file): the
//! parsers and their caret messages never panic, and what rpload writes back (a plan's list,
//! an SLO's text, `scenario.toml`) reads back as the same thing.

use proptest::prelude::*;

use super::file::{CostSection, RateSpec, ScenarioFile, SweepSection};
use super::plan::RatePlan;
use super::search::Fraction;
use super::slo::{Clause, Family, Slo, Stat};

/// Rates as people write them: whole, decimal or tiny, all positive.
fn rates() -> impl Strategy<Value = f64> {
    prop_oneof![
        (1u32..100_000).prop_map(f64::from),
        (1u32..1_000_000).prop_map(|n| f64::from(n) / 1000.0),
        1e-6f64..1e9,
    ]
}

fn clauses() -> impl Strategy<Value = Clause> {
    let limit = prop_oneof![
        // Whole units print exactly (`2s`, `500ms`, `750us`).
        (1u64..100_000, 0..4usize).prop_map(|(n, u)| n as f64 * [1e3, 1e6, 1e9, 60e9][u]),
        (1u64..10_000_000_000_000).prop_map(|n| n as f64),
        1e-3f64..1e15,
    ];
    (
        0..Family::ALL.len(),
        0..Stat::ALL.len(),
        any::<bool>(),
        limit,
    )
        .prop_map(|(f, s, inclusive, limit_ns)| Clause {
            family: Family::ALL[f],
            stat: Stat::ALL[s],
            inclusive,
            limit_ns,
        })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9 ._:/-]{0,20}", any::<String>()]
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(s)
}

fn sweep_sections() -> impl Strategy<Value = SweepSection> {
    let rps = prop_oneof![
        text().prop_map(RateSpec::Text),
        proptest::collection::vec(rates(), 0..6).prop_map(RateSpec::List),
    ];
    (
        (opt(rps), opt(rates()), opt(text()), opt(text())),
        (
            opt(text()),
            opt(text()),
            opt(any::<u32>()),
            opt(any::<bool>()),
        ),
        (opt(text()), opt(text()), opt(0.0f64..1.0), opt(text())),
        (
            opt(any::<bool>()),
            opt(text()),
            opt(any::<u32>()),
            opt(proptest::collection::vec(0.0f64..1e4, 0..4)),
            opt(0.0f64..1.0),
        ),
    )
        .prop_map(|(a, b, c, d)| SweepSection {
            rps: a.0,
            concurrency: c.3.map(RateSpec::Text),
            step: a.1,
            server_metrics: a.2.clone(),
            step_duration: a.2,
            warmup: a.3,
            initial_warmup: b.0,
            cooldown: b.1,
            repeat: b.2,
            early_stop: b.3,
            slo: c.0,
            max_send_lag: c.1,
            fail_under: c.2,
            search: d.0,
            precision: d.1.map(Fraction::Text),
            confirm: d.2,
            probes: d.3,
            slo_attainment: d.4.map(Fraction::Number),
        })
}

fn cost_sections() -> impl Strategy<Value = CostSection> {
    (
        opt(text()),
        opt(0.0f64..1e4),
        proptest::collection::vec(text(), 0..3),
        opt(0.0f64..1e6),
    )
        .prop_map(
            |(instance, price_per_hour, pricing, tokens_per_request)| CostSection {
                instance,
                price_per_hour,
                pricing,
                tokens_per_request,
            },
        )
}

fn scenario_files() -> impl Strategy<Value = ScenarioFile> {
    // Full u64 range: toml 0.9 writes and reads integers past i64::MAX (a `--seed` may be).
    (
        opt(text()),
        // Zero, one (written back as a string) or several targets (a list).
        (
            opt(text()),
            proptest::collection::vec(text(), 0..3),
            opt(any::<u64>()),
        ),
        (opt(any::<u64>()), opt(1usize..100_000), opt(0u32..100_000)),
        sweep_sections(),
        cost_sections(),
    )
        .prop_map(|(description, a, b, sweep, cost)| {
            let mut file = ScenarioFile {
                description,
                sweep,
                cost,
                ..ScenarioFile::default()
            };
            (file.attack.name, file.attack.target, file.attack.seed) = a;
            (
                file.attack.max_requests,
                file.attack.max_inflight,
                file.attack.max_new_tokens,
            ) = b;
            file
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn rate_plans_never_panic(spec in any::<String>(), step in opt(any::<f64>())) {
        if let Err(e) = RatePlan::parse(&spec, step) {
            let _ = e.to_string();
        }
    }

    #[test]
    fn rate_plans_near_misses_never_panic(
        spec in "(log:)?[0-9.é, ]{0,6}(\\.\\.)?[0-9.é ]{0,6}(:[0-9]{0,4})?",
        step in opt(-10.0f64..100.0),
    ) {
        if let Err(e) = RatePlan::parse(&spec, step) {
            let _ = e.to_string();
        }
    }

    #[test]
    fn a_listed_plan_reparses_to_the_same(list in proptest::collection::vec(rates(), 1..12)) {
        let plan = RatePlan::from_rates(&list).unwrap();
        prop_assert_eq!(plan.rates(), &list[..]);
        let again = RatePlan::parse(&plan.to_string(), None).unwrap();
        prop_assert_eq!(again, plan);
    }

    #[test]
    fn a_log_plan_reparses_to_the_same(a in 1u32..1000, span in 1u32..1000, n in 2usize..50) {
        let spec = format!("log:{a}..{}:{n}", a + span);
        let plan = RatePlan::parse(&spec, None).unwrap();
        prop_assert_eq!(plan.rates().len(), n);
        prop_assert!(plan.rates().windows(2).all(|w| w[0] <= w[1]));
        prop_assert_eq!(RatePlan::parse(&plan.to_string(), None).unwrap(), plan);
    }

    #[test]
    fn a_range_stays_within_its_ends(a in 1e-3f64..1e5, span in 0.0f64..1e3, step in 0.5f64..1e3) {
        let b = a + span;
        let plan = RatePlan::parse(&format!("{a}..{b}"), Some(step)).unwrap();
        let r = plan.rates();
        prop_assert!(!r.is_empty());
        prop_assert!((r[0] - a).abs() <= a * 1e-8);
        prop_assert!(r.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(r.iter().all(|&x| x <= b * (1.0 + 1e-8)));
    }

    #[test]
    fn slos_never_panic(input in any::<String>()) {
        if let Err(e) = Slo::parse(&input) {
            let _ = e.to_string();
        }
    }

    #[test]
    fn slos_near_misses_never_panic(
        input in "(p95|ttft_p99|max|[a-zé_]{0,6})[<>=]{0,2}[0-9.éµ ]{0,4}[a-zµé]{0,3}(,[a-z0-9<.]{0,6})?",
    ) {
        if let Err(e) = Slo::parse(&input) {
            let _ = e.to_string();
        }
    }

    #[test]
    fn a_formatted_slo_reparses_to_the_same(clauses in proptest::collection::vec(clauses(), 1..5)) {
        let slo = Slo { clauses };
        let text = slo.to_string();
        let back = Slo::parse(&text).unwrap();
        // The text is what scenario.toml keeps: it must come back character for character.
        prop_assert_eq!(back.to_string(), text.clone());
        prop_assert_eq!(back.clauses.len(), slo.clauses.len());
        for (b, c) in back.clauses.iter().zip(&slo.clauses) {
            prop_assert_eq!((b.family, b.stat, b.inclusive), (c.family, c.stat, c.inclusive));
            // A decimal in a larger unit (`1234.567us`) times its scale may differ in the last
            // bit of an f64; nothing coarser may change.
            prop_assert!((b.limit_ns - c.limit_ns).abs() <= c.limit_ns * 1e-12, "{text}");
        }
    }

    #[test]
    fn a_scenario_file_round_trips_through_toml(file in scenario_files()) {
        let text = file.to_toml();
        let back = ScenarioFile::parse(&text, "scenario.toml")
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, file);
    }
}
