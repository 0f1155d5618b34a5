//! The compare rule on hand-made summaries: tolerance parsing and its edges (exactly at the
//! tolerance is not a regression), level matching within 1e-9, and the refusals.

use super::*;
use crate::analysis::summary::{CostRow, Headline, Ms};
use crate::cost::Price;
use crate::scenario::rules::VerdictRules;

fn ms(p50: f64, p95: f64) -> Ms {
    Ms {
        mean: p50,
        p50,
        p90: p95,
        p95,
        p99: p95 * 1.2,
        p999: p95 * 1.5,
        max: p95 * 2.0,
    }
}

/// A rate row at `rps` with p95 `p95` ms, costing `usd` per 1K tokens.
fn row(rps: f64, p95: f64, usd: f64, status: Status) -> RateRow {
    RateRow {
        target_rps: rps,
        served_rps: rps,
        latency_ms: ms(p95 / 2.0, p95),
        cost: CostRow {
            usd_per_1k_tokens: Some(usd),
            ..CostRow::default()
        },
        status,
        sustainable: status == Status::Sustainable,
        ..RateRow::default()
    }
}

fn summary(axis: Axis, rates: Vec<RateRow>) -> SweepSummary {
    let headline = rates
        .iter()
        .filter(|r| r.sustainable)
        .max_by(|a, b| a.level().total_cmp(&b.level()))
        .map(Headline::of);
    SweepSummary {
        name: "t".into(),
        target: "http://127.0.0.1:9".into(),
        api: "tgi".into(),
        axis,
        plan: String::new(),
        step_duration_s: 1.0,
        repeat: 1,
        price: Some(Price {
            instance: "custom".into(),
            region: None,
            usd_per_hour: 1.0,
        }),
        rules: VerdictRules::default(),
        planned_steps: rates.len(),
        stopped_early: false,
        headline,
        study_max_rps: None,
        search: None,
        rates,
        steps: Vec::new(),
        by_target: Vec::new(),
    }
}

const S: Status = Status::Sustainable;
const U: Status = Status::Unsustainable;

fn tol(text: &str) -> Tolerance {
    text.parse().unwrap()
}

#[test]
fn tolerance_parses_percent_and_share() {
    assert_eq!(tol("10%"), Tolerance(0.1));
    assert_eq!(tol("0.1"), Tolerance(0.1));
    assert_eq!(tol(" 2.5 % "), Tolerance(0.025));
    assert_eq!(tol("0"), Tolerance(0.0));
    assert_eq!(tol("1000%"), Tolerance(10.0));
    assert_eq!(Tolerance::default(), tol("10%"));
    assert_eq!(tol("12.5%").to_string(), "12.5%");
    for (bad, why) in [
        ("-5%", "negative"),
        ("-0.1", "negative"),
        ("ten", "not a number"),
        ("%", "not a number"),
        ("NaN", "not a number"),
        ("inf", "not a number"),
        ("1001%", "over 1000%"),
        ("10.5", "over 1000%"),
    ] {
        let err = bad.parse::<Tolerance>().unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, CompareError::Tolerance { .. }), "{bad}");
        assert!(text.contains(why), "{bad}: {text}");
        assert!(text.starts_with("--tolerance"), "{text}");
        assert!(text.contains("10% or 0.1"), "the fix is named: {text}");
    }
}

#[test]
fn exactly_at_the_tolerance_is_no_regression() {
    let t = tol("10%");
    let up = |new| Delta { base: 100.0, new };
    assert!(!up(110.0).higher_beyond(t), "exactly +10%");
    assert!(up(110.001).higher_beyond(t));
    assert!(!up(90.0).lower_beyond(t), "exactly -10%");
    assert!(up(89.999).lower_beyond(t));
    // Better is never a regression, however far.
    assert!(!up(10.0).higher_beyond(t));
    assert!(!up(1000.0).lower_beyond(t));
    // A zero tolerance flags any worsening, and nothing equal.
    assert!(!up(100.0).higher_beyond(tol("0")));
    assert!(up(100.01).higher_beyond(tol("0")));
    // A base of 0 has no relative change.
    assert_eq!(
        Delta {
            base: 0.0,
            new: 5.0
        }
        .change(),
        None
    );
}

#[test]
fn identical_runs_do_not_regress() {
    let a = summary(
        Axis::Rate,
        vec![row(10.0, 100.0, 0.02, S), row(20.0, 110.0, 0.01, S)],
    );
    let c = compare(&a, &a, Tolerance::default()).unwrap();
    assert!(!c.regressed(), "{:?}", c.regressions);
    assert_eq!(c.matched.len(), 2);
    assert_eq!(c.headline.level.unwrap().change(), Some(0.0));
    assert!(c.base_only.is_empty() && c.new_only.is_empty());
}

#[test]
fn each_rule_names_its_figure() {
    let base = summary(
        Axis::Rate,
        vec![
            row(10.0, 100.0, 0.020, S),
            row(20.0, 100.0, 0.010, S),
            row(40.0, 100.0, 0.005, S),
        ],
    );
    // Headline 40 -> 20 (-50%), p95 at 40 100 -> 260 ms, cost at 40 doubles; 10 and 20
    // within tolerance (+10% exactly, +5%).
    let new = summary(
        Axis::Rate,
        vec![
            row(10.0, 110.0, 0.020, S),
            row(20.0, 105.0, 0.0105, S),
            row(40.0, 260.0, 0.010, U),
        ],
    );
    let c = compare(&base, &new, Tolerance::default()).unwrap();
    let figures: Vec<Figure> = c.regressions.iter().map(|r| r.figure).collect();
    assert_eq!(
        figures,
        [
            Figure::Headline,
            Figure::HeadlineCost,
            Figure::P95At(40.0),
            Figure::CostAt(40.0)
        ]
    );
    assert_eq!(
        c.regressions[0].delta,
        Delta {
            base: 40.0,
            new: 20.0
        }
    );
    // At 100% the halved headline and the doubled cost at 40 (exactly +100%) pass; the
    // headline's cost (0.005 at 40 -> 0.0105 at 20, +110%) and the 2.6x latency do not.
    let c = compare(&base, &new, tol("100%")).unwrap();
    let figures: Vec<Figure> = c.regressions.iter().map(|r| r.figure).collect();
    assert_eq!(figures, [Figure::HeadlineCost, Figure::P95At(40.0)]);
}

#[test]
fn a_lost_headline_regresses_and_a_found_one_does_not() {
    let good = summary(Axis::Rate, vec![row(10.0, 100.0, 0.02, S)]);
    let bad = summary(Axis::Rate, vec![row(10.0, 100.0, 0.02, U)]);
    let c = compare(&good, &bad, Tolerance::default()).unwrap();
    assert_eq!(c.regressions.len(), 1);
    assert_eq!(c.regressions[0].figure, Figure::HeadlineLost);
    assert!(
        !compare(&bad, &good, Tolerance::default())
            .unwrap()
            .regressed()
    );
    assert!(
        !compare(&bad, &bad, Tolerance::default())
            .unwrap()
            .regressed()
    );
}

#[test]
fn levels_match_within_1e_9_relative() {
    let base = summary(
        Axis::Rate,
        vec![row(0.1 + 0.2, 100.0, 0.02, S), row(5.0, 100.0, 0.02, S)],
    );
    let new = summary(
        Axis::Rate,
        vec![row(0.3, 100.0, 0.02, S), row(5.000_001, 100.0, 0.02, S)],
    );
    let c = compare(&base, &new, Tolerance::default()).unwrap();
    assert_eq!(c.matched.len(), 1, "0.1 + 0.2 is 0.3; 5.000001 is not 5");
    assert_eq!(c.base_only, [5.0]);
    assert_eq!(c.new_only, [5.000_001]);
    assert!(same_level(1e6, 1e6 * (1.0 + 1e-10)));
    assert!(!same_level(1e6, 1e6 * (1.0 + 1e-8)));
}

#[test]
fn no_common_level_lists_both_and_suggests_the_plan() {
    let base = summary(
        Axis::Rate,
        vec![
            row(10.0, 1.0, 1.0, S),
            row(25.0, 1.0, 1.0, S),
            row(40.0, 1.0, 1.0, S),
        ],
    );
    let new = summary(
        Axis::Rate,
        vec![row(5.0, 1.0, 1.0, S), row(15.0, 1.0, 1.0, S)],
    );
    let err = compare(&base, &new, Tolerance::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "BASE measured 10, 25, 40 req/s; NEW measured 5, 15 req/s; compare needs at least one \
         level both measured — re-run NEW with --rps 10,25,40"
    );
}

#[test]
fn different_axes_are_refused() {
    let rate = summary(Axis::Rate, vec![row(4.0, 1.0, 1.0, S)]);
    let mut users = row(0.0, 1.0, 1.0, S);
    users.target_concurrency = Some(4);
    let closed = summary(Axis::Concurrency, vec![users]);
    let err = compare(&rate, &closed, Tolerance::default()).unwrap_err();
    assert!(matches!(err, CompareError::Axes { .. }));
    assert!(err.to_string().contains("same axis"), "{}", err.to_string());
    // Concurrency levels match on users.
    assert!(compare(&closed, &closed, Tolerance::default()).is_ok());
}
