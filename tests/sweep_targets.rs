//! A sweep over two replicas of known, different capacity (`--target` twice, round-robin):
//! each target is judged on its own requests, so the one that cannot keep up with its half of
//! the rate is named, while the other is sustainable at the same level.

mod sweep_common;

use std::time::Duration;

use sweep_common::{CapacityServer, explain};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_target_is_judged_on_its_own_requests() {
    // 2 slots of 100 ms: 20 req/s; 8 slots: 80 req/s. Round-robin gives each half the rate:
    // 12 and 30 req/s, so at 60 req/s only the small one is over its capacity.
    let small = CapacityServer::start(2, Duration::from_millis(100), None).await;
    let big = CapacityServer::start(8, Duration::from_millis(100), None).await;
    let dir = tempfile::tempdir().unwrap();
    let (s_url, b_url) = (small.url(), big.url());
    let args = [
        "--target",
        &s_url,
        "--target",
        &b_url,
        "--api",
        "tgi",
        "--cooldown",
        "0s",
        "--rps",
        "24,60",
        "--step-duration",
        "4s",
        "--initial-warmup",
        "1s",
    ];
    let (_, s) = sweep_common::sweep_cli(dir.path(), &args).await;
    let s = s.expect("a summary");
    let why = explain(&s);
    assert_eq!(s.by_target.len(), 2, "{why}");
    let (small_t, big_t) = (&s.by_target[0], &s.by_target[1]);
    let small_gen = format!("{s_url}/generate");
    let big_gen = format!("{b_url}/generate");
    // Targets are listed in URL order; the ports decide which comes first.
    let (small_t, big_t) = if small_t.target == small_gen {
        (small_t, big_t)
    } else {
        (big_t, small_t)
    };
    assert_eq!((&small_t.target, &big_t.target), (&small_gen, &big_gen));
    let levels = |t: &rpload::analysis::summary::TargetSummary| -> Vec<(f64, u64, &str)> {
        (t.rates.iter())
            .map(|r| (r.target_rps, r.requests, r.status.as_str()))
            .collect()
    };
    // Half the requests each, as round-robin sends them.
    assert_eq!(
        levels(big_t),
        [(24.0, 48, "sustainable"), (60.0, 120, "sustainable")],
        "{why}"
    );
    let small_levels = levels(small_t);
    assert_eq!(small_levels[0], (24.0, 48, "sustainable"), "{why}");
    assert_eq!(small_levels[1].2, "unsustainable", "{why}");
    assert_eq!(small_t.headline.as_ref().map(|h| h.target_rps), Some(24.0));
    assert_eq!(big_t.headline.as_ref().map(|h| h.target_rps), Some(60.0));
    // The small one served about its capacity, not its half of 60.
    let served = small_t.rates[1].served_rps;
    assert!(
        (17.0..22.0).contains(&served),
        "small served {served}: {why}"
    );

    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("## Per target"), "{md}");
    assert!(
        md.contains(&format!(
            "`{small_gen}`: highest sustainable rate: 24 req/s"
        )),
        "{md}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["by_target"].as_array().unwrap().len(), 2);
}
