//! Faults are data: each failure mode becomes a record with its `error_kind`, the run goes on,
//! and the report counts them.

mod common;

use std::time::Duration;

use common::{Behaviour, Fault, attack, attack_to, spawn, url};
use rpload::record::ErrorKind;

async fn kinds_for(
    fault: Fault,
    api: &str,
    extra: &[&str],
) -> Vec<(u16, Option<ErrorKind>, String)> {
    let addr = spawn(Behaviour {
        fault,
        ..Behaviour::default()
    })
    .await;
    let mut rest = vec!["--rate", "10/s", "--duration", "300ms"];
    rest.extend_from_slice(extra);
    attack_to(&url(addr), api, &rest)
        .await
        .into_iter()
        .map(|r| (r.code, r.error_kind, r.error))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_map_to_kinds_with_the_servers_reason() {
    let got = kinds_for(Fault::Status(429), "tgi", &[]).await;
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|(c, k, e)| *c == 429
            && *k == Some(ErrorKind::Status429)
            && e == "429 Too Many Requests: injected 429"),
        "{got:?}"
    );
    let got = kinds_for(Fault::Status(503), "openai-chat", &[]).await;
    assert!(
        got.iter()
            .all(|(c, k, _)| *c == 503 && *k == Some(ErrorKind::Status5xx))
    );
    let got = kinds_for(Fault::Status(422), "fastapi", &[]).await;
    assert!(got.iter().all(|(_, k, _)| *k == Some(ErrorKind::Status4xx)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_and_broken_streams() {
    let got = kinds_for(Fault::NotJson, "tgi", &[]).await;
    assert!(
        got.iter()
            .all(|(c, k, e)| *c == 200 && *k == Some(ErrorKind::Body) && e.contains("not JSON")),
        "{got:?}"
    );
    let got = kinds_for(Fault::Truncate(2), "tgi-stream", &[]).await;
    assert!(
        got.iter()
            .all(|(_, k, e)| *k == Some(ErrorKind::Stream) && e.contains("after 2 token events")),
        "{got:?}"
    );
    let got = kinds_for(Fault::Truncate(3), "openai-completions", &["--stream"]).await;
    assert!(
        got.iter()
            .all(|(_, k, e)| *k == Some(ErrorKind::Stream) && e.contains("[DONE]")),
        "{got:?}"
    );
    let got = kinds_for(Fault::ErrorEvent, "tgi-stream", &[]).await;
    assert!(
        got.iter()
            .all(|(_, k, e)| *k == Some(ErrorKind::Stream) && e.contains("boom")),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_recorded_near_the_limit() {
    let addr = spawn(Behaviour {
        fault: Fault::Hang(Duration::from_secs(5)),
        ..Behaviour::default()
    })
    .await;
    let started = std::time::Instant::now();
    let records = attack_to(
        &url(addr),
        "tgi",
        &[
            "--rate",
            "10/s",
            "--duration",
            "200ms",
            "--timeout",
            "300ms",
        ],
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the attack waited past the timeout"
    );
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!((r.code, r.error_kind), (0, Some(ErrorKind::Timeout)));
        assert!(
            (300.0..450.0).contains(&common::ms(r.latency)),
            "{}",
            r.latency
        );
        assert_eq!(r.error, "timeout after 300ms");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_connect_errors() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("http://127.0.0.1:{port}");
    let records = attack_to(
        &target,
        "tgi-stream",
        &["--rate", "20/s", "--duration", "250ms"],
    )
    .await;
    assert_eq!(records.len(), 5);
    assert!(
        records
            .iter()
            .all(|r| r.code == 0 && r.error_kind == Some(ErrorKind::Connect)),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .all(|r| r.tokens_out.is_none() && !r.error.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failure_does_not_lose_the_others_and_the_report_counts_them() {
    // Two targets round-robined: one answers, one is refused.
    let ok = spawn(Behaviour::default()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("targets.txt");
    std::fs::write(
        &targets,
        format!("GET http://{ok}/\n\nGET http://127.0.0.1:{port}/\n"),
    )
    .unwrap();
    let records = attack(&[
        "--targets",
        targets.to_str().unwrap(),
        "--rate",
        "40/s",
        "--duration",
        "500ms",
    ])
    .await;
    assert_eq!(records.len(), 20);
    let mut m = rpload::metrics::Metrics::default();
    records.iter().for_each(|r| m.add(r));
    let s = m.summary();
    assert_eq!(s.status_codes["200"], 10);
    assert_eq!(s.status_codes["0"], 10);
    assert_eq!(s.error_kinds["connect"], 10);
    assert!((s.success - 0.5).abs() < 1e-12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_errors_sets_the_exit_status() {
    let failing = spawn(Behaviour {
        fault: Fault::Status(503),
        ..Behaviour::default()
    })
    .await;
    let healthy = spawn(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.jsonl");
    let run = |target: String, ratio: &'static str| {
        let out = out.display().to_string();
        async move {
            rpload::run_async(common::cli(&[
                "attack",
                "--api",
                "tgi",
                "--target",
                &target,
                "--rate",
                "20/s",
                "--duration",
                "250ms",
                "--fail-on-errors",
                ratio,
                "-o",
                &out,
            ]))
            .await
        }
    };
    let code = run(url(failing), "5%").await.unwrap();
    assert_eq!(code, std::process::ExitCode::from(rpload::exit::FAILED));
    // Every record is still on disk.
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 5);
    let code = run(url(healthy), "0.05").await.unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let err = run(url(healthy), "150%").await.unwrap_err();
    assert_eq!(rpload::exit::code(&err), rpload::exit::BAD_INPUT);
    assert!(err.to_string().contains("--fail-on-errors `150%`"), "{err}");
}
