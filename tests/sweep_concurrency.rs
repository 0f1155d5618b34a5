//! A concurrency sweep (`--concurrency`: a closed loop of N users per step) against a loopback
//! server of known concurrency: it serves 4 requests at once, each for 100 ms, and queues the
//! rest. Its throughput is 10 req/s per user up to 4 users and 40 req/s from there on, so the
//! sweep must find the plateau at 4 users, hold each step at exactly its users, and write the
//! concurrency (not a rate) into its files.

mod sweep_common;

use std::collections::BTreeMap;
use std::time::Duration;

use rpload::analysis::verdict::Status;
use rpload::scenario::ScenarioFile;
use rpload::sweep::runner::AttackRunner;
use sweep_common::CapacityServer;

const SLOTS: usize = 4;
const HOLD: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_plateaus_at_the_servers_concurrency() {
    let server = CapacityServer::start(SLOTS, HOLD, None).await;
    let addr = server.addr;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
name = "4 slots of 100 ms"
target = "http://{addr}"
api = "tgi"
max_new_tokens = 1
timeout = "10s"

[sweep]
concurrency = "1,2,4,8,16,32"
step_duration = "2s"
initial_warmup = "0s"
cooldown = "0s"

[cost]
price_per_hour = 1.624
"#
    );
    let s = sweep_common::drive_scenario(&text, dir.path()).await;
    drop(server);

    let seen: Vec<(Option<u32>, Status, f64)> = s
        .steps
        .iter()
        .map(|r| (r.target_concurrency, r.status, r.throughput_rps))
        .collect();
    let explain = format!(
        "{:#?}",
        s.steps
            .iter()
            .map(|r| (r.target_concurrency, r.throughput_rps, &r.verdict))
            .collect::<Vec<_>>()
    );
    // Two levels past the plateau end the sweep before 32 users.
    let users: Vec<Option<u32>> = seen.iter().map(|r| r.0).collect();
    assert_eq!(
        users,
        [Some(1), Some(2), Some(4), Some(8), Some(16)],
        "{explain}"
    );
    assert!(s.stopped_early, "{explain}");
    let statuses: Vec<Status> = seen.iter().map(|r| r.1).collect();
    use Status::{Sustainable as S, Unsustainable as U};
    assert_eq!(statuses, [S, S, S, U, U], "{explain}");
    for (users, _, x) in &seen {
        let want = 10.0 * f64::from(users.unwrap().min(SLOTS as u32));
        assert!(
            (0.8 * want..=1.02 * want).contains(x),
            "{users:?} users: throughput {x}, want about {want}\n{explain}"
        );
    }
    let plateau = &s.steps[3];
    assert_eq!(plateau.reasons[0].rule, "scaling", "{explain}");
    let gain = plateau.scaling.unwrap().gain;
    assert!((0.9..1.1).contains(&gain), "8 over 4 users: x{gain}");
    // Past the plateau the added users wait: latency doubles at 8 users.
    assert!(s.steps[2].latency_ms.p50 < 150.0 && s.steps[3].latency_ms.p50 > 180.0);
    let h = s.headline.as_ref().unwrap();
    assert_eq!((h.target_concurrency, h.target_rps), (Some(4), 0.0));
    assert!((h.served_rps - 40.0).abs() < 6.0, "{h:?}");
    assert_eq!(s.study_max_rps, None, "a closed loop offers no rate");

    // Each step held exactly its users in flight: the most requests open at one instant.
    let records = std::fs::read_to_string(dir.path().join("results.jsonl")).unwrap();
    let mut spans: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for line in records.lines() {
        let r: rpload::record::Record = serde_json::from_str(line).unwrap();
        // A user's next request is due when its last one ended, and sent at once.
        let lag = r.sent_ns - r.intended_ns;
        assert!(lag < 20_000_000, "send lag {lag} ns in a closed loop");
        spans
            .entry(r.step.unwrap())
            .or_default()
            .push((r.intended_ns, r.intended_ns + r.latency));
    }
    for (step, users) in [(0, 1), (1, 2), (2, 4), (3, 8), (4, 16)] {
        assert_eq!(max_open(&spans[&step]), users, "step {step}");
    }

    // steps.csv: no offered rate, the users in target_concurrency.
    let csv = std::fs::read_to_string(dir.path().join("steps.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (rps, conc) = (col("target_rps"), col("target_concurrency"));
    let first = csv::ReaderBuilder::new()
        .from_reader(csv.as_bytes())
        .records()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!((&first[rps], &first[conc]), ("", "1"));
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        md.contains("**Highest sustainable concurrency: 4 users**"),
        "{md}"
    );
    assert!(dir.path().join("throughput.png").exists());
    // Re-rendering from the records gives the same summary.
    assert_eq!(rpload::sweep::output::rebuild(dir.path()).unwrap(), s);
}

/// The most intervals open at one instant (an end before a start at the same time).
fn max_open(spans: &[(u64, u64)]) -> usize {
    let mut events: Vec<(u64, i32)> = spans.iter().flat_map(|&(a, b)| [(a, 1), (b, -1)]).collect();
    events.sort();
    let (mut open, mut most) = (0i32, 0i32);
    for (_, d) in events {
        open += d;
        most = most.max(open);
    }
    most as usize
}

#[test]
fn a_concurrency_plan_is_whole_users_and_excludes_a_rate_plan() {
    let bad = |sweep: &str| {
        ScenarioFile::parse(&format!("[sweep]\n{sweep}\n"), "s.toml")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
    };
    assert!(bad("concurrency = \"1,2.5\"").starts_with("concurrency: 2.5 is not a whole number"));
    let e = bad("concurrency = \"1,2\"\nrps = \"10\"");
    assert!(
        e.contains("either the rate (rps) or the number of users"),
        "{e}"
    );
    let e = ScenarioFile::parse(
        "max_inflight = 4\n[sweep]\nconcurrency = [1, 2]\n",
        "s.toml",
    )
    .unwrap()
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("max_inflight:"), "{e}");
    let ok = ScenarioFile::parse("[sweep]\nconcurrency = \"log:1..100:5\"\n", "s.toml")
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(ok.plan.rates(), [1.0, 3.0, 10.0, 32.0, 100.0]);
    assert_eq!(ok.steps()[1].concurrency, Some(3));
    // --max-rate caps a closed loop's users together, so a concurrency sweep takes it and a
    // rate sweep (whose pacer sets the rate) does not.
    let runner = |sweep: &str| {
        let text = format!("target = \"http://127.0.0.1:9\"\nmax_rate = 5.0\n[sweep]\n{sweep}\n");
        let sc = ScenarioFile::parse(&text, "s.toml")
            .unwrap()
            .validate()
            .unwrap();
        AttackRunner::new(&sc, None, None).map(|_| ())
    };
    assert!(runner("concurrency = \"1,2\"").is_ok());
    let e = runner("rps = \"1,2\"").unwrap_err().to_string();
    assert!(e.contains("--max-rate"), "{e}");
}

/// One-second steps (the study's bursts) against a server that refuses what it cannot queue:
/// past 6 requests in it, it answers 429 at once, and those users ask again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_second_closed_loops_with_refusals() {
    let server = CapacityServer::start(SLOTS, HOLD, Some(6)).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, s) = sweep_common::sweep_cli(
        dir.path(),
        &[
            "--target",
            &server.url(),
            "--api",
            "tgi",
            "--concurrency",
            "1,2,4,8",
            "--step-duration",
            "1s",
            "--cooldown",
            "0s",
            "--initial-warmup",
            "0s",
            "--no-early-stop",
        ],
    )
    .await;
    drop(server);
    let s = s.expect("a summary");
    let why = sweep_common::explain(&s);
    assert_eq!(
        sweep_common::statuses(&s),
        [
            (1.0, "sustainable"),
            (2.0, "sustainable"),
            (4.0, "sustainable"),
            (8.0, "unsustainable")
        ],
        "{why}"
    );
    // Eight users against room for six: refusals, counted as errors and failing the step.
    let eight = &s.steps[3];
    assert!(eight.errors > 0 && eight.success_ratio < 0.99, "{why}");
    assert_eq!(eight.reasons[0].rule, "success", "{why}");
    assert_eq!(
        eight.error_kinds.get("status_429").copied(),
        Some(eight.errors),
        "{why}"
    );
    assert_eq!(code, 0, "{why}");
}
