//! `sweep --shard I/N --start-at T` end to end against a loopback server: two processes of the
//! built binary, given the environment a Kubernetes Indexed Job gives its pods, run their
//! shards of every step at the instants the timeline fixes from `--start-at`, and
//! `report --sweep DIR0 DIR1 --out MERGED` judges the merged steps as one process's sweep of
//! the same plan judges its own (request counts exactly, no server-side rule failed, the median
//! within HDR precision + 2 ms). One pod's folder alone, or folders of different sweeps, are refused by
//! name.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Behaviour, spawn};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const BIN: &str = env!("CARGO_BIN_EXE_rpload");

/// `rpload ARGS` as a child process; `index` is its JOB_COMPLETION_INDEX.
async fn child(args: &[String], index: Option<u32>) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args).env_remove("JOB_COMPLETION_INDEX");
    if let Some(i) = index {
        cmd.env("JOB_COMPLETION_INDEX", i.to_string());
    }
    tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("the command ends within 90 s")
        .unwrap()
}

/// A run that wrote its folder: exit 0, or 1 when no step was sustainable (on a busy box every
/// step may fail the client's own rules; the test below checks that only those failed).
async fn ok(args: &[String], index: Option<u32>) -> String {
    let out = child(args, index).await;
    let unsustainable = out.status.code() == Some(1)
        && String::from_utf8_lossy(&out.stderr).contains("no step was sustainable");
    assert!(
        out.status.success() || unsustainable,
        "rpload {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn refused(args: &[String]) -> String {
    let out = child(args, None).await;
    assert!(!out.status.success(), "rpload {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pods_sweep_as_one_process_does() {
    let addr = spawn(Behaviour {
        ttft: Duration::from_millis(10),
        itl: Duration::from_millis(5),
        tokens: 4,
        ..Behaviour::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let plan = strings(&[
        "sweep",
        "--target",
        &format!("http://{addr}"),
        "--api",
        "tgi-stream",
        "--rps",
        "10,20",
        "--step-duration",
        "2s",
        "--initial-warmup",
        "0s",
        "--cooldown",
        "1s",
        "--timeout",
        "1s",
        "--arrival",
        "poisson",
        "--seed",
        "3",
        "--max-new-tokens",
        "4",
        "--quiet",
    ]);
    let with = |extra: &[&str]| [plan.clone(), strings(extra)].concat();

    // One process first, then the two pods: each alone on the machine.
    ok(&with(&["--out", &p("single")]), None).await;
    let start = (OffsetDateTime::now_utc() + Duration::from_secs(3))
        .replace_nanosecond(0)
        .unwrap();
    let at = start.format(&Rfc3339).unwrap();
    let pods = futures::future::join_all((0..2).map(|i| {
        let args = with(&[
            "--shard",
            "auto/2",
            "--start-at",
            &at,
            "--out",
            &p(&format!("pod-{i}")),
        ]);
        async move { ok(&args, Some(i)).await }
    }))
    .await;
    assert!(
        pods[1].contains("shard 1/2: ") && pods[1].contains("rpload report --sweep"),
        "{}",
        pods[1]
    );
    // A pod writes its records and no verdicts of its own.
    assert!(!Path::new(&p("pod-0")).join("summary.json").exists());

    // Every pod started step 1 at the instant the timeline gives: step 0 at T, which may run
    // 2 s + the 1 s timeout + 1 s of slack, then the 1 s cool-down.
    let due = start + Duration::from_secs(5);
    let mut firsts = Vec::new();
    for i in 0..2 {
        let text =
            std::fs::read_to_string(Path::new(&p(&format!("pod-{i}"))).join("results.jsonl"))
                .unwrap();
        let first = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["step"] == 1)
            .map(|r| OffsetDateTime::parse(r["timestamp"].as_str().unwrap(), &Rfc3339).unwrap())
            .min()
            .unwrap();
        assert!(first >= due, "pod {i} sent step 1 at {first}, before {due}");
        firsts.push(first);
    }
    let earliest = *firsts.iter().min().unwrap();
    assert!(
        earliest - due < time::Duration::milliseconds(500),
        "step 1 began at {earliest}, due {due}"
    );

    let merged = ok(
        &strings(&[
            "report",
            "--sweep",
            &p("pod-0"),
            &p("pod-1"),
            "--out",
            &p("merged"),
        ]),
        None,
    )
    .await;
    assert!(merged.contains("merged "), "{merged}");
    let (one, two) = (
        summary(Path::new(&p("single"))),
        summary(Path::new(&p("merged"))),
    );
    let (a, b) = (
        one["steps"].as_array().unwrap(),
        two["steps"].as_array().unwrap(),
    );
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 2);
    for (x, y) in a.iter().zip(b) {
        for key in ["target_rps", "requests", "errors"] {
            assert_eq!(x[key], y[key], "step {}: {key}", x["step"]);
        }
        // 20 req/s of a 30 ms answer is far below the fake server's capacity: no rule about
        // the server may fail. The client's own rules (send and receive lag) may, in either
        // run alone, when another process takes a core of this 2-core box at that moment
        // (seen: send-lag p99 4.4 ms against a 3 ms allowance): that is the rule working.
        for s in [x, y] {
            for r in s["reasons"].as_array().unwrap() {
                assert!(
                    ["send_lag", "recv_lag"].contains(&r["rule"].as_str().unwrap()),
                    "step {}: {r}",
                    s["step"]
                );
            }
        }
        let (m, n) = (
            x["latency_ms"]["p50"].as_f64().unwrap(),
            y["latency_ms"]["p50"].as_f64().unwrap(),
        );
        assert!(
            (m - n).abs() <= m.max(n) * 1e-3 + 2.0,
            "p50 {m} ms vs {n} ms"
        );
    }
    // The seeded Poisson draw of 2 s at 10 and 20 req/s, counted once across the pods.
    let requests: Vec<u64> = b.iter().map(|s| s["requests"].as_u64().unwrap()).collect();
    assert!(requests[0] > 5 && requests[1] > requests[0], "{requests:?}");

    // One pod's folder is not the run; nor are folders of two different sweeps.
    let alone = refused(&strings(&["report", "--sweep", &p("pod-0")])).await;
    assert!(alone.contains("shard 1 of 2 is missing"), "{alone}");
    // ... unless the short run is asked for, and then every step says so.
    let short = ok(
        &strings(&[
            "report",
            "--sweep",
            &p("pod-0"),
            "--allow-missing-shards",
            "--out",
            &p("short"),
        ]),
        None,
    )
    .await;
    assert!(
        short.contains("step 1 is short of shard(s) 1 (--allow-missing-shards)"),
        "{short}"
    );
    let half = summary(Path::new(&p("short")));
    let pod0 = std::fs::read_to_string(Path::new(&p("pod-0")).join("results.jsonl")).unwrap();
    let pod0_step1 = pod0.lines().filter(|l| l.contains("\"step\":1")).count() as u64;
    assert_eq!(half["steps"][1]["requests"].as_u64(), Some(pod0_step1));
    let other = dir.path().join("other");
    let other = other.as_path();
    std::fs::create_dir(other).unwrap();
    for f in ["results.jsonl", "scenario.toml"] {
        std::fs::copy(Path::new(&p("pod-1")).join(f), other.join(f)).unwrap();
    }
    let toml = std::fs::read_to_string(other.join("scenario.toml")).unwrap();
    std::fs::write(
        other.join("scenario.toml"),
        toml.replace("seed = 3", "seed = 4"),
    )
    .unwrap();
    let mixed = refused(&strings(&[
        "report",
        "--sweep",
        &p("pod-0"),
        other.to_str().unwrap(),
        "--out",
        &p("mixed"),
    ]))
    .await;
    assert!(mixed.contains("ran different scenarios"), "{mixed}");
}

#[tokio::test]
async fn a_sweep_in_shards_names_what_it_lacks() {
    let later = (OffsetDateTime::now_utc() + Duration::from_secs(60))
        .format(&Rfc3339)
        .unwrap();
    let base = strings(&["sweep", "--rps", "10", "--quiet"]);
    let with = |extra: &[&str]| [base.clone(), strings(extra)].concat();
    let no_start = refused(&with(&["--target", "http://127.0.0.1:9", "--shard", "0/2"])).await;
    assert!(no_start.contains("--shard needs --start-at"), "{no_start}");
    let embedded = refused(&with(&["--shard", "0/2", "--start-at", &later])).await;
    assert!(embedded.contains("needs --target"), "{embedded}");
    let out_of_range = refused(&with(&[
        "--target",
        "http://127.0.0.1:9",
        "--shard",
        "2/2",
        "--start-at",
        &later,
    ]))
    .await;
    assert!(out_of_range.contains("--shard"), "{out_of_range}");
    let past = refused(&with(&[
        "--target",
        "http://127.0.0.1:9",
        "--shard",
        "0/2",
        "--start-at",
        "2020-01-01T00:00:00Z",
    ]))
    .await;
    assert!(past.contains("--start-at"), "{past}");
}
