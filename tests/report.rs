//! `rpload report` over real result files: several files merge exactly (the report of `a b`
//! equals the report of the two concatenated), JSON keys as design.md section 3, and every
//! report type renders.

mod common;

use common::{Behaviour, cli, spawn};

async fn run(argv: &[&str]) {
    rpload::run_async(cli(argv))
        .await
        .expect("command succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_merge_exactly() {
    let addr = spawn(Behaviour::default()).await;
    let target = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let (a, b, both) = (p("a.jsonl"), p("b.jsonl"), p("both.jsonl"));
    run(&[
        "attack",
        "--api",
        "tgi-stream",
        "--target",
        &target,
        "--rate",
        "30/s",
        "--duration",
        "500ms",
        "-o",
        &a,
    ])
    .await;
    run(&[
        "attack",
        "--api",
        "tgi-stream",
        "--target",
        &target,
        "--rate",
        "20/s",
        "--duration",
        "500ms",
        "--seed",
        "3",
        "-o",
        &b,
    ])
    .await;
    let concatenated = [std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap()].concat();
    std::fs::write(&both, concatenated).unwrap();
    for kind in ["json", "text", "hist[0,20ms,50ms,100ms]", "hdrplot"] {
        let (merged, single) = (p(&format!("m-{kind}")), p(&format!("s-{kind}")));
        run(&["report", "--type", kind, "-o", &merged, &a, &b]).await;
        run(&["report", "--type", kind, "-o", &single, &both]).await;
        let (m, s) = (
            std::fs::read_to_string(&merged).unwrap(),
            std::fs::read_to_string(&single).unwrap(),
        );
        assert_eq!(
            m, s,
            "report --type {kind} differs between `a b` and `cat a b`"
        );
        assert!(!m.is_empty());
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p("m-json")).unwrap()).unwrap();
    assert_eq!(json["requests"], 25);
    assert_eq!(json["success"], 1.0);
    assert_eq!(json["status_codes"]["200"], 25);
    assert_eq!(json["tokens"]["output_total"], 125);
    for key in [
        "requests",
        "rate",
        "throughput",
        "success",
        "latencies",
        "status_codes",
        "errors",
        "duration",
        "wait",
        "ttft",
        "itl",
        "tpot",
        "send_lag",
        "tokens",
        "bytes_in",
        "bytes_out",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    for key in ["mean", "50th", "90th", "95th", "99th", "max", "min"] {
        assert!(
            json["latencies"][key].as_u64().unwrap() > 0,
            "latencies.{key}"
        );
        assert!(json["ttft"][key].as_u64().unwrap() > 0, "ttft.{key}");
    }
    for key in ["input_total", "output_total", "output_per_second"] {
        assert!(json["tokens"].get(key).is_some(), "tokens.{key}");
    }
    // ITL is pooled over every gap: 25 requests x 4 gaps at about 25 ms.
    assert_eq!(json["itl"]["count"], 100);
    let itl_p50 = json["itl"]["50th"].as_u64().unwrap() as f64 / 1e6;
    assert!((23.0..45.0).contains(&itl_p50), "{itl_p50}");
    let text = std::fs::read_to_string(p("m-text")).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("Status Codes") && l.ends_with(" 200:25")),
        "{text}"
    );
    assert!(
        text.starts_with("Requests      [total, rate, throughput]"),
        "{text}"
    );
    for row in [
        "Latencies",
        "TTFT",
        "ITL",
        "TPOT",
        "Send lag",
        "Tokens",
        "Success",
        "Status Codes",
    ] {
        assert!(text.contains(row), "missing {row:?} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("broken.jsonl");
    std::fs::write(&f, "{\"seq\": 1}\n").unwrap();
    let err = rpload::run_async(cli(&["report", f.to_str().unwrap()]))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("broken.jsonl:1: not a result record"), "{msg}");
    let err = rpload::run_async(cli(&["report", "--type", "pie", f.to_str().unwrap()]))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("unknown report --type \"pie\""));
}
