//! The shipped scenarios validate and price, and the shipped prompt corpora are well-formed.

use std::path::Path;

use rpload::scenario::ScenarioFile;

#[test]
fn every_shipped_scenario_validates_and_prices() {
    let mut n = 0;
    for entry in std::fs::read_dir("scenarios").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.extension().is_none_or(|e| e != "toml") || name == "pricing.toml" {
            continue;
        }
        n += 1;
        let file = ScenarioFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let sc = file.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(sc.resolve_price().unwrap().is_some(), "{name} has a price");
        // A scenario names a prompt file, or generates its prompts (synthetic lengths).
        match file.attack.prompts.as_deref() {
            Some(prompts) => assert!(prompts.exists(), "{name}: {}", prompts.display()),
            None => assert!(file.attack.input_tokens.is_some(), "{name}: no prompts"),
        }
    }
    assert_eq!(
        n, 6,
        "the study's four experiments, the OpenAI example and the concurrency example"
    );
    let tgi = ScenarioFile::load(Path::new("scenarios/study-classification-tgi.toml"))
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(tgi.plan.rates().first(), Some(&5.0));
    assert_eq!(tgi.plan.rates().last(), Some(&135.0));
    assert_eq!(tgi.repeat, 3);
    let users = ScenarioFile::load(Path::new("scenarios/chat-concurrency.toml"))
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(users.plan.rates(), [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
    assert_eq!(users.steps()[3].concurrency, Some(8));
}

/// Every committed run folder's `scenario.toml` still parses and validates, and writing it
/// back and parsing that gives the same scenario (the as-run format is stable).
#[test]
fn every_committed_run_scenario_still_parses() {
    fn folders(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders(&path, out);
            } else if path.file_name().is_some_and(|n| n == "scenario.toml") {
                out.push(path);
            }
        }
    }
    let mut found = Vec::new();
    folders(Path::new("reports"), &mut found);
    assert!(found.len() >= 13, "{found:?}");
    for path in found {
        let file = ScenarioFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
        file.validate()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let again = ScenarioFile::parse(&file.to_toml(), "again").unwrap();
        assert_eq!(again, file, "{}", path.display());
    }
}

#[test]
fn prompt_corpora_have_fifty_wrapped_prompts_each() {
    for (file, wrapper) in [
        (
            "prompts/news-classification.jsonl",
            "Classify the following sentence",
        ),
        (
            "prompts/chat-summarization.jsonl",
            "Summarize the following dialogue",
        ),
    ] {
        let text = std::fs::read_to_string(file).unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let prompt = v["prompt"].as_str().unwrap();
            assert!(prompt.starts_with(wrapper), "{line}");
            // About 100 tokens: 300..600 bytes of English.
            assert!(
                (300..600).contains(&prompt.len()),
                "{} bytes: {line}",
                prompt.len()
            );
            assert!(
                ids.insert(v["id"].as_str().unwrap().to_string()),
                "duplicate id in {file}"
            );
        }
        assert!(ids.len() >= 50, "{file}: {}", ids.len());
    }
}
