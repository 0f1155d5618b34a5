//! `rpload serve --engine mock`, in-process on 127.0.0.1:0: streamed timings match the flags
//! (TTFT and ITL p50 within a few ms on a loaded box, token counts exact), the concurrency
//! limit gives its known capacity, every route answers in its wire format, and bad flags are
//! refused with errors naming them.

mod server_common;

use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use rpload::commands::{Cli, Command};
use rpload::server::{ServerConfig, ServerOptions};
use serde_json::{Value, json};
use server_common::{TestServer, client, sse_data};

/// The mock with these flags (`--engine mock` implied).
async fn mock(flags: &[&str]) -> TestServer {
    TestServer::start(config(flags).expect("flags are valid")).await
}

/// `rpload serve --engine mock FLAGS` as the command line parses and checks it.
fn config(flags: &[&str]) -> Result<ServerConfig, String> {
    let mut argv = vec!["rpload", "serve", "--engine", "mock"];
    argv.extend_from_slice(flags);
    serve_config(&argv)
}

fn serve_config(argv: &[&str]) -> Result<ServerConfig, String> {
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    match cli.command {
        Command::Serve(args) => args.config().map_err(|e| e.to_string()),
        _ => unreachable!("parsed a serve command"),
    }
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Streams one TGI request; returns the time to each SSE event from the send, in ms.
async fn stream_times(server: &TestServer, max_new_tokens: u32) -> Vec<f64> {
    let body = json!({"inputs": "hello", "parameters": {"max_new_tokens": max_new_tokens}});
    let t0 = Instant::now();
    let resp = client()
        .post(server.url("/generate_stream"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut chunks = resp.bytes_stream();
    let (mut buf, mut times) = (String::new(), Vec::new());
    while let Some(chunk) = chunks.next().await {
        let at = t0.elapsed().as_secs_f64() * 1e3;
        buf.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        // Count complete events only; a chunk may end mid-event.
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            assert!(event.starts_with("data:{"), "{event}");
            times.push(at);
        }
    }
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_ttft_and_itl_match_the_flags() {
    let server = mock(&["--ttft", "50ms", "--itl", "20ms", "--tokens", "100"]).await;
    let (mut ttft, mut itl) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let times = stream_times(&server, 10).await;
        assert_eq!(times.len(), 10, "one event per token, exactly");
        ttft.push(times[0]);
        itl.extend(times.windows(2).map(|w| w[1] - w[0]));
    }
    let (ttft, itl) = (p50(ttft), p50(itl));
    // Never early. The upper slack is this test's own client and debug build: seen here, a
    // reqwest client in the test process read the first event 5-7 ms after its due time
    // while a raw socket read it within 1-2 ms of it (and `rpload attack` in release within
    // 1 ms); the mock's own lateness is asserted below from its metrics, and the client's
    // precision is measured in release by bench/stream.sh.
    assert!((50.0..60.0).contains(&ttft), "ttft p50 {ttft:.2} ms");
    assert!((itl - 20.0).abs() < 3.0, "itl p50 {itl:.2} ms");
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains("rpload_mock_first_token_lateness_seconds_count 5"),
        "{metrics}"
    );
    // The mock's first tokens left within 3 ms of their due times on average (tokio's timer
    // wakes on whole milliseconds; a loaded box adds to that).
    let sum: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rpload_mock_first_token_lateness_seconds_sum "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the lateness sum is exported");
    assert!(sum / 5.0 < 0.003, "mean first-token lateness {sum} s / 5");
    server.stop().await;
}

#[tokio::test]
async fn the_concurrency_limit_gives_the_known_capacity() {
    // 2 at once, 50 ms each: 40 req/s.
    let flags = ["--ttft", "50ms", "--tokens", "1", "--mock-concurrency", "2"];
    let server = mock(&flags).await;
    let url = server.url("/generate");
    let body = json!({"inputs": "hi"});
    // Closed loop: 8 clients keep the queue full, 80 requests in all.
    let t0 = Instant::now();
    let clients = (0..8).map(|_| {
        let (url, body) = (url.clone(), body.clone());
        tokio::spawn(async move {
            let c = client();
            for _ in 0..10 {
                let r = c.post(&url).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200);
            }
        })
    });
    for c in clients.collect::<Vec<_>>() {
        c.await.unwrap();
    }
    let rate = 80.0 / t0.elapsed().as_secs_f64();
    assert!(
        (36.0..=40.5).contains(&rate),
        "closed loop served {rate:.1} req/s"
    );

    // Open loop, 20 requests: at 20 req/s each starts on arrival; at 80 req/s the queue grows.
    for (gap_ms, keeps_up) in [(50.0, true), (12.5, false)] {
        let t0 = Instant::now();
        let sends = (0..20).map(|i| {
            let (url, body) = (url.clone(), body.clone());
            tokio::spawn(async move {
                let at = t0 + Duration::from_secs_f64(gap_ms * i as f64 / 1e3);
                tokio::time::sleep_until(at.into()).await;
                let sent = Instant::now();
                client().post(&url).json(&body).send().await.unwrap();
                sent.elapsed().as_secs_f64() * 1e3
            })
        });
        let mut latencies = Vec::new();
        for s in sends.collect::<Vec<_>>() {
            latencies.push(s.await.unwrap());
        }
        let last = *latencies.last().unwrap();
        if keeps_up {
            assert!(last < 75.0, "20 req/s: the last waited {last:.1} ms");
        } else {
            // Request 19 arrives at 237.5 ms and starts at 462.5 ms: 275 ms with its 50.
            assert!(last > 200.0, "80 req/s: the last waited only {last:.1} ms");
        }
    }
    server.stop().await;
}

async fn post(server: &TestServer, path: &str, body: Value) -> (u16, String) {
    let r = client()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post_json(server: &TestServer, path: &str, body: Value) -> Value {
    let (status, text) = post(server, path, body).await;
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// The JSON payloads of an SSE body, `[DONE]` left out.
async fn post_sse(server: &TestServer, path: &str, body: Value) -> Vec<Value> {
    let (status, text) = post(server, path, body).await;
    assert_eq!(status, 200, "{path}: {text}");
    sse_data(&text)
        .into_iter()
        .filter(|d| d != "[DONE]")
        .map(|d| serde_json::from_str(&d).unwrap())
        .collect()
}

#[tokio::test]
async fn every_route_answers_in_its_wire_format() {
    let server = mock(&["--ttft", "1ms", "--itl", "0", "--tokens", "3"]).await;
    // TGI, whole: the request's max_new_tokens wins over --tokens; without it, --tokens.
    let g = post_json(
        &server,
        "/generate",
        json!({"inputs": "hello", "parameters": {"max_new_tokens": 5, "details": true}}),
    )
    .await;
    assert_eq!(g["generated_text"], " the".repeat(5));
    assert_eq!(g["details"]["generated_tokens"], 5);
    assert_eq!(g["details"]["finish_reason"], "length");
    assert_eq!(g["details"]["tokens"].as_array().unwrap().len(), 5);
    let g = post_json(&server, "/generate", json!({"inputs": "hello"})).await;
    assert_eq!(g["generated_text"], " the the the");
    let compat = post_json(&server, "/", json!({"inputs": "hello"})).await;
    assert_eq!(compat[0]["generated_text"], " the the the");
    // TGI, streamed.
    let events = post_sse(
        &server,
        "/generate_stream",
        json!({"inputs": "hello", "parameters": {"max_new_tokens": 4, "details": true}}),
    )
    .await;
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e["token"]["text"] == " the"));
    assert_eq!(events[3]["generated_text"], " the the the the");
    assert_eq!(events[3]["details"]["generated_tokens"], 4);
    assert!(events[3]["details"]["input_length"].as_u64().unwrap() >= 1);
    // OpenAI completions, whole and streamed with usage.
    let c = post_json(
        &server,
        "/v1/completions",
        json!({"prompt": "hi", "max_tokens": 4}),
    )
    .await;
    assert_eq!(c["choices"][0]["text"], " the the the the");
    assert_eq!(c["usage"]["completion_tokens"], 4);
    assert_eq!(c["object"], "text_completion");
    let c = post_json(&server, "/v1/completions", json!({"prompt": "hi"})).await;
    assert_eq!(
        c["usage"]["completion_tokens"], 3,
        "--tokens as the default"
    );
    let chunks = post_sse(
        &server,
        "/v1/completions",
        json!({"prompt": "hi", "max_tokens": 2, "stream": true,
               "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(chunks.len(), 3, "two tokens and the usage chunk");
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[2]["usage"]["completion_tokens"], 2);
    // OpenAI chat, whole and streamed.
    let messages = json!([{"role": "user", "content": "hi"}]);
    let chat = post_json(
        &server,
        "/v1/chat/completions",
        json!({"messages": messages, "max_tokens": 2}),
    )
    .await;
    assert_eq!(chat["choices"][0]["message"]["content"], " the the");
    assert_eq!(chat["usage"]["completion_tokens"], 2);
    let chunks = post_sse(
        &server,
        "/v1/chat/completions",
        json!({"messages": messages, "max_completion_tokens": 3, "stream": true}),
    )
    .await;
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], " the");
    // FastAPI.
    let p = post_json(
        &server,
        "/predict",
        json!({"prompt": "hi", "max_new_tokens": 2}),
    )
    .await;
    assert_eq!(p["prediction"], "hi the the");
    // The GET routes.
    let info = server.get_json("/info").await;
    assert_eq!(
        (info["engine"].clone(), info["model_id"].clone()),
        (json!("mock"), json!("mock"))
    );
    assert_eq!(server.get_json("/v1/models").await["data"][0]["id"], "mock");
    let health = client().get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        server
            .get_text("/metrics")
            .await
            .contains("tgi_request_success")
    );
    // Validation still applies.
    let (status, text) = post(&server, "/generate", json!({"inputs": ""})).await;
    assert_eq!(
        (status, text.contains("`inputs` cannot be empty")),
        (422, true)
    );
    let zero = json!({"inputs": "hi", "parameters": {"max_new_tokens": 0}});
    let (status, _) = post(&server, "/generate", zero).await;
    assert_eq!(status, 422);
    server.stop().await;
}

#[test]
fn bad_flags_are_refused_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--ttft", "-1"], "--ttft `-1` is not a duration"),
        (&["--itl", "fast"], "--itl `fast` is not a duration"),
        (&["--tokens", "0"], "--tokens must be at least 1"),
        (
            &["--mock-concurrency", "0"],
            "--mock-concurrency must be at least 1",
        ),
        (
            &["--mock-jitter", "x"],
            "--mock-jitter `x` is not a percentage",
        ),
    ];
    for (flags, want) in cases {
        let err = config(flags).unwrap_err();
        assert!(err.starts_with(want), "{flags:?}: {err}");
    }
    let err = serve_config(&["rpload", "serve", "--ttft", "50ms"]).unwrap_err();
    assert!(
        err.starts_with("--ttft applies to --engine mock only (the engine here is `continuous`)"),
        "{err}"
    );
    let err = serve_config(&[
        "rpload",
        "serve",
        "--engine",
        "single",
        "--mock-concurrency",
        "2",
    ])
    .unwrap_err();
    assert!(
        err.starts_with("--mock-concurrency applies to --engine mock only"),
        "{err}"
    );
}

#[tokio::test]
async fn tokens_over_the_total_are_refused_at_start() {
    let cfg = config(&["--tokens", "100", "--max-total-tokens", "100"]).unwrap();
    let err = format!("{:#}", rpload::server::build(cfg).await.err().unwrap());
    assert!(
        err.contains("--tokens (100) must be less than --max-total-tokens (100)"),
        "{err}"
    );
}

#[test]
fn a_serve_table_sets_the_mock() {
    let opts: ServerOptions = toml::from_str(
        "engine = \"mock\"\nttft = \"5ms\"\nitl = \"1ms\"\ntokens = 7\nmock_concurrency = 3\n",
    )
    .unwrap();
    let cfg = ServerConfig::from_options(&opts).unwrap();
    let m = cfg.mock.unwrap();
    assert_eq!(
        (m.timing.ttft, m.timing.itl, m.timing.tokens, m.concurrency),
        (
            Duration::from_millis(5),
            Duration::from_millis(1),
            7,
            Some(3)
        )
    );
    assert_eq!(cfg.engine_name(), "mock");
}
