//! The client-kept-up rule measures the client, not the machine's jitter: a sweep at 10-30
//! req/s against a 100 ms server passes every step while another process keeps a core busy,
//! a concurrency sweep finds its plateau, and a search finds a known capacity. Its own test
//! binary, so nothing else of the suite runs beside the busy loop (cargo runs test binaries one
//! after another) and the loop disturbs no other test; its tests take turns, one busy loop at
//! a time.

mod sweep_common;

use std::time::Duration;

use sweep_common::{CapacityServer, ONE_AT_A_TIME, explain, statuses, sweep_cli};

/// A child process spinning on one core for as long as the guard lives (a shell loop, so it is
/// another process, as a user's build or training job would be).
struct BusyCore(std::process::Child);

impl BusyCore {
    fn start() -> Self {
        let child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("sh runs");
        Self(child)
    }
}

impl Drop for BusyCore {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_pass_with_a_core_busy() {
    let _one = ONE_AT_A_TIME.lock().await;
    // 16 slots of 100 ms: capacity 160 req/s, far above the plan.
    let server = CapacityServer::start(16, Duration::from_millis(100), None).await;
    let busy = BusyCore::start();
    let dir = tempfile::tempdir().unwrap();
    let (code, s) = sweep_cli(
        dir.path(),
        &[
            "--target",
            &server.url(),
            "--api",
            "tgi",
            "--rps",
            "10,20,30",
            "--step-duration",
            "4s",
            "--cooldown",
            "0s",
            "--initial-warmup",
            "1s",
        ],
    )
    .await;
    drop(busy);
    let s = s.expect("a summary");
    let why = explain(&s);
    assert_eq!(
        statuses(&s),
        [
            (10.0, "sustainable"),
            (20.0, "sustainable"),
            (30.0, "sustainable")
        ],
        "{why}"
    );
    assert_eq!(code, 0, "{why}");
    // The derived allowance is a tenth of the 100 ms latency, not a fixed 1 ms.
    for r in &s.steps {
        assert!((9.9..12.0).contains(&r.send_lag_limit_ms), "{why}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_sweep_finds_the_plateau_with_a_core_busy() {
    let _one = ONE_AT_A_TIME.lock().await;
    // 4 slots of 100 ms: throughput grows with users up to 4, then stays at 40 req/s.
    let server = CapacityServer::start(4, Duration::from_millis(100), None).await;
    let busy = BusyCore::start();
    let dir = tempfile::tempdir().unwrap();
    let (code, s) = sweep_cli(
        dir.path(),
        &[
            "--target",
            &server.url(),
            "--api",
            "tgi",
            "--concurrency",
            "1,2,4,8",
            "--step-duration",
            "2s",
            "--cooldown",
            "0s",
            "--initial-warmup",
            "0s",
            "--fail-under",
            "4",
        ],
    )
    .await;
    drop(busy);
    let s = s.expect("a summary");
    let why = explain(&s);
    assert_eq!(
        statuses(&s),
        [
            (1.0, "sustainable"),
            (2.0, "sustainable"),
            (4.0, "sustainable"),
            (8.0, "unsustainable")
        ],
        "{why}"
    );
    assert_eq!(s.steps[3].reasons[0].rule, "scaling", "{why}");
    assert_eq!(
        code, 0,
        "the headline of 4 users meets --fail-under 4: {why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_finds_a_known_capacity_with_a_core_busy() {
    let _one = ONE_AT_A_TIME.lock().await;
    // 4 slots of 100 ms: 40 req/s.
    let server = CapacityServer::start(4, Duration::from_millis(100), None).await;
    let busy = BusyCore::start();
    let dir = tempfile::tempdir().unwrap();
    let (code, s) = sweep_cli(
        dir.path(),
        &[
            "--target",
            &server.url(),
            "--api",
            "tgi",
            "--search",
            "--rps",
            "5..200",
            "--precision",
            "10%",
            "--step-duration",
            "2s",
            "--cooldown",
            "0s",
            "--initial-warmup",
            "0s",
        ],
    )
    .await;
    drop(busy);
    let s = s.expect("a summary");
    let why = explain(&s);
    assert_eq!(code, 0, "{why}");
    let answer = s.search.as_ref().and_then(|x| x.answer()).unwrap();
    // As idle (tests/sweep_search.rs): within the precision below 40, at most what the pace
    // rule lets pass above it.
    assert!((36.0..=42.2).contains(&answer), "{answer}\n{why}");
    assert!(s.steps.len() <= 12, "{why}");
}
