//! The sampling parameters through HTTP: each one changes what the server generates in the
//! way its definition says, on the routes that name it. The processors' numbers are checked
//! against transformers in the sampler's unit tests; here the point is that the routes carry
//! every parameter to the sampler and return what it produced.
//!
//! The seeded `tiny` preset falls into a loop under greedy decoding (one token repeated),
//! which is what makes the penalties visible: a penalty only lowers tokens already seen, so a
//! penalised greedy run must equal the plain one up to the first step where the plain one
//! chose a seen token, and must differ there.

mod server_common;

use rpload::server::ServerConfig;
use serde_json::{Value, json};
use server_common::{TestServer, client, sse_data};
use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;

async fn post(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// `/generate` with `details`; returns the generated ids and the body.
async fn generate(s: &TestServer, params: Value) -> (Vec<u64>, Value) {
    let mut p = json!({"max_new_tokens": 30, "ignore_eos": true, "details": true});
    p.as_object_mut()
        .unwrap()
        .extend(params.as_object().unwrap().clone());
    let (status, v) = post(
        s,
        "/generate",
        json!({"inputs": "Hello world", "parameters": p}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let ids = v["details"]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    (ids, v)
}

/// The first step at which `plain` chose a token it had generated before.
fn first_repeat<T: Eq + Hash + Debug>(plain: &[T]) -> usize {
    let mut set = HashSet::new();
    for (i, id) in plain.iter().enumerate() {
        if !set.insert(id) {
            return i;
        }
    }
    panic!("the plain run never repeats a token: {plain:?}; the premise of this test is gone");
}

fn distinct<T: Eq + Hash>(ids: &[T]) -> usize {
    ids.iter().collect::<HashSet<_>>().len()
}

/// A penalised greedy run leaves the plain one by the plain one's first repeat of a generated
/// token. With `prompt_seen` false (OpenAI: only generated tokens count) it must equal the
/// plain one before that step and leave it exactly there; TGI also counts the prompt, whose
/// ids the routes do not return, so there it may leave earlier.
fn assert_penalised<T: Eq + Hash + Debug>(
    name: &str,
    prompt_seen: bool,
    plain: &[T],
    penalised: &[T],
) {
    let k = first_repeat(plain);
    if prompt_seen {
        assert_ne!(
            plain[..=k],
            penalised[..=k],
            "{name}: kept the repeat at step {k}"
        );
    } else {
        assert_eq!(
            plain[..k],
            penalised[..k],
            "{name}: changed an unseen argmax"
        );
        assert_ne!(
            plain[k], penalised[k],
            "{name}: kept the repeat at step {k}"
        );
    }
    assert!(
        distinct(penalised) > distinct(plain),
        "{name}: {} distinct of {} with the penalty against {} without",
        distinct(penalised),
        penalised.len(),
        distinct(plain)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_penalties_change_greedy_output_only_where_a_token_was_seen() {
    let s = TestServer::start(ServerConfig::default()).await;
    let (plain, _) = generate(&s, json!({})).await;
    assert!(distinct(&plain) < plain.len() / 2, "plain run: {plain:?}");

    // TGI's repetition penalty and frequency penalty both count the prompt as seen.
    let (rep, _) = generate(&s, json!({"repetition_penalty": 100.0})).await;
    assert_penalised("repetition_penalty", true, &plain, &rep);
    // Once per distinct token and this strong: no token may come back.
    assert_eq!(distinct(&rep), rep.len(), "{rep:?}");

    let (freq, _) = generate(&s, json!({"frequency_penalty": 2.0})).await;
    assert_penalised("frequency_penalty", true, &plain, &freq);

    // A negative frequency penalty rewards what was seen: the loop only tightens.
    let (neg, _) = generate(&s, json!({"frequency_penalty": -2.0})).await;
    assert!(
        distinct(&neg) <= distinct(&plain),
        "{neg:?} against {plain:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_top_n_tokens_in_details_and_stream() {
    let s = TestServer::start(ServerConfig::default()).await;
    let (ids, v) = generate(&s, json!({"max_new_tokens": 6, "top_n_tokens": 3})).await;
    let tokens = v["details"]["tokens"].as_array().unwrap();
    let top = v["details"]["top_tokens"].as_array().unwrap();
    assert_eq!(top.len(), ids.len());
    for (step, (tok, alts)) in tokens.iter().zip(top).enumerate() {
        let alts = alts.as_array().unwrap();
        assert_eq!(alts.len(), 3, "step {step}");
        let lps: Vec<f64> = alts
            .iter()
            .map(|a| a["logprob"].as_f64().unwrap())
            .collect();
        assert!(lps.windows(2).all(|w| w[0] >= w[1]), "step {step}: {lps:?}");
        // Greedy: the chosen token is the first alternative, with the same logprob.
        assert_eq!(alts[0]["id"], tok["id"], "step {step}");
        assert_eq!(alts[0]["logprob"], tok["logprob"], "step {step}");
        // Alternatives are a distribution's top: probabilities sum to at most 1.
        assert!(lps.iter().map(|l| l.exp()).sum::<f64>() <= 1.0 + 1e-6);
    }
    // Without the parameter the field is absent, as in TGI.
    let (_, plain) = generate(&s, json!({"max_new_tokens": 2})).await;
    assert!(plain["details"].get("top_tokens").is_none(), "{plain}");

    // The stream carries the same alternatives per event.
    let resp = client()
        .post(s.url("/generate_stream"))
        .json(&json!({"inputs": "Hello world",
            "parameters": {"max_new_tokens": 6, "ignore_eos": true, "top_n_tokens": 3}}))
        .send()
        .await
        .unwrap();
    let events = sse_data(&resp.text().await.unwrap());
    assert_eq!(events.len(), 6);
    for (event, want) in events.iter().zip(top) {
        let e: Value = serde_json::from_str(event).unwrap();
        assert_eq!(&e["top_tokens"], want, "{event}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_typical_p_narrows_sampling() {
    let s = TestServer::start(ServerConfig::default()).await;
    let sampled = |seed: u64, extra: Value| {
        let mut p = json!({"do_sample": true, "seed": seed, "max_new_tokens": 12});
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    };
    // Plain sampling over the near-flat distribution of random weights: seeds disagree.
    let (a, _) = generate(&s, sampled(1, json!({}))).await;
    let (b, _) = generate(&s, sampled(2, json!({}))).await;
    assert_ne!(a, b);
    // The same seed repeats itself, with typical_p on.
    let (c, _) = generate(&s, sampled(1, json!({"typical_p": 0.5}))).await;
    let (d, _) = generate(&s, sampled(1, json!({"typical_p": 0.5}))).await;
    assert_eq!(c, d);
    // A typical set this small holds one token a step, so the seed no longer matters.
    let (e, _) = generate(&s, sampled(1, json!({"typical_p": 0.001}))).await;
    let (f, _) = generate(&s, sampled(2, json!({"typical_p": 0.001}))).await;
    assert_eq!(e, f);
    s.stop().await;
}

/// `/v1/completions` greedy with `logprobs`; returns the tokens and the logprobs object.
async fn completion(s: &TestServer, extra: Value) -> (Vec<String>, Value) {
    let mut body = json!({"model": "tiny", "prompt": "Hello world", "max_tokens": 30,
        "temperature": 0, "logprobs": 2});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, v) = post(s, "/v1/completions", body).await;
    assert_eq!(status, 200, "{v}");
    let lp = v["choices"][0]["logprobs"].clone();
    let tokens = lp["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    (tokens, lp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_penalties_and_logprobs() {
    let s = TestServer::start(ServerConfig::default()).await;
    let (plain, lp) = completion(&s, json!({})).await;
    assert_eq!(lp["token_logprobs"].as_array().unwrap().len(), plain.len());
    assert_eq!(lp["text_offset"].as_array().unwrap().len(), plain.len());
    // Text offsets start at 0 and advance by the characters each token added (none for a
    // token that ends inside a character).
    let offsets: Vec<u64> = lp["text_offset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_u64().unwrap())
        .collect();
    assert_eq!(offsets[0], 0);
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    assert!(offsets[offsets.len() - 1] > 0, "{offsets:?}");
    // OpenAI penalises generated tokens only. The route returns token strings, not ids; two
    // ids may share a string, which could only make the first repeat come early, and the
    // loop here repeats one string.
    assert!(distinct(&plain) < plain.len() / 2, "{plain:?}");
    for field in ["presence_penalty", "frequency_penalty"] {
        let (pen, _) = completion(&s, json!({ field: 2.0 })).await;
        assert_penalised(field, false, &plain, &pen);
    }

    // Chat: logprobs with top_logprobs alternatives per token, sorted.
    let (status, v) = post(
        &s,
        "/v1/chat/completions",
        json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 4, "temperature": 0, "logprobs": true, "top_logprobs": 3}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(content.len(), 4);
    for t in content {
        let alts = t["top_logprobs"].as_array().unwrap();
        assert_eq!(alts.len(), 3);
        assert_eq!(
            alts[0]["logprob"], t["logprob"],
            "greedy picks the top: {t}"
        );
        let bytes: Vec<u8> = t["bytes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            t["token"].as_str().unwrap()
        );
    }
    // Without `logprobs` the field is null.
    let (_, v) = post(
        &s,
        "/v1/chat/completions",
        json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}),
    )
    .await;
    assert!(v["choices"][0]["logprobs"].is_null(), "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_parameters_are_validated_with_named_errors() {
    let s = TestServer::start(ServerConfig::default()).await;
    let err = |msg: &str| json!({"error": format!("Input validation error: {msg}"), "error_type": "validation"});
    let cases = [
        (
            "/generate",
            json!({"inputs": "hi", "parameters": {"typical_p": 1.5}}),
            "`typical_p` must be > 0.0 and < 1.0",
        ),
        (
            "/generate",
            json!({"inputs": "hi", "parameters": {"typical_p": 0.0}}),
            "`typical_p` must be > 0.0 and < 1.0",
        ),
        (
            "/generate",
            json!({"inputs": "hi", "parameters": {"top_n_tokens": 9}}),
            "`top_n_tokens` must be >= 0 and <= 5. Given: 9",
        ),
        (
            "/generate",
            json!({"inputs": "hi", "parameters": {"frequency_penalty": 3.0}}),
            "`frequency_penalty` must be >= -2.0 and <= 2.0",
        ),
        (
            "/generate",
            json!({"inputs": "hi", "parameters": {"repetition_penalty": 0.0}}),
            "`repetition_penalty` must be strictly positive",
        ),
        (
            "/generate",
            json!({"inputs": "hi", "parameters": {"decoder_input_details": true}}),
            "`decoder_input_details` == true is not supported by this server (it does not compute prompt logprobs): leave it false",
        ),
        (
            "/v1/completions",
            json!({"model": "tiny", "prompt": "hi", "presence_penalty": 2.5}),
            "`presence_penalty` must be >= -2.0 and <= 2.0",
        ),
        (
            "/v1/completions",
            json!({"model": "tiny", "prompt": "hi", "frequency_penalty": -3}),
            "`frequency_penalty` must be >= -2.0 and <= 2.0",
        ),
        (
            "/v1/completions",
            json!({"model": "tiny", "prompt": "hi", "logprobs": 9}),
            "`logprobs` must be <= 5 on this server. Given: 9",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
                "top_logprobs": 2}),
            "`top_logprobs` needs `logprobs` set to true",
        ),
    ];
    for (path, body, msg) in cases {
        let (status, v) = post(&s, path, body.clone()).await;
        assert_eq!((status, &v), (422, &err(msg)), "{path} {body}");
    }
    s.stop().await;
}
