//! The workload flags of [`AttackOptions`] turned into a checked [`WorkloadSpec`]: which source
//! wins (a trace, then a dataset, then synthetic text, then `--prompts`, then `--prompt`),
//! which combinations mean nothing (and say so before anything is sent), and how many
//! requests the run may send, which sizes the synthetic pool.

use std::time::Duration;

use super::api::ApiKind;
use super::options::AttackOptions;
use crate::prompts::DEFAULT_PROMPT;
use crate::workload::dataset::{DatasetSpec, Format};
use crate::workload::{Lengths, LengthsError, Source, Turns, WorkloadSpec};

/// The most turns one conversation may have: its requests' `seq` numbers are
/// `session * MAX_TURNS + turn - 1`.
pub const MAX_TURNS: u32 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum WorkloadOptionError {
    #[error(transparent)]
    Lengths(#[from] LengthsError),
    #[error(transparent)]
    Dataset(#[from] crate::workload::dataset::DatasetError),
    #[error("--{a} and --{b} are two sources of requests; pass one of them")]
    Sources { a: &'static str, b: &'static str },
    #[error("--{flag} only applies with --{needs}; add --{needs} or drop --{flag}")]
    Needs {
        flag: &'static str,
        needs: &'static str,
    },
    #[error(
        "--turns needs a chat API, whose requests carry earlier turns: use --api openai-chat (this attack uses {0})"
    )]
    TurnsApi(ApiKind),
    #[error("--{flag} {value}: {limit}")]
    Out {
        flag: &'static str,
        value: String,
        limit: &'static str,
    },
    #[error(
        "--trace sends requests at the trace's times; drop --rate 0 (a closed loop has no times)"
    )]
    TraceClosedLoop,
    #[error("--think-time: {0}")]
    Think(crate::pacer::ParseError),
}

/// The workload `args` describe for an attack of `kind` expected to send `expected`
/// requests, lasting `within` (None: no time bound), open loop or closed.
pub fn spec(
    args: &AttackOptions,
    kind: ApiKind,
    expected: u64,
    within: Option<Duration>,
    closed_loop: bool,
) -> Result<WorkloadSpec, WorkloadOptionError> {
    use WorkloadOptionError as E;
    let out = |flag, value: String, limit| E::Out { flag, value, limit };
    let sources = [
        ("trace", args.trace.is_some()),
        ("dataset", args.dataset.is_some()),
        ("input-tokens", args.input_tokens.is_some()),
    ];
    let given: Vec<&'static str> = sources.iter().filter(|s| s.1).map(|s| s.0).collect();
    if let [a, b, ..] = given[..] {
        return Err(E::Sources { a, b });
    }
    let needs = |set: bool, flag, needs: &'static str| {
        if set {
            Err(E::Needs { flag, needs })
        } else {
            Ok(())
        }
    };
    if args.input_tokens.is_none() {
        needs(
            args.input_tokens_stdev.is_some(),
            "input-tokens-stdev",
            "input-tokens",
        )?;
        needs(
            args.input_tokens_min.is_some(),
            "input-tokens-min",
            "input-tokens",
        )?;
        needs(
            args.input_tokens_max.is_some(),
            "input-tokens-max",
            "input-tokens",
        )?;
    }
    if args.output_tokens.is_none() {
        needs(
            args.output_tokens_stdev.is_some(),
            "output-tokens-stdev",
            "output-tokens",
        )?;
        needs(
            args.output_tokens_min.is_some(),
            "output-tokens-min",
            "output-tokens",
        )?;
        needs(
            args.output_tokens_max.is_some(),
            "output-tokens-max",
            "output-tokens",
        )?;
    }
    if args.dataset.is_none() {
        needs(args.dataset_format.is_some(), "dataset-format", "dataset")?;
        needs(
            args.dataset_prompt_field.is_some(),
            "dataset-prompt-field",
            "dataset",
        )?;
        needs(
            args.dataset_output_field.is_some(),
            "dataset-output-field",
            "dataset",
        )?;
    }
    if args.trace.is_none() {
        needs(args.replay_speed.is_some(), "replay-speed", "trace")?;
        needs(
            args.trace_block_tokens.is_some(),
            "trace-block-tokens",
            "trace",
        )?;
    }
    if args.prefix_tokens.is_none() {
        needs(args.prefix_count.is_some(), "prefix-count", "prefix-tokens")?;
    }
    if args.turns.is_none() {
        needs(args.turns_stdev.is_some(), "turns-stdev", "turns")?;
        needs(args.think_time.is_some(), "think-time", "turns")?;
    }
    let source = if let Some(path) = &args.trace {
        let speed = args.replay_speed();
        if !(speed.is_finite() && speed > 0.0) {
            return Err(out(
                "replay-speed",
                speed.to_string(),
                "must be a number above 0 (2 plays the trace twice as fast)",
            ));
        }
        if args.trace_block_tokens() == 0 {
            return Err(out(
                "trace-block-tokens",
                "0".into(),
                "must be at least 1 (the traces' own block is 512 tokens)",
            ));
        }
        Source::Trace {
            path: path.clone(),
            block_tokens: args.trace_block_tokens(),
            speed,
        }
    } else if let Some(path) = &args.dataset {
        Source::Dataset {
            path: path.clone(),
            spec: DatasetSpec {
                format: args
                    .dataset_format
                    .as_deref()
                    .map(Format::parse)
                    .transpose()?,
                prompt_field: args.dataset_prompt_field().to_owned(),
                output_field: args.dataset_output_field.clone(),
            },
        }
    } else if let Some(mean) = args.input_tokens {
        Source::Synthetic(Lengths::new(
            "input-tokens",
            f64::from(mean),
            args.input_tokens_stdev,
            args.input_tokens_min,
            args.input_tokens_max,
        )?)
    } else if let Some(path) = &args.prompts {
        Source::PromptsFile(path.clone())
    } else {
        Source::Texts(vec![
            args.prompt
                .clone()
                .unwrap_or_else(|| DEFAULT_PROMPT.to_owned()),
        ])
    };
    let expected = match &source {
        // A trace sends its own rows, not the rate's: keep as many as the run may send.
        Source::Trace { .. } => args
            .max_requests
            .unwrap_or(crate::workload::MAX_POOL as u64),
        _ => expected,
    };
    if args.trace.is_some() {
        if args.ramp.is_some() {
            return Err(E::Sources {
                a: "trace",
                b: "ramp",
            });
        }
        if closed_loop {
            return Err(E::TraceClosedLoop);
        }
    }
    if args.turns.is_some() {
        if kind != ApiKind::OpenaiChat {
            return Err(E::TurnsApi(kind));
        }
        if args.trace.is_some() {
            return Err(E::Sources {
                a: "trace",
                b: "turns",
            });
        }
    }
    base(args, source, expected, within)
}

fn base(
    args: &AttackOptions,
    source: Source,
    expected: u64,
    within: Option<Duration>,
) -> Result<WorkloadSpec, WorkloadOptionError> {
    use WorkloadOptionError as E;
    let output = match args.output_tokens {
        Some(mean) => Some(Lengths::new(
            "output-tokens",
            f64::from(mean),
            args.output_tokens_stdev,
            args.output_tokens_min,
            args.output_tokens_max,
        )?),
        None => None,
    };
    let prefix = match args.prefix_tokens {
        Some(0) => {
            return Err(E::Out {
                flag: "prefix-tokens",
                value: "0".into(),
                limit: "must be at least 1 (omit it for no shared prefix)",
            });
        }
        Some(n) => {
            let k = args.prefix_count();
            if k == 0 || k > 10_000 {
                return Err(E::Out {
                    flag: "prefix-count",
                    value: k.to_string(),
                    limit: "must be 1 to 10000 distinct prefixes",
                });
            }
            Some((n, k))
        }
        None => None,
    };
    let turns = match args.turns {
        Some(mean) => {
            if mean == 0 || mean > MAX_TURNS {
                return Err(E::Out {
                    flag: "turns",
                    value: mean.to_string(),
                    limit: "must be 1 to 1024 turns per conversation",
                });
            }
            let think = crate::pacer::parse_duration(args.think_time()).map_err(E::Think)?;
            let max = mean.saturating_mul(4).min(MAX_TURNS);
            Some(Turns {
                turns: Lengths::new(
                    "turns",
                    f64::from(mean),
                    args.turns_stdev,
                    Some(1),
                    Some(max),
                )?,
                think,
            })
        }
        None => None,
    };
    Ok(WorkloadSpec {
        source,
        output,
        prefix,
        turns,
        seed: args.seed(),
        expected,
        within,
    })
}
