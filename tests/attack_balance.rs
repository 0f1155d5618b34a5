//! One attack over several targets (`--target` repeated): two in-process mock servers of known,
//! different capacities (`--mock-concurrency`), round-robin and least-inflight spreading,
//! per-target reports (`report --by target`), a target that refuses connections, and the
//! errors for a target given twice or an unknown policy.

mod common;
mod server_common;

use clap::Parser;
use rpload::commands::{Cli, Command};
use rpload::record::Record;
use server_common::TestServer;
use std::collections::BTreeMap;

/// `rpload serve --engine mock` with a 40 ms answer of one token and at most `slots` at once:
/// a capacity of `slots / 40 ms`.
async fn replica(slots: usize) -> TestServer {
    let slots = slots.to_string();
    let argv = [
        "rpload",
        "serve",
        "--engine",
        "mock",
        "--ttft",
        "40ms",
        "--tokens",
        "1",
        "--mock-concurrency",
        &slots,
    ];
    let Command::Serve(args) = Cli::parse_from(argv).command else {
        unreachable!("a serve command")
    };
    TestServer::start(args.config().expect("valid mock flags")).await
}

/// 320 TGI requests at 160 req/s over `targets` with `balance`.
async fn spread(targets: &[String], balance: &str) -> Vec<Record> {
    let mut argv = vec!["--api", "tgi", "--rate", "160", "--duration", "2s"];
    argv.extend([
        "--balance",
        balance,
        "--workers",
        "1",
        "--max-new-tokens",
        "1",
    ]);
    for t in targets {
        argv.extend(["--target", t.as_str()]);
    }
    common::attack(&argv).await
}

fn by_url(records: &[Record]) -> BTreeMap<String, Vec<&Record>> {
    let mut m: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for r in records {
        m.entry(r.url.clone()).or_default().push(r);
    }
    m
}

fn p90_ms(records: &[&Record]) -> f64 {
    let mut l: Vec<u64> = records.iter().map(|r| r.latency).collect();
    l.sort_unstable();
    l[l.len() * 9 / 10] as f64 / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_spread_by_policy_over_replicas_of_different_capacity() {
    // 50 req/s and 200 req/s of capacity; 160 req/s offered.
    let (small, big) = (replica(2).await, replica(8).await);
    let targets = vec![small.url("/generate"), big.url("/generate")];

    let rr = spread(&targets, "round-robin").await;
    assert_eq!(rr.len(), 320);
    let failed = |rs: &[Record]| -> Vec<String> {
        (rs.iter().filter(|r| !r.error.is_empty()))
            .map(|r| format!("{} {} {}", r.url, r.code, r.error))
            .collect()
    };
    assert_eq!(failed(&rr), Vec::<String>::new(), "every request answered");
    // Round-robin goes by the request's index: even ones to the first target.
    for r in &rr {
        assert_eq!(r.url, targets[(r.seq % 2) as usize], "seq {}", r.seq);
    }
    let rr_by = by_url(&rr);
    assert_eq!(rr_by[&targets[0]].len(), 160);
    // The small replica gets 80 req/s against its 50: a queue that grows all run.
    let rr_small = p90_ms(&rr_by[&targets[0]]);
    let rr_big = p90_ms(&rr_by[&targets[1]]);
    assert!(rr_small > 2.0 * rr_big, "{rr_small} ms vs {rr_big} ms");

    let li = spread(&targets, "least-inflight").await;
    assert_eq!(li.len(), 320);
    assert_eq!(failed(&li), Vec::<String>::new());
    let li_by = by_url(&li);
    let li_small = li_by[&targets[0]].len();
    assert_eq!(li_small + li_by[&targets[1]].len(), 320);
    // The slow replica holds its requests longer, so it is picked less, and its queue (the
    // latency round-robin gave it) mostly goes away.
    assert!(
        li_small < 140,
        "least-inflight sent {li_small} of 320 to the small replica"
    );
    let li_small_p90 = p90_ms(&li_by[&targets[0]]);
    eprintln!(
        "small replica: round-robin 160 requests, p90 {rr_small:.1} ms (big {rr_big:.1} ms); \
         least-inflight {li_small} requests, p90 {li_small_p90:.1} ms"
    );
    assert!(
        li_small_p90 < rr_small / 2.0,
        "small replica p90: {li_small_p90} ms least-inflight, {rr_small} ms round-robin"
    );
    small.stop().await;
    big.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_by_target_and_a_refusing_target() {
    let live = replica(8).await;
    // A port with nothing listening: bound, then let go.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/generate", l.local_addr().unwrap())
    };
    let targets = [live.url("/generate"), dead.clone()];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.jsonl");
    let out = dir.path().join("by.json");
    let file_s = file.to_str().unwrap();
    let argv = [
        "attack",
        "--api",
        "tgi",
        "--max-new-tokens",
        "1",
        "--rate",
        "40",
        "--duration",
        "1s",
        "--target",
        &targets[0],
        "--target",
        &targets[1],
        "-o",
        file_s,
    ];
    rpload::run_async(common::cli(&argv)).await.unwrap();
    let records: Vec<Record> = rpload::record::open(&file)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 40, "no request lost");
    for r in &records {
        if r.url == dead {
            assert_eq!(r.code, 0);
            assert!(!r.error.is_empty(), "refused: recorded as a failure");
        } else {
            assert_eq!(
                (r.code, r.error.as_str()),
                (200, ""),
                "the live one goes on"
            );
        }
    }

    let argv = ["report", "--by", "target", "--type", "json", file_s, "-o"];
    let mut argv = argv.to_vec();
    argv.push(out.to_str().unwrap());
    rpload::run_async(common::cli(&argv)).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["all"]["requests"], 40);
    assert_eq!(v["all"]["success"], 0.5);
    let by = v["by_target"].as_object().unwrap();
    assert_eq!(by.len(), 2);
    assert_eq!(by[&targets[0]]["requests"], 20);
    assert_eq!(by[&targets[0]]["success"], 1.0);
    assert_eq!(by[&targets[1]]["requests"], 20);
    assert_eq!(by[&targets[1]]["success"], 0.0);

    // The text report: the overall one, then one under each target's heading.
    let argv = ["report", "--by", "target", file_s, "-o"];
    let mut argv = argv.to_vec();
    argv.push(out.to_str().unwrap());
    rpload::run_async(common::cli(&argv)).await.unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    for t in &targets {
        assert!(text.contains(&format!("target {t}\n")), "{text}");
    }
    assert_eq!(text.matches("Requests").count(), 3, "{text}");
    live.stop().await;
}

#[test]
fn bad_targets_and_policies_are_refused_by_name() {
    let err = |argv: &[&str]| {
        let args = common::attack_args(argv);
        rpload::commands::attack::config(&args)
            .unwrap_err()
            .to_string()
    };
    let e = err(&[
        "--target",
        "http://127.0.0.1:9",
        "--target",
        "http://127.0.0.1:9/generate",
        "--rate",
        "1",
        "--duration",
        "1s",
    ]);
    assert!(
        e.contains("--target http://127.0.0.1:9/generate is given twice"),
        "{e}"
    );
    let e = err(&[
        "--target",
        "http://127.0.0.1:9",
        "--balance",
        "random",
        "--rate",
        "1",
    ]);
    assert!(e.contains("unknown --balance \"random\""), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("t.txt");
    std::fs::write(
        &targets,
        "GET http://127.0.0.1:9/a\nGET http://127.0.0.1:9/b\n",
    )
    .unwrap();
    let e = err(&[
        "--targets",
        targets.to_str().unwrap(),
        "--balance",
        "least-inflight",
        "--rate",
        "1",
    ]);
    assert!(e.contains("--balance least-inflight"), "{e}");
}
