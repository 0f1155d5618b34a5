//! Sweep verdicts against loopback servers of known capacity, through the `rpload sweep`
//! command line: the study's 1-second bursts of 1-6 requests against a one-at-a-time server,
//! long steps just below and above a capacity, a server that sheds load with fast 429s, an
//! overloaded first step, a client held back by its in-flight cap, and the exit statuses.
//! Traffic goes to 127.0.0.1 only, bounded by each sweep's plan; the tests take turns
//! (`ONE_AT_A_TIME`), since each judges a client's timing.

mod sweep_common;

use std::time::Duration;

use sweep_common::{CapacityServer, ONE_AT_A_TIME, explain, statuses, sweep_cli};

/// `rpload sweep` against `server` with `--api tgi --cooldown 0s` and `rest`.
async fn sweep(
    server: &CapacityServer,
    rest: &[&str],
) -> (u8, Option<rpload::analysis::summary::SweepSummary>) {
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let mut args = vec!["--target", &url, "--api", "tgi", "--cooldown", "0s"];
    args.extend_from_slice(rest);
    sweep_cli(dir.path(), &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_studys_bursts_against_a_one_at_a_time_server() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // One request at a time in 300 ms: capacity 3.33 req/s.
    let server = CapacityServer::start(1, Duration::from_millis(300), None).await;
    let (code, s) = sweep(
        &server,
        &[
            "--rps",
            "1..6",
            "--step",
            "1",
            "--step-duration",
            "1s",
            "--repeat",
            "3",
            "--initial-warmup",
            "0s",
        ],
    )
    .await;
    let s = s.expect("a summary");
    let why = explain(&s);
    let rates: Vec<(f64, &str)> = s
        .rates
        .iter()
        .map(|r| (r.target_rps, r.status.as_str()))
        .collect();
    // One request a burst cannot show a trend; two cannot either, but the three bursts pooled
    // can (flat: no queue); three fit between completions; four and five queue (the sweep
    // stops after two unsustainable rates).
    assert_eq!(
        rates,
        [
            (1.0, "undetermined"),
            (2.0, "sustainable"),
            (3.0, "sustainable"),
            (4.0, "unsustainable"),
            (5.0, "unsustainable"),
        ],
        "{why}"
    );
    assert_eq!(
        s.headline.as_ref().map(|h| h.target_rps),
        Some(3.0),
        "{why}"
    );
    assert_eq!(code, 0);
    // The 1 req/s bursts say why, and no served rate exceeds what the server can do.
    assert!(
        s.steps[0].verdict.starts_with("too few requests to judge"),
        "{why}"
    );
    for r in &s.steps {
        assert!(r.served_rps <= 3.5, "{why}");
    }
    // At 4 req/s the served rate is the server's capacity, within a few percent.
    for r in s.steps.iter().filter(|r| r.target_rps == 4.0) {
        assert!((3.0..3.5).contains(&r.served_rps), "{why}");
        assert!(r.verdict.starts_with("fell behind"), "{why}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_steps_just_below_and_above_capacity() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // Four slots of 100 ms: capacity 40 req/s; steps at x0.9 and x1.1.
    let server = CapacityServer::start(4, Duration::from_millis(100), None).await;
    let (code, s) = sweep(
        &server,
        &[
            "--rps",
            "36,44",
            "--step-duration",
            "6s",
            "--initial-warmup",
            "1s",
        ],
    )
    .await;
    let s = s.expect("a summary");
    let why = explain(&s);
    assert_eq!(
        statuses(&s),
        [(36.0, "sustainable"), (44.0, "unsustainable")],
        "{why}"
    );
    assert_eq!(code, 0);
    let above = &s.steps[1];
    assert!(above.verdict.starts_with("fell behind"), "{why}");
    assert!((37.0..42.0).contains(&above.served_rps), "{why}");
    let below = &s.steps[0];
    assert!((34.0..37.0).contains(&below.served_rps), "{why}");
    // Cost columns follow the served rate: none here (no price), but token rates do.
    assert!(
        (below.output_tokens_per_s - below.served_rps).abs() < 1e-9,
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_429s_and_an_overloaded_first_step_judge_only_themselves() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // Two slots of 100 ms (20 req/s), refusing with 429 when 4 are already in: the 60 req/s
    // step is answered mostly by sub-millisecond 429s. It runs first, and must neither pass
    // nor change the verdict of the steps after it.
    let server = CapacityServer::start(2, Duration::from_millis(100), Some(4)).await;
    let (code, s) = sweep(
        &server,
        &[
            "--rps",
            "60,10,15",
            "--step-duration",
            "3s",
            "--no-early-stop",
            "--initial-warmup",
            "0s",
        ],
    )
    .await;
    let s = s.expect("a summary");
    let why = explain(&s);
    assert_eq!(
        statuses(&s),
        [
            (60.0, "unsustainable"),
            (10.0, "sustainable"),
            (15.0, "sustainable")
        ],
        "{why}"
    );
    let shed = &s.steps[0];
    assert!(shed.errors > 0 && shed.verdict.contains("success"), "{why}");
    // Latency percentiles are of successes: the 100 ms holds, not the fast 429s.
    assert!(shed.latency_ms.p50 >= 100.0, "{why}");
    assert_eq!(s.headline.as_ref().map(|h| h.target_rps), Some(15.0));
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_held_back_by_its_in_flight_cap_names_it() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // Plenty of server (100 slots of 114 ms), but the client allows 2 in flight: at most
    // 17.5 req/s leave, against 30 scheduled.
    let server = CapacityServer::start(100, Duration::from_millis(114), None).await;
    let (code, s) = sweep(
        &server,
        &[
            "--rps",
            "30",
            "--step-duration",
            "2s",
            "--max-inflight",
            "2",
            "--initial-warmup",
            "0s",
        ],
    )
    .await;
    let s = s.expect("a summary");
    let why = explain(&s);
    let step = &s.steps[0];
    assert_eq!(step.status.as_str(), "unsustainable", "{why}");
    assert!(
        step.verdict
            .contains("waited for the in-flight cap (--max-inflight 2)"),
        "{why}"
    );
    // Every request but the first two queued behind the cap and is flagged.
    assert!(
        step.capped >= step.requests - 2,
        "{why}: {} capped",
        step.capped
    );
    assert_eq!(code, 1, "no sustainable step: exit 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_statuses_gate_a_pipeline() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // One at a time in 70 ms: capacity 14.3 req/s, so 10 is sustainable and 20 is not.
    let server = CapacityServer::start(1, Duration::from_millis(70), None).await;
    let base = |extra: &'static [&'static str]| {
        let mut v: Vec<String> = [
            "--target",
            &server.url(),
            "--api",
            "tgi",
            "--rps",
            "10,20",
            "--step-duration",
            "1s",
            "--cooldown",
            "0s",
            "--initial-warmup",
            "0s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>| async move {
        let dir = tempfile::tempdir().unwrap();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        sweep_cli(dir.path(), &refs).await
    };
    // Passes: 0.
    let (code, s) = run(base(&[])).await;
    let s = s.unwrap();
    assert_eq!(
        s.headline.as_ref().map(|h| h.target_rps),
        Some(10.0),
        "{}",
        explain(&s)
    );
    assert_eq!(code, 0);
    // An SLO no step meets: 1.
    let (code, s) = run(base(&["--slo", "p50<10ms"])).await;
    assert_eq!(code, 1);
    assert!(s.unwrap().headline.is_none());
    // A headline below --fail-under: 1.
    assert_eq!(run(base(&["--fail-under", "15"])).await.0, 1);
    assert_eq!(run(base(&["--fail-under", "10"])).await.0, 0);
    // Bad input, before any request: 2, and no run folder summary.
    let (code, s) = run(base(&["--fail-under", "-1"])).await;
    assert_eq!((code, s.is_none()), (2, true));
    let (code, s) = run(base(&["--fail-under", "21"])).await;
    assert_eq!((code, s.is_none()), (2, true));
    let (code, _) = run(base(&["--slo", "ttft_p95<500ms"])).await;
    assert_eq!(code, 2, "TTFT needs a streaming api");
    // A target that is down: every request fails, 1.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let target = format!("http://{dead}");
    let (code, s) = sweep_cli(
        dir.path(),
        &[
            "--target",
            &target,
            "--api",
            "tgi",
            "--rps",
            "5",
            "--step-duration",
            "1s",
            "--initial-warmup",
            "0s",
        ],
    )
    .await;
    assert_eq!(code, 1);
    let s = s.unwrap();
    assert_eq!(s.steps[0].errors, s.steps[0].requests);
    assert!(s.steps[0].requests >= 5);
}
