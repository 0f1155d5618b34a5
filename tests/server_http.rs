//! Every route of `rpload serve` against golden response shapes (ids, timestamps, text and
//! logprobs masked), stream event order, and TGI's validation errors and statuses.

mod server_common;

use rpload::server::ServerConfig;
use serde_json::{Value, json};
use server_common::{TestServer, assert_golden, client, shape, sse_data};

async fn post(
    server: &TestServer,
    path: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, json)
}

async fn post_sse(server: &TestServer, path: &str, body: Value) -> (u16, String, Vec<String>) {
    let resp = client()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ctype = resp.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    let text = resp.text().await.unwrap();
    (status, ctype, sse_data(&text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_generate_shape_and_timing_headers() {
    let s = TestServer::start(ServerConfig::default()).await;
    let body = json!({"inputs": "Hello world", "parameters": {"max_new_tokens": 5, "details": true, "ignore_eos": true}});
    let (status, headers, v) = post(&s, "/generate", body).await;
    assert_eq!(status, 200, "{v}");
    assert_golden("generate", &shape(&v));
    assert_eq!(v["details"]["tokens"].as_array().unwrap().len(), 5);
    for h in [
        "x-compute-type",
        "x-compute-time",
        "x-compute-characters",
        "x-total-time",
        "x-validation-time",
        "x-queue-time",
        "x-inference-time",
        "x-time-per-token",
        "x-prompt-tokens",
        "x-generated-tokens",
    ] {
        assert!(headers.contains_key(h), "missing header {h}");
    }
    assert_eq!(headers["x-generated-tokens"], "5");
    assert_eq!(headers["x-compute-characters"], "11");

    // Without `parameters`: TGI v1.0.3 defaults (greedy, 20 tokens unless EOS), no details.
    let (status, _, v) = post(&s, "/generate", json!({"inputs": "Hello"})).await;
    assert_eq!(status, 200);
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["generated_text"]
    );

    // Greedy is deterministic; return_full_text prepends the prompt.
    let p = json!({"max_new_tokens": 4, "ignore_eos": true});
    let (_, _, a) = post(
        &s,
        "/generate",
        json!({"inputs": "Same prompt", "parameters": p}),
    )
    .await;
    let mut p2 = p.clone();
    p2["return_full_text"] = json!(true);
    let (_, _, b) = post(
        &s,
        "/generate",
        json!({"inputs": "Same prompt", "parameters": p2}),
    )
    .await;
    assert_eq!(
        b["generated_text"].as_str().unwrap(),
        format!("Same prompt{}", a["generated_text"].as_str().unwrap())
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_stream_events_in_order_with_final_details() {
    let s = TestServer::start(ServerConfig::default()).await;
    let body = json!({"inputs": "Hello", "parameters": {"max_new_tokens": 4, "details": true, "ignore_eos": true}});
    let (status, ctype, events) = post_sse(&s, "/generate_stream", body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "text/event-stream");
    let events: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(events.len(), 4);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["index"], i + 1);
        let last = i == 3;
        assert_eq!(e["generated_text"].is_null(), !last);
        assert_eq!(e["details"].is_null(), !last);
    }
    assert_golden("generate_stream_last", &shape(&events[3]));
    assert_eq!(events[3]["details"]["finish_reason"], "length");
    // The streamed text is the non-streamed one.
    let (_, _, whole) = post(&s, "/generate", body.clone()).await;
    assert_eq!(events[3]["generated_text"], whole["generated_text"]);

    // TGI's compat route: an array without `stream`, SSE with it.
    let (status, _, arr) = post(&s, "/", body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(arr[0]["generated_text"], whole["generated_text"]);
    let mut streaming = body;
    streaming["stream"] = json!(true);
    let (status, ctype, events) = post_sse(&s, "/", streaming).await;
    assert_eq!(
        (status, ctype.as_str(), events.len()),
        (200, "text/event-stream", 4)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_health_metrics_models_and_unknown_routes() {
    let s = TestServer::start(ServerConfig::default()).await;
    let c = client();
    let info = s.get_json("/info").await;
    assert_golden("info", &shape(&info));
    let health = c.get(s.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "");
    let models = s.get_json("/v1/models").await;
    assert_golden("models", &shape(&models));
    let missing = c.get(s.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    let (status, _, _) = post(
        &s,
        "/generate",
        json!({"inputs": "hi", "parameters": {"max_new_tokens": 2}}),
    )
    .await;
    assert_eq!(status, 200);
    let _ = post(&s, "/generate", json!({"inputs": ""})).await;
    let text = s.get_text("/metrics").await;
    for name in [
        "tgi_request_count 2",
        "tgi_request_success 1",
        "tgi_request_failure{err=\"validation\"} 1",
        "tgi_queue_size",
        "tgi_batch_current_size",
        "tgi_batch_current_max_tokens",
        "tgi_request_duration_bucket",
        "tgi_request_queue_duration_bucket",
        "tgi_request_inference_duration_bucket",
        "tgi_request_mean_time_per_token_duration_bucket",
        "tgi_request_validation_duration_bucket",
        "tgi_request_input_length_bucket",
        "tgi_request_generated_tokens_bucket",
        "tgi_batch_forward_duration_bucket{method=\"prefill\"",
        "tgi_batch_inference_count{method=\"decode\"}",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_completions_and_chat() {
    let s = TestServer::start(ServerConfig::default()).await;
    let (status, _, v) = post(&s, "/v1/completions", json!({"model": "tiny", "prompt": "Hello", "max_tokens": 3, "temperature": 0, "ignore_eos": true})).await;
    assert_eq!(status, 200, "{v}");
    assert_golden("completions", &shape(&v));
    assert_eq!(v["usage"]["completion_tokens"], 3);

    let (status, _, v) = post(
        &s,
        "/v1/completions",
        json!({"prompt": ["a", "b"], "max_tokens": 2, "temperature": 0, "ignore_eos": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["choices"].as_array().unwrap().len(), 2);
    assert_eq!(v["usage"]["completion_tokens"], 4);

    let chat = json!({"model": "tiny", "messages": [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": " there"}]}],
        "max_completion_tokens": 3, "temperature": 0, "seed": 7, "ignore_eos": true});
    let (status, _, v) = post(&s, "/v1/chat/completions", chat.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_golden("chat", &shape(&v));
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();

    // Streams: a chunk per token, the last with finish_reason, then usage, then [DONE].
    let mut stream = chat;
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({"include_usage": true});
    let (status, ctype, events) = post_sse(&s, "/v1/chat/completions", stream).await;
    assert_eq!((status, ctype.as_str()), (200, "text/event-stream"));
    assert_eq!(events.len(), 5, "{events:?}");
    assert_eq!(events[4], "[DONE]");
    let chunks: Vec<Value> = events[..4]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_golden("chat_stream_first", &shape(&chunks[0]));
    assert_golden("chat_stream_usage", &shape(&chunks[3]));
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "length");
    assert!(chunks[1]["choices"][0]["finish_reason"].is_null());
    let streamed: String = chunks[..3]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, text);

    let (status, _, events) = post_sse(
        &s,
        "/v1/completions",
        json!({"prompt": "Hello", "max_tokens": 2, "stream": true, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_golden("completions_stream_first", &shape(&first));

    // Stop sequences end generation with OpenAI's `stop`.
    let (_, _, free) = post(
        &s,
        "/v1/completions",
        json!({"prompt": "Hello", "max_tokens": 12, "temperature": 0, "ignore_eos": true}),
    )
    .await;
    let full = free["choices"][0]["text"].as_str().unwrap().to_string();
    let stop: String = full.chars().skip(3).take(2).collect();
    let (_, _, stopped) = post(&s, "/v1/completions", json!({"prompt": "Hello", "max_tokens": 12, "temperature": 0, "ignore_eos": true, "stop": stop})).await;
    assert_eq!(
        stopped["choices"][0]["finish_reason"], "stop",
        "{stopped} (stop {stop:?} in {full:?})"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastapi_predict_returns_prompt_and_continuation() {
    let s = TestServer::start(ServerConfig::default()).await;
    let (status, _, v) = post(&s, "/predict", json!({"prompt": "Summarize this"})).await;
    assert_eq!(status, 200, "{v}");
    assert_golden("predict", &shape(&v));
    assert!(
        v["prediction"]
            .as_str()
            .unwrap()
            .starts_with("Summarize this")
    );
    let (status, _, v) = post(&s, "/predict", json!({"text": "x"})).await;
    assert_eq!(status, 422, "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastapi_predict_honours_max_new_tokens() {
    let s = TestServer::start(ServerConfig::default()).await;
    let generated = |h: &reqwest::header::HeaderMap| -> u64 {
        h["x-generated-tokens"].to_str().unwrap().parse().unwrap()
    };
    let body = json!({"prompt": "Summarize this", "max_new_tokens": 3, "ignore_eos": true});
    let (status, h, v) = post(&s, "/predict", body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(generated(&h), 3);
    // Without ignore_eos the model may stop early, never late; unknown fields are ignored.
    let body = json!({"prompt": "Summarize this", "max_new_tokens": 2, "extra": 1});
    let (status, h, v) = post(&s, "/predict", body).await;
    assert_eq!(status, 200, "{v}");
    assert!((1..=2).contains(&generated(&h)), "{h:?}");
    let (_, h, _) = post(&s, "/predict", json!({"prompt": "Hi", "ignore_eos": true})).await;
    assert_eq!(
        generated(&h),
        50,
        "the study app's length when none is asked for"
    );
    let (status, _, v) = post(&s, "/predict", json!({"prompt": "Hi", "max_new_tokens": 0})).await;
    assert_eq!(status, 422);
    assert_eq!(
        v,
        json!({"error": "Input validation error: `max_new_tokens` must be strictly positive", "error_type": "validation"})
    );
    let (status, _, v) = post(
        &s,
        "/predict",
        json!({"prompt": "Hi", "max_new_tokens": -1}),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error_type"], "validation", "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_have_tgi_statuses_and_bodies() {
    let s = TestServer::start(ServerConfig {
        max_total_tokens: Some(64),
        max_input_tokens: Some(32),
        ..ServerConfig::default()
    })
    .await;
    let err = |msg: &str| json!({"error": format!("Input validation error: {msg}"), "error_type": "validation"});
    let cases = vec![
        (json!({"inputs": ""}), err("`inputs` cannot be empty")),
        (
            json!({"inputs": "hi", "parameters": {"temperature": 0.0}}),
            err("`temperature` must be strictly positive"),
        ),
        (
            json!({"inputs": "hi", "parameters": {"top_p": 1.5}}),
            err("`top_p` must be > 0.0 and < 1.0"),
        ),
        (
            json!({"inputs": "hi", "parameters": {"top_k": -1}}),
            err("`top_k` must be strictly positive"),
        ),
        (
            json!({"inputs": "hi", "parameters": {"max_new_tokens": 0}}),
            err("`max_new_tokens` must be strictly positive"),
        ),
        (
            json!({"inputs": "hi", "parameters": {"stop": ["a", "b", "c", "d", "e"]}}),
            err("`stop` supports up to 4 stop sequences. Given: 5"),
        ),
        (
            json!({"inputs": "hi", "parameters": {"max_new_tokens": 64}}),
            err(
                "`inputs` tokens + `max_new_tokens` must be <= 64. Given: 2 `inputs` tokens and 64 `max_new_tokens`",
            ),
        ),
        (
            json!({"inputs": "word ".repeat(40), "parameters": {"max_new_tokens": 1}}),
            err(
                "`inputs` tokens + `max_new_tokens` must be <= 64. Given: 80 `inputs` tokens and 1 `max_new_tokens`",
            ),
        ),
        (
            json!({"inputs": "word ".repeat(20), "parameters": {"max_new_tokens": 1}}),
            err("`inputs` must have less than 32 tokens. Given: 40"),
        ),
    ];
    for (body, want) in cases {
        let (status, _, v) = post(&s, "/generate", body.clone()).await;
        assert_eq!((status, &v), (422, &want), "for {body}");
    }
    let (status, _, v) = post(
        &s,
        "/generate_stream",
        json!({"inputs": "hi", "parameters": {"decoder_input_details": true}}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        v["error"],
        "Input validation error: `decoder_input_details` == true is not supported when streaming tokens"
    );

    let c = client();
    // Malformed JSON: 400; the wrong type: 422; both with a JSON error body.
    for (raw, code) in [
        ("{\"inputs\":", 400u16),
        ("{\"inputs\": 5}", 422),
        ("{}", 422),
    ] {
        let r = c
            .post(s.url("/generate"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code, "{raw}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error_type"], "validation");
    }
    // A body over TGI's 2 MB payload limit: 413.
    let big = json!({"inputs": "a".repeat(2_100_000)}).to_string();
    let r = c
        .post(s.url("/generate"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // No content type: 415, as TGI's axum `Json` (rpload's attacker always sends one).
    let r = c
        .post(s.url("/generate"))
        .body(r#"{"inputs":"hi","parameters":{"max_new_tokens":1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    // OpenAI specifics.
    let (status, _, v) = post(
        &s,
        "/v1/completions",
        json!({"prompt": "hi", "suffix": "x"}),
    )
    .await;
    assert_eq!(
        (status, v["error_type"].as_str()),
        (422, Some("suffix not supported"))
    );
    let (status, _, _) = post(
        &s,
        "/v1/completions",
        json!({"prompt": ["a", "b", "c", "d", "e"]}),
    )
    .await;
    assert_eq!(status, 422);
    s.stop().await;
}
