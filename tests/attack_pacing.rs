//! Open-loop behaviour: requests leave on schedule whatever the server does; the in-flight cap
//! turns waiting into send lag (flagged `capped`) instead of dropping or re-timing; closed loops
//! and Poisson arrivals.

mod common;

use std::time::Duration;

use common::{Behaviour, attack_to, ms, spawn, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_still_gets_every_tick_on_time() {
    // Each answer takes 400 ms; at 40/s about 16 requests are in flight at once.
    let addr = spawn(Behaviour {
        ttft: Duration::from_millis(400),
        tokens: 1,
        ..Behaviour::default()
    })
    .await;
    let records = attack_to(&url(addr), "tgi", &["--rate", "40/s", "--duration", "1s"]).await;
    assert_eq!(records.len(), 40);
    for r in &records {
        assert!(r.is_success());
        assert!(!r.capped);
        assert!(
            ms(r.send_lag_ns()) < 20.0,
            "send lag {} ms",
            ms(r.send_lag_ns())
        );
        assert!(ms(r.latency) >= 400.0);
        assert_eq!(r.intended_ns, r.seq * 25_000_000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inflight_cap_shows_as_send_lag_and_latency() {
    // Two slots, 200 ms each, 20 requests at 20/s: the queue grows by 8 per second.
    let addr = spawn(Behaviour {
        ttft: Duration::from_millis(200),
        tokens: 1,
        ..Behaviour::default()
    })
    .await;
    let records = attack_to(
        &url(addr),
        "tgi",
        &["--rate", "20/s", "--duration", "1s", "--max-inflight", "2"],
    )
    .await;
    assert_eq!(records.len(), 20, "nothing is dropped");
    assert!(records.iter().filter(|r| r.capped).count() >= 10);
    let last = records.last().unwrap();
    // Served two at a time, the 20th request starts at about 9 x 200 ms = 1.8 s although it
    // was due at 950 ms; its latency counts from 950 ms.
    assert_eq!(last.intended_ns, 950_000_000);
    assert!(ms(last.send_lag_ns()) > 700.0, "{}", ms(last.send_lag_ns()));
    assert!(ms(last.latency) > 900.0, "{}", ms(last.latency));
    let mut m = rpload::metrics::Metrics::default();
    records.iter().for_each(|r| m.add(r));
    assert!(!m.summary().client_kept_up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_sends_exactly_max_requests() {
    let addr = spawn(Behaviour {
        ttft: Duration::from_millis(10),
        tokens: 1,
        ..Behaviour::default()
    })
    .await;
    let records = attack_to(
        &url(addr),
        "tgi",
        &["--rate", "0", "--max-inflight", "3", "--max-requests", "30"],
    )
    .await;
    assert_eq!(records.len(), 30);
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..30).collect::<Vec<_>>()
    );
    assert!(records.iter().all(|r| r.send_lag_ns() < 5_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisson_arrivals_are_reproducible() {
    let addr = spawn(Behaviour {
        ttft: Duration::from_millis(1),
        tokens: 1,
        ..Behaviour::default()
    })
    .await;
    let target = format!("http://{addr}");
    let run = |seed: &'static str| {
        let target = target.clone();
        async move {
            attack_to(
                &target,
                "tgi",
                &[
                    "--rate",
                    "100/s",
                    "--duration",
                    "1s",
                    "--arrival",
                    "poisson",
                    "--seed",
                    seed,
                ],
            )
            .await
            .into_iter()
            .map(|r| r.intended_ns)
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
        gaps.iter().any(|g| *g < 3_000_000) && gaps.iter().any(|g| *g > 20_000_000),
        "gaps look constant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_keeps_every_finished_record() {
    let addr = spawn(Behaviour {
        ttft: Duration::from_millis(20),
        tokens: 1,
        ..Behaviour::default()
    })
    .await;
    let target = format!("http://{addr}");
    let cfg = rpload::commands::attack::config(&common::attack_args(&[
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
    let control = rpload::attack::Control::default();
    let stop = control.stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.cancel();
    });
    let mut records = Vec::new();
    let started = std::time::Instant::now();
    let stats = rpload::attack::run(cfg, control, &mut records)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(stats.interrupted);
    assert_eq!(stats.completed as usize, records.len());
    assert_eq!(
        stats.scheduled, stats.completed,
        "in-flight requests were waited for"
    );
    assert!((20..=30).contains(&records.len()), "{}", records.len());
    assert!(records.iter().all(|r| r.is_success()));
}
