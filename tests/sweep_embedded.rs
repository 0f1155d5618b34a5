//! A sweep without `--target` starts the embedded reference server in-process, measures it,
//! and stops it.

use clap::Parser;
use rpload::commands::SweepArgs;

fn sweep_args(flags: &[&str]) -> SweepArgs {
    let mut argv = vec!["rpload", "sweep"];
    argv.extend_from_slice(flags);
    match rpload::commands::Cli::parse_from(argv).command {
        rpload::commands::Command::Sweep(a) => *a,
        other => unreachable!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targetless_sweep_uses_the_embedded_server() {
    let dir = tempfile::tempdir().unwrap();
    // Enough requests a step (12 and 20), spaced wider than the CPU server's latency, for the
    // verdict to tell: a 2-request step is undetermined, and a sweep of those exits 1.
    let args = sweep_args(&[
        "--rps",
        "3,5",
        "--step-duration",
        "4s",
        "--cooldown",
        "0s",
        "--max-new-tokens",
        "4",
        "--max-send-lag",
        "100ms",
        "--serve-model",
        "tiny",
        "--serve-engine",
        "continuous",
        "--out",
        dir.path().to_str().unwrap(),
        "--quiet",
    ]);
    let code = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        rpload::commands::sweep::run(args),
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
    let args = sweep_args(&[
        "--rps",
        "1",
        "--serve-model",
        "no-such-model",
        "--engine",
        "continuous",
        "--out",
        dir.path().to_str().unwrap(),
        "--quiet",
    ]);
    let err = rpload::commands::sweep::run(args).await.unwrap_err();
    assert!(format!("{err:#}").contains("no-such-model"), "{err:#}");
    assert!(!dir.path().join("results.jsonl").exists());
}
