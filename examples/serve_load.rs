//! Closed-loop load for `bench/serve.sh`: C clients each send TGI `POST /generate` requests back
//! to back (keep-alive) for a fixed time, with `ignore_eos` so every request generates exactly
//! `max_new_tokens`. Prints one JSON line: requests, generated tokens/s, mean latency.
//! In Rust (tokio + reqwest) so the client takes little of the CPU the server is measured on.
//!
//! Usage: serve_load URL CONCURRENCY SECONDS MAX_NEW_TOKENS

use std::time::{Duration, Instant};

/// The benchmark prompt (107 tokens with the embedded tokenizer); bench/hf_generate.py uses
/// the same text.
const PROMPT: &str = "The quick brown fox jumps over the lazy dog while the server answers every request. \
Load testing measures how many requests an endpoint can take within a latency target, \
and what each thousand tokens costs on the instance that serves them.";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = format!("{}/generate", args[1]);
    let concurrency: usize = args[2].parse().expect("concurrency");
    let seconds: f64 = args[3].parse().expect("seconds");
    let max_new: u32 = args[4].parse().expect("max new tokens");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let body = serde_json::json!({"inputs": PROMPT, "parameters": {"max_new_tokens": max_new, "ignore_eos": true}});
    // Warm-up outside the measurement.
    client
        .post(&url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tokio::spawn(async move {
                let (mut done, mut tokens, mut latency) = (0u64, 0u64, 0f64);
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let resp = client.post(&url).json(&body).send().await.unwrap();
                    assert_eq!(resp.status(), 200);
                    let n: u64 = resp.headers()["x-generated-tokens"]
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    resp.bytes().await.unwrap();
                    latency += t0.elapsed().as_secs_f64();
                    tokens += n;
                    done += 1;
                }
                (done, tokens, latency)
            })
        })
        .collect();
    let (mut done, mut tokens, mut latency) = (0, 0, 0.0);
    for t in tasks {
        let (d, n, l) = t.await.unwrap();
        done += d;
        tokens += n;
        latency += l;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"concurrency": concurrency, "requests": done,
            "tokens_per_s": (tokens as f64 / elapsed * 10.0).round() / 10.0,
            "mean_latency_s": (latency / done.max(1) as f64 * 1000.0).round() / 1000.0})
    );
}
