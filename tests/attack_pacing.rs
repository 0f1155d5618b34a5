//! Open-loop behaviour on virtual time (tokio's paused clock drives the pacer, the loopback
//! server's delays and the attacker's timestamps, so every figure is exact and a schedule takes
//! no wall time): requests leave on schedule whatever the server does; the in-flight cap turns
//! waiting into send lag (flagged `capped`) instead of dropping or re-timing; closed loops,
//! Poisson arrivals and stopping.

mod common;

use std::time::Duration;

use common::{Behaviour, attack_on_virtual_time, spawn, url};

const MS: u64 = 1_000_000;

async fn attack_at(target: &str, rest: &[&str]) -> Vec<rpload::record::Record> {
    let mut argv = vec!["--api", "tgi", "--target", target];
    argv.extend_from_slice(rest);
    attack_on_virtual_time(&argv).await
}

#[tokio::test(start_paused = true)]
async fn a_slow_server_still_gets_every_tick_on_time() {
    // Each answer takes 400 ms; at 40/s sixteen requests are in flight at once.
    let addr = spawn(Behaviour {
        ttft: Duration::from_millis(400),
        tokens: 1,
        ..Behaviour::default()
    })
    .await;
    let records = attack_at(&url(addr), &["--rate", "40/s", "--duration", "1s"]).await;
    assert_eq!(records.len(), 40);
    for r in &records {
        assert!(r.is_success(), "{}", r.error);
        assert!(!r.capped);
        assert_eq!(r.intended_ns, r.seq * 25 * MS);
        assert_eq!(r.send_lag_ns(), 0, "request {} left late", r.seq);
        assert_eq!(r.latency, 400 * MS, "request {}", r.seq);
    }
}

#[tokio::test(start_paused = true)]
async fn the_inflight_cap_shows_as_send_lag_and_latency() {
    // Two slots, 200 ms each, 20 requests due every 50 ms. Requests 0 and 1 find a free slot;
    // from then on slots free up at 200 ms + 200 ms x n, so request k (k >= 2) is sent at
    // 200 * (k / 2) + 50 * (k % 2) ms, later than its due time 50 * k ms.
    let addr = spawn(Behaviour {
        ttft: Duration::from_millis(200),
        tokens: 1,
        ..Behaviour::default()
    })
    .await;
    let records = attack_at(
        &url(addr),
        &["--rate", "20/s", "--duration", "1s", "--max-inflight", "2"],
    )
    .await;
    assert_eq!(records.len(), 20, "nothing is dropped");
    for r in &records {
        let k = r.seq;
        let sent = if k < 2 {
            50 * k
        } else {
            200 * (k / 2) + 50 * (k % 2)
        };
        assert_eq!(
            r.intended_ns,
            50 * k * MS,
            "request {k} keeps its intended time"
        );
        assert_eq!(r.sent_ns, sent * MS, "request {k}");
        assert_eq!(
            r.latency,
            (sent + 200 - 50 * k) * MS,
            "latency counts from the due time"
        );
        assert_eq!(r.capped, k >= 2, "request {k}");
    }
    let mut m = rpload::metrics::Metrics::default();
    records.iter().for_each(|r| m.add(r));
    assert!(!m.summary().client_kept_up);
}

#[tokio::test(start_paused = true)]
async fn closed_loop_sends_exactly_max_requests() {
    // Three users, 10 ms per answer: 30 requests take ten rounds, each sent the moment the
    // user's previous answer arrived.
    let addr = spawn(Behaviour {
        ttft: Duration::from_millis(10),
        tokens: 1,
        ..Behaviour::default()
    })
    .await;
    let records = attack_at(
        &url(addr),
        &["--rate", "0", "--max-inflight", "3", "--max-requests", "30"],
    )
    .await;
    assert_eq!(records.len(), 30);
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..30).collect::<Vec<_>>()
    );
    for r in &records {
        assert_eq!(r.send_lag_ns(), 0);
        assert_eq!(r.latency, 10 * MS);
        assert_eq!(r.intended_ns, r.seq / 3 * 10 * MS, "request {}", r.seq);
    }
}

#[tokio::test(start_paused = true)]
async fn poisson_arrivals_are_reproducible() {
    let addr = spawn(Behaviour {
        ttft: Duration::from_millis(1),
        tokens: 1,
        ..Behaviour::default()
    })
    .await;
    let target = url(addr);
    let run = |seed: &'static str| {
        let target = target.clone();
        async move {
            let rest = [
                "--rate",
                "100/s",
                "--duration",
                "1s",
                "--arrival",
                "poisson",
                "--seed",
                seed,
            ];
            attack_at(&target, &rest)
                .await
                .into_iter()
                .map(|r| {
                    // tokio's timer wakes on whole milliseconds, and Poisson times are not.
                    assert!(r.send_lag_ns() < MS, "send lag {} ns", r.send_lag_ns());
                    r.intended_ns
                })
                .collect::<Vec<_>>()
        }
    };
    let a = run("5").await;
    assert_eq!(a, run("5").await);
    assert_ne!(a, run("6").await);
    // 100 expected; a Poisson count has sd 10.
    assert!((60..140).contains(&a.len()), "{}", a.len());
    let gaps: Vec<u64> = a.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().any(|g| *g < 3 * MS) && gaps.iter().any(|g| *g > 20 * MS),
        "gaps look constant"
    );
}

#[tokio::test(start_paused = true)]
async fn stopping_keeps_every_finished_record() {
    // 50/s for 10 s, stopped at 510 ms: the ticks at 0, 20, ..., 500 ms were scheduled and
    // each of those 26 requests (20 ms) is waited for and recorded.
    let addr = spawn(Behaviour {
        ttft: Duration::from_millis(20),
        tokens: 1,
        ..Behaviour::default()
    })
    .await;
    let target = url(addr);
    let mut cfg = rpload::commands::attack::config(&common::attack_args(&[
        "--api",
        "tgi",
        "--target",
        &target,
        "--rate",
        "50/s",
        "--duration",
        "10s",
    ]))
    .unwrap();
    cfg.clock = rpload::attack::clock::ClockKind::Tokio;
    let control = rpload::attack::Control::default();
    let stop = control.stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(510)).await;
        stop.cancel();
    });
    let mut records = Vec::new();
    let started = tokio::time::Instant::now();
    let stats = rpload::attack::run(cfg, control, &mut records)
        .await
        .unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(520),
        "the last request ends 20 ms after its tick at 500 ms"
    );
    assert!(stats.interrupted);
    assert_eq!(
        (stats.scheduled, stats.completed),
        (26, 26),
        "in-flight requests were waited for"
    );
    assert_eq!(records.len(), 26);
    assert!(records.iter().all(|r| r.is_success()));
}
