//! Re-pricing a measured run without re-running it (`report --sweep DIR --instance NAME --out
//! DIR2`), and what an unknown instance or GPU is told (`cost --list --gpu`, `--instance h100`
//! in `cost` and `sweep`). The run folder comes from a real short sweep against a loopback
//! server of known capacity.

mod sweep_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use rpload::analysis::summary::SweepSummary;
use rpload::commands::report::sweep_command;
use rpload::commands::{Cli, Command, CostArgs, ReportArgs};
use rpload::sweep::output;
use sweep_common::CapacityServer;

/// `rpload report ARGS...` parsed as the command line would be.
fn report_args(args: &[&str]) -> ReportArgs {
    let mut argv = vec!["rpload", "report"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).expect("flags parse").command {
        Command::Report(a) => *a,
        other => panic!("{other:?}"),
    }
}

/// `rpload report --sweep DIR ARGS...`: the printed text, or the error's message.
fn report_sweep(dir: &Path, args: &[&str]) -> Result<String, String> {
    let d = dir.display().to_string();
    let mut all = vec!["--sweep", d.as_str()];
    all.extend_from_slice(args);
    let a = report_args(&all);
    sweep_command(&a.sweep[0], &a).map_err(|e| format!("{e:#}"))
}

/// Every file of a folder, by name, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// `steps.csv` as (header, rows of cells).
fn steps_csv(dir: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(dir.join(output::STEPS_CSV)).unwrap();
    let head = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(str::to_string).collect())
        .collect();
    (head, rows)
}

/// Asserts `b` is `a` with every cost doubled (exactly: doubling commutes with rounding) and
/// everything else equal.
fn assert_doubled(a: &SweepSummary, b: &SweepSummary) {
    let doubled = |x: &rpload::analysis::summary::CostRow,
                   y: &rpload::analysis::summary::CostRow| {
        let pairs = [
            (x.usd_per_1k_tokens, y.usd_per_1k_tokens),
            (x.usd_per_1m_tokens, y.usd_per_1m_tokens),
            (x.usd_per_1k_output_tokens, y.usd_per_1k_output_tokens),
            (x.usd_per_1k_requests, y.usd_per_1k_requests),
            (x.study_usd_per_1k_tokens, y.study_usd_per_1k_tokens),
            (x.window_usd_p90, y.window_usd_p90),
        ];
        for (p, q) in pairs {
            assert_eq!(q, p.map(|v| 2.0 * v), "{x:?} vs {y:?}");
        }
    };
    assert_eq!(a.steps.len(), b.steps.len());
    for (x, y) in a.steps.iter().zip(&b.steps) {
        assert!(x.cost.usd_per_1k_tokens.is_some(), "{x:?}");
        doubled(&x.cost, &y.cost);
        let mut y = y.clone();
        y.cost = x.cost;
        assert_eq!(
            *x, y,
            "a step's latencies and verdict must not move with the price"
        );
    }
    for (x, y) in a.rates.iter().zip(&b.rates) {
        doubled(&x.cost, &y.cost);
    }
    match (&a.headline, &b.headline) {
        (Some(x), Some(y)) => {
            doubled(&x.cost, &y.cost);
            assert_eq!(x.level(), y.level());
        }
        (x, y) => assert_eq!(x.is_none(), y.is_none()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_repriced_costs_in_proportion_and_the_original_is_untouched() {
    // Two slots of 50 ms: capacity 40 req/s; two short steps well below it.
    let server = CapacityServer::start(2, Duration::from_millis(50), None).await;
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("run");
    let text = format!(
        r#"
name = "reprice loopback"
target = "http://{}"
api = "tgi"
max_new_tokens = 1
timeout = "10s"

[sweep]
rps = "10,20"
step_duration = "1s"
cooldown = "0s"
initial_warmup = "0s"

[cost]
instance = "g5.4xlarge"
"#,
        server.addr
    );
    let measured = sweep_common::drive_scenario(&text, &run).await;
    drop(server);
    assert_eq!(measured.price.as_ref().unwrap().usd_per_hour, 1.624);
    let before = snapshot(&run);

    // At the catalog price it was measured at, the copy's derived files are the original's.
    let same = root.path().join("same");
    let out = report_sweep(
        &run,
        &[
            "--instance",
            "g5.4xlarge",
            "--out",
            &same.display().to_string(),
        ],
    )
    .unwrap();
    assert!(out.contains("$/1K tok"), "{out}");
    assert!(
        out.contains(&format!(
            "re-priced {} (g5.4xlarge@us-east-1 at 1.624 USD/h) at g5.4xlarge (us-east-1, 1.624 USD/h): written to {}",
            run.display(),
            same.display()
        )),
        "{out}"
    );
    let copy = snapshot(&same);
    for name in [
        output::STEPS_CSV,
        output::SUMMARY_JSON,
        output::REPORT_MD,
        output::RESULTS_JSONL,
        output::SCENARIO_TOML,
    ] {
        assert_eq!(copy[name], before[name], "{name} differs at the same price");
    }

    // At twice the price every cost doubles and nothing else moves.
    let double = root.path().join("double");
    report_sweep(
        &run,
        &[
            "--price-per-hour",
            "3.248",
            "--out",
            &double.display().to_string(),
        ],
    )
    .unwrap();
    let a = output::summarize(&same, None).unwrap();
    let b = output::summarize(&double, None).unwrap();
    assert_eq!(b.price.as_ref().unwrap().usd_per_hour, 3.248);
    assert_doubled(&a, &b);
    let (head, rows_a) = steps_csv(&same);
    let (_, rows_b) = steps_csv(&double);
    for (ra, rb) in rows_a.iter().zip(&rows_b) {
        for ((h, x), y) in head.iter().zip(ra).zip(rb) {
            if h.contains("cost") {
                let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                assert!((y / x - 2.0).abs() < 1e-3, "{h}: {x} -> {y}");
            } else {
                assert_eq!(x, y, "{h} moved with the price");
            }
        }
    }
    let frozen = std::fs::read_to_string(double.join(output::SCENARIO_TOML)).unwrap();
    assert!(
        frozen.contains("instance = \"custom\"") && frozen.contains("price_per_hour = 3.248"),
        "{frozen}"
    );

    // The copy is a run folder of its own: `report --sweep DIR2` rebuilds it unchanged.
    let written = snapshot(&double);
    let rebuilt = report_sweep(&double, &[]).unwrap();
    assert!(rebuilt.contains("$/1K tok"), "{rebuilt}");
    assert_eq!(snapshot(&double), written);

    // Refusals, none of which may touch the run.
    let e = report_sweep(&run, &["--instance", "p5.48xlarge"]).unwrap_err();
    assert!(
        e.starts_with("--out: required with a new price") && e.contains("keeps the price"),
        "{e}"
    );
    let e = report_sweep(
        &run,
        &["--price-per-hour", "2", "--out", &run.display().to_string()],
    )
    .unwrap_err();
    assert!(e.contains("is the run folder itself"), "{e}");
    let e = report_sweep(
        &run,
        &[
            "--price-per-hour",
            "2",
            "--out",
            &double.display().to_string(),
        ],
    )
    .unwrap_err();
    assert!(
        e.contains("already holds a run") && e.contains("--force"),
        "{e}"
    );
    let e = report_sweep(&run, &["--out", &double.display().to_string()]).unwrap_err();
    assert!(e.contains("only with a new price"), "{e}");
    let nowhere = root.path().join("nowhere");
    let e = report_sweep(
        &run,
        &[
            "--instance",
            "h100",
            "--out",
            &nowhere.display().to_string(),
        ],
    )
    .unwrap_err();
    assert!(
        e.starts_with("no instance named `h100`; instances with H100 GPUs: p5.48xlarge-per-gpu"),
        "{e}"
    );
    assert!(!nowhere.exists(), "a refused re-pricing makes no folder");
    let e = report_sweep(
        &run,
        &[
            "--price-per-hour",
            "0",
            "--out",
            &nowhere.display().to_string(),
        ],
    )
    .unwrap_err();
    assert!(e.contains("price per hour must be a positive"), "{e}");

    // --force replaces the earlier copy, at the new price.
    report_sweep(
        &run,
        &[
            "--instance",
            "p5.48xlarge-per-gpu",
            "--out",
            &double.display().to_string(),
            "--force",
        ],
    )
    .unwrap();
    let s = output::summarize(&double, None).unwrap();
    assert_eq!(s.price.unwrap().usd_per_hour, 6.88);

    assert_eq!(snapshot(&run), before, "the measured run folder changed");
}

#[test]
fn a_packed_run_says_how_to_unpack_it() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("packed");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join(output::SCENARIO_TOML),
        "name = \"x\"\n[sweep]\nrps = \"10\"\n",
    )
    .unwrap();
    std::fs::write(run.join("results.jsonl.xz"), b"").unwrap();
    let out = root.path().join("out").display().to_string();
    let e = report_sweep(&run, &["--price-per-hour", "1", "--out", &out]).unwrap_err();
    assert!(
        e.contains("no results.jsonl") && e.contains("xz -dk"),
        "{e}"
    );
}

#[test]
fn cost_lists_instances_by_gpu() {
    let list = |gpu: &str| {
        rpload::commands::cost::text(&CostArgs {
            list: true,
            gpu: Some(gpu.into()),
            ..Default::default()
        })
    };
    let out = list("h100").unwrap();
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.contains("H100 80GB")), "{out}");
    assert!(out.contains("p5.48xlarge-per-gpu"), "{out}");
    assert!(!out.contains("g5.4xlarge"), "{out}");
    let e = list("b200").unwrap_err().to_string();
    assert!(
        e.contains("no instance in the catalog has a `b200` GPU") && e.contains("H100, H200"),
        "{e}"
    );
}

#[test]
fn an_unknown_instance_is_offered_the_gpu_or_the_nearest_names() {
    let cost = |instance: &str| {
        rpload::commands::cost::text(&CostArgs {
            rps: Some(10.0),
            tokens_per_request: Some(100.0),
            instance: Some(instance.into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string()
    };
    let e = cost("h100");
    assert!(
        e.contains("instances with H100 GPUs: p5.48xlarge-per-gpu (1x H100, 6.88 USD/h)")
            && e.contains("p5.48xlarge (8x H100, 55.04 USD/h)")
            && e.contains("rpload cost --list --gpu h100"),
        "{e}"
    );
    let e = cost("p5.48xlarg");
    assert!(e.contains("nearest in the catalog: p5.48xlarge"), "{e}");
}

#[tokio::test]
async fn sweep_with_a_gpu_for_instance_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run").display().to_string();
    let cli = Cli::try_parse_from([
        "rpload",
        "sweep",
        "-q",
        "--target",
        "http://127.0.0.1:9",
        "--rps",
        "10",
        "--instance",
        "a10g",
        "--out",
        &out,
    ])
    .unwrap();
    let e = format!("{:#}", rpload::run_async(cli).await.unwrap_err());
    assert!(
        e.contains("no instance named `a10g`; instances with A10G GPUs: g5.xlarge"),
        "{e}"
    );
}
