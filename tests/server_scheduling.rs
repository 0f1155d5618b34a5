//! Scheduling policy, exactly: continuous batching admits a late request while an earlier one
//! is still generating, single does not; both serve in arrival order; more than
//! `--max-concurrent-requests` gets 429 `overloaded`; a client that disconnects frees its slot
//! at once.
//!
//! These run on a `FakeEngine`: steps cost scripted virtual time (so queue times are exact
//! sums of step costs) and wait at a gate the test opens, so "B arrives while A generates" is
//! an order of events, not a race against the machine's load. One end-to-end test keeps the
//! real model behind HTTP.

mod server_common;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rpload::server::ServerConfig;
use rpload::server::engine::sampler::SamplingParams;
use rpload::server::engine::{FakeEngine, StepCosts, TextTokenizer};
use rpload::server::metrics::Metrics;
use rpload::server::scheduler::{
    BatchLimits, Event, Generation, SchedulerHandle, SchedulerKind, TokenStream,
};
use rpload::server::validate::ValidRequest;
use serde_json::{Value, json};
use server_common::{TestServer, client, client_with_timeout};
use tokio::time::timeout;

const COSTS: StepCosts = StepCosts {
    per_step: Duration::from_millis(2),
    per_prefill_token: Duration::from_millis(1),
    per_decode_seq: Duration::from_millis(1),
};
/// Prompt tokens of every scheduler-level request.
const PROMPT: usize = 4;

fn decode_step() -> Duration {
    COSTS.of(&[1])
}

fn config(engine: SchedulerKind, max_concurrent_requests: usize) -> ServerConfig {
    ServerConfig {
        engine,
        max_concurrent_requests,
        ..ServerConfig::default()
    }
}

fn request(max_new_tokens: usize, stream: bool) -> ValidRequest {
    ValidRequest {
        input_ids: vec![5; PROMPT],
        max_new_tokens,
        stop: Vec::new(),
        ignore_eos: true,
        sampling: SamplingParams::default(),
        stream,
    }
}

/// The scheduler worker around `fake`, without HTTP: `submit` is synchronous, so a test knows
/// exactly when a request has reached the worker's queue.
fn scheduler(kind: SchedulerKind, max_batch_size: usize, fake: FakeEngine) -> SchedulerHandle {
    let limits = BatchLimits {
        max_batch_size,
        max_batch_total_tokens: 100_000,
        max_batch_prefill_tokens: 4096,
    };
    SchedulerHandle::start(
        kind,
        limits,
        Box::new(fake),
        Arc::new(TextTokenizer::embedded().unwrap()),
        Arc::new(Metrics::new(2047, 2048)),
        1,
    )
    .unwrap()
}

/// Reads a request's events to its end.
async fn generation(mut s: TokenStream) -> Generation {
    loop {
        match s.next().await.expect("the worker answers every request") {
            Event::Token(_) => continue,
            Event::End(_, g) => return *g,
            other => panic!("expected the end of a generation, got {other:?}"),
        }
    }
}

fn queue_time(g: &Generation) -> Duration {
    g.started.duration_since(g.queued)
}

/// What happened when a short request arrived while a long one was generating.
struct LateArrival {
    long: Generation,
    short: Generation,
    /// Virtual time from the long request's first token to its end.
    long_rest: Duration,
    /// Tokens fed per sequence, per step.
    steps: Vec<Vec<usize>>,
}

/// A long request prefills (one step), then a short one is submitted while the worker is held
/// at the long one's second step, and everything runs to the end.
async fn late_arrival(kind: SchedulerKind) -> LateArrival {
    const LONG: usize = 200;
    let fake = FakeEngine::new(COSTS).held();
    let (gate, log) = (fake.gate(), fake.log());
    let sched = scheduler(kind, 8, fake);
    let mut long = sched.submit(request(LONG, true)).unwrap();
    gate.allow(1);
    assert!(matches!(long.next().await, Some(Event::Token(_))));
    assert_eq!(gate.held().await, 1, "the worker waits at the second step");
    let short = sched.submit(request(2, false)).unwrap();
    gate.open();
    let short = generation(short).await;
    let long = generation(long).await;
    let long_rest = long.finished.duration_since(long.started) - COSTS.of(&[PROMPT]);
    LateArrival {
        long,
        short,
        long_rest,
        steps: log.steps().into_iter().map(|s| s.fed).collect(),
    }
}

#[tokio::test]
async fn continuous_admits_a_late_request_before_the_first_finishes() {
    let r = late_arrival(SchedulerKind::Continuous).await;
    assert!(r.short.finished < r.long.finished, "short finished first");
    // It waited only for the step that was running when it arrived.
    assert_eq!(queue_time(&r.short), decode_step());
    assert!(queue_time(&r.short) * 4 < r.long_rest);
    // Its prefill shared a step with the long request's decode.
    assert_eq!(r.steps[..3], [vec![PROMPT], vec![1], vec![1, PROMPT]]);
}

#[tokio::test]
async fn single_makes_a_late_request_wait_for_the_first() {
    let r = late_arrival(SchedulerKind::Single).await;
    assert_eq!(
        r.short.started, r.long.finished,
        "the short one started when it ended"
    );
    // It waited for all of the long generation after its first token, to the step.
    assert_eq!(queue_time(&r.short), r.long_rest);
    assert_eq!(r.long_rest, decode_step() * 199);
    assert!(
        r.steps.iter().all(|fed| fed.len() == 1),
        "single never batches"
    );
}

#[tokio::test]
async fn both_policies_serve_in_arrival_order() {
    // A runs; B (5 tokens) and C (2) arrive during its first step. Continuous with room for
    // two admits B at once and C exactly when A's slot comes back; single runs them one after
    // another. Either way nobody overtakes.
    for kind in [SchedulerKind::Continuous, SchedulerKind::Single] {
        let fake = FakeEngine::new(COSTS).held();
        let gate = fake.gate();
        let sched = scheduler(kind, 2, fake);
        let a = sched.submit(request(3, false)).unwrap();
        assert_eq!(gate.held().await, 0);
        let (b, c) = (
            sched.submit(request(5, false)).unwrap(),
            sched.submit(request(2, false)).unwrap(),
        );
        gate.open();
        let (a, b, c) = (
            generation(a).await,
            generation(b).await,
            generation(c).await,
        );
        assert!(a.started <= b.started && b.started <= c.started, "{kind:?}");
        match kind {
            SchedulerKind::Continuous => {
                assert!(b.started < a.finished, "B joined while A ran");
                assert_eq!(c.started, a.finished, "C took A's slot at once");
            }
            SchedulerKind::Single => {
                assert_eq!(b.started, a.finished);
                assert_eq!(c.started, b.finished);
            }
        }
    }
}

fn long_body(tokens: u32) -> Value {
    json!({"inputs": "A long story begins", "parameters": {"max_new_tokens": tokens, "ignore_eos": true, "details": true}})
}

type Body = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// Opens a stream: once its 200 is back, the request holds its permit and has been submitted.
async fn open_stream(s: &TestServer, tokens: u32) -> Body {
    let resp = client()
        .post(s.url("/generate_stream"))
        .json(&long_body(tokens))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    Box::pin(resp.bytes_stream())
}

/// Waits for a stream's first token event (so the request is certainly running).
async fn first_token(mut body: Body) -> Body {
    let first = timeout(Duration::from_secs(30), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.starts_with(b"data:"));
    body
}

async fn open_running_stream(s: &TestServer, tokens: u32) -> Body {
    first_token(open_stream(s, tokens).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_concurrent_requests_is_429_overloaded() {
    let fake = FakeEngine::new(COSTS).held();
    let (gate, log) = (fake.gate(), fake.log());
    let s = TestServer::start_fake(config(SchedulerKind::Continuous, 2), fake).await;
    // a prefills and the worker is held at a's second step; b arrives; two more steps (a
    // alone, then b's prefill beside a's decode); then nothing runs, so both stay in flight.
    gate.allow(1);
    let a = open_running_stream(&s, 1500).await;
    assert_eq!(gate.held().await, 1);
    let b = open_stream(&s, 1500).await;
    gate.allow(2);
    let b = first_token(b).await;
    let steps: Vec<usize> = log.steps().iter().map(|r| r.fed.len()).collect();
    assert_eq!(steps, [1, 1, 2], "b joined a's batch");
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
    gate.open();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_stream_frees_its_slot_at_once() {
    // One slot, one request at a time: if the abandoned request kept running, the next one
    // would wait for all 1900 of its tokens (or get 429).
    let fake = FakeEngine::new(COSTS).held();
    let (gate, log) = (fake.gate(), fake.log());
    let s = TestServer::start_fake(config(SchedulerKind::Single, 1), fake).await;
    gate.allow(1);
    let abandoned = open_running_stream(&s, 1900).await;
    drop(abandoned);
    next_runs_after_the_abandoned_step(&s, &gate, &log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_times_out_frees_its_slot_at_once() {
    let fake = FakeEngine::new(COSTS).held();
    let (gate, log) = (fake.gate(), fake.log());
    let s = TestServer::start_fake(config(SchedulerKind::Single, 1), fake).await;
    gate.allow(1);
    // The gate holds the second step, so the request cannot finish before the client gives up.
    let impatient = client_with_timeout(Duration::from_millis(300));
    let err = impatient
        .post(s.url("/generate"))
        .json(&long_body(1900))
        .send()
        .await;
    assert!(err.is_err(), "the long request should time out client-side");
    next_runs_after_the_abandoned_step(&s, &gate, &log).await;
}

/// The abandoned request has had its prefill and the worker is held at its second step: once
/// the server has let go of it, the next request runs at once, and the abandoned one never
/// gets a third step.
async fn next_runs_after_the_abandoned_step(
    s: &TestServer,
    gate: &rpload::server::engine::fake::StepGate,
    log: &rpload::server::engine::fake::StepLog,
) {
    assert_eq!(gate.held().await, 1);
    wait_for_the_permit(s).await;
    gate.open();
    let body = json!({"inputs": "next", "parameters": {"max_new_tokens": 2, "ignore_eos": true, "details": true}});
    let resp = client()
        .post(s.url("/generate"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let next: Value = resp.json().await.unwrap();
    assert_eq!(next["details"]["generated_tokens"], 2);
    let steps: Vec<usize> = log.steps().iter().map(|r| r.fed.len()).collect();
    assert_eq!(
        steps.len(),
        4,
        "abandoned: prefill + the held step; next: 2"
    );
    let metrics = s.get_text("/metrics").await;
    assert!(
        metrics.contains("tgi_request_failure{err=\"dropped\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("tgi_request_success 2"),
        "the abandoned request must not finish"
    );
}

/// Waits until the server has dropped the abandoned request's handler, which frees its
/// concurrency permit right after closing its stream. An empty prompt answers 429 while the
/// permit is held and 422 once it is free, without needing a step.
async fn wait_for_the_permit(s: &TestServer) {
    for _ in 0..500 {
        let resp = client()
            .post(s.url("/generate"))
            .json(&json!({"inputs": ""}))
            .send()
            .await
            .unwrap();
        if resp.status() != 429 {
            assert_eq!(resp.status(), 422);
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server never let go of the disconnected client");
}

/// End to end with the real model (`tiny`) over HTTP: the late request's `x-queue-time` is a
/// small part of the long generation's remaining time. Wall-clock, but with a wide margin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_continuous_admits_a_late_request_with_the_real_model() {
    let s = TestServer::start(config(SchedulerKind::Continuous, 8)).await;
    let long = open_running_stream(&s, 1500).await;
    let first_token = std::time::Instant::now();
    let (tx, long_done) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let ok = drain(long).await;
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
    // The long request still had ~1500 tokens to go: it cannot have ended first.
    assert!(
        long_done.try_recv().is_err(),
        "short finished after the long one"
    );
    let (ok, rest) = timeout(Duration::from_secs(120), long_done)
        .await
        .unwrap()
        .unwrap();
    assert!(ok, "the long stream ends with its final event");
    let long_rest_ms = rest.as_millis() as u64;
    assert!(
        short_queue_ms * 4 < long_rest_ms.max(1),
        "queued {short_queue_ms} ms of {long_rest_ms} ms"
    );
    s.stop().await;
}

/// Reads a stream to its end; true if it ended with TGI's final event (generated_text set).
async fn drain(mut body: Body) -> bool {
    let mut text = Vec::new();
    while let Some(chunk) = body.next().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8_lossy(&text).contains("\"finish_reason\":\"length\"")
}
