//! The attacker against hostile or broken servers on loopback: bodies and events past their
//! bounds, a stream that is not one, redirects (not followed by default; never carrying custom
//! headers to another origin), credentials kept out of every record, headers from a file and
//! the environment, server-stated token counts the bytes cannot hold, and numeric flags
//! refused with their name and limit.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use rpload::record::{ErrorKind, TokensSource};

/// What the hostile server saw: requests and the headers of the last one.
#[derive(Default)]
struct Seen {
    hits: u64,
    last_headers: Option<HeaderMap>,
    last_uri: Option<Uri>,
}

type Shared = Arc<Mutex<Seen>>;

fn note(seen: &Shared, headers: &HeaderMap, uri: &Uri) {
    let mut s = seen.lock().unwrap();
    s.hits += 1;
    s.last_headers = Some(headers.clone());
    s.last_uri = Some(uri.clone());
}

/// A body of `mib` MiB sent in 64 KiB chunks, with the given content type.
fn big_body(mib: usize, content_type: &'static str) -> Response {
    let chunk = Bytes::from(vec![b'x'; 64 << 10]);
    let stream = futures::stream::iter(
        (0..mib * 16).map(move |_| Ok::<_, std::convert::Infallible>(chunk.clone())),
    );
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn spawn(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `/generate`: a 64 MiB "JSON" answer. `/generate_stream`: one 4 MiB event line, or a JSON
/// answer where a stream was asked for. `/count`: a TGI answer claiming u64::MAX tokens.
async fn hostile(seen: Shared) -> SocketAddr {
    let app = Router::new()
        .route(
            "/generate",
            post(|State(s): State<Shared>, h: HeaderMap, u: Uri| async move {
                note(&s, &h, &u);
                big_body(64, "application/json")
            }),
        )
        .route(
            "/generate_stream",
            post(|h: HeaderMap| async move {
                if h.contains_key("x-want-json") {
                    return (
                        [(header::CONTENT_TYPE, "application/json")],
                        r#"{"generated_text":"x"}"#,
                    )
                        .into_response();
                }
                let mut line = b"data: ".to_vec();
                line.extend(std::iter::repeat_n(b'x', 4 << 20));
                ([(header::CONTENT_TYPE, "text/event-stream")], line).into_response()
            }),
        )
        .route(
            "/count",
            post(|State(s): State<Shared>, h: HeaderMap, u: Uri| async move {
                note(&s, &h, &u);
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    format!(
                        r#"{{"generated_text":" w1 w2","details":{{"generated_tokens":{}}}}}"#,
                        u64::MAX
                    ),
                )
            }),
        )
        .with_state(seen);
    spawn(app).await
}

#[tokio::test]
async fn bodies_past_their_bound_fail_as_body_errors_and_the_rest_is_recorded() {
    let seen = Shared::default();
    let addr = hostile(seen.clone()).await;
    let recs = common::attack_to(
        &format!("http://{addr}/generate"),
        "tgi",
        &["--rate", "20/s", "--max-requests", "8", "--timeout", "30s"],
    )
    .await;
    assert_eq!(recs.len(), 8);
    assert_eq!(seen.lock().unwrap().hits, 8);
    for r in &recs {
        assert_eq!(r.error_kind, Some(ErrorKind::Body), "{}", r.error);
        assert!(
            r.error.contains("--max-body-size 16MiB") || r.error.contains("in flight"),
            "{}",
            r.error
        );
        // Reading stopped at the bound (plus at most one chunk), not at 64 MiB.
        assert!(r.bytes_in <= (16 << 20) + (1 << 20), "read {}", r.bytes_in);
    }
    // With a smaller bound the message names it.
    let recs = common::attack_to(
        &format!("http://{addr}/generate"),
        "tgi",
        &["--max-requests", "1", "--max-body-size", "1MiB"],
    )
    .await;
    assert!(
        recs[0].error.contains("--max-body-size 1MiB"),
        "{}",
        recs[0].error
    );
}

#[tokio::test]
async fn an_event_past_its_bound_and_a_stream_that_is_not_one_are_stream_errors() {
    let addr = hostile(Shared::default()).await;
    let target = format!("http://{addr}/generate_stream");
    let recs = common::attack_to(&target, "tgi-stream", &["--max-requests", "2"]).await;
    for r in &recs {
        assert_eq!(r.error_kind, Some(ErrorKind::Stream), "{}", r.error);
        assert!(r.error.contains("--max-event-size"), "{}", r.error);
    }
    let recs = common::attack_to(
        &target,
        "tgi-stream",
        &["--max-requests", "1", "-H", "x-want-json: 1"],
    )
    .await;
    assert_eq!(recs[0].error_kind, Some(ErrorKind::Stream));
    assert!(
        recs[0].error.contains("not text/event-stream"),
        "{}",
        recs[0].error
    );
}

#[tokio::test]
async fn a_token_count_the_bytes_cannot_hold_falls_back_to_the_estimate() {
    let addr = hostile(Shared::default()).await;
    let recs = common::attack_to(
        &format!("http://{addr}/count"),
        "tgi",
        &["--max-requests", "1"],
    )
    .await;
    let r = &recs[0];
    assert!(r.is_success(), "{}", r.error);
    assert_eq!(r.tokens_source, Some(TokensSource::Estimate));
    assert_eq!(
        r.tokens_out,
        Some(2),
        "\" w1 w2\" is 6 characters: 2 estimated tokens"
    );
}

/// Server A redirects everything to server B, which answers like TGI and notes what it got.
async fn redirect_pair() -> (SocketAddr, Shared) {
    let seen = Shared::default();
    let b = spawn(
        Router::new()
            .route(
                "/generate",
                post(|State(s): State<Shared>, h: HeaderMap, u: Uri| async move {
                    note(&s, &h, &u);
                    axum::Json(serde_json::json!({"generated_text": " w1"}))
                }),
            )
            .with_state(seen.clone()),
    )
    .await;
    let a = spawn(Router::new().route(
        "/generate",
        post(move || async move {
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, format!("http://{b}/generate"))],
            )
        }),
    ))
    .await;
    (a, seen)
}

#[tokio::test]
async fn redirects_are_not_followed_unless_asked_and_never_carry_custom_headers_away() {
    let (a, seen) = redirect_pair().await;
    let target = format!("http://{a}/generate");
    // Default: the 307 is the answer, and an LLM request without its answer failed.
    let recs = common::attack_to(&target, "tgi", &["--max-requests", "1"]).await;
    assert_eq!(recs[0].code, 307);
    assert!(!recs[0].is_success());
    assert!(
        recs[0].error.contains("pass --redirects 1"),
        "{}",
        recs[0].error
    );
    assert_eq!(seen.lock().unwrap().hits, 0);
    // Followed when asked; the record names where it ended.
    let recs =
        common::attack_to(&target, "tgi", &["--max-requests", "1", "--redirects", "1"]).await;
    assert!(recs[0].is_success(), "{}", recs[0].error);
    assert_eq!(seen.lock().unwrap().hits, 1);
    assert!(
        recs[0].url.ends_with("/generate") && recs[0].url != target,
        "{}",
        recs[0].url
    );
    // With a custom header, another origin (another port) is never sent it.
    let recs = common::attack_to(
        &target,
        "tgi",
        &[
            "--max-requests",
            "1",
            "--redirects",
            "1",
            "-H",
            "X-Api-Key: k-123",
        ],
    )
    .await;
    assert!(!recs[0].is_success());
    assert!(
        recs[0].error.contains("another origin"),
        "{}",
        recs[0].error
    );
    assert_eq!(seen.lock().unwrap().hits, 1, "B must not see the request");
}

#[tokio::test]
async fn credentials_never_reach_a_record_and_headers_come_from_a_file_or_the_environment() {
    let seen = Shared::default();
    let addr = hostile(seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("headers");
    std::fs::write(
        &file,
        "# secrets for the run\nAuthorization: Bearer from-file\nX-Team: ml\n",
    )
    .unwrap();
    let target = format!("http://bob:hunter2@{addr}/count?api_key=sk-query&model=m");
    let path = file.to_str().unwrap();
    let recs = common::attack_to(
        &target,
        "tgi",
        &["--max-requests", "1", "--header-file", path],
    )
    .await;
    let line = serde_json::to_string(&recs[0]).unwrap();
    for secret in ["hunter2", "sk-query", "from-file"] {
        assert!(!line.contains(secret), "{secret} in {line}");
    }
    assert!(
        recs[0].url.contains("api_key=<redacted>&model=m"),
        "{}",
        recs[0].url
    );
    {
        let s = seen.lock().unwrap();
        let h = s.last_headers.as_ref().unwrap();
        assert_eq!(h["authorization"], "Bearer from-file");
        assert_eq!(h["x-team"], "ml");
        assert_eq!(
            s.last_uri.as_ref().unwrap().query(),
            Some("api_key=sk-query&model=m")
        );
    }
    // An explicit -H wins over the file.
    common::attack_to(
        &target,
        "tgi",
        &[
            "--max-requests",
            "1",
            "--header-file",
            path,
            "-H",
            "Authorization: Bearer from-flag",
        ],
    )
    .await;
    let auth = |s: &Shared| {
        s.lock().unwrap().last_headers.as_ref().unwrap()["authorization"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(auth(&seen), "Bearer from-flag");
    // A missing header file is named with its cause, once.
    let err = rpload::commands::attack::config(&common::attack_args(&[
        "--target",
        "http://127.0.0.1:9",
        "--header-file",
        "/nonexistent/h",
    ]))
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "reading --header-file /nonexistent/h: no such file or directory"
    );
}

fn config_err(argv: &[&str]) -> String {
    let mut all = vec!["--target", "http://127.0.0.1:9"];
    all.extend_from_slice(argv);
    rpload::commands::attack::config(&common::attack_args(&all))
        .unwrap_err()
        .to_string()
}

#[test]
fn numeric_flags_are_refused_with_their_name_and_limit() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--rate", "1e9"],
            "--rate 1000000000/1s: is above the 1000000 req/s",
        ),
        (&["--rate", "-5"], "--rate: invalid rate \"-5\""),
        (
            &["--temperature", "nan"],
            "--temperature NaN: must be between 0 and 100",
        ),
        (
            &["--temperature", "-1"],
            "--temperature -1: must be between 0 and 100",
        ),
        (
            &["--top-p", "1.5"],
            "--top-p 1.5: must be above 0 and at most 1",
        ),
        (&["--top-k", "0"], "--top-k 0: must be at least 1"),
        (
            &["--repetition-penalty", "0"],
            "--repetition-penalty 0: must be above 0",
        ),
        (
            &["--max-requests", "0"],
            "--max-requests 0: must be at least 1",
        ),
        (
            &["--max-inflight", "5000000"],
            "--max-inflight 5000000: is above 1000000",
        ),
        (
            &["--max-body-size", "12"],
            "--max-body-size 12: must be between 1KiB and 4GiB",
        ),
        (
            &["--max-event-size", "lots"],
            "--max-event-size: invalid size \"lots\"",
        ),
        (
            &["--redirects", "1000"],
            "--redirects 1000: is above 100 hops",
        ),
    ];
    for (argv, want) in cases {
        let err = config_err(argv);
        assert!(err.starts_with(want), "{argv:?}: {err}");
    }
    let err = config_err(&["--rate", "0", "--max-rate", "-3", "--max-requests", "5"]);
    assert!(err.starts_with("--max-rate -3: must be"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_api_key_from_the_environment_is_sent_as_a_bearer_token() {
    let seen = Shared::default();
    let app = Router::new()
        .route(
            "/v1/completions",
            post(|State(s): State<Shared>, h: HeaderMap, u: Uri| async move {
                note(&s, &h, &u);
                axum::Json(serde_json::json!({"choices": [{"text": " w1"}]}))
            }),
        )
        .with_state(seen.clone());
    let addr = spawn(app).await;
    // A child process, so the variable is set for that run only (tests share one environment).
    let target = common::url(addr);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_rpload"))
            .args(["attack", "--api", "openai-completions", "--target", &target])
            .args(["--max-requests", "1", "-o", "-"])
            .env("OPENAI_API_KEY", "sk-env")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("sk-env"), "{stdout}");
    let s = seen.lock().unwrap();
    assert_eq!(
        s.last_headers.as_ref().unwrap()["authorization"],
        "Bearer sk-env"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_writes_no_credential_and_its_re_run_asks_for_them_again() {
    let addr = common::spawn(common::Behaviour {
        ttft: std::time::Duration::from_millis(2),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let target = format!("http://bob:hunter2@{addr}/generate?token=tok-q");
    let sweep = |args: Vec<String>| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rpload"))
            .arg("sweep")
            .args(args)
            .output()
            .unwrap()
    };
    let first: Vec<String> = [
        "--target",
        &target,
        "-H",
        "Authorization: Bearer sk-header",
        "-H",
        "X-Api-Key: sk-key",
        "--rps",
        "5",
        "--step-duration",
        "1s",
        "--initial-warmup",
        "0s",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
    ]
    .map(String::from)
    .into();
    let out = tokio::task::spawn_blocking(move || sweep(first.clone()))
        .await
        .unwrap();
    // The verdict of a 1-second step is not this test's business: 0 or 1, the run completed.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut checked = 0;
    for entry in std::fs::read_dir(&run).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in ["hunter2", "tok-q", "sk-header", "sk-key"] {
            assert!(!text.contains(secret), "{secret} in {}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} files in the run folder");
    let scenario = std::fs::read_to_string(run.join("scenario.toml")).unwrap();
    assert!(scenario.contains("Authorization: <redacted>"), "{scenario}");
    // Re-running the as-run scenario names the header to pass again instead of sending the mark.
    let again: Vec<String> = [
        "--scenario",
        run.join("scenario.toml").to_str().unwrap(),
        "--out",
        dir.path().join("again").to_str().unwrap(),
    ]
    .map(String::from)
    .into();
    let out = tokio::task::spawn_blocking(move || sweep(again.clone()))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("was redacted"), "{err}");
}
