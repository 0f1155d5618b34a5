//! OpenAI ergonomics through the real binary: a `/v1` base URL reaches the API route under it,
//! and `--model auto` asks `/v1/models` once (with the attack's headers) and sends the first
//! model's id in every request; a server without the route is an error naming the URL, the
//! cause and the fix, before anything else is sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::{get, post};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_rpload");

/// What the server saw: (method and path, authorization header, the body's `model`).
type Seen = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

fn auth(h: &HeaderMap) -> String {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn serve(with_models: bool) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let models = |State(seen): State<Seen>, h: HeaderMap| async move {
        seen.lock()
            .unwrap()
            .push(("GET /v1/models".into(), auth(&h), None));
        axum::Json(json!({"object": "list", "data": [
            {"id": "served-7b", "object": "model"}, {"id": "other", "object": "model"}]}))
    };
    let chat = |State(seen): State<Seen>, uri: Uri, h: HeaderMap, body: axum::Json<Value>| async move {
        let model = body.get("model").and_then(Value::as_str).map(str::to_owned);
        seen.lock()
            .unwrap()
            .push((format!("POST {}", uri.path()), auth(&h), model));
        axum::Json(json!({"id": "x", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": " w1 w2"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}))
    };
    let mut app = Router::new().route("/v1/chat/completions", post(chat));
    if with_models {
        app = app.route("/v1/models", get(models));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// Runs `rpload attack` with `args` off the runtime's threads; (exit code, stdout, stderr).
async fn attack(args: Vec<String>) -> (i32, String, String) {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .arg("attack")
            .args(&args)
            .env_remove("OPENAI_API_KEY")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn args(target: &str, rest: &[&str]) -> Vec<String> {
    let mut a = vec![
        "--api",
        "openai-chat",
        "--target",
        target,
        "--model",
        "auto",
    ];
    a.extend_from_slice(rest);
    a.into_iter().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_auto_reads_v1_models_through_a_v1_base_url() {
    let (addr, seen) = serve(true).await;
    let target = format!("http://{addr}/v1/");
    let rest = [
        "--rate",
        "20/s",
        "--duration",
        "250ms",
        "-H",
        "Authorization: Bearer k-1",
    ];
    let (code, stdout, stderr) = attack(args(&target, &rest)).await;
    assert_eq!(code, 0, "{stderr}");
    let records: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 5);
    for r in &records {
        assert_eq!(r["code"], 200, "{r}");
        assert_eq!(r["url"], format!("http://{addr}/v1/chat/completions"));
    }
    let seen = seen.lock().unwrap().clone();
    // One question first, with the attack's headers; then every request names its answer.
    assert_eq!(
        seen[0],
        ("GET /v1/models".to_owned(), "Bearer k-1".to_owned(), None)
    );
    assert_eq!(seen.len(), 6, "{seen:?}");
    for s in &seen[1..] {
        assert_eq!(
            s,
            &(
                "POST /v1/chat/completions".to_owned(),
                "Bearer k-1".to_owned(),
                Some("served-7b".to_owned())
            )
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_auto_without_a_models_route_says_what_to_do() {
    let (addr, seen) = serve(false).await;
    let target = format!("http://{addr}/v1");
    let (code, stdout, stderr) = attack(args(&target, &["--duration", "1s"])).await;
    assert_eq!(code, 2, "bad input: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let want = format!(
        "--model auto: GET http://{addr}/v1/models: the server answered 404 Not Found; pass --model NAME"
    );
    assert!(stderr.contains(&want), "{stderr}");
    assert!(seen.lock().unwrap().is_empty(), "no request was sent");
    // Nothing listening: the cause is the connection.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let (code, _, stderr) = attack(args(&format!("http://127.0.0.1:{port}"), &[])).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "--model auto: GET http://127.0.0.1:{port}/v1/models: "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("pass --model NAME"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_asks_for_the_model_once_before_its_warm_up() {
    let (addr, seen) = serve(true).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let target = format!("http://{addr}/v1");
    let argv: Vec<String> = [
        "sweep",
        "-q",
        "--out",
        &out.display().to_string(),
        "--api",
        "openai-chat",
        "--target",
        &target,
        "--model",
        "auto",
        "--rps",
        "10,20",
        "--step-duration",
        "300ms",
        "--cooldown",
        "0s",
        "--initial-warmup",
        "200ms",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(&argv)
            .env_remove("OPENAI_API_KEY")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(status.status.code().is_some(), "{stderr}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, "GET /v1/models", "{stderr}");
    let asks = seen.iter().filter(|s| s.0 == "GET /v1/models").count();
    assert_eq!(asks, 1, "asked once for the whole sweep");
    // Warm-up (2) and steps (3 + 6): every request names the listed model.
    assert!(seen.len() >= 10, "{} requests: {stderr}", seen.len());
    assert!(
        seen[1..]
            .iter()
            .all(|s| s.0 == "POST /v1/chat/completions" && s.2.as_deref() == Some("served-7b")),
        "{seen:?}"
    );
}
