//! Tests of `AttackOptions`: every flag's stated default is its accessor's, and the command
//! line lays over a scenario file.

use super::*;
use clap::{Args, Command};

/// Each flag's `[default: ...]` help text is what its accessor resolves to.
#[test]
fn help_states_the_resolved_defaults() {
    let none = AttackOptions::default();
    let expected: &[(&str, String)] = &[
        ("api", format!("{}; http with --targets", none.api())),
        ("format", none.format().to_string()),
        ("method", none.method().to_string()),
        ("arrival", none.arrival().to_string()),
        ("burstiness", none.burstiness().to_string()),
        ("seed", none.seed().to_string()),
        ("max_inflight", none.max_inflight().to_string()),
        ("balance", none.balance().to_string()),
        ("timeout", none.timeout().to_string()),
        (
            "max_new_tokens",
            format!("{}; 20 against the embedded server", none.max_new_tokens()),
        ),
        ("body_template", none.body_template().to_string()),
        ("text_pointer", none.text_pointer().to_string()),
        ("strip_prompt", none.strip_prompt().to_string()),
        ("redirects", none.redirects().to_string()),
        ("max_body_size", none.max_body_size().to_string()),
        ("max_event_size", none.max_event_size().to_string()),
        ("input_tokens_stdev", none.input_tokens_stdev().to_string()),
        (
            "output_tokens_stdev",
            none.output_tokens_stdev().to_string(),
        ),
        ("input_tokens_min", none.input_tokens_min().to_string()),
        ("output_tokens_min", none.output_tokens_min().to_string()),
        ("prefix_count", none.prefix_count().to_string()),
        (
            "dataset_prompt_field",
            none.dataset_prompt_field().to_string(),
        ),
        ("replay_speed", none.replay_speed().to_string()),
        ("trace_block_tokens", none.trace_block_tokens().to_string()),
        ("turns_stdev", none.turns_stdev().to_string()),
        ("think_time", none.think_time().to_string()),
        // The machine's, so stated in words; the accessor is checked against it below.
        (
            "workers",
            "the CPUs available; 1 beside the embedded server".to_string(),
        ),
    ];
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    assert_eq!(none.workers(), cpus);
    let cmd = AttackOptions::augment_args(Command::new("t"));
    for arg in cmd.get_arguments() {
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(
            !help.trim().is_empty(),
            "--{} has no help text",
            arg.get_id()
        );
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let stated = flat
            .rsplit_once("[default: ")
            .map(|(_, d)| d.trim_end_matches(['.', ']']).to_string());
        let want = expected.iter().find(|(id, _)| *id == arg.get_id().as_str());
        match (want, stated) {
            (Some((_, want)), Some(stated)) => {
                assert_eq!(&stated, want, "--{}'s help", arg.get_id())
            }
            (Some((id, _)), None) => panic!("--{id}'s help does not state its default"),
            (None, Some(s)) => {
                panic!("--{} states a default {s} no accessor has", arg.get_id())
            }
            (None, None) => {}
        }
    }
    assert_eq!(
        AttackOptions {
            targets: Some("t".into()),
            ..none
        }
        .api(),
        "http"
    );
}

#[test]
fn the_command_line_lays_over_a_file() {
    let file = AttackOptions {
        api: Some("tgi".into()),
        max_new_tokens: Some(20),
        headers: vec!["A: 1".into()],
        stop: vec!["x".into()],
        stream: true,
        ..Default::default()
    };
    let flags = AttackOptions {
        max_new_tokens: Some(8),
        headers: vec!["B: 2".into()],
        ..Default::default()
    };
    let m = file.overlaid(&flags);
    assert_eq!(m.api.as_deref(), Some("tgi"));
    assert_eq!(m.max_new_tokens, Some(8));
    assert_eq!(m.headers, ["A: 1", "B: 2"]);
    assert_eq!(m.stop, ["x"]);
    assert!(m.stream);
    let table: AttackOptions = toml::from_str("[headers]\nB = \"2\"\nA = \"1\"\n").unwrap();
    assert_eq!(table.headers, ["A: 1", "B: 2"]);
}
