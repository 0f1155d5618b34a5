//! `attack --workers N` against the loopback fake server: N in-process parts of one schedule
//! send exactly the requests one driver sends (the same indices at the same offsets, the same
//! request at each), with latency medians within HDR precision plus 1 ms; closed-loop users
//! and `--max-requests` are dealt to the parts without losing or repeating a request; and a
//! bad count is refused by name.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Behaviour, attack, attack_args, spawn, url};
use rpload::record::Record;

/// The tests compare timings: one attack at a time on a 2-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn by_seq(records: Vec<Record>) -> BTreeMap<u64, Record> {
    records.into_iter().map(|r| (r.seq, r)).collect()
}

/// Nearest-rank median of the successful requests' latencies, in ns.
fn median(records: &BTreeMap<u64, Record>) -> f64 {
    let mut v: Vec<u64> = records
        .values()
        .filter(|r| r.error.is_empty())
        .map(|r| r.latency)
        .collect();
    v.sort_unstable();
    v[(v.len() - 1) / 2] as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_send_what_one_does() {
    let _one = ONE_AT_A_TIME.lock().await;
    let addr = spawn(Behaviour {
        ttft: Duration::from_millis(10),
        itl: Duration::from_millis(5),
        ..Behaviour::default()
    })
    .await;
    let target = url(addr);
    let run = |workers: &'static str| {
        let target = target.clone();
        async move {
            let argv = [
                "--api",
                "tgi-stream",
                "--target",
                target.as_str(),
                "--rate",
                "100/s",
                "--duration",
                "2s",
                "--arrival",
                "poisson",
                "--seed",
                "5",
                "--input-tokens",
                "20",
                "--input-tokens-stdev",
                "8",
                "--output-tokens",
                "4",
                "--workers",
                workers,
            ];
            by_seq(attack(&argv).await)
        }
    };
    let one = run("1").await;
    let two = run("2").await;
    assert!(one.len() > 120, "{} requests", one.len());
    assert_eq!(
        one.keys().collect::<Vec<_>>(),
        two.keys().collect::<Vec<_>>(),
        "the same indices"
    );
    for (seq, a) in &one {
        let b = &two[seq];
        assert_eq!(
            a.intended_ns, b.intended_ns,
            "seq {seq}: due at the same offset"
        );
        assert_eq!(
            (a.bytes_out, a.tokens_in, a.tokens_out_requested, a.code),
            (b.bytes_out, b.tokens_in, b.tokens_out_requested, b.code),
            "seq {seq}: the same request and answer"
        );
        assert!(
            a.shard.is_none() && b.shard.is_none(),
            "workers are not shards"
        );
    }
    let (m1, m2) = (median(&one), median(&two));
    let tol = m1.max(m2) * 1e-3 + 1e6;
    assert!(
        (m1 - m2).abs() <= tol,
        "latency p50: {:.3} ms with 1 worker, {:.3} ms with 2",
        m1 / 1e6,
        m2 / 1e6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_users_and_request_counts_are_dealt_to_workers() {
    let _one = ONE_AT_A_TIME.lock().await;
    let addr = spawn(Behaviour {
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        ..Behaviour::default()
    })
    .await;
    let target = url(addr);
    for (users, workers, max) in [("4", "2", "40"), ("1", "4", "9"), ("8", "4", "3")] {
        let argv = [
            "--api",
            "tgi",
            "--target",
            target.as_str(),
            "--rate",
            "0",
            "--max-inflight",
            users,
            "--max-requests",
            max,
            "--workers",
            workers,
        ];
        let records = attack(&argv).await;
        let seqs: Vec<u64> = by_seq(records).into_keys().collect();
        let n: u64 = max.parse().unwrap();
        assert_eq!(
            seqs,
            (0..n).collect::<Vec<_>>(),
            "{users} users, {workers} workers, {max} requests: each index once"
        );
    }
    // An open loop with fewer requests than workers: the spare workers are not started.
    let argv = [
        "--api",
        "tgi",
        "--target",
        target.as_str(),
        "--rate",
        "50/s",
        "--max-requests",
        "1",
        "--workers",
        "4",
    ];
    assert_eq!(attack(&argv).await.len(), 1);
}

#[test]
fn a_bad_worker_count_is_named() {
    for bad in ["0", "5000"] {
        let args = attack_args(&["--target", "http://127.0.0.1:9", "--workers", bad]);
        let e = rpload::commands::attack::config(&args)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "--workers {bad} is out of range: pass 1 to 1024 (attacker threads; more than the CPUs only adds switching)"
            )
        );
    }
}
