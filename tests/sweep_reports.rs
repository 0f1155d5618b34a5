//! Sweep outputs from a fixed, synthetic `results.jsonl`: steps.csv columns, summary and
//! verdicts, PNG sizes, and byte-identical re-rendering (`report --sweep`).

use std::io::Write;
use std::path::Path;

use rpload::record::{ErrorKind, Record, RecordWriter, TokensSource};
use rpload::report::csv::STEP_COLUMNS;
use rpload::report::png::{SIZE, SIZE_TWO_PANELS};
use rpload::sweep::output;

/// A TGI-like streaming target: latency grows with rate, saturating at 30 req/s.
fn synthetic_records(rates: &[f64], step_s: f64, repeats: u32) -> Vec<Record> {
    let mut out = Vec::new();
    let base = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let mut step = 0u32;
    let mut run_start_s = 0.0;
    for &rps in rates {
        for _rep in 0..repeats {
            let n = (rps * step_s).round() as u64;
            let saturated = rps > 30.0;
            for seq in 0..n {
                let intended_s = seq as f64 / rps;
                // Past capacity requests queue: each waits for the ones before it.
                let queue_s = if saturated {
                    seq as f64 * (1.0 / 30.0 - 1.0 / rps)
                } else {
                    0.0
                };
                let service_s = 0.1 + rps / 1000.0 + (seq % 7) as f64 * 0.005;
                let latency_s = service_s + queue_s;
                let ok = !(saturated && seq % 25 == 0);
                let intended_ns = (intended_s * 1e9) as u64;
                let ttft_ns = (latency_s * 0.3 * 1e9) as u64;
                out.push(Record {
                    attack: "synthetic".into(),
                    seq,
                    code: if ok { 200 } else { 429 },
                    timestamp: base + time::Duration::seconds_f64(run_start_s + intended_s),
                    latency: (latency_s * 1e9) as u64,
                    bytes_out: 450,
                    bytes_in: if ok { 80 } else { 60 },
                    error: if ok {
                        String::new()
                    } else {
                        "429 Too Many Requests".into()
                    },
                    method: "POST".into(),
                    url: "http://127.0.0.1:9/generate_stream".into(),
                    intended_ns,
                    sent_ns: intended_ns + 50_000,
                    ttft_ns: ok.then_some(ttft_ns),
                    itl_ns: if ok {
                        vec![(latency_s * 0.7 / 3.0 * 1e9) as u64; 3]
                    } else {
                        vec![]
                    },
                    tokens_in: ok.then_some(100),
                    tokens_out: ok.then_some(4),
                    tokens_source: ok.then_some(TokensSource::Server),
                    error_kind: (!ok).then_some(ErrorKind::Status429),
                    capped: false,
                    step: Some(step),
                });
            }
            step += 1;
            run_start_s += step_s + 4.0;
        }
    }
    out
}

fn write_run(dir: &Path, scenario: &str, records: &[Record]) {
    std::fs::write(dir.join(output::SCENARIO_TOML), scenario).unwrap();
    let file = std::fs::File::create(dir.join(output::RESULTS_JSONL)).unwrap();
    let mut w = RecordWriter::new(std::io::BufWriter::new(file));
    for r in records {
        w.write(r).unwrap();
    }
    w.flush().unwrap();
}

const SCENARIO: &str = r#"
name = "synthetic TGI"
target = "http://127.0.0.1:9"
api = "tgi-stream"

[sweep]
rps = "10..50"
step = 10
step_duration = "2s"
slo = "p95<1s"

[cost]
instance = "g5.4xlarge"
price_per_hour = 1.624
tokens_per_request = 104
"#;

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    (info.width, info.height)
}

#[test]
fn outputs_verdicts_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let records = synthetic_records(&[10.0, 20.0, 30.0, 40.0, 50.0], 2.0, 1);
    write_run(dir.path(), SCENARIO, &records);
    let s = output::rebuild(dir.path()).unwrap();

    assert_eq!(s.steps.len(), 5);
    let verdicts: Vec<bool> = s.steps.iter().map(|r| r.sustainable).collect();
    assert_eq!(
        verdicts,
        [true, true, true, false, false],
        "{:#?}",
        s.steps.iter().map(|r| &r.verdict).collect::<Vec<_>>()
    );
    let h = s.headline.as_ref().unwrap();
    assert_eq!(h.target_rps, 30.0);
    assert!(h.cost.usd_per_1k_tokens.unwrap() > 0.0);
    assert!(
        s.steps[3].verdict.contains("success"),
        "{}",
        s.steps[3].verdict
    );

    let csv = std::fs::read_to_string(dir.path().join(output::STEPS_CSV)).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(&header[..STEP_COLUMNS.len()], STEP_COLUMNS);
    assert_eq!(csv.lines().count(), 6);
    let first: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(first[0], "10.000");
    assert_eq!(first[16], "true");
    assert!(
        !first[9].is_empty(),
        "ttft_p50_ms is measured for a streaming run"
    );

    let md = std::fs::read_to_string(dir.path().join(output::REPORT_MD)).unwrap();
    assert!(
        md.contains("**Highest sustainable rate: 30 req/s**"),
        "{md}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(output::SUMMARY_JSON)).unwrap(),
    )
    .unwrap();
    assert_eq!(json["headline"]["target_rps"], 30.0);

    for (name, size) in [
        ("latency.png", SIZE),
        ("throughput.png", SIZE_TWO_PANELS),
        ("ttft_itl.png", SIZE_TWO_PANELS),
        ("cost.png", SIZE),
        ("latency_distribution.png", SIZE),
    ] {
        assert_eq!(png_size(&dir.path().join(name)), size, "{name}");
    }
}

#[test]
fn rerendering_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let records = synthetic_records(&[10.0, 20.0, 30.0, 40.0], 1.0, 3);
    let scenario = SCENARIO.replace(
        "step_duration = \"2s\"",
        "step_duration = \"1s\"\nrepeat = 3",
    );
    write_run(dir.path(), &scenario, &records);
    let first = output::rebuild(dir.path()).unwrap();
    assert_eq!(first.steps.len(), 12);
    assert_eq!(first.rates.len(), 4);
    let snapshot = |d: &Path| {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot(dir.path());
    // Delete every derived file, rebuild, compare.
    for (name, _) in &before {
        if name != output::SCENARIO_TOML && name != output::RESULTS_JSONL {
            std::fs::remove_file(dir.path().join(name)).unwrap();
        }
    }
    let again = output::rebuild(dir.path()).unwrap();
    assert_eq!(again, first);
    assert_eq!(snapshot(dir.path()), before);
    let md = std::fs::read_to_string(dir.path().join(output::REPORT_MD)).unwrap();
    assert!(md.contains("means over 3 repeats"), "{md}");
}

#[test]
fn rebuild_of_a_folder_without_scenario_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("results.jsonl")).unwrap();
    writeln!(f).unwrap();
    let err = output::rebuild(dir.path()).unwrap_err().to_string();
    assert!(err.contains("has no scenario.toml"), "{err}");
}

/// Renders the synthetic sweep into `$RPLOAD_CHART_DIR` for looking at the charts by eye.
#[test]
#[ignore]
fn render_for_inspection() {
    let dir = std::path::PathBuf::from(std::env::var("RPLOAD_CHART_DIR").unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let records = synthetic_records(&[10.0, 20.0, 30.0, 40.0, 50.0], 2.0, 1);
    write_run(&dir, SCENARIO, &records);
    output::rebuild(&dir).unwrap();
}
