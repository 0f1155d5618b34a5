//! What the attacker's token counts mean: a FastAPI-style answer that echoes the prompt is
//! counted without it (`--strip-prompt`), `rpload serve`'s `/predict` generates the length the
//! attacker asks for, and every record says where its input count came from
//! (`tokens_in_source`). Loopback only: an in-test echo app and the embedded tiny server.

mod common;
mod server_common;

use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use common::{attack_to, write_word_tokenizer};
use rpload::record::{ErrorKind, Record, TokensSource};
use rpload::server::ServerConfig;
use serde_json::{Value, json};
use server_common::TestServer;

/// The continuation: `n` words the word-level tokenizer counts one each.
fn words(n: u64) -> String {
    (0..n)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The length the attacker sent; a body without it is refused, so a success proves the
/// default `--body-template` carries `--max-new-tokens`.
type Refusal = (StatusCode, &'static str);

fn requested(body: &Value) -> Result<u64, Refusal> {
    body.get("max_new_tokens")
        .and_then(Value::as_u64)
        .ok_or((StatusCode::UNPROCESSABLE_ENTITY, "max_new_tokens missing"))
}

/// A FastAPI-style app: `/predict` answers prompt + " " + N words, as the study's app did;
/// `/bare` answers the N words alone.
async fn spawn_echo_app() -> SocketAddr {
    let app = Router::new()
        .route(
            "/predict",
            post(|axum::Json(body): axum::Json<Value>| async move {
                let n = requested(&body)?;
                let prompt = body["prompt"].as_str().unwrap_or_default();
                Ok::<_, Refusal>(axum::Json(
                    json!({"prediction": format!("{prompt} {}", words(n))}),
                ))
            }),
        )
        .route(
            "/bare",
            post(|axum::Json(body): axum::Json<Value>| async move {
                let n = requested(&body)?;
                Ok::<_, Refusal>(axum::Json(json!({"prediction": words(n)})))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Three requests of a three-word prompt asking for five new tokens.
async fn fastapi(target: &str, extra: &[&str]) -> Vec<Record> {
    let mut argv = vec![
        "--rate",
        "20/s",
        "--max-requests",
        "3",
        "--duration",
        "1s",
        "--timeout",
        "10s",
        "--prompt",
        "w7 w8 w9",
        "--max-new-tokens",
        "5",
    ];
    argv.extend_from_slice(extra);
    let records = attack_to(target, "fastapi", &argv).await;
    assert_eq!(records.len(), 3);
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strip_prompt_counts_only_the_continuation() {
    let addr = spawn_echo_app().await;
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("tokenizer.json");
    write_word_tokenizer(&tok);
    let tok = tok.to_str().unwrap();
    let echo = format!("http://{addr}/predict");
    let bare = format!("http://{addr}/bare");
    let counts = |records: &[Record]| -> Vec<(Option<u64>, Option<u64>)> {
        for r in records {
            assert!(r.is_success(), "{r:?}");
            assert_eq!(r.tokens_source, Some(TokensSource::Tokenizer));
        }
        records
            .iter()
            .map(|r| (r.tokens_in, r.tokens_out))
            .collect()
    };
    // auto is the default: the echoed prompt goes, the 5 words stay.
    let auto = fastapi(&echo, &["--tokenizer", tok]).await;
    assert_eq!(counts(&auto), vec![(Some(3), Some(5)); 3]);
    let always = fastapi(&echo, &["--tokenizer", tok, "--strip-prompt", "always"]).await;
    assert_eq!(counts(&always), vec![(Some(3), Some(5)); 3]);
    // never: the prompt is counted again as output, as before this flag.
    let never = fastapi(&echo, &["--tokenizer", tok, "--strip-prompt", "never"]).await;
    assert_eq!(counts(&never), vec![(Some(3), Some(8)); 3]);
    // An app that does not echo: auto counts the answer whole, always refuses it.
    let auto_bare = fastapi(&bare, &["--tokenizer", tok]).await;
    assert_eq!(counts(&auto_bare), vec![(Some(3), Some(5)); 3]);
    let always_bare = fastapi(&bare, &["--tokenizer", tok, "--strip-prompt", "always"]).await;
    for r in &always_bare {
        assert_eq!(r.code, 200);
        assert_eq!(r.error_kind, Some(ErrorKind::Body), "{r:?}");
        assert!(r.error.contains("--strip-prompt auto"), "{}", r.error);
        assert_eq!(r.tokens_out, None);
        assert_eq!(r.tokens_in, Some(3));
        assert_eq!(r.tokens_in_source, Some(TokensSource::Tokenizer));
    }
}

/// A Prometheus sample of the embedded server's `/metrics`, 0 when absent.
async fn metric(server: &TestServer, name: &str) -> f64 {
    let text = server.get_text("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_predict_generates_the_requested_length() {
    let server = TestServer::start(ServerConfig::default()).await;
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gpt_neox_parallel/tokenizer.json"
    );
    // The default template sends max_new_tokens; ignore_eos makes the length exact (the
    // random-weight model may sample EOS, which would end a request early).
    let fixed = fastapi(
        &server.base,
        &[
            "--body-template",
            r#"{"prompt": "{{prompt}}", "max_new_tokens": {{max_new_tokens}}, "ignore_eos": true}"#,
            "--strip-prompt",
            "always",
            "--tokenizer",
            fixture,
        ],
    )
    .await;
    for r in &fixed {
        assert!(r.is_success(), "the answer echoes the prompt: {r:?}");
        assert_eq!(r.tokens_source, Some(TokensSource::Tokenizer));
        assert!(r.tokens_out.is_some_and(|n| n > 0), "{r:?}");
    }
    let generated = "tgi_request_generated_tokens_sum";
    let asked = "tgi_request_max_new_tokens_sum";
    assert_eq!(metric(&server, generated).await, 15.0);
    assert_eq!(metric(&server, asked).await, 15.0);
    // The default template as is: the length reaches the server; EOS may only shorten it.
    let plain = fastapi(&server.base, &[]).await;
    assert!(plain.iter().all(Record::is_success), "{plain:?}");
    assert_eq!(metric(&server, asked).await, 30.0);
    let more = metric(&server, generated).await - 15.0;
    assert!(
        (3.0..=15.0).contains(&more),
        "{more} tokens for 3 requests of 5"
    );
    // The same continuation, looked at directly: the header counts it, the prompt leads it.
    let resp = server_common::client()
        .post(server.url("/predict"))
        .json(&json!({"prompt": "w7 w8 w9", "max_new_tokens": 5, "ignore_eos": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-generated-tokens"], "5");
    let v: Value = resp.json().await.unwrap();
    assert!(v["prediction"].as_str().unwrap().starts_with("w7 w8 w9"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_tokens_say_where_they_came_from() {
    let addr = spawn_echo_app().await;
    let echo = format!("http://{addr}/predict");
    for r in fastapi(&echo, &[]).await {
        // "w7 w8 w9" is 8 characters: 2 tokens at 4 characters a token.
        assert_eq!(r.tokens_in, Some(2));
        assert_eq!(r.tokens_in_source, Some(TokensSource::Estimate));
        assert_eq!(r.tokens_source, Some(TokensSource::Estimate));
    }
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gpt_neox_parallel/tokenizer.json"
    );
    for r in fastapi(&echo, &["--tokenizer", fixture]).await {
        assert_eq!(r.tokens_in_source, Some(TokensSource::Tokenizer));
    }
    let server = TestServer::start(ServerConfig::default()).await;
    let tgi = attack_to(
        &server.base,
        "tgi",
        &[
            "--rate",
            "20/s",
            "--max-requests",
            "2",
            "--duration",
            "1s",
            "--timeout",
            "10s",
            "--max-new-tokens",
            "2",
        ],
    )
    .await;
    assert_eq!(tgi.len(), 2);
    for r in &tgi {
        assert!(r.is_success(), "{r:?}");
        assert_eq!(r.tokens_in_source, Some(TokensSource::Server));
        assert!(r.tokens_in.is_some_and(|n| n > 0));
    }
    server.stop().await;
}
