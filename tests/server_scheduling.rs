//! Scheduling seen from HTTP: continuous batching admits a late request while an earlier one
//! is still generating, single does not; more than `--max-concurrent-requests` gets 429
//! `overloaded`; a client that disconnects frees its slot at once. Assertions use the order of
//! events, not wall-clock thresholds, so a busy machine does not make them flaky.

mod server_common;

use std::time::Duration;

use futures::StreamExt;
use rpload::server::ServerConfig;
use rpload::server::scheduler::SchedulerKind;
use serde_json::{Value, json};
use server_common::{TestServer, client, client_with_timeout};
use tokio::time::timeout;

fn config(engine: SchedulerKind, max_concurrent_requests: usize) -> ServerConfig {
    ServerConfig {
        engine,
        max_concurrent_requests,
        ..ServerConfig::default()
    }
}

fn long_body(tokens: u32) -> Value {
    json!({"inputs": "A long story begins", "parameters": {"max_new_tokens": tokens, "ignore_eos": true, "details": true}})
}

/// Opens a stream and returns it once its first token event has arrived (so the request is
/// certainly running).
async fn open_running_stream(
    s: &TestServer,
    tokens: u32,
) -> impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + use<> {
    let resp = client()
        .post(s.url("/generate_stream"))
        .json(&long_body(tokens))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = timeout(Duration::from_secs(30), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.starts_with(b"data:"));
    body
}

/// Reads a stream to its end; true if it ended with TGI's final event (generated_text set).
async fn drain(
    mut body: impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
) -> bool {
    let mut text = Vec::new();
    while let Some(chunk) = body.next().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8_lossy(&text).contains("\"finish_reason\":\"length\"")
}

/// What happened when a short request arrived while a long one was generating.
struct LateArrival {
    /// The long stream had already ended when the short request was answered.
    long_ended_first: bool,
    /// The short request's `x-queue-time` (server-side wait before admission), ms.
    short_queue_ms: u64,
    /// From the long stream's first token to its end, ms.
    long_rest_ms: u64,
}

async fn late_arrival(engine: SchedulerKind) -> LateArrival {
    let s = TestServer::start(config(engine, 8)).await;
    let long = open_running_stream(&s, 1500).await;
    let first_token = std::time::Instant::now();
    let (tx, long_done) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let ok = drain(Box::pin(long)).await;
        let _ = tx.send((ok, first_token.elapsed()));
    });
    let short = client()
        .post(s.url("/generate"))
        .json(&json!({"inputs": "Quick", "parameters": {"max_new_tokens": 2, "ignore_eos": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 200);
    let short_queue_ms: u64 = short.headers()["x-queue-time"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let _ = short.text().await.unwrap();
    let mut long_done = long_done;
    let early = long_done.try_recv().ok();
    let long_ended_first = early.is_some();
    let (ok, rest) = match early {
        Some(v) => v,
        None => timeout(Duration::from_secs(120), long_done)
            .await
            .unwrap()
            .unwrap(),
    };
    assert!(ok, "the long stream ends with its final event");
    s.stop().await;
    LateArrival {
        long_ended_first,
        short_queue_ms,
        long_rest_ms: rest.as_millis() as u64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_admits_a_late_request_before_the_first_finishes() {
    let r = late_arrival(SchedulerKind::Continuous).await;
    // The long request still had ~1500 tokens to go: it cannot have ended first.
    assert!(!r.long_ended_first, "short finished after the long one");
    assert!(
        r.short_queue_ms * 4 < r.long_rest_ms.max(1),
        "queued {} ms of {} ms",
        r.short_queue_ms,
        r.long_rest_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_makes_a_late_request_wait_for_the_first() {
    let r = late_arrival(SchedulerKind::Single).await;
    // Server-side, the short request waited for (nearly) all of the long generation.
    assert!(
        r.short_queue_ms * 2 >= r.long_rest_ms,
        "queued only {} ms of {} ms",
        r.short_queue_ms,
        r.long_rest_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_concurrent_requests_is_429_overloaded() {
    let s = TestServer::start(config(SchedulerKind::Continuous, 2)).await;
    let a = open_running_stream(&s, 1500).await;
    let b = open_running_stream(&s, 1500).await;
    let resp = client()
        .post(s.url("/generate"))
        .json(&json!({"inputs": "one more"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v,
        json!({"error": "Model is overloaded", "error_type": "overloaded"})
    );
    // Overload is checked before validation, as in TGI: even an invalid body gets 429.
    let resp = client()
        .post(s.url("/generate"))
        .json(&json!({"inputs": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    drop((a, b));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_stream_frees_its_slot_at_once() {
    // One slot, one request at a time: if the abandoned request kept running, the next one
    // would wait for all 1900 of its tokens (or get 429).
    let s = TestServer::start(config(SchedulerKind::Single, 1)).await;
    let abandoned = open_running_stream(&s, 1900).await;
    drop(abandoned);
    let next = retry_until_admitted(&s).await;
    assert_eq!(next["details"]["generated_tokens"], 2);
    let metrics = s.get_text("/metrics").await;
    assert!(
        metrics.contains("tgi_request_failure{err=\"dropped\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("tgi_request_success 2"),
        "the abandoned request must not finish"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_times_out_frees_its_slot_at_once() {
    let s = TestServer::start(config(SchedulerKind::Single, 1)).await;
    let impatient = client_with_timeout(Duration::from_millis(300));
    let err = impatient
        .post(s.url("/generate"))
        .json(&long_body(1900))
        .send()
        .await;
    assert!(err.is_err(), "the long request should time out client-side");
    let next = retry_until_admitted(&s).await;
    assert_eq!(next["details"]["generated_tokens"], 2);
    let metrics = s.get_text("/metrics").await;
    assert!(
        metrics.contains("tgi_request_failure{err=\"dropped\"} 1"),
        "{metrics}"
    );
    s.stop().await;
}

/// The slot is released when the server notices the closed connection, which may take a
/// moment; retry briefly on 429, then require the short request to complete.
async fn retry_until_admitted(s: &TestServer) -> Value {
    let body = json!({"inputs": "next", "parameters": {"max_new_tokens": 2, "ignore_eos": true, "details": true}});
    for _ in 0..100 {
        let resp = client()
            .post(s.url("/generate"))
            .json(&body)
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        assert_eq!(resp.status(), 200);
        return resp.json().await.unwrap();
    }
    panic!("the slot of the disconnected client was never freed");
}
