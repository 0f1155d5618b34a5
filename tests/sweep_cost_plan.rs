//! `rpload cost` and `rpload plan` against the study's figures and the issue's example.

#[path = "sweep_common/mod.rs"]
mod common;

use common::{Model, sweep_records, write_run};
use rpload::commands::cost::text as cost_text;
use rpload::commands::plan::text as plan_text;
use rpload::commands::{CostArgs, PlanArgs};

#[test]
fn cost_prints_the_study_figure() {
    let out = cost_text(&CostArgs {
        rps: Some(135.0),
        tokens_per_request: Some(104.0),
        instance: Some("g5.4xlarge".into()),
        latency: Some("1.44s".into()),
        ..Default::default()
    })
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0.0000321 USD per 1K tokens", "{out}");
    assert!(
        lines[1]
            .contains("135 req/s x 104 tokens per request on g5.4xlarge (us-east-1, 1.624 USD/h)"),
        "{out}"
    );
    assert!(
        out.contains("0.00334 USD per 1K requests at 135 req/s"),
        "{out}"
    );
    assert!(out.contains("0.000650 USD for a 1.44 s window"), "{out}");
}

#[test]
fn cost_errors() {
    let e = cost_text(&CostArgs {
        rps: Some(1.0),
        tokens_per_request: Some(1.0),
        instance: Some("g5.4xlarg".into()),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("nearest in the catalog: g5.4xlarge"), "{e}");
    let e = cost_text(&CostArgs {
        rps: Some(1.0),
        instance: Some("g5.4xlarge".into()),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("--rps needs --tokens-per-request"), "{e}");
    let listing = cost_text(&CostArgs {
        list: true,
        ..Default::default()
    })
    .unwrap();
    assert!(listing.contains("g5.4xlarge") && listing.contains("p5.48xlarge"));
}

fn run_dir(root: &std::path::Path, name: &str, capacity: f64, price: f64) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = format!(
        "name = \"{name}\"\ntarget = \"http://127.0.0.1:9\"\n[sweep]\nrps = \"10..50\"\nstep = 10\nstep_duration = \"2s\"\n[cost]\ninstance = \"box-{name}\"\nprice_per_hour = {price}\n"
    );
    let recs = sweep_records(
        Model {
            capacity,
            service_s: 0.1,
        },
        &[10.0, 20.0, 30.0, 40.0, 50.0],
        2.0,
        1,
    );
    write_run(&dir, &scenario, &recs);
    dir
}

#[test]
fn plan_matches_the_issue_example_and_sorts_cheapest_first() {
    let root = tempfile::tempdir().unwrap();
    let a = run_dir(root.path(), "a10g", 30.0, 1.624);
    let b = run_dir(root.path(), "big", 45.0, 4.0);
    let out = plan_text(&PlanArgs {
        from: vec![b.clone(), a.clone()],
        target_rps: 300.0,
        headroom: 1.0,
        slo: None,
    })
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("target 300 req/s, headroom 1"),
        "{out}"
    );
    // a10g sustains 30 req/s -> 10 instances, 11,855.20 USD/month; big sustains 40 -> 8 x 4 USD/h.
    assert!(
        lines[2].contains("box-a10g")
            && lines[2].contains(" 10 ")
            && lines[2].contains("11,855.20"),
        "{out}"
    );
    assert!(
        lines[3].contains("box-big") && lines[3].contains("23,360.00"),
        "{out}"
    );

    // A stricter SLO leaves fewer sustainable steps: p95 is 150 ms at 20 req/s, 160 at 30.
    let out = plan_text(&PlanArgs {
        from: vec![a.clone()],
        target_rps: 300.0,
        headroom: 1.2,
        slo: Some("p95<155ms".into()),
    })
    .unwrap();
    assert!(out.contains("20 req/s") && out.contains(" 18 "), "{out}");
    let out = plan_text(&PlanArgs {
        from: vec![a],
        target_rps: 300.0,
        headroom: 1.2,
        slo: Some("p95<1ms".into()),
    })
    .unwrap();
    assert!(
        out.contains("left out:") && out.contains("no sustainable step"),
        "{out}"
    );
    let e = plan_text(&PlanArgs {
        from: vec![b],
        target_rps: 300.0,
        headroom: 1.2,
        slo: Some("p95<".into()),
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("--slo: invalid SLO"), "{e}");
}
