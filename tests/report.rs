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

/// `rpload attack` of a streaming TGI target for 500 ms into `file`; `extra` are more flags.
async fn attack_into(target: &str, rate: &str, file: &str, extra: &[&str]) {
    let mut argv = vec![
        "attack",
        "--api",
        "tgi-stream",
        "--target",
        target,
        "--rate",
        rate,
        "--duration",
        "500ms",
        "-o",
        file,
    ];
    argv.extend_from_slice(extra);
    run(&argv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_merge_exactly() {
    let addr = spawn(Behaviour::default()).await;
    let target = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let (a, b, both) = (p("a.jsonl"), p("b.jsonl"), p("both.jsonl"));
    attack_into(&target, "30/s", &a, &[]).await;
    attack_into(&target, "20/s", &b, &["--seed", "3"]).await;
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

/// Figures of `report a b` against the same figures computed here from the records themselves:
/// an independent count, not the same loop run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_figures_match_a_count_by_hand() {
    let ok = spawn(Behaviour::default()).await;
    let failing = spawn(Behaviour {
        fault: common::Fault::Status(503),
        ..Behaviour::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let (a, b, out) = (p("a.jsonl"), p("b.jsonl"), p("report.json"));
    for (addr, rate, file) in [(ok, "40/s", &a), (failing, "30/s", &b)] {
        let target = format!("http://{addr}");
        attack_into(&target, rate, file, &[]).await;
    }
    run(&["report", "--type", "json", "-o", &out, &a, &b]).await;
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();

    let records: Vec<serde_json::Value> = [&a, &b]
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let n = records.len() as u64;
    let code = |r: &serde_json::Value| r["code"].as_u64().unwrap();
    let oks: Vec<&serde_json::Value> = records.iter().filter(|r| code(r) == 200).collect();
    assert_eq!(n, 35, "20 + 15 requests");
    assert_eq!(json["requests"], n);
    assert_eq!(json["status_codes"]["200"], oks.len() as u64);
    assert_eq!(json["status_codes"]["503"], n - oks.len() as u64);
    assert_eq!(json["success"], oks.len() as f64 / n as f64);
    let tokens: u64 = oks.iter().map(|r| r["tokens_out"].as_u64().unwrap()).sum();
    assert_eq!(json["tokens"]["output_total"], tokens);
    let gaps: usize = oks
        .iter()
        .map(|r| r["itl_ns"].as_array().unwrap().len())
        .sum();
    assert_eq!(json["itl"]["count"], gaps as u64);

    // Latency over every request, failures included: exact mean, min and max; percentiles to
    // the histogram's 3 significant digits at the nearest rank.
    let mut lat: Vec<u64> = records
        .iter()
        .map(|r| r["latency"].as_u64().unwrap())
        .collect();
    lat.sort_unstable();
    let l = &json["latencies"];
    assert_eq!(l["mean"], lat.iter().sum::<u64>() / n);
    assert_eq!(l["min"], lat[0]);
    assert_eq!(l["max"], *lat.last().unwrap());
    for (key, q) in [("50th", 0.50), ("90th", 0.90), ("99th", 0.99)] {
        let rank = ((q * n as f64).ceil() as usize).max(1);
        let got = l[key].as_u64().unwrap() as f64;
        let near = lat[rank.saturating_sub(2)..(rank + 1).min(lat.len())]
            .iter()
            .any(|&v| (got - v as f64).abs() <= v as f64 * 1e-3 + 1e3);
        assert!(
            near,
            "latencies.{key} = {got}, sorted samples near rank {rank}: {lat:?}"
        );
    }
}

/// A record as `rpload attack` writes it, `seq` and `latency` (ns) varied.
fn record_line(seq: u64, latency: u64) -> String {
    serde_json::json!({
        "attack": "", "seq": seq, "code": 200, "timestamp": "2024-01-01T00:00:00.5Z",
        "latency": latency, "bytes_out": 10, "bytes_in": 100, "error": "", "method": "POST",
        "url": "http://127.0.0.1:1/generate", "intended_ns": 0, "sent_ns": 1_000,
        "ttft_ns": latency / 2, "itl_ns": [latency / 4], "tokens_out": 2,
    })
    .to_string()
}

/// The real binary, for its stderr: `rpload report --type json FILE`.
fn report_json(file: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rpload"))
        .args(["report", "--type", "json"])
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn a_torn_last_line_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("crashed.jsonl");
    let last = record_line(2, 7_000_000);
    let text = format!(
        "{}\n{}\n{}",
        record_line(0, 3_000_000),
        record_line(1, 5_000_000),
        &last[..last.len() / 2]
    );
    std::fs::write(&f, text).unwrap();
    let out = report_json(&f);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "warning: {}:3: skipped the last line: it is cut short",
            f.display()
        )),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["requests"], 2);
    assert_eq!(json["latencies"]["max"], 5_000_000);
}

#[test]
fn damage_before_the_end_still_refuses_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("damaged.jsonl");
    let cut = record_line(1, 5_000_000);
    let text = format!(
        "{}\n{}\n{}\n",
        record_line(0, 3_000_000),
        &cut[..cut.len() / 2],
        record_line(2, 7_000_000)
    );
    std::fs::write(&f, text).unwrap();
    let out = report_json(&f);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("damaged.jsonl:2: not a result record"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let mut bytes = format!("{}\n", record_line(0, 3_000_000)).into_bytes();
    bytes.extend_from_slice(b"{\"attack\":\"\xff\"}\n");
    std::fs::write(&f, bytes).unwrap();
    let stderr = String::from_utf8_lossy(&report_json(&f).stderr).into_owned();
    assert!(
        stderr.contains("damaged.jsonl:2: not UTF-8 text"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_records_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("forged.jsonl");
    let path = f.to_str().unwrap();
    let cases = [
        (
            "\"latency\":5000000",
            "\"latency\":18446744073709551615",
            "latency: 18446744073709551615 ns is over",
        ),
        (
            "\"ttft_ns\":2500000",
            "\"ttft_ns\":9000000",
            "ttft_ns: the first token at 9000000 ns came after",
        ),
        (
            "\"itl_ns\":[1250000]",
            "\"itl_ns\":[4000000,4000000]",
            "itl_ns: the gaps between tokens add up to 8000000 ns",
        ),
    ];
    for (from, to, want) in cases {
        let forged = record_line(1, 5_000_000).replace(from, to);
        assert_ne!(
            forged,
            record_line(1, 5_000_000),
            "{from} not in the record"
        );
        std::fs::write(&f, format!("{}\n{forged}\n", record_line(0, 3_000_000))).unwrap();
        let err = rpload::run_async(cli(&["report", path])).await.unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.starts_with(&format!("{path}:2: {want}")), "{msg}");
        assert_eq!(
            msg.matches(want).count(),
            1,
            "the cause is stated once: {msg}"
        );
    }
    // sent before intended: a record due at 2 ms that claims to have left at 1 ms.
    let forged = record_line(1, 5_000_000).replace("\"intended_ns\":0", "\"intended_ns\":2000000");
    std::fs::write(&f, format!("{forged}\n")).unwrap();
    let msg = format!(
        "{:#}",
        rpload::run_async(cli(&["report", path])).await.unwrap_err()
    );
    assert!(
        msg.starts_with(&format!(
            "{path}:1: sent_ns: sent at 1000 ns, before its intended time 2000000 ns"
        )),
        "{msg}"
    );
}
