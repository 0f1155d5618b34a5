//! Goodput and SLO attainment against a loopback server whose failures and latencies are known
//! by construction: it counts the requests it receives and answers the n-th one with a 500
//! when n is a multiple of `fail_every`, after `slow` when n % 4 == 1, and after `fast`
//! otherwise. Each request is judged on its own against every SLO clause, so the counts of good
//! requests follow from that pattern exactly, whatever the aggregate percentiles say.

mod sweep_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use rpload::analysis::summary::SweepSummary;
use rpload::analysis::verdict::Status;
use sweep_common::{ONE_AT_A_TIME, drive_scenario, explain};

const FAST: Duration = Duration::from_millis(60);
const SLOW: Duration = Duration::from_millis(400);

/// Serves `/generate` with the pattern of the module header; returns its address.
async fn patterned(fail_every: Option<u64>) -> std::net::SocketAddr {
    let seen = Arc::new(AtomicU64::new(0));
    let handler = move |axum::Json(_b): axum::Json<serde_json::Value>| {
        let seen = seen.clone();
        async move {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            if fail_every.is_some_and(|k| n.is_multiple_of(k)) {
                return (StatusCode::INTERNAL_SERVER_ERROR, "{\"error\":\"boom\"}").into_response();
            }
            tokio::time::sleep(if n % 4 == 1 { SLOW } else { FAST }).await;
            axum::Json(serde_json::json!({
                "generated_text": " sports",
                "details": {"generated_tokens": 1, "finish_reason": "length"}
            }))
            .into_response()
        }
    };
    let app = axum::Router::new().route("/generate", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One 4 s step at 10 req/s (40 requests) against `addr`, judged by `sweep` (TOML lines).
async fn one_step(addr: std::net::SocketAddr, sweep: &str) -> SweepSummary {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
target = "http://{addr}"
api = "tgi"
max_new_tokens = 1
timeout = "10s"

[sweep]
rps = "10"
step_duration = "4s"
initial_warmup = "0s"
# These tests are about the SLO; the derived send-lag bound (a tenth of the 60 ms median)
# would make them about how busy the machine is.
max_send_lag = "25ms"
{sweep}

[cost]
price_per_hour = 3.6
"#
    );
    drive_scenario(&text, dir.path()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_judged_on_its_own_and_failures_are_misses() {
    let _one = ONE_AT_A_TIME.lock().await;
    let addr = patterned(Some(10)).await;
    let s = one_step(addr, "slo = \"p50<200ms\"").await;
    let r = &s.steps[0];
    let why = explain(&s);
    assert_eq!(r.requests, 40, "{why}");
    // n = 0..39: every tenth fails (4); of the rest, n % 4 == 1 is slow: 1, 5, 9, 13, ... 37
    // (10 numbers, none a multiple of 10), so 40 - 4 - 10 = 26 are good.
    let (failed, slow) = (
        (0..40u64).filter(|n| n % 10 == 0).count() as u64,
        (0..40u64).filter(|n| n % 10 != 0 && n % 4 == 1).count() as u64,
    );
    assert_eq!((r.errors, failed, slow), (4, 4, 10));
    let good = 40 - failed - slow;
    assert_eq!(r.slo_attainment, Some(good as f64 / 40.0), "{why}");
    // Good requests per second on the served rate's basis: served x good / successes.
    let successes = (r.requests - r.errors) as f64;
    let expect = r.served_rps * good as f64 / successes;
    assert!(
        (r.goodput_rps - expect).abs() < 1e-9,
        "{} vs {expect}",
        r.goodput_rps
    );
    // Every request carries the same tokens, so good tokens cost successes / good times more.
    let (all, good_cost) = (
        r.cost.usd_per_1k_tokens.unwrap(),
        r.cost.usd_per_1k_good_tokens.unwrap(),
    );
    assert!(
        (good_cost / all - successes / good as f64).abs() < 1e-9,
        "{good_cost} / {all}"
    );
    // The aggregate p50 (60 ms) meets the clause, but 4 failures of 40 fail the success rule.
    assert_eq!(r.status, Status::Unsustainable, "{why}");
    assert!(
        r.reasons.iter().all(|x| x.rule == "success"),
        "{:?}",
        r.reasons
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slo_attainment_replaces_the_percentile_test() {
    let _one = ONE_AT_A_TIME.lock().await;
    // No failures; a quarter of the requests take 300 ms, so p90 is 300 ms and 75% meet
    // p90<200ms on their own.
    let addr = patterned(None).await;
    let by_percentile = one_step(addr, "slo = \"p90<200ms\"").await;
    let r = &by_percentile.steps[0];
    assert_eq!(r.slo_attainment, Some(0.75), "{}", explain(&by_percentile));
    assert_eq!(r.status, Status::Unsustainable);
    assert!(r.reasons.iter().any(|x| x.rule == "slo"), "{:?}", r.reasons);

    let addr = patterned(None).await;
    let lenient = one_step(addr, "slo = \"p90<200ms\"\nslo_attainment = \"70%\"").await;
    let r = &lenient.steps[0];
    assert_eq!(r.slo_attainment, Some(0.75));
    assert_eq!(r.status, Status::Sustainable, "{}", explain(&lenient));
    let h = lenient.headline.as_ref().unwrap();
    assert_eq!(h.slo_attainment, Some(0.75));
    assert!((h.goodput_rps - 0.75 * r.served_rps).abs() < 1e-9);

    let addr = patterned(None).await;
    let strict = one_step(addr, "slo = \"p90<200ms\"\nslo_attainment = 0.8").await;
    let r = &strict.steps[0];
    assert_eq!(r.status, Status::Unsustainable);
    let reason = r
        .reasons
        .iter()
        .find(|x| x.rule == "slo_attainment")
        .unwrap();
    assert_eq!((reason.measured, reason.limit), (Some(0.75), Some(0.8)));
    assert!(
        reason.message.contains("SLO attainment 75.0% < 80%"),
        "{}",
        reason.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_files_carry_goodput_and_attainment() {
    let _one = ONE_AT_A_TIME.lock().await;
    let addr = patterned(None).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "target = \"http://{addr}\"\napi = \"tgi\"\nmax_new_tokens = 1\n[sweep]\nrps = \"10\"\nstep_duration = \"2s\"\ninitial_warmup = \"0s\"\nmax_send_lag = \"25ms\"\nslo = \"p90<200ms\"\n"
    );
    let s = drive_scenario(&text, dir.path()).await;
    let csv = std::fs::read_to_string(dir.path().join("steps.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let head = rows.headers().unwrap().clone();
    let at = |name: &str| head.iter().position(|h| h == name).unwrap();
    let row = rows.records().next().unwrap().unwrap();
    assert_eq!(&row[at("slo_attainment")], "0.7500", "{csv}");
    let goodput: f64 = row[at("goodput_rps")].parse().unwrap();
    assert!((goodput - s.steps[0].goodput_rps).abs() < 1e-3);
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("| good/s | attained |"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(json["steps"][0]["slo_attainment"], 0.75);
}
