//! The connection pool is warm before the schedule starts: a loopback server counts the
//! connections it accepted and notes how many it had when the first scheduled request (a
//! POST) arrived. It holds each warm-up request (a HEAD) 50 ms, so the warm-up's requests
//! overlap and each needs a connection of its own, and the open loop's measured connect time
//! is known. The warm-up's own requests are not recorded.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::routing::post;

#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    /// Connections accepted when the first POST came; 0 until then.
    at_first_post: AtomicUsize,
    heads: AtomicUsize,
}

async fn server() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let (s1, s2) = (seen.clone(), seen.clone());
    let app = axum::Router::new()
        .route(
            "/generate",
            post(move || {
                let s = s1.clone();
                async move {
                    let now = s.accepted.load(Ordering::SeqCst);
                    let _ = s.at_first_post.compare_exchange(
                        0,
                        now,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    axum::Json(serde_json::json!({
                        "generated_text": " w",
                        "details": {"generated_tokens": 1, "finish_reason": "length"}
                    }))
                }
            }),
        )
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let s = s2.clone();
                async move {
                    if req.method() == axum::http::Method::HEAD {
                        s.heads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    next.run(req).await
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counter = seen.clone();
    let listener = axum::serve::ListenerExt::tap_io(listener, move |_tcp| {
        counter.accepted.fetch_add(1, Ordering::SeqCst);
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// Runs `rpload attack --api tgi --target URL ARGS` against a fresh server; returns what the
/// server saw.
async fn attack(args: &[&str]) -> (Vec<rpload::record::Record>, Arc<Seen>) {
    let (url, seen) = server().await;
    let mut argv = vec!["--api", "tgi", "--target", &url];
    argv.extend_from_slice(args);
    (common::attack(&argv).await, seen)
}

fn load(n: &AtomicUsize) -> usize {
    n.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_opens_a_connection_per_user_before_its_first_request() {
    for workers in ["1", "2"] {
        let (records, seen) = attack(&[
            "--rate",
            "0",
            "--max-inflight",
            "6",
            "--max-requests",
            "24",
            "--workers",
            workers,
        ])
        .await;
        assert_eq!(
            records.len(),
            24,
            "only the schedule's requests are recorded"
        );
        assert!(records.iter().all(|r| r.code == 200 && r.method == "POST"));
        // Per worker: one probe, then one request per user at once (3 or 6 of them).
        let parts = if workers == "1" { 1 } else { 2 };
        assert_eq!(load(&seen.heads), parts + 6, "{workers} workers");
        // Six users, six connections (one more per worker when its probe's connection came
        // back late, see below), all open when the first request came, none opened after.
        let accepted = load(&seen.accepted);
        assert!(
            (6..=6 + parts).contains(&accepted),
            "{workers} workers: {accepted}"
        );
        assert_eq!(load(&seen.at_first_post), accepted, "{workers} workers");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_opens_what_arrives_while_one_connects() {
    // The probe takes the server's 50 ms and a little more: at 100 req/s, ceil(5.0x) arrive
    // meanwhile, so 7 are opened (8 if the probe took over 60 ms on a busy machine).
    let (records, seen) = attack(&["--rate", "100", "--duration", "1s", "--workers", "1"]).await;
    assert_eq!(records.len(), 100);
    let opened = load(&seen.heads) - 1;
    assert!((7..=8).contains(&opened), "{opened} opened after the probe");
    // One more when the probe's connection came back to the pool only after the others had
    // begun to connect (that connect then finishes in the background, as the pool does).
    let accepted = load(&seen.accepted);
    assert!(
        (opened..=opened + 1).contains(&accepted),
        "{accepted} for {opened}"
    );
    // Every one of them before the first request; 100 req/s of 20 ms answers keep about two
    // busy, so the run opened none of its own.
    assert_eq!(load(&seen.at_first_post), accepted);
    // No request of the schedule waited for the warm-up: the first left on time.
    let first = records.iter().min_by_key(|r| r.seq).unwrap();
    assert!(first.sent_ns - first.intended_ns < 5_000_000, "{first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_warm_pool_opens_nothing_ahead() {
    let (records, seen) = attack(&[
        "--rate",
        "0",
        "--max-inflight",
        "6",
        "--max-requests",
        "12",
        "--no-warm-pool",
        "--workers",
        "1",
    ])
    .await;
    assert_eq!(records.len(), 12);
    assert_eq!(load(&seen.heads), 0);
    // The users connect as their first requests go out: at most one per user.
    assert!(load(&seen.accepted) <= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_keepalive_opens_nothing_ahead() {
    let (records, seen) = attack(&[
        "--rate",
        "0",
        "--max-inflight",
        "4",
        "--max-requests",
        "8",
        "--no-keepalive",
        "--workers",
        "1",
    ])
    .await;
    assert_eq!(records.len(), 8);
    assert_eq!(load(&seen.heads), 0);
    // One connection per request, none ahead.
    assert_eq!(load(&seen.accepted), 8);
}
