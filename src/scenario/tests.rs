//! Scenario validation: plans, durations, limits and the errors that name their field.

use super::*;

const STUDY: &str = r#"
name = "RedPajama-3B classification on TGI"
target = "http://127.0.0.1:8080"
api = "tgi"
prompts = "prompts/news-classification.jsonl"
max_new_tokens = 20

[sweep]
rps = "5..135"
step = 10
step_duration = "1s"
repeat = 3
cooldown = "4s"

[cost]
instance = "g5.4xlarge"
tokens_per_request = 104
"#;

#[test]
fn send_lag_is_derived_unless_given() {
    let derived = ScenarioFile::parse(STUDY, "study.toml")
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(derived.rules.max_send_lag, None);
    assert_eq!(derived.initial_warmup, Duration::from_secs(2));
    let explicit = STUDY.replace(
        "cooldown = \"4s\"",
        "cooldown = \"4s\"\nmax_send_lag = \"3ms\"",
    );
    let s = ScenarioFile::parse(&explicit, "e.toml")
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(s.rules.max_send_lag, Some(Duration::from_millis(3)));
}

#[test]
fn bad_fail_under_and_unmeasurable_slos_are_refused() {
    let with = |extra: &str| {
        let text = STUDY.replace("cooldown = \"4s\"", &format!("cooldown = \"4s\"\n{extra}"));
        ScenarioFile::parse(&text, "s.toml").unwrap().validate()
    };
    assert!(with("fail_under = 100").is_ok());
    let e = with("fail_under = 500").unwrap_err().to_string();
    assert!(
        e.contains("--fail-under 500") && e.contains("top rate 135"),
        "{e}"
    );
    let e = with("fail_under = -1").unwrap_err().to_string();
    assert!(e.contains("--fail-under -1"), "{e}");
    let e = with("slo = \"ttft_p95<500ms\"").unwrap_err().to_string();
    assert!(e.contains("--api tgi does not stream"), "{e}");
    assert!(with("slo = \"service_p95<500ms,p90<1s\"").is_ok());
    let streamed = STUDY
        .replace("api = \"tgi\"", "api = \"tgi-stream\"")
        .replace(
            "cooldown = \"4s\"",
            "cooldown = \"4s\"\nslo = \"ttft_p95<500ms\"",
        );
    assert!(
        ScenarioFile::parse(&streamed, "s.toml")
            .unwrap()
            .validate()
            .is_ok()
    );
}

#[test]
fn parses_validates_and_merges() {
    let file = ScenarioFile::parse(STUDY, "study.toml").unwrap();
    let s = file.validate().unwrap();
    assert_eq!(s.plan.rates().len(), 14);
    assert_eq!(s.step_duration, Duration::from_secs(1));
    assert_eq!(s.steps().len(), 42);
    assert_eq!(s.resolve_price().unwrap().unwrap().usd_per_hour, 1.624);

    let over = ScenarioFile {
        attack: crate::attack::options::AttackOptions {
            target: vec!["http://10.0.0.1:80".into()],
            ..Default::default()
        },
        sweep: SweepSection {
            rps: Some(RateSpec::Text("10,20".into())),
            repeat: Some(1),
            ..Default::default()
        },
        cost: CostSection {
            price_per_hour: Some(2.0),
            ..Default::default()
        },
        ..Default::default()
    };
    let merged = file.clone().merge(over);
    let s = merged.validate().unwrap();
    assert_eq!(s.plan.rates(), [10.0, 20.0]);
    assert_eq!(s.target, vec!["http://10.0.0.1:80".to_string()]);
    assert_eq!(merged.cost.instance, None);
    assert_eq!(s.resolve_price().unwrap().unwrap().usd_per_hour, 2.0);
    assert_eq!(merged.attack.max_new_tokens, Some(20));

    // A plan on the other axis from the command line replaces the file's.
    let users = ScenarioFile {
        sweep: SweepSection {
            concurrency: Some(RateSpec::Text("1,2,4".into())),
            ..Default::default()
        },
        ..Default::default()
    };
    let by_users = file.merge(users).validate().unwrap();
    assert_eq!(
        (by_users.axis, by_users.plan.rates()),
        (Axis::Concurrency, &[1.0, 2.0, 4.0][..])
    );

    // The as-run text parses back to the same thing.
    let again = ScenarioFile::parse(&merged.to_toml(), "as-run").unwrap();
    assert_eq!(again, merged);
}

#[test]
fn unknown_keys_name_file_and_line() {
    let text = "target = \"http://x\"\n\n[sweep]\nrps = \"1..2\"\nstpe = 1\n";
    let err = ScenarioFile::parse(text, "s.toml").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("s.toml:5:1: unknown field `stpe`"), "{msg}");
    let err = ScenarioFile::parse("colour = 1\n", "s.toml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("s.toml:1:1: unknown field `colour`"),
        "{err}"
    );
}

#[test]
fn bad_values_are_caught() {
    let bad = |t: &str| {
        ScenarioFile::parse(t, "x.toml")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
    };
    assert!(bad("[sweep]\nrps = \"150..10\"\nstep = 5\n").contains("reversed range"));
    assert!(bad("[sweep]\nrps = \"10..150\"\nstep = 0\n").contains("step must be positive"));
    assert!(bad("[sweep]\nrps = \"10\"\nslo = \"p95<2q\"\n").contains("unknown unit `q`"));
    assert!(
        bad("[sweep]\nrps = \"10\"\nstep_duration = \"10\"\n")
            .starts_with("step_duration: `10` needs a unit")
    );
    assert!(bad("[sweep]\nrps = \"10\"\nrepeat = 0\n").starts_with("repeat:"));
    assert!(bad("target = \"localhost:80\"\n[sweep]\nrps = \"10\"\n").starts_with("target:"));
    assert!(bad("").starts_with("rps: no rate plan"));
    let s = ScenarioFile::parse(
        "[sweep]\nrps = [1, 2.5]\n[cost]\ninstance = \"g5.4xlarg\"\n",
        "x",
    )
    .unwrap()
    .validate()
    .unwrap();
    assert_eq!(s.plan.rates(), [1.0, 2.5]);
    assert!(
        s.resolve_price()
            .unwrap_err()
            .to_string()
            .contains("nearest in the catalog: g5.4xlarge")
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    assert!(parse_duration("ten").is_err());
}
