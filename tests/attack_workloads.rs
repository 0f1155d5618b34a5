//! Workloads end to end: a loopback server records every body it receives, and the tests
//! re-tokenise what arrived with the same tokenizer.json the attack was given, so prompt
//! lengths, asked-for output lengths, shared prefixes, dataset rows and conversation
//! histories are checked on the wire, not on the attacker's own bookkeeping.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

const TOKENIZER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/gpt_neox_parallel/tokenizer.json"
);

type Seen = Arc<Mutex<Vec<Value>>>;

/// Answers TGI and OpenAI routes with a unique text per request ("reply N"), after keeping
/// the request body.
async fn recording_server() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    async fn answer(
        State(seen): State<Seen>,
        uri: axum::http::Uri,
        body: axum::Json<Value>,
    ) -> axum::Json<Value> {
        let n = {
            let mut s = seen.lock().unwrap();
            s.push(body.0.clone());
            s.len()
        };
        let text = format!(" reply {n}");
        axum::Json(match uri.path() {
            "/generate" => {
                json!({"generated_text": text, "details": {"finish_reason": "length", "generated_tokens": 2}})
            }
            "/v1/chat/completions" => json!({
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
            }),
            _ => json!({"choices": [{"index": 0, "text": text, "finish_reason": "length"}]}),
        })
    }
    let app = Router::new()
        .route("/generate", post(answer))
        .route("/v1/completions", post(answer))
        .route("/v1/chat/completions", post(answer))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn tokens(tok: &tokenizers::Tokenizer, text: &str) -> usize {
    tok.encode(text, false).unwrap().len()
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    (m, v.sqrt())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_prompts_have_their_drawn_token_counts_on_the_wire() {
    let (addr, seen) = recording_server().await;
    let target = common::url(addr);
    let flags = |n: &'static str| {
        vec![
            "--rate",
            "400",
            "--duration",
            "1s",
            "--max-requests",
            n,
            "--seed",
            "5",
            "--tokenizer",
            TOKENIZER,
            "--input-tokens",
            "120",
            "--input-tokens-stdev",
            "30",
            "--input-tokens-min",
            "40",
            "--input-tokens-max",
            "200",
            "--output-tokens",
            "16",
            "--output-tokens-stdev",
            "4",
            "--output-tokens-min",
            "4",
            "--ignore-eos",
        ]
    };
    let records = common::attack_to(&target, "tgi", &flags("300")).await;
    assert_eq!(records.len(), 300);
    let bodies = seen.lock().unwrap().clone();
    let tok = tokenizers::Tokenizer::from_file(TOKENIZER).unwrap();
    let mut by_text: HashMap<String, (usize, u64)> = HashMap::new();
    for b in &bodies {
        let text = b["inputs"].as_str().unwrap().to_owned();
        let n = tokens(&tok, &text);
        assert!((40..=200).contains(&n), "{n} tokens");
        assert_eq!(b["parameters"]["ignore_eos"], true);
        let asked = b["parameters"]["max_new_tokens"].as_u64().unwrap();
        assert!(asked >= 4);
        assert!(
            by_text.insert(text, (n, asked)).is_none(),
            "every prompt differs"
        );
    }
    let lens: Vec<f64> = by_text.values().map(|v| v.0 as f64).collect();
    let (m, sd) = mean_sd(&lens);
    // 300 draws: the mean's standard error is 30/sqrt(300) = 1.7 tokens.
    assert!((m - 120.0).abs() < 7.0, "mean {m}");
    assert!((sd - 30.0).abs() < 6.0, "stdev {sd}");
    let asked: Vec<f64> = by_text.values().map(|v| v.1 as f64).collect();
    let (am, asd) = mean_sd(&asked);
    assert!(
        (am - 16.0).abs() < 1.0 && (asd - 4.0).abs() < 1.0,
        "{am} {asd}"
    );
    // Records say what was asked and how long the prompt was, exactly.
    let mut want: Vec<(u64, u64)> = by_text.values().map(|v| (v.0 as u64, v.1)).collect();
    let mut got: Vec<(u64, u64)> = records
        .iter()
        .map(|r| (r.tokens_in.unwrap(), r.tokens_out_requested.unwrap()))
        .collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(want, got);
    // One seed, one sequence: a shorter run sends the first requests again.
    let first: Vec<Value> = {
        let again = common::attack_to(&target, "tgi", &flags("20")).await;
        assert_eq!(again.len(), 20);
        seen.lock().unwrap()[300..].to_vec()
    };
    let old: HashSet<&str> = bodies
        .iter()
        .map(|b| b["inputs"].as_str().unwrap())
        .collect();
    assert!(
        first
            .iter()
            .all(|b| old.contains(b["inputs"].as_str().unwrap()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_rows_are_sent_with_their_answer_lengths() {
    let (addr, seen) = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizers::Tokenizer::from_file(TOKENIZER).unwrap();
    let answers = [
        (
            "Where is the bridge?",
            "The bridge is on Elm Street, near the old mill.",
        ),
        ("Name a colour.", "Blue."),
        (
            "Count to five.",
            "One, two, three, four, five, and that is all of them.",
        ),
    ];
    let conv: Vec<Value> = answers
        .iter()
        .map(|(q, a)| json!({"id": q, "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}))
        .chain([json!({"id": "x", "conversations": [{"from": "gpt", "value": "no question"}]})])
        .collect();
    let path = dir.path().join("share.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&conv).unwrap()).unwrap();
    let records = common::attack_to(
        &common::url(addr),
        "openai-completions",
        &[
            "--rate",
            "100",
            "--duration",
            "1s",
            "--max-requests",
            "60",
            "--dataset",
            path.to_str().unwrap(),
            "--tokenizer",
            TOKENIZER,
        ],
    )
    .await;
    assert_eq!(records.len(), 60);
    let want: HashMap<&str, u64> = answers
        .iter()
        .map(|(q, a)| (*q, tokens(&tok, a) as u64))
        .collect();
    let bodies = seen.lock().unwrap().clone();
    let mut prompts_seen = HashSet::new();
    for b in &bodies {
        let p = b["prompt"].as_str().unwrap();
        assert_eq!(b["max_tokens"].as_u64(), Some(want[p]), "{p}");
        prompts_seen.insert(p.to_owned());
    }
    assert_eq!(prompts_seen.len(), 3, "the seeded draw reaches every row");
    // A JSONL dataset with named fields, and --output-tokens over the data's own lengths.
    let jsonl = dir.path().join("rows.jsonl");
    std::fs::write(
        &jsonl,
        "{\"q\": \"alpha\", \"n\": 7}\n{\"q\": \"beta\", \"n\": 9}\n",
    )
    .unwrap();
    let before = seen.lock().unwrap().len();
    common::attack_to(
        &common::url(addr),
        "tgi",
        &[
            "--rate",
            "100",
            "--max-requests",
            "20",
            "--dataset",
            jsonl.to_str().unwrap(),
            "--dataset-prompt-field",
            "q",
            "--dataset-output-field",
            "n",
        ],
    )
    .await;
    let rows = seen.lock().unwrap()[before..].to_vec();
    for b in &rows {
        let want = if b["inputs"] == "alpha" { 7 } else { 9 };
        assert_eq!(b["parameters"]["max_new_tokens"], want);
    }
    let before = seen.lock().unwrap().len();
    common::attack_to(
        &common::url(addr),
        "tgi",
        &[
            "--rate",
            "100",
            "--max-requests",
            "10",
            "--dataset",
            jsonl.to_str().unwrap(),
            "--dataset-prompt-field",
            "q",
            "--dataset-output-field",
            "n",
            "--output-tokens",
            "3",
        ],
    )
    .await;
    assert!(
        seen.lock().unwrap()[before..]
            .iter()
            .all(|b| b["parameters"]["max_new_tokens"] == 3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_prefixes_are_k_system_prompts_of_n_tokens() {
    let (addr, seen) = recording_server().await;
    let records = common::attack_to(
        &common::url(addr),
        "openai-chat",
        &[
            "--rate",
            "200",
            "--max-requests",
            "120",
            "--tokenizer",
            TOKENIZER,
            "--prefix-tokens",
            "50",
            "--prefix-count",
            "3",
            "--input-tokens",
            "20",
        ],
    )
    .await;
    assert_eq!(records.len(), 120);
    let tok = tokenizers::Tokenizer::from_file(TOKENIZER).unwrap();
    let mut systems: HashMap<String, usize> = HashMap::new();
    for b in seen.lock().unwrap().iter() {
        let m = b["messages"].as_array().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0]["role"], "system");
        let s = m[0]["content"].as_str().unwrap();
        assert_eq!(tokens(&tok, s), 50);
        assert_eq!(tokens(&tok, m[1]["content"].as_str().unwrap()), 20);
        *systems.entry(s.to_owned()).or_default() += 1;
    }
    assert_eq!(systems.len(), 3);
    assert!(systems.values().all(|&n| n >= 20), "{systems:?}");
    // No --output-tokens: every request asks for --max-new-tokens' default.
    assert!(records.iter().all(|r| r.tokens_out_requested == Some(64)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_carry_the_answers_the_server_gave() {
    let (addr, seen) = recording_server().await;
    let records = common::attack_to(
        &common::url(addr),
        "openai-chat",
        &[
            "--rate",
            "10",
            "--duration",
            "1s",
            "--turns",
            "3",
            "--think-time",
            "40ms",
            "--input-tokens",
            "8",
        ],
    )
    .await;
    // 10 sessions of 3 turns.
    assert_eq!(records.len(), 30, "{records:?}");
    let mut by_session: HashMap<u64, Vec<&rpload::record::Record>> = HashMap::new();
    for r in &records {
        assert!(r.is_success(), "{r:?}");
        by_session.entry(r.session.unwrap()).or_default().push(r);
    }
    assert_eq!(by_session.len(), 10);
    for turns in by_session.values_mut() {
        turns.sort_by_key(|r| r.turn);
        assert_eq!(
            turns.iter().map(|r| r.turn.unwrap()).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        for w in turns.windows(2) {
            // The next turn is due when the answer ended plus the think time.
            let end = w[0].intended_ns + w[0].latency;
            assert!(
                w[1].intended_ns >= end + 40_000_000,
                "{} < {end} + 40ms",
                w[1].intended_ns
            );
            assert!(w[1].intended_ns < end + 200_000_000);
        }
    }
    // On the wire: turn k has 2(k-1) earlier messages, and each assistant message is a reply
    // this server really sent (unique "reply N" texts), to the user message before it.
    let bodies = seen.lock().unwrap().clone();
    let mut reply_to: HashMap<String, String> = HashMap::new();
    for (i, b) in bodies.iter().enumerate() {
        let m = b["messages"].as_array().unwrap();
        let last = m.last().unwrap()["content"].as_str().unwrap().to_owned();
        reply_to.insert(format!(" reply {}", i + 1), last);
    }
    let mut depth = [0; 3];
    for b in &bodies {
        let m = b["messages"].as_array().unwrap();
        depth[(m.len() - 1) / 2] += 1;
        for pair in m[..m.len() - 1].chunks(2) {
            assert_eq!(pair[0]["role"], "user");
            assert_eq!(pair[1]["role"], "assistant");
            let answer = pair[1]["content"].as_str().unwrap();
            assert_eq!(reply_to[answer], pair[0]["content"].as_str().unwrap());
        }
    }
    assert_eq!(depth, [10, 10, 10]);
}

#[test]
fn workload_mistakes_are_caught_before_anything_is_sent() {
    let err = |extra: &[&str]| {
        let mut argv = vec![
            "--target",
            "http://127.0.0.1:9",
            "--rate",
            "1",
            "--duration",
            "1s",
        ];
        argv.extend_from_slice(extra);
        rpload::commands::attack::config(&common::attack_args(&argv))
            .unwrap_err()
            .to_string()
    };
    assert!(err(&["--turns", "3"]).starts_with("--turns needs a chat API"));
    assert!(err(&["--input-tokens", "500", "--input-tokens-max", "100"]).contains("lies outside"));
    assert!(
        err(&["--input-tokens-stdev", "3"])
            .contains("--input-tokens-stdev only applies with --input-tokens")
    );
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("e.jsonl");
    std::fs::write(&empty, "{\"text\": \"a\"}\n").unwrap();
    let e = err(&["--dataset", empty.to_str().unwrap()]);
    assert!(e.contains("has no usable rows (1 skipped)"), "{e}");
    assert!(
        err(&["--dataset", empty.to_str().unwrap(), "--input-tokens", "5"])
            .contains("two sources of requests")
    );
    assert!(
        err(&[
            "--dataset-format",
            "xml",
            "--dataset",
            empty.to_str().unwrap()
        ])
        .contains("--dataset-format \"xml\" is not known")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_replay_their_times_lengths_and_shared_blocks() {
    let (addr, seen) = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.jsonl");
    std::fs::write(
        &path,
        "{\"timestamp\": 0, \"input_length\": 40, \"output_length\": 5, \"hash_ids\": [7, 8, 9]}\n\
         {\"timestamp\": 300, \"input_length\": 20, \"output_length\": 3, \"hash_ids\": [7, 10]}\n\
         {\"timestamp\": 500, \"input_length\": 10, \"output_length\": 9, \"hash_ids\": [11]}\n\
         {\"timestamp\": 900, \"input_length\": 12, \"output_length\": 2}\n",
    )
    .unwrap();
    let records = common::attack_to(
        &common::url(addr),
        "tgi",
        &[
            "--trace",
            path.to_str().unwrap(),
            "--replay-speed",
            "2",
            "--trace-block-tokens",
            "16",
            "--tokenizer",
            TOKENIZER,
            "--duration",
            "5s",
        ],
    )
    .await;
    assert_eq!(records.len(), 4);
    let intended: Vec<u64> = records.iter().map(|r| r.intended_ns / 1_000_000).collect();
    assert_eq!(intended, [0, 150, 250, 450], "twice as fast");
    let tok = tokenizers::Tokenizer::from_file(TOKENIZER).unwrap();
    let mut bodies = seen.lock().unwrap().clone();
    bodies.sort_by_key(|b| b["parameters"]["max_new_tokens"].as_u64());
    let by_out: HashMap<u64, String> = bodies
        .iter()
        .map(|b| {
            (
                b["parameters"]["max_new_tokens"].as_u64().unwrap(),
                b["inputs"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (out, len) in [(5, 40), (3, 20), (9, 10), (2, 12)] {
        assert_eq!(tokens(&tok, &by_out[&out]), len, "request asking {out}");
    }
    // Block 7 opens both of the first two requests: their first 16 tokens are one text.
    let ids = |t: &str| tok.encode(t, false).unwrap().get_ids().to_vec();
    let (a, b) = (ids(&by_out[&5]), ids(&by_out[&3]));
    assert_eq!(a[..16], b[..16]);
    assert_ne!(a[16..20], b[16..20]);
}
