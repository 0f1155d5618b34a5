//! A sweep without `--target` starts the embedded reference server in-process, measures it,
//! and stops it.

use rpload::cli::SweepArgs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targetless_sweep_uses_the_embedded_server() {
    let dir = tempfile::tempdir().unwrap();
    let args = SweepArgs {
        // Enough requests a step (12 and 20), spaced wider than the CPU server's latency, for the
        // verdict to tell: a 2-request step is undetermined, and a sweep of those exits 1.
        rps: Some("3,5".into()),
        step_duration: Some("4s".into()),
        cooldown: Some("0s".into()),
        max_new_tokens: Some(4),
        max_send_lag: Some("100ms".into()),
        serve_model: "tiny".into(),
        serve_engine: "continuous".into(),
        out: Some(dir.path().to_path_buf()),
        quiet: true,
        ..Default::default()
    };
    let code = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        rpload::sweep::run::run_cli(args),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        code,
        std::process::ExitCode::SUCCESS,
        "a step was sustainable"
    );
    let csv = std::fs::read_to_string(dir.path().join("steps.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("embedded reference server"), "{md}");
    let scenario = std::fs::read_to_string(dir.path().join("scenario.toml")).unwrap();
    assert!(
        !scenario.contains("target"),
        "the as-run scenario keeps no ephemeral port: {scenario}"
    );
}

#[tokio::test]
async fn a_bad_embedded_model_fails_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let args = SweepArgs {
        rps: Some("1".into()),
        serve_model: "no-such-model".into(),
        serve_engine: "continuous".into(),
        out: Some(dir.path().to_path_buf()),
        quiet: true,
        ..Default::default()
    };
    let err = rpload::sweep::run::run_cli(args).await.unwrap_err();
    assert!(format!("{err:#}").contains("no-such-model"), "{err:#}");
    assert!(!dir.path().join("results.jsonl").exists());
}
