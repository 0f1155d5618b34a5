//! Shared helpers for the `server_*` integration tests: start the embedded server in-process on
//! 127.0.0.1:0 (around the configured model or a `FakeEngine`), a plain-HTTP reqwest client,
//! SSE parsing, and golden JSON shapes.
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::path::PathBuf;
use std::time::Duration;

use rpload::server::engine::FakeEngine;
use rpload::server::{EmbeddedServer, ServerConfig, spawn_embedded, spawn_embedded_fake};
use serde_json::Value;

pub struct TestServer {
    pub base: String,
    server: EmbeddedServer,
}

impl TestServer {
    pub async fn start(cfg: ServerConfig) -> Self {
        Self::around(spawn_embedded(cfg).await)
    }

    /// The server around `fake` instead of `cfg.model`.
    pub async fn start_fake(cfg: ServerConfig, fake: FakeEngine) -> Self {
        Self::around(spawn_embedded_fake(cfg, fake).await)
    }

    fn around(server: anyhow::Result<EmbeddedServer>) -> Self {
        let server = server.expect("embedded server starts");
        Self {
            base: format!("http://{}", server.addr()),
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`, the body as text.
    pub async fn get_text(&self, path: &str) -> String {
        let resp = client().get(self.url(path)).send().await.unwrap();
        resp.text().await.unwrap()
    }

    /// `GET path`, the body as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        serde_json::from_str(&self.get_text(path).await).unwrap()
    }

    pub async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(30), self.server.shutdown())
            .await
            .expect("server drains within 30 s");
    }
}

/// A reqwest client for plain HTTP (no TLS provider needed, but install one so reqwest's
/// rustls backend can build).
pub fn client() -> reqwest::Client {
    client_with_timeout(Duration::from_secs(60))
}

/// [`client`] with its own whole-request timeout.
pub fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("client builds")
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data:"))
        .map(|d| d.trim_start().to_string())
        .collect()
}

/// Keys whose values are stable and part of the contract; every other leaf becomes its type.
const KEEP: &[&str] = &[
    "object",
    "finish_reason",
    "error_type",
    "error",
    "role",
    "index",
    "generated_tokens",
    "special",
    "model",
    "model_id",
    "owned_by",
    "input_length",
    "max_input_tokens",
    "max_total_tokens",
    "max_concurrent_requests",
    "model_pipeline_tag",
    "router",
    "engine",
    "model_dtype",
    "model_device_type",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
];

/// The response's shape: structure, kept values, and the type of everything else (ids,
/// timestamps, generated text and logprobs vary with the machine and the clock).
pub fn shape(v: &Value) -> Value {
    fn walk(key: Option<&str>, v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), walk(Some(k), v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(|x| walk(key, x)).collect()),
            _ if key.is_some_and(|k| KEEP.contains(&k)) => v.clone(),
            Value::String(_) => Value::String("<string>".into()),
            Value::Number(_) => Value::String("<number>".into()),
            other => other.clone(),
        }
    }
    walk(None, v)
}

/// Compares `actual` with `tests/golden/server/NAME.json`; `UPDATE_GOLDEN=1` rewrites it.
pub fn assert_golden(name: &str, actual: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/server")
        .join(format!("{name}.json"));
    let pretty = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &pretty).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create)",
            path.display()
        )
    });
    assert_eq!(pretty, want, "golden {name} differs");
}
