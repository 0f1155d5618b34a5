//! Loopback fake LLM servers for the attacker's tests: every API kind's routes on
//! 127.0.0.1:0, with controlled time to first token, inter-token gap, token count and faults.

#![allow(dead_code)] // each test binary uses a different subset of these helpers

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

/// How the fake server answers.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub ttft: Duration,
    pub itl: Duration,
    pub tokens: u32,
    pub fault: Fault,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            ttft: Duration::from_millis(40),
            itl: Duration::from_millis(25),
            tokens: 5,
            fault: Fault::None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    None,
    /// Answer with this status and a TGI error body.
    Status(u16),
    /// 200 with a body that is not JSON.
    NotJson,
    /// Streams stop after this many tokens, without the final event, and the connection closes.
    Truncate(u32),
    /// Sleep this long before answering at all.
    Hang(Duration),
    /// A stream that sends an error event after one token.
    ErrorEvent,
}

fn word(i: u32) -> String {
    format!(" w{i}")
}

/// Starts the fake server; it lives until the test's runtime ends.
pub async fn spawn(b: Behaviour) -> SocketAddr {
    let state = Arc::new(b);
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/generate", post(generate))
        .route("/generate_stream", post(generate_stream))
        .route("/v1/completions", post(openai))
        .route("/v1/chat/completions", post(openai))
        .route("/predict", post(predict))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // No Nagle, as real servers (and ours) set it: otherwise a token event written behind an
    // unacknowledged one waits for the client's delayed ACK (up to 40 ms) and the fake's
    // timings stop being the ones it was given.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

/// Applies the faults that precede any body; `Some` short-circuits the handler.
async fn prelude(b: &Behaviour) -> Option<Response> {
    match &b.fault {
        Fault::Hang(d) => {
            tokio::time::sleep(*d).await;
            None
        }
        Fault::Status(code) => Some(
            (
                StatusCode::from_u16(*code).unwrap(),
                axum::Json(json!({"error": format!("injected {code}"), "error_type": "test"})),
            )
                .into_response(),
        ),
        Fault::NotJson => Some((StatusCode::OK, "<html>oops</html>").into_response()),
        _ => None,
    }
}

fn max_new_tokens(body: &Value, b: &Behaviour) -> u32 {
    body.pointer("/parameters/max_new_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .map_or(b.tokens, |n| (n as u32).min(b.tokens))
}

async fn generate(
    State(b): State<Arc<Behaviour>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Some(r) = prelude(&b).await {
        return r;
    }
    let n = max_new_tokens(&body, &b);
    tokio::time::sleep(b.ttft + b.itl * n.saturating_sub(1)).await;
    let text: String = (0..n).map(word).collect();
    let mut headers = HeaderMap::new();
    headers.insert("x-prompt-tokens", "11".parse().unwrap());
    (
        headers,
        axum::Json(json!({"generated_text": text, "details": {"finish_reason": "length", "generated_tokens": n}})),
    )
        .into_response()
}

fn sse(events: impl futures::Stream<Item = String> + Send + 'static) -> Response {
    use futures::StreamExt;
    let stream = events.map(|e| Ok::<_, Infallible>(Bytes::from(e)));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// Yields `n` events produced by `make(i)`, the first after `ttft`, then one every `itl`.
fn paced(
    (ttft, itl): (Duration, Duration),
    n: u32,
    make: impl Fn(u32) -> Vec<String> + Send + 'static,
) -> impl futures::Stream<Item = String> {
    use futures::StreamExt;
    futures::stream::unfold(0u32, move |i| {
        let events = make(i);
        async move {
            if i > n || events.is_empty() {
                return None;
            }
            tokio::time::sleep(if i == 0 { ttft } else { itl }).await;
            Some((futures::stream::iter(events), i + 1))
        }
    })
    .flatten()
}

async fn generate_stream(
    State(b): State<Arc<Behaviour>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Some(r) = prelude(&b).await {
        return r;
    }
    let n = max_new_tokens(&body, &b);
    let fault = b.fault.clone();
    sse(paced((b.ttft, b.itl), n, move |i| {
        if i >= n {
            return vec![];
        }
        match fault {
            Fault::Truncate(k) if i >= k => return vec![],
            Fault::ErrorEvent if i == 1 => {
                return vec!["data:{\"error\":\"boom\",\"error_type\":\"generation\"}\n\n".into()];
            }
            _ => {}
        }
        let last = i + 1 == n;
        let generated = if last {
            json!((0..n).map(word).collect::<String>())
        } else {
            Value::Null
        };
        let details = if last {
            json!({"finish_reason": "length", "generated_tokens": n, "input_length": 11})
        } else {
            Value::Null
        };
        let ev = json!({"index": i + 1, "token": {"id": i, "text": word(i), "logprob": -0.5, "special": false}, "generated_text": generated, "details": details});
        vec![format!("data:{ev}\n\n")]
    }))
}

async fn openai(
    State(b): State<Arc<Behaviour>>,
    uri: axum::http::Uri,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Some(r) = prelude(&b).await {
        return r;
    }
    let chat = uri.path().contains("chat");
    let n = max_new_tokens(&body, &b);
    let usage = json!({"prompt_tokens": 9, "completion_tokens": n, "total_tokens": 9 + n});
    if body.get("stream") != Some(&Value::Bool(true)) {
        tokio::time::sleep(b.ttft + b.itl * n.saturating_sub(1)).await;
        let text: String = (0..n).map(word).collect();
        let choice = if chat {
            json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"})
        } else {
            json!({"index": 0, "text": text, "finish_reason": "length"})
        };
        return axum::Json(json!({"id": "x", "choices": [choice], "usage": usage})).into_response();
    }
    let fault = b.fault.clone();
    sse(paced((b.ttft, b.itl), n, move |i| {
        if let Fault::Truncate(k) = fault
            && i >= k
        {
            return vec![];
        }
        if i == n {
            return vec![
                format!("data: {}\n\n", json!({"choices": [], "usage": usage})),
                "data: [DONE]\n\n".into(),
            ];
        }
        let choice = if chat {
            json!({"index": 0, "delta": {"content": word(i)}, "finish_reason": Value::Null})
        } else {
            json!({"index": 0, "text": word(i), "finish_reason": Value::Null})
        };
        vec![format!("data: {}\n\n", json!({"choices": [choice]}))]
    }))
}

async fn predict(State(b): State<Arc<Behaviour>>, axum::Json(body): axum::Json<Value>) -> Response {
    if let Some(r) = prelude(&b).await {
        return r;
    }
    assert!(body.get("prompt").is_some());
    tokio::time::sleep(b.ttft).await;
    axum::Json(json!({"prediction": (0..b.tokens).map(word).collect::<String>()})).into_response()
}

/// Parses a whole `rpload` command line (without the program name).
pub fn cli(argv: &[&str]) -> rpload::commands::Cli {
    use clap::Parser;
    let mut all = vec!["rpload"];
    all.extend_from_slice(argv);
    rpload::commands::Cli::parse_from(all)
}

/// Parses `rpload attack` flags.
pub fn attack_args(argv: &[&str]) -> rpload::commands::AttackArgs {
    use clap::Parser;
    let mut all = vec!["rpload", "attack"];
    all.extend_from_slice(argv);
    match rpload::commands::Cli::parse_from(all).command {
        rpload::commands::Command::Attack(a) => *a,
        _ => unreachable!(),
    }
}

/// Runs an attack in-process and returns its records, sorted by seq.
pub async fn attack(argv: &[&str]) -> Vec<rpload::record::Record> {
    attack_on(rpload::attack::clock::ClockKind::Thread, argv).await
}

/// [`attack`] on tokio's clock, for tests under `start_paused`: intended times, latencies and
/// send lags are then exact virtual durations.
pub async fn attack_on_virtual_time(argv: &[&str]) -> Vec<rpload::record::Record> {
    attack_on(rpload::attack::clock::ClockKind::Tokio, argv).await
}

async fn attack_on(
    clock: rpload::attack::clock::ClockKind,
    argv: &[&str],
) -> Vec<rpload::record::Record> {
    let mut cfg = rpload::commands::attack::config(&attack_args(argv)).expect("valid attack flags");
    cfg.clock = clock;
    let mut records = Vec::new();
    rpload::attack::run(cfg, rpload::attack::Control::default(), &mut records)
        .await
        .expect("attack runs");
    records.sort_by_key(|r| r.seq);
    records
}

/// Runs an attack of `api` on `target` in-process; `rest` are the other flags.
pub async fn attack_to(target: &str, api: &str, rest: &[&str]) -> Vec<rpload::record::Record> {
    let mut argv = vec!["--api", api, "--target", target];
    argv.extend_from_slice(rest);
    attack(&argv).await
}

/// A word-level tokenizer.json over `w0..w99` with whitespace splitting.
pub fn write_word_tokenizer(path: &std::path::Path) {
    let vocab: serde_json::Map<String, serde_json::Value> = (0..100)
        .map(|i| (format!("w{i}"), serde_json::Value::from(i + 1)))
        .chain([("[UNK]".to_owned(), serde_json::Value::from(0))])
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(path, serde_json::to_vec(&json).unwrap()).unwrap();
}

/// The base URL of a loopback test server.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}
