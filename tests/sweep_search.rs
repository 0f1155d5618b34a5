//! `sweep --search` against loopback servers of known capacity (`CapacityServer`: `slots`
//! requests at once, each held `hold`, so exactly `slots / hold` req/s): the search lands within
//! its precision of that capacity in about a dozen steps, says so when a bound already holds or
//! already fails, re-runs its answer with `--confirm`, searches users on the concurrency axis,
//! and leaves a run folder that `report --sweep` rebuilds byte for byte.

mod sweep_common;

use std::time::Duration;

use rpload::analysis::search::Outcome;
use rpload::analysis::summary::SweepSummary;
use rpload::sweep::output;
use sweep_common::{CapacityServer, ONE_AT_A_TIME, explain, sweep_cli};

const HOLD: Duration = Duration::from_millis(100);

/// `rpload sweep --search` against `server` with `extra` flags (2 s steps, no pauses).
async fn search(
    server: &CapacityServer,
    dir: &std::path::Path,
    extra: &[&str],
) -> (u8, SweepSummary) {
    let url = server.url();
    let mut args = vec![
        "--target",
        &url,
        "--api",
        "tgi",
        "--max-new-tokens",
        "1",
        "--search",
        "--step-duration",
        "2s",
        "--initial-warmup",
        "0s",
        "--cooldown",
        "0s",
        "--price-per-hour",
        "1.624",
    ];
    args.extend_from_slice(extra);
    let (code, summary) = sweep_cli(dir, &args).await;
    (code, summary.expect("the search wrote a run folder"))
}

fn order(s: &SweepSummary) -> Vec<f64> {
    s.steps.iter().map(|r| r.level()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_a_known_capacity_within_its_precision() {
    let _one = ONE_AT_A_TIME.lock().await;
    // 4 slots of 100 ms: 40 req/s.
    let server = CapacityServer::start(4, HOLD, None).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, s) = search(
        &server,
        dir.path(),
        &["--rps", "5..200", "--precision", "10%"],
    )
    .await;
    let why = explain(&s);
    assert_eq!(code, 0, "{why}");
    let found = s.search.as_ref().unwrap();
    let Some(Outcome::Found { level, above }) = found.outcome else {
        panic!("{:?}\n{why}", found.outcome);
    };
    // The verdict's own bound lets a rate up to 40 / 0.95 pass; the search must not answer
    // further than its precision below the capacity, nor above what the rule allows.
    assert!(
        (36.0..=42.2).contains(&level),
        "answer {level}..{above}\n{why}"
    );
    assert!((above - level) / level <= 0.10, "{level}..{above}\n{why}");
    assert!(s.steps.len() <= 12, "{} steps\n{why}", s.steps.len());
    // Probed up by doubling from the lower bound, then between the bracket.
    assert_eq!(&order(&s)[..4], [5.0, 10.0, 20.0, 40.0], "{why}");
    // The headline is the answer, and every step is a step of the files.
    assert_eq!(s.headline.as_ref().unwrap().level(), level);
    let csv = std::fs::read_to_string(dir.path().join("steps.csv")).unwrap();
    assert_eq!(csv.lines().count(), s.steps.len() + 1);
    let table = rpload::report::table::sweep_table(&s);
    assert!(table.contains("search 5..200 within 10%"), "{table}");

    // The scenario as run lists the probes, so the folder rebuilds to the same bytes.
    let before: Vec<Vec<u8>> = ["steps.csv", "summary.json", "report.md"]
        .iter()
        .map(|f| std::fs::read(dir.path().join(f)).unwrap())
        .collect();
    let rebuilt = output::rebuild(dir.path()).unwrap();
    assert_eq!(rebuilt, s);
    for (f, old) in ["steps.csv", "summary.json", "report.md"]
        .iter()
        .zip(before)
    {
        assert_eq!(std::fs::read(dir.path().join(f)).unwrap(), old, "{f}");
    }
    let toml = std::fs::read_to_string(dir.path().join("scenario.toml")).unwrap();
    assert!(toml.contains("probes = ["), "{toml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_that_already_hold_or_fail_say_so() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = CapacityServer::start(4, HOLD, None).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, s) = search(&server, dir.path(), &["--rps", "2..8"]).await;
    assert_eq!(code, 0, "{}", explain(&s));
    assert_eq!(order(&s), [2.0, 4.0, 8.0]);
    assert_eq!(
        s.search.as_ref().unwrap().outcome,
        Some(Outcome::AtUpperBound { level: 8.0 })
    );

    // 1 slot of 250 ms: 4 req/s, so a search from 20 fails at once and exits 1.
    let slow = CapacityServer::start(1, Duration::from_millis(250), None).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, s) = search(&slow, dir.path(), &["--rps", "20..100"]).await;
    assert_eq!(code, 1, "{}", explain(&s));
    assert_eq!(order(&s), [20.0]);
    assert_eq!(
        s.search.as_ref().unwrap().outcome,
        Some(Outcome::FailsAtStart { level: 20.0 })
    );
    let table = rpload::report::table::sweep_table(&s);
    assert!(
        table.contains("the lower bound 20 req/s already fails"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmations_rerun_the_answer_and_report_the_spread() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = CapacityServer::start(4, HOLD, None).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, s) = search(
        &server,
        dir.path(),
        &["--rps", "10..80", "--precision", "30%", "--confirm", "2"],
    )
    .await;
    let why = explain(&s);
    assert_eq!(code, 0, "{why}");
    let found = s.search.as_ref().unwrap();
    let answer = s.headline.as_ref().unwrap().level();
    let runs = order(&s).iter().filter(|&&l| l == answer).count();
    assert_eq!(runs, 3, "{why}");
    let spread = found.spread.expect("three runs have a spread");
    assert_eq!(spread.runs, 3);
    assert!(spread.served_rps_min <= spread.served_rps_max);
    assert!(spread.served_rps_min > 0.8 * answer, "{spread:?}");
    // The confirmations are repeats of the answer's level.
    let row = s.rates.iter().find(|r| r.level() == answer).unwrap();
    assert_eq!(row.repeats, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_searched_to_the_whole_number() {
    let _one = ONE_AT_A_TIME.lock().await;
    // 4 slots: throughput grows with users up to 4 and not beyond.
    let server = CapacityServer::start(4, HOLD, None).await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let (code, s) = sweep_cli(
        dir.path(),
        &[
            "--target",
            &url,
            "--api",
            "tgi",
            "--max-new-tokens",
            "1",
            "--search",
            "--concurrency",
            "1..64",
            "--step-duration",
            "2s",
            "--initial-warmup",
            "0s",
            "--cooldown",
            "0s",
        ],
    )
    .await;
    let s = s.unwrap();
    let why = explain(&s);
    assert_eq!(code, 0, "{why}");
    assert_eq!(
        s.search.as_ref().unwrap().outcome,
        Some(Outcome::Found {
            level: 4.0,
            above: 5.0
        }),
        "{why}"
    );
    assert!(s.steps.iter().all(|r| r.target_concurrency.is_some()));
    assert!(s.steps.len() <= 8, "{why}");
}

#[test]
fn bounds_it_cannot_bisect_are_refused_before_anything_runs() {
    use clap::Parser;
    let run = |args: &[&str]| {
        let mut argv = vec![
            "rpload",
            "sweep",
            "--target",
            "http://127.0.0.1:9",
            "--search",
        ];
        argv.extend_from_slice(args);
        let cli = rpload::commands::Cli::try_parse_from(argv).unwrap();
        let e = rpload::run(cli).unwrap_err();
        (rpload::exit::code(&e), format!("{e:#}"))
    };
    let (code, e) = run(&["--rps", "5..5"]);
    assert_eq!(code, rpload::exit::BAD_INPUT);
    assert!(e.contains("nothing to bisect between 5 and 5"), "{e}");
    let (_, e) = run(&["--rps", "5..200", "--precision", "0"]);
    assert!(e.contains("precision: 0% must be above 0%"), "{e}");
    let (_, e) = run(&["--rps", "5..200", "--precision", "150%"]);
    assert!(
        e.contains("precision: 150% must be above 0% and at most 100%"),
        "{e}"
    );
}
