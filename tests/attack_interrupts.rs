//! Ctrl-C on the real binary: the first signal drains, the second aborts, and in every case
//! each request that was sent is a record on disk (finished, or `cancelled`), the process says
//! how many it wrote and exits 130. For `attack`, and a `sweep` in its warm-up, a step and a
//! cool-down.
//! A sweep never replaces an earlier run in its folder without `--force`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rpload::record::{ErrorKind, Record};

const BIN: &str = env!("CARGO_BIN_EXE_rpload");

fn sigint(child: &Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -INT failed");
}

/// Waits (polling, bounded) until `ready` holds; a busy machine may be slow to start a process.
fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the process to exit by itself (bounded) and returns its status and stderr.
fn finish(mut child: Child, limit: Duration) -> (i32, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the process did not exit within {limit:?} of the interrupt");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TGI `/generate` that counts requests and answers each after `hang`: the count says when
/// the attacker is running (its Ctrl-C handler is installed before its first request), so a
/// slow start on a busy machine cannot let the signal hit a process that is not listening yet.
async fn slow_server(hang: Duration) -> (SocketAddr, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let seen = hits.clone();
    let app = axum::Router::new().route(
        "/generate",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(hang).await;
                axum::Json(serde_json::json!({"generated_text": " w1 w2"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

/// Waits until the server has seen `n` requests.
async fn hits_reach(hits: &AtomicU64, n: u64) {
    let start = Instant::now();
    while hits.load(Ordering::Relaxed) < n {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the attack never reached {n} requests"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn records(path: &Path) -> Vec<Record> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

/// Every tick from 0 to the highest seq is present exactly once: nothing sent was lost.
fn assert_contiguous(recs: &[Record]) {
    let mut seqs: Vec<u64> = recs.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    let expect: Vec<u64> = (0..recs.len() as u64).collect();
    assert_eq!(seqs, expect, "records missing or repeated");
}

fn attack(url: &str, out: &Path, extra: &[&str]) -> Child {
    let mut argv = vec![
        "attack",
        "--api",
        "tgi",
        "--target",
        url,
        "--rate",
        "40/s",
        "--duration",
        "20s",
        "--timeout",
        "60s",
        "-o",
    ];
    argv.push(out.to_str().unwrap());
    argv.extend_from_slice(extra);
    spawn(&argv)
}

/// The binary with `argv`, stderr captured for `finish`.
fn spawn(argv: &[&str]) -> Child {
    Command::new(BIN)
        .args(argv)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_interrupt_aborts_in_flight_requests_and_records_them_cancelled() {
    // Every request hangs far past the test: only the abort path can end them.
    let (addr, hits) = slow_server(Duration::from_secs(120)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.jsonl");
    let child = attack(&common::url(addr), &out, &[]);
    // Let some requests go out, then interrupt twice.
    hits_reach(&hits, 10).await;
    sigint(&child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigint(&child);
    let (code, err) = tokio::task::spawn_blocking(move || finish(child, Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(code, 130, "{err}");
    let recs = records(&out);
    assert!(recs.len() >= 10, "only {} records: {err}", recs.len());
    assert_contiguous(&recs);
    assert!(
        recs.iter()
            .all(|r| r.error_kind == Some(ErrorKind::Cancelled)),
        "a hanging request was not recorded as cancelled"
    );
    let said = format!("{} records written", recs.len());
    assert!(err.contains(&said), "stderr does not say `{said}`: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_interrupt_drains_in_flight_requests_to_the_end() {
    // Requests take 700 ms; one interrupt stops scheduling and lets them all finish.
    let (addr, hits) = slow_server(Duration::from_millis(700)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.jsonl");
    let child = attack(&common::url(addr), &out, &[]);
    hits_reach(&hits, 10).await;
    sigint(&child);
    let (code, err) = tokio::task::spawn_blocking(move || finish(child, Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(code, 130, "{err}");
    let recs = records(&out);
    assert!(recs.len() >= 10, "only {} records: {err}", recs.len());
    assert_contiguous(&recs);
    let ok = recs.iter().filter(|r| r.is_success()).count();
    assert_eq!(ok, recs.len(), "a drained request did not finish: {err}");
    assert!(err.contains("0 of them cancelled"), "{err}");
}

fn sweep(url: &str, out: &Path, extra: &[&str]) -> Child {
    let mut argv = vec![
        "sweep",
        "--api",
        "tgi",
        "--target",
        url,
        "--quiet",
        "--timeout",
        "60s",
        "--initial-warmup",
        "0s",
        "--out",
    ];
    argv.push(out.to_str().unwrap());
    argv.extend_from_slice(extra);
    spawn(&argv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_interrupted_in_a_step_keeps_every_request_it_sent() {
    let (addr, hits) = slow_server(Duration::from_secs(120)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let results = out.join("results.jsonl");
    let child = sweep(
        &common::url(addr),
        &out,
        &["--rps", "40", "--step-duration", "30s"],
    );
    hits_reach(&hits, 10).await;
    sigint(&child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigint(&child);
    let (code, err) = tokio::task::spawn_blocking(move || finish(child, Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(code, 130, "{err}");
    let recs = records(&results);
    assert!(recs.len() >= 10, "only {} records: {err}", recs.len());
    assert_contiguous(&recs);
    assert!(recs.iter().all(|r| r.step == Some(0)));
    let said = format!("{} measured records", recs.len());
    assert!(err.contains(&said), "stderr does not say `{said}`: {err}");
    // What derives from the records was rebuilt before the exit.
    assert!(out.join("steps.csv").exists(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_interrupted_in_a_cool_down_stops_at_once() {
    let (addr, _) = slow_server(Duration::from_millis(5)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let steps = out.join("steps.csv");
    let child = sweep(
        &common::url(addr),
        &out,
        &[
            "--rps",
            "10,20",
            "--step-duration",
            "1s",
            "--cooldown",
            "60s",
        ],
    );
    // steps.csv appears when the first step has been judged: the cool-down has begun.
    let steps_probe = steps.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the first step", Duration::from_secs(30), || {
            lines(&steps_probe) >= 2
        })
    })
    .await
    .unwrap();
    let interrupted = Instant::now();
    sigint(&child);
    let (code, err) = tokio::task::spawn_blocking(move || finish(child, Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(code, 130, "{err}");
    assert!(interrupted.elapsed() < Duration::from_secs(20));
    assert!(err.contains("during a cool-down"), "{err}");
    let recs = records(&out.join("results.jsonl"));
    assert!(recs.iter().all(|r| r.step == Some(0) && r.is_success()));
    assert_contiguous(&recs);
}

#[test]
fn a_sweep_refuses_to_replace_a_run_without_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("results.jsonl"), "{}\n").unwrap();
    let out = Command::new(BIN)
        .args(["sweep", "--target", "http://127.0.0.1:9", "--rps", "10"])
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already holds a run"), "{err}");
    assert!(err.contains("--force"), "{err}");
    // The earlier run is untouched.
    let kept = std::fs::read_to_string(dir.path().join("results.jsonl")).unwrap();
    assert_eq!(kept, "{}\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_interrupted_in_its_warm_up_stops_at_once() {
    let (addr, hits) = slow_server(Duration::from_millis(5)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // The last `--initial-warmup` wins over the helper's 0s.
    let child = sweep(
        &common::url(addr),
        &out,
        &[
            "--rps",
            "20",
            "--step-duration",
            "5s",
            "--initial-warmup",
            "60s",
        ],
    );
    hits_reach(&hits, 10).await;
    sigint(&child);
    let (code, err) = tokio::task::spawn_blocking(move || finish(child, Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("warm-up before the first step"), "{err}");
    assert!(err.contains("0 measured records"), "{err}");
    // Warm-up traffic is never measured.
    assert!(records(&out.join("results.jsonl")).is_empty());
}
