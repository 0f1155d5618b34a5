//! `rpload compare` through the command line on real run folders: sweeps of loopback servers
//! of known capacity (8 slots of 200 ms, 40 req/s, and a halved one, 20 req/s) at 10, 15 and
//! 30 req/s. The same folder twice and two runs of the same server pass (exit 0); the halved
//! server as NEW fails (exit 1) with its headline named; the overlay chart is a real PNG; and
//! each bad input is refused with its own message (exit 2). Traffic goes to 127.0.0.1 only,
//! about 7 s per sweep, three sweeps run once for the whole binary, one after another.

mod sweep_common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use clap::Parser;
use rpload::report::compare::{BASE_COLOR, CHART_PNG, COMPARE_MD, NEW_COLOR};
use rpload::report::png::SIZE;
use sweep_common::{CapacityServer, Model, explain, sweep_cli, sweep_records, write_run};

/// The three run folders every test compares.
struct Runs {
    _dir: tempfile::TempDir,
    /// The 40 req/s server, twice.
    full: PathBuf,
    full_again: PathBuf,
    /// The 20 req/s server.
    half: PathBuf,
}

const PLAN: [&str; 12] = [
    "--api",
    "tgi",
    "--rps",
    "10,15,30",
    "--step-duration",
    "2s",
    "--cooldown",
    "0s",
    "--initial-warmup",
    "1s",
    "--price-per-hour",
    "1.0",
];

/// Sweeps each server once (on a runtime of their own, so the servers outlive no test's).
fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (full, full_again, half) = (
            dir.path().join("full"),
            dir.path().join("full-again"),
            dir.path().join("half"),
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let hold = Duration::from_millis(200);
            let sweep = |server: &CapacityServer, out: &Path| {
                let mut args = vec!["--target".to_string(), server.url()];
                args.extend(PLAN.iter().map(|s| s.to_string()));
                let out = out.to_path_buf();
                async move {
                    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                    let (code, s) = sweep_cli(&out, &refs).await;
                    let s = s.expect("a summary");
                    assert_eq!(code, 0, "{}", explain(&s));
                    s
                }
            };
            let server = CapacityServer::start(8, hold, None).await;
            for out in [&full, &full_again] {
                let s = sweep(&server, out).await;
                assert_eq!(
                    s.headline.as_ref().map(|h| h.target_rps),
                    Some(30.0),
                    "{}",
                    explain(&s)
                );
            }
            let server = CapacityServer::start(4, hold, None).await;
            let s = sweep(&server, &half).await;
            assert_eq!(
                s.headline.as_ref().map(|h| h.target_rps),
                Some(15.0),
                "{}",
                explain(&s)
            );
        });
        Runs {
            _dir: dir,
            full,
            full_again,
            half,
        }
    })
}

/// `rpload compare ARGS...` in-process: its exit status (an error's as `main` maps it) and the
/// error's text.
fn compare(args: &[&str]) -> (u8, String) {
    let mut argv = vec!["rpload", "compare"];
    argv.extend_from_slice(args);
    let cli = rpload::commands::Cli::try_parse_from(argv).expect("flags parse");
    match rpload::run(cli) {
        Ok(code) if code == std::process::ExitCode::SUCCESS => (0, String::new()),
        Ok(_) => (rpload::exit::FAILED, String::new()),
        Err(e) => (rpload::exit::code(&e), format!("{e:#}")),
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn the_same_folder_twice_passes_as_folder_or_file() {
    let r = runs();
    assert_eq!(compare(&[&s(&r.full), &s(&r.full)]), (0, String::new()));
    // A file inside a run names its folder.
    let (summary, steps) = (r.full.join("summary.json"), r.full.join("steps.csv"));
    assert_eq!(compare(&[&s(&summary), &s(&steps)]).0, 0);
    let jsonl = r.full.join("results.jsonl");
    assert_eq!(compare(&[&s(&jsonl), &s(&r.full), "--format", "text"]).0, 0);
}

#[test]
fn two_runs_of_the_same_server_pass() {
    let r = runs();
    let out = tempfile::tempdir().unwrap();
    let (code, err) = compare(&[&s(&r.full), &s(&r.full_again), "--out", &s(out.path())]);
    let md = std::fs::read_to_string(out.path().join(COMPARE_MD)).unwrap();
    assert_eq!((code, err), (0, String::new()), "{md}");
    assert!(
        md.contains("**No regression** beyond the 10% tolerance"),
        "{md}"
    );
    assert!(md.contains("| 30 req/s | 30 req/s | +0.0% |"), "{md}");
}

#[test]
fn a_halved_server_regresses_with_its_headline_named() {
    let r = runs();
    let out = tempfile::tempdir().unwrap();
    let (code, err) = compare(&[&s(&r.full), &s(&r.half), "--out", &s(out.path())]);
    let md = std::fs::read_to_string(out.path().join(COMPARE_MD)).unwrap();
    assert_eq!((code, err), (1, String::new()), "{md}");
    assert!(md.contains("**NEW regressed**"), "{md}");
    assert!(
        md.contains(
            "- highest sustainable rate: 30 req/s -> 15 req/s (-50.0%), over the 10% tolerance"
        ),
        "{md}"
    );
    // At 30 req/s the halved server queues: its p95 is far above 200 ms.
    assert!(md.contains("- p95 latency at 30 req/s: "), "{md}");
    assert!(md.contains(&format!(
        "![p95 latency of BASE and NEW vs offered rate]({CHART_PNG})"
    )));
    // The other way round NEW is better: a higher headline and lower latency pass.
    assert_eq!(compare(&[&s(&r.half), &s(&r.full)]).0, 0);
    // A tolerance above every change passes too.
    assert_eq!(
        compare(&[&s(&r.full), &s(&r.half), "--tolerance", "1000%"]).0,
        0
    );
}

#[test]
fn the_overlay_chart_is_a_png_with_both_runs() {
    let r = runs();
    let out = tempfile::tempdir().unwrap();
    compare(&[&s(&r.full), &s(&r.half), "--out", &s(out.path())]);
    let path = out.path().join(CHART_PNG);
    let bytes = std::fs::metadata(&path).unwrap().len();
    assert!((10_000..2_000_000).contains(&bytes), "{bytes} bytes");
    let decoder = png::Decoder::new(std::fs::File::open(&path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), SIZE);
    let channels = info.color_type.samples();
    let count = |c: plotters::style::RGBColor| {
        buf[..info.buffer_size()]
            .chunks(channels)
            .filter(|px| px[..3] == [c.0, c.1, c.2])
            .count()
    };
    // Each run's line (and its legend swatch) is drawn in its colour.
    assert!(count(BASE_COLOR) > 200, "BASE: {}", count(BASE_COLOR));
    assert!(count(NEW_COLOR) > 200, "NEW: {}", count(NEW_COLOR));
}

/// A run folder written by hand: `plan` on `axis` ("rps" or "concurrency"), synthetic records.
fn synthetic_run(dir: &Path, axis: &str, plan: &[f64]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let list: Vec<String> = plan.iter().map(|l| l.to_string()).collect();
    let scenario = format!(
        "name = \"synthetic\"\ntarget = \"http://127.0.0.1:9\"\napi = \"tgi\"\n\n[sweep]\n{axis} = \"{}\"\nstep_duration = \"2s\"\n",
        list.join(",")
    );
    let model = Model {
        capacity: 100.0,
        service_s: 0.05,
    };
    write_run(dir, &scenario, &sweep_records(model, plan, 2.0, 1));
    dir.to_path_buf()
}

#[test]
fn a_folder_that_is_no_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = synthetic_run(&dir.path().join("run"), "rps", &[10.0]);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, err) = compare(&[&s(&empty), &s(&other)]);
    assert_eq!(code, rpload::exit::BAD_INPUT);
    assert!(
        err.starts_with(&format!("BASE {}: not a run folder", s(&empty))),
        "{err}"
    );
    assert!(err.contains("no scenario.toml"), "{err}");
    assert!(err.contains("a folder written by `rpload sweep`"), "{err}");
    let missing = dir.path().join("nowhere");
    let (code, err) = compare(&[&s(&other), &s(&missing)]);
    assert_eq!(code, rpload::exit::BAD_INPUT);
    assert!(
        err.starts_with(&format!(
            "NEW {}: not a run folder (no such file or folder)",
            s(&missing)
        )),
        "{err}"
    );
    // A scenario without results is no run either.
    std::fs::remove_file(other.join("results.jsonl")).unwrap();
    let (code, err) = compare(&[&s(&other), &s(&other)]);
    assert_eq!(code, rpload::exit::BAD_INPUT);
    assert!(err.contains("(no results.jsonl)"), "{err}");
}

#[test]
fn runs_on_different_axes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rate = synthetic_run(&dir.path().join("rate"), "rps", &[1.0, 2.0]);
    let users = synthetic_run(&dir.path().join("users"), "concurrency", &[1.0, 2.0]);
    let (code, err) = compare(&[&s(&rate), &s(&users)]);
    assert_eq!(code, rpload::exit::BAD_INPUT);
    assert_eq!(
        err,
        "BASE is a rate (--rps) sweep and NEW a concurrency (--concurrency) sweep: compare \
         needs two runs on the same axis; re-run one with --rps"
    );
    assert_eq!(compare(&[&s(&users), &s(&users)]).0, 0);
}

#[test]
fn runs_with_no_level_in_common_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = synthetic_run(&dir.path().join("base"), "rps", &[10.0, 25.0, 40.0]);
    let new = synthetic_run(&dir.path().join("new"), "rps", &[5.0, 15.0]);
    let (code, err) = compare(&[&s(&base), &s(&new)]);
    assert_eq!(code, rpload::exit::BAD_INPUT);
    assert_eq!(
        err,
        "BASE measured 10, 25, 40 req/s; NEW measured 5, 15 req/s; compare needs at least one \
         level both measured — re-run NEW with --rps 10,25,40"
    );
}

#[test]
fn a_bad_tolerance_is_refused_before_the_folders_are_read() {
    for (bad, why) in [
        ("-5%", "negative"),
        ("abc", "not a number"),
        ("2000%", "over 1000%"),
    ] {
        let flag = format!("--tolerance={bad}");
        let (code, err) = compare(&["/nowhere/a", "/nowhere/b", &flag]);
        assert_eq!(code, rpload::exit::BAD_INPUT, "{bad}");
        assert_eq!(
            err,
            format!(
                "--tolerance {bad:?}: {why}{}; write a share such as 10% or 0.1 (0 to 1000%)",
                match why {
                    "negative" => " (NEW could never pass)",
                    "over 1000%" => " (nothing could regress)",
                    _ => "",
                }
            )
        );
    }
}
