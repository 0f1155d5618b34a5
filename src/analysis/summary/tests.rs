//! The summary of a sweep built from hand-made records: rows, served rate, costs, folding.

use super::*;
use crate::record::{ErrorKind, TokensSource};
use crate::scenario::ScenarioFile;

/// A record of step `step` sent `t_ms` into it, taking `lat_ms`; `code` 429 fails fast.
fn rec(step: u32, seq: u64, t_ms: u64, lat_ms: u64, code: u16) -> Record {
    let ok = code == 200;
    Record {
        attack: String::new(),
        seq,
        code,
        timestamp: time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
            + time::Duration::milliseconds((step as i64) * 60_000 + t_ms as i64),
        latency: lat_ms * 1_000_000,
        bytes_out: 10,
        bytes_in: 10,
        error: if ok { String::new() } else { "429".into() },
        method: "POST".into(),
        url: "http://127.0.0.1:9/generate".into(),
        intended_ns: t_ms * 1_000_000,
        sent_ns: t_ms * 1_000_000 + 100_000,
        ttft_ns: None,
        itl_ns: vec![],
        tokens_in: Some(100),
        tokens_in_source: Some(TokensSource::Server),
        tokens_out: ok.then_some(20),
        tokens_source: ok.then_some(TokensSource::Server),
        error_kind: (!ok).then_some(ErrorKind::Status429),
        capped: false,
        step: Some(step),
        tokens_out_requested: None,
        session: None,
        turn: None,
        shard: None,
        shards: None,
        schedule: None,
        recv_lag_ns: None,
    }
}

#[test]
fn rows_follow_the_served_rate_and_successes() {
    let sc = ScenarioFile::parse(
        "target = \"http://127.0.0.1:9\"\n[sweep]\nrps = \"10\"\nrepeat = 2\nstep_duration = \"2s\"\n[cost]\nprice_per_hour = 3.6\n",
        "s.toml",
    )
    .unwrap()
    .validate()
    .unwrap();
    let mut steps = BTreeMap::new();
    for step in 0..2u32 {
        let mut d = StepData::default();
        for i in 0..20u64 {
            // Step 1 has every fifth request refused in 1 ms.
            let code = if step == 1 && i % 5 == 0 { 429 } else { 200 };
            let lat = if code == 200 { 300 } else { 1 };
            d.add(&rec(step, i, i * 100, lat, code));
        }
        steps.insert(step, d);
    }
    let price = Price::resolve(&crate::cost::Catalog::default(), None, Some(3.6)).unwrap();
    let s = build(&SweepInput {
        scenario: &sc,
        price: Some(&price),
        target: "t".into(),
        steps: &steps,
        by_target: &BTreeMap::new(),
    });
    let (a, b) = (&s.steps[0], &s.steps[1]);
    assert_eq!(a.status, Status::Sustainable, "{}", a.verdict);
    assert!((a.served_rps - 10.0).abs() < 1e-6, "{}", a.served_rps);
    // 120 tokens a success at 10 req/s: 1200 tokens/s; 3.6 USD/h is 0.001 USD/s.
    assert!((a.input_tokens_per_s + a.output_tokens_per_s - 1200.0).abs() < 1e-6);
    let per_1k = a.cost.usd_per_1k_tokens.unwrap();
    assert!((per_1k - 0.001 / 1.2).abs() < 1e-12, "{per_1k}");
    assert!((a.cost.usd_per_1m_tokens.unwrap() - per_1k * 1e3).abs() < 1e-12);
    // The 429s are counted, not mixed into the latency.
    assert_eq!((b.errors, b.latency_ms.p50), (4, 300.0));
    assert_eq!(b.status, Status::Unsustainable);
    assert!((b.served_rps - 8.0).abs() < 1e-6, "{}", b.served_rps);
    // The rate folds its repeats: one unsustainable repeat makes it unsustainable.
    assert_eq!(s.rates.len(), 1);
    assert_eq!(s.rates[0].status, Status::Unsustainable);
    assert!(s.headline.is_none());
    assert_eq!(b.reasons[0].rule, "success");
}
