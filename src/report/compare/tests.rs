//! The compare report from a hand-made comparison: regressions as sentences, the TTFT column
//! only when both runs streamed, levels only one run measured, and both styles.

use super::*;
use crate::analysis::compare::{HeadlinePair, Tolerance};
use crate::scenario::rules::VerdictRules;

fn d(base: f64, new: f64) -> Delta {
    Delta { base, new }
}

fn comparison(ttft: bool) -> Comparison {
    Comparison {
        axis: Axis::Rate,
        tolerance: Tolerance(0.1),
        headline: HeadlinePair {
            base: Some(40.0),
            new: Some(20.0),
            level: Some(d(40.0, 20.0)),
            served_rps: Some(d(39.5, 19.8)),
            p50_ms: Some(d(100.0, 90.0)),
            p95_ms: Some(d(120.0, 110.0)),
            usd_per_1k_tokens: None,
        },
        matched: vec![MatchedLevel {
            level: 40.0,
            base_status: Status::Sustainable,
            new_status: Status::Unsustainable,
            p50_ms: d(100.0, 200.0),
            p95_ms: d(120.0, 260.0),
            p99_ms: d(130.0, 300.0),
            ttft_p95_ms: ttft.then(|| d(30.0, 60.0)),
            usd_per_1k_tokens: None,
        }],
        base_only: vec![10.0],
        new_only: Vec::new(),
        regressions: vec![
            Regression {
                figure: Figure::Headline,
                delta: d(40.0, 20.0),
            },
            Regression {
                figure: Figure::P95At(40.0),
                delta: d(120.0, 260.0),
            },
        ],
    }
}

fn summary() -> SweepSummary {
    SweepSummary {
        name: "t".into(),
        target: "http://127.0.0.1:9".into(),
        api: "tgi".into(),
        axis: Axis::Rate,
        plan: "10,40".into(),
        step_duration_s: 2.0,
        repeat: 1,
        price: None,
        rules: VerdictRules::default(),
        planned_steps: 2,
        stopped_early: false,
        headline: None,
        study_max_rps: None,
        search: None,
        rates: Vec::new(),
        steps: Vec::new(),
        by_target: Vec::new(),
    }
}

#[test]
fn regressions_read_as_sentences() {
    let c = comparison(false);
    let lines: Vec<String> = c
        .regressions
        .iter()
        .map(|r| regression_line(&c, r))
        .collect();
    assert_eq!(
        lines,
        [
            "highest sustainable rate: 40 req/s -> 20 req/s (-50.0%), over the 10% tolerance",
            "p95 latency at 40 req/s: 120.0 ms -> 260.0 ms (+116.7%), over the 10% tolerance",
        ]
    );
}

#[test]
fn ttft_shows_only_when_both_streamed() {
    let s = summary();
    let runs = Runs {
        base: &s,
        new: &s,
        base_path: "a",
        new_path: "b",
    };
    for style in [Style::Markdown, Style::Text] {
        let with = render(&comparison(true), &runs, style, None);
        assert!(with.contains("TTFT p95"), "{with}");
        assert!(with.contains("30.0 ms -> 60.0 ms (+100.0%)"), "{with}");
        let without = render(&comparison(false), &runs, style, None);
        assert!(!without.contains("TTFT"), "{without}");
        assert!(without.contains("only BASE measured 10 req/s"), "{without}");
        // No price in either run: no cost section.
        assert!(!without.contains("Cost per 1K"), "{without}");
    }
    let md = render(&comparison(false), &runs, Style::Markdown, Some(CHART_PNG));
    assert!(md.contains("**NEW regressed** on 2 figures"), "{md}");
    assert!(
        md.contains("| 40 | sustainable / unsustainable | 100.0 ms -> 200.0 ms (+100.0%) |"),
        "{md}"
    );
    assert!(md.contains("](compare-latency.png)"), "{md}");
    let text = render(&comparison(false), &runs, Style::Text, None);
    assert!(!text.contains("**") && !text.contains('|'), "{text}");
}
