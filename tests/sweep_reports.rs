//! Sweep outputs from a fixed, synthetic `results.jsonl`: steps.csv columns, summary and
//! verdicts, PNG sizes, the SLO drawn on the charts, and byte-identical re-rendering
//! (`report --sweep`).

use std::io::Write;
use std::path::Path;

use rpload::report::csv::STEP_COLUMNS;
use rpload::report::png::{SIZE, SIZE_TWO_PANELS, SLO_COLOR};
use rpload::sweep::output;

#[path = "sweep_common/mod.rs"]
mod common;

use common::{Model, write_run};

fn synthetic_records(rates: &[f64], step_s: f64, repeats: u32) -> Vec<rpload::record::Record> {
    common::sweep_records(
        Model {
            capacity: 30.0,
            service_s: 0.1,
        },
        rates,
        step_s,
        repeats,
    )
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

/// Per row of the chart at `path`: how many pixels have the SLO line's colour.
fn slo_pixels_per_row(path: &Path) -> Vec<usize> {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let slo = [SLO_COLOR.0, SLO_COLOR.1, SLO_COLOR.2];
    buf[..info.buffer_size()]
        .chunks(info.line_size)
        .map(|row| row.chunks(channels).filter(|px| px[..3] == slo).count())
        .collect()
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

    // `p95<1s` is a dashed line across the latency plot (two rows, 2 px thick) and nowhere
    // on the charts of other families.
    let rows = slo_pixels_per_row(&dir.path().join("latency.png"));
    let long: Vec<usize> = (0..rows.len()).filter(|&y| rows[y] > 300).collect();
    assert!(
        !long.is_empty() && long.len() <= 3 && long[long.len() - 1] - long[0] <= 2,
        "SLO rows of latency.png: {long:?}"
    );
    for name in ["throughput.png", "ttft_itl.png", "cost.png"] {
        let n: usize = slo_pixels_per_row(&dir.path().join(name)).iter().sum();
        assert_eq!(n, 0, "{name} draws the latency SLO");
    }
    assert!(md.contains("p50 / p90 / p95 / p99 vs offered rate, with the SLO limit p95<1s"));
}

#[test]
fn charts_draw_an_slo_only_when_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let records = synthetic_records(&[10.0, 20.0, 30.0], 2.0, 1);
    let scenario = SCENARIO.replace("slo = \"p95<1s\"", "slo = \"ttft_p99<900ms,itl_p50<300ms\"");
    write_run(dir.path(), &scenario, &records);
    output::rebuild(dir.path()).unwrap();
    let rows = slo_pixels_per_row(&dir.path().join("ttft_itl.png"));
    // Two lines, one per panel (the top half is TTFT, the bottom ITL).
    let long: Vec<usize> = (0..rows.len()).filter(|&y| rows[y] > 300).collect();
    let half = rows.len() / 2;
    assert!(long.iter().any(|&y| y < half), "no TTFT limit: {long:?}");
    assert!(long.iter().any(|&y| y >= half), "no ITL limit: {long:?}");
    let n: usize = slo_pixels_per_row(&dir.path().join("latency.png"))
        .iter()
        .sum();
    assert_eq!(n, 0, "latency.png draws a token SLO");

    let scenario = SCENARIO.replace("slo = \"p95<1s\"\n", "");
    write_run(dir.path(), &scenario, &records);
    output::rebuild(dir.path()).unwrap();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "png") {
            let n: usize = slo_pixels_per_row(&path).iter().sum();
            assert_eq!(n, 0, "{} draws an SLO that is not there", path.display());
        }
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
///
/// Ignored because it asserts nothing a machine can judge: it exists so that whoever changes
/// the charts (`report/png.rs`, `report/chart/`) can look at them
/// (`RPLOAD_CHART_DIR=/tmp/charts cargo test --test sweep_reports -- --ignored
/// render_for_inspection`). What a machine can check about the same charts (sizes, the SLO
/// lines, byte-identical re-rendering, every file present) is tested above and, pixel by pixel
/// against the layout, in `report::chart::tests`.
#[test]
#[ignore = "manual tool: renders charts into $RPLOAD_CHART_DIR to look at"]
fn render_for_inspection() {
    let dir = std::path::PathBuf::from(std::env::var("RPLOAD_CHART_DIR").unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    // RPLOAD_CHART_STUDY=1: the study's shape, 14 rates x 3 one-second bursts.
    if std::env::var("RPLOAD_CHART_STUDY").is_ok() {
        let rates: Vec<f64> = (0..14).map(|i| 5.0 + 10.0 * f64::from(i)).collect();
        let records = common::sweep_records(
            Model {
                capacity: 60.0,
                service_s: 0.3,
            },
            &rates,
            1.0,
            3,
        );
        let scenario = SCENARIO
            .replace("rps = \"10..50\"", "rps = \"5..135\"")
            .replace(
                "step_duration = \"2s\"",
                "step_duration = \"1s\"\nrepeat = 3",
            );
        write_run(&dir, &scenario, &records);
    } else {
        let records = synthetic_records(&[10.0, 20.0, 30.0, 40.0, 50.0], 2.0, 1);
        write_run(&dir, SCENARIO, &records);
    }
    // RPLOAD_CHART_SLO="p95<1s,ttft_p99<400ms": another SLO, to see its lines and series.
    if let Ok(slo) = std::env::var("RPLOAD_CHART_SLO") {
        let path = dir.join(output::SCENARIO_TOML);
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("slo = \"p95<1s\"", &format!("slo = \"{slo}\""));
        std::fs::write(&path, text).unwrap();
    }
    output::rebuild(&dir).unwrap();
}
