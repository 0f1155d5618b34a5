//! The sweep driver with a model target (no network): verdicts where capacity says, the
//! early-stop rule, repeats, warm-up, a target that dies mid-sweep, and every bad input caught
//! before the first request.

#[path = "sweep_common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use clap::Parser;
use common::{Model, ModelRunner};
use rpload::commands::SweepArgs;
use rpload::commands::sweep::prepare;
use rpload::scenario::ScenarioFile;
use rpload::sweep::output;
use rpload::sweep::output::RunFolder;
use rpload::sweep::run::{DriveConfig, Silent, drive};

const MODEL: Model = Model {
    capacity: 30.0,
    service_s: 0.1,
};

fn scenario(rps: &str, extra: &str) -> rpload::scenario::Scenario {
    let text = format!(
        "name = \"model\"\ntarget = \"http://127.0.0.1:9\"\n[sweep]\nrps = \"{rps}\"\nstep_duration = \"2s\"\ncooldown = \"0s\"\n{extra}"
    );
    ScenarioFile::parse(&text, "test.toml")
        .unwrap()
        .validate()
        .unwrap()
}

async fn run(
    sc: &rpload::scenario::Scenario,
    dir: &Path,
    runner: &mut ModelRunner,
) -> anyhow::Result<rpload::analysis::summary::SweepSummary> {
    let cfg = DriveConfig {
        scenario: sc,
        price: sc.resolve_price().unwrap(),
        stop: Default::default(),
        timeline: None,
    };
    drive(&cfg, runner, &mut RunFolder::new(dir), &mut Silent).await
}

#[tokio::test]
async fn verdicts_follow_capacity_and_stop_early() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario("10,20,30,40,50,60,70", "");
    let mut runner = ModelRunner::new(MODEL);
    let s = run(&sc, dir.path(), &mut runner).await.unwrap();
    let verdicts: Vec<(f64, bool)> = s
        .steps
        .iter()
        .map(|r| (r.target_rps, r.sustainable))
        .collect();
    assert_eq!(
        verdicts,
        [
            (10.0, true),
            (20.0, true),
            (30.0, true),
            (40.0, false),
            (50.0, false)
        ]
    );
    assert!(s.stopped_early);
    assert_eq!(s.headline.as_ref().unwrap().target_rps, 30.0);
    // The initial warm-up (2 s at the first rate, records dropped), then five steps.
    assert_eq!(runner.calls.len(), 6);
    assert_eq!(
        (
            runner.calls[0].step,
            runner.calls[0].rps,
            runner.calls[0].duration
        ),
        (None, 10.0, Duration::from_secs(2))
    );
    // Every record is on disk with its step.
    let lines = std::fs::read_to_string(dir.path().join(output::RESULTS_JSONL)).unwrap();
    assert_eq!(lines.lines().count(), (20 + 40 + 60 + 80 + 100) as usize);
    assert!(lines.lines().all(|l| l.contains("\"step\":")));
    // The folder rebuilds to the same summary.
    assert_eq!(output::rebuild(dir.path()).unwrap(), s);
}

#[tokio::test]
async fn no_early_stop_runs_every_step_and_repeats_fold() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(
        "10..70",
        "step = 20\nrepeat = 2\nearly_stop = false\nwarmup = \"1s\"\n",
    );
    let mut runner = ModelRunner::new(MODEL);
    let s = run(&sc, dir.path(), &mut runner).await.unwrap();
    assert_eq!(s.steps.len(), 8);
    assert_eq!(s.rates.len(), 4);
    assert!(!s.stopped_early);
    let rates: Vec<(f64, bool)> = s
        .rates
        .iter()
        .map(|r| (r.target_rps, r.sustainable))
        .collect();
    assert_eq!(
        rates,
        [(10.0, true), (30.0, true), (50.0, false), (70.0, false)]
    );
    // The initial warm-up, then a warm-up before each measured step, records dropped.
    assert_eq!(runner.calls.len(), 17);
    assert_eq!(runner.calls[0].duration, Duration::from_secs(2));
    assert_eq!(runner.calls[1].step, None);
    assert_eq!(runner.calls[1].duration, Duration::from_secs(1));
    assert_eq!(runner.calls[2].step, Some(0));
}

#[tokio::test]
async fn slo_moves_the_headline() {
    let dir = tempfile::tempdir().unwrap();
    // Service time 0.1 s + rps/1000 + up to 30 ms: p95 is 140 ms at 10 req/s, 150 ms at 20.
    let sc = scenario("10,20,30", "slo = \"p95<145ms\"\nearly_stop = false\n");
    let s = run(&sc, dir.path(), &mut ModelRunner::new(MODEL))
        .await
        .unwrap();
    let v: Vec<bool> = s.steps.iter().map(|r| r.sustainable).collect();
    assert_eq!(
        v,
        [true, false, false],
        "{:?}",
        s.steps.iter().map(|r| &r.verdict).collect::<Vec<_>>()
    );
    assert!(s.steps[1].verdict.contains("SLO p95<145ms missed"));
}

#[tokio::test]
async fn a_target_that_dies_keeps_everything_measured() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario("10,20,30,40", "[cost]\nprice_per_hour = 1.624\n");
    let mut runner = ModelRunner::new(MODEL);
    runner.die_at = Some(2);
    let err = run(&sc, dir.path(), &mut runner).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("sweep stopped; what was measured is in"),
        "{msg}"
    );
    // The run itself failed after it started: exit status 3, not "bad input".
    assert_eq!(rpload::exit::code(&err), rpload::exit::RUN_FAILED);
    assert!(msg.contains("connection refused"), "{msg}");
    let csv = std::fs::read_to_string(dir.path().join(output::STEPS_CSV)).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
    let md = std::fs::read_to_string(dir.path().join(output::REPORT_MD)).unwrap();
    assert!(md.contains("3 of 4 planned (stopped early)"), "{md}");
    for png in [
        "latency.png",
        "throughput.png",
        "cost.png",
        "latency_distribution.png",
    ] {
        assert!(dir.path().join(png).exists(), "{png}");
    }
}

/// A sweep's flags as the command line parses them: a base plan on a closed port, then
/// `extra` (a repeated flag replaces the earlier one, as on the command line).
fn args_with(out: &Path, extra: &[&str]) -> SweepArgs {
    let out = out.to_str().unwrap();
    let mut argv = vec!["rpload", "sweep", "--target", "http://127.0.0.1:9"];
    argv.extend(["--rps", "10..50", "--step", "10", "--out", out]);
    argv.extend_from_slice(extra);
    match rpload::commands::Cli::parse_from(argv).command {
        rpload::commands::Command::Sweep(a) => *a,
        other => unreachable!("{other:?}"),
    }
}

fn args(out: &Path) -> SweepArgs {
    args_with(out, &[])
}

fn prepare_err(a: &SweepArgs) -> String {
    match prepare(a) {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn bad_input_is_caught_before_the_first_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(prepare(&args(&out)).is_ok());

    let e = prepare_err(&args_with(&out, &["--rps", "50..10"]));
    assert!(e.contains("reversed range"), "{e}");
    let e = prepare_err(&args_with(&out, &["--rps", "10.."]));
    assert!(e.contains("empty range"), "{e}");
    let e = prepare_err(&args_with(&out, &["--step", "0"]));
    assert!(e.contains("step must be positive"), "{e}");

    let e = prepare_err(&args_with(&out, &["--slo", "p95<2s,ttft_p95<500xs"]));
    assert!(e.contains("unknown unit `xs`"), "{e}");
    assert!(
        e.contains("\n  p95<2s,ttft_p95<500xs\n                     ^^"),
        "{e}"
    );

    let scenario = dir.path().join("bad.toml");
    std::fs::write(
        &scenario,
        "target = \"http://127.0.0.1:9\"\n[sweep]\nrps = \"10\"\nrate_limit = 3\n",
    )
    .unwrap();
    let e = prepare_err(&args_with(
        &out,
        &["--scenario", scenario.to_str().unwrap()],
    ));
    assert!(
        e.contains(&format!(
            "{}:4:1: unknown field `rate_limit`",
            scenario.display()
        )),
        "{e}"
    );

    let e = prepare_err(&args_with(&out, &["--instance", "g5.4xlarg"]));
    assert!(
        e.contains("unknown instance `g5.4xlarg`") && e.contains("g5.4xlarge"),
        "{e}"
    );

    // An output folder under a regular file cannot be created.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let e = prepare_err(&args_with(
        &out,
        &["--out", file.join("run").to_str().unwrap()],
    ));
    assert!(e.contains("cannot create it"), "{e}");

    // Attack options are checked by the attacker's own setup, still before any request.
    let e = prepare_err(&args_with(&out, &["--api", "grpc"]));
    assert!(e.contains("grpc"), "{e}");
    let e = prepare_err(&args_with(&out, &["--header", "no colon"]));
    assert!(e.contains("Name: value"), "{e}");

    let e = prepare_err(&args_with(&out, &["--prompts", "no/such/prompts.jsonl"]));
    assert!(
        e.contains("prompts: no/such/prompts.jsonl does not exist"),
        "{e}"
    );
}

#[test]
fn the_embedded_default_asks_for_twenty_tokens_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let a = a.to_str().unwrap();
    let embedded_with = |extra: &[&str]| {
        let mut argv = vec![
            "rpload", "sweep", "--rps", "10..50", "--step", "10", "--out", a,
        ];
        argv.extend_from_slice(extra);
        match rpload::commands::Cli::parse_from(argv).command {
            rpload::commands::Command::Sweep(a) => *a,
            other => unreachable!("{other:?}"),
        }
    };
    let embedded = embedded_with(&[]);
    let p = prepare(&embedded).unwrap();
    assert_eq!(
        p.scenario.file.attack.max_new_tokens,
        Some(rpload::commands::sweep::EMBEDDED_MAX_NEW_TOKENS)
    );
    let told = embedded_with(&["--max-new-tokens", "64"]);
    assert_eq!(
        prepare(&told).unwrap().scenario.file.attack.max_new_tokens,
        Some(64)
    );
    // A remote target keeps the attacker's own default.
    let remote = prepare(&args(&dir.path().join("b"))).unwrap();
    assert_eq!(remote.scenario.file.attack.max_new_tokens, None);
}
