//! Each API kind against a loopback fake server with known timing: request counts, TTFT and
//! ITL within tolerance, token totals and where they came from, and the record's JSON keys.

mod common;

use common::{Behaviour, attack_to, cli, ms, spawn, url, write_word_tokenizer};
use rpload::record::TokensSource;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_stream_measures_ttft_itl_and_server_tokens() {
    let addr = spawn(Behaviour::default()).await; // ttft 40 ms, itl 25 ms, 5 tokens
    let target = url(addr);
    let records = attack_to(
        &target,
        "tgi-stream",
        &["--rate", "20/s", "--duration", "1s"],
    )
    .await;
    assert_eq!(records.len(), 20);
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    for r in &records {
        assert!(r.is_success(), "{r:?}");
        assert_eq!(r.code, 200);
        assert_eq!(r.url, format!("{target}/generate_stream"));
        assert_eq!(
            (r.tokens_out, r.tokens_source),
            (Some(5), Some(TokensSource::Server))
        );
        assert_eq!(r.tokens_in, Some(11));
        // The first token is due at 40 ms and the last at 140 ms: TTFT must sit near the first.
        let ttft = ms(r.ttft_ns.unwrap());
        assert!((38.0..110.0).contains(&ttft), "ttft {ttft} ms");
        assert_eq!(r.itl_ns.len(), 4);
        // A late chunk shortens the next gap, so check the gaps' sum here and their pooled
        // median below rather than each one.
        let sum: u64 = r.itl_ns.iter().sum();
        assert!((95.0..180.0).contains(&ms(sum)), "itl sum {} ms", ms(sum));
        // latency = ttft + 4 gaps, measured from the intended time
        assert!(
            ms(r.latency) >= 40.0 + 4.0 * 25.0 - 1.0,
            "{}",
            ms(r.latency)
        );
        assert!(r.sent_ns >= r.intended_ns);
        assert!(r.tpot_ns().is_some());
    }
    // intended times are the constant schedule: 50 ms apart
    assert_eq!(records[7].intended_ns, 350_000_000);
    let mut gaps: Vec<u64> = records
        .iter()
        .flat_map(|r| r.itl_ns.iter().copied())
        .collect();
    gaps.sort_unstable();
    let median = ms(gaps[gaps.len() / 2]);
    assert!((23.0..40.0).contains(&median), "itl median {median} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_generate_reads_details_and_headers() {
    let addr = spawn(Behaviour {
        tokens: 9,
        ..Behaviour::default()
    })
    .await;
    let records = attack_to(
        &url(addr),
        "tgi",
        &[
            "--rate",
            "10/s",
            "--duration",
            "500ms",
            "--max-new-tokens",
            "7",
        ],
    )
    .await;
    assert_eq!(records.len(), 5);
    for r in &records {
        assert!(r.is_success());
        assert_eq!(r.tokens_out, Some(7));
        assert_eq!(r.tokens_in, Some(11)); // from x-prompt-tokens
        assert_eq!(r.ttft_ns, None); // not observable without streaming
        // 40 ms + 6 x 25 ms
        assert!(ms(r.latency) >= 189.0, "{}", ms(r.latency));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_chat_stream_and_completions() {
    let addr = spawn(Behaviour {
        tokens: 6,
        ..Behaviour::default()
    })
    .await;
    let chat = attack_to(
        &url(addr),
        "openai-chat",
        &["--stream", "--rate", "10/s", "--duration", "500ms"],
    )
    .await;
    assert_eq!(chat.len(), 5);
    for r in &chat {
        assert!(r.is_success(), "{r:?}");
        assert_eq!((r.tokens_out, r.tokens_in), (Some(6), Some(9)));
        assert_eq!(r.tokens_source, Some(TokensSource::Server));
        assert!((38.0..120.0).contains(&ms(r.ttft_ns.unwrap())));
        assert_eq!(r.itl_ns.len(), 5);
    }
    let whole = attack_to(
        &url(addr),
        "openai-completions",
        &["--rate", "10/s", "--duration", "300ms"],
    )
    .await;
    assert_eq!(whole.len(), 3);
    assert!(
        whole
            .iter()
            .all(|r| r.is_success() && r.tokens_out == Some(6) && r.ttft_ns.is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastapi_counts_with_a_tokenizer_or_estimates() {
    let addr = spawn(Behaviour {
        tokens: 4,
        ..Behaviour::default()
    })
    .await;
    let estimated = attack_to(
        &url(addr),
        "fastapi",
        &[
            "--rate",
            "10/s",
            "--duration",
            "200ms",
            "--prompt",
            "abcdefgh",
        ],
    )
    .await;
    assert_eq!(estimated.len(), 2);
    for r in &estimated {
        assert!(r.is_success());
        // " w0 w1 w2 w3" is 12 characters: 3 tokens at 4 characters a token
        assert_eq!(
            (r.tokens_out, r.tokens_source),
            (Some(3), Some(TokensSource::Estimate))
        );
        assert_eq!(r.tokens_in, Some(2));
        assert!(r.url.ends_with("/predict"));
    }
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("tokenizer.json");
    write_word_tokenizer(&tok);
    let counted = attack_to(
        &url(addr),
        "fastapi",
        &[
            "--rate",
            "10/s",
            "--duration",
            "100ms",
            "--prompt",
            "w1 w2 w3 w4 w5 w6 w7",
            "--tokenizer",
            tok.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(counted.len(), 1);
    assert_eq!(
        (counted[0].tokens_out, counted[0].tokens_source),
        (Some(4), Some(TokensSource::Tokenizer))
    );
    assert_eq!(counted[0].tokens_in, Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_get_and_record_keys() {
    let addr = spawn(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.jsonl");
    let target = format!("http://{addr}/");
    let code = rpload::run_async(cli(&[
        "attack",
        "--api",
        "http",
        "--target",
        &target,
        "--rate",
        "50/s",
        "--duration",
        "200ms",
        "-o",
        out.to_str().unwrap(),
        "--name",
        "smoke",
    ]))
    .await
    .unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 10);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let ours = ["intended_ns", "sent_ns"];
    for key in rpload::record::VEGETA_KEYS.iter().chain(&ours) {
        assert!(first.get(key).is_some(), "missing {key} in {first}");
    }
    assert_eq!(first["attack"], "smoke");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["bytes_in"], 5);
    assert!(
        first.get("tokens_out").is_none(),
        "plain HTTP has no token fields"
    );
}
