//! [`AttackOptions`]: every option of an attack, in one struct that `rpload attack` and
//! `rpload sweep` flatten into their command lines and that scenario files hold at their top
//! level. One name, one type and one default per option; [`super::setup`] checks the values.
//!
//! Fields are `Option`s (or `false` / empty) so that a scenario file and the command line can
//! be layered: a flag the user did not type must not overwrite the file's value with a default.
//! The defaults therefore live in the accessors below, once, and each flag's help text states
//! its default (a test holds the two together).

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use super::api::FASTAPI_BODY_TEMPLATE;

/// The options of one attack (everything but the schedule: `attack`'s `--rate`/`--duration`,
/// or a sweep's plan).
#[derive(Debug, Clone, Default, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackOptions {
    /// A name for the run: the `attack` field of every record and the title of a sweep's
    /// reports.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Target URL; repeat it to spread the requests over several replicas (see --balance). For
    /// LLM APIs a bare host (`http://127.0.0.1:8080`) gets the API's usual path (/generate,
    /// /generate_stream, /v1/completions, /v1/chat/completions, /predict). A sweep without one
    /// starts the embedded reference server. In a scenario file: a string or a list.
    #[arg(long, short = 't', value_name = "URL")]
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many",
        serialize_with = "one_or_many_out"
    )]
    pub target: Vec<String>,
    /// With several --target: round-robin (by request index, so shards and workers agree on
    /// which target gets which request) or least-inflight (the target with the fewest of this
    /// process's requests in flight; ties by request index) [default: round-robin].
    #[arg(long, value_name = "POLICY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<String>,
    /// Wire format: tgi, tgi-stream, openai-completions, openai-chat, fastapi or http
    /// [default: tgi; http with --targets].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Plain HTTP only: a Vegeta targets file (instead of --target).
    #[arg(long, conflicts_with = "target")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<PathBuf>,
    /// Targets file format: http or json (Vegeta's) [default: http].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// http: method for --target [default: GET].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// http: request body file for --target.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<PathBuf>,
    /// Arrival process: constant (evenly spaced), poisson (exponential gaps, seeded) or gamma
    /// (gamma gaps of shape --burstiness, seeded) [default: constant].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrival: Option<String>,
    /// --arrival gamma only: the gaps' shape B, so their coefficient of variation is
    /// 1/sqrt(B): below 1 requests come in bursts, 1 is Poisson, above 1 they are more even
    /// [default: 1].
    #[arg(long, allow_negative_numbers = true, value_name = "B")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burstiness: Option<f64>,
    /// `attack` only, instead of --rate: the rate goes linearly from FROM to TO req/s over
    /// DURATION, then holds TO for the rest of --duration (`10..100/30s`). Stages follow one
    /// another, separated by commas: `0..50/10s,50..50/1m,50..0/10s`.
    #[arg(long, value_name = "FROM..TO/DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp: Option<String>,
    /// Seed for Poisson and gamma arrivals and the prompt draw [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Stop scheduling after this many requests (in a sweep: per step).
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u64>,
    /// Requests in flight at once; later ones wait (and are flagged `capped`) [default: 10000].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_inflight: Option<usize>,
    /// Attacker threads: the schedule cut into N parts, each with its own runtime thread, pacer
    /// and connections, into one results file [default: the CPUs available; 1 beside the
    /// embedded server].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Closed loop (`attack --rate 0`) only: cap the users' combined rate, requests per second.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<f64>,
    /// Whole-exchange timeout per request; 0 means none in `attack` [default: 30s].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Extra request header `Name: value`; repeatable. In a scenario file: a list of such
    /// strings, or a `[headers]` table.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "header_lines"
    )]
    pub headers: Vec<String>,
    /// Headers from a file, one `Name: value` per line (`#` comments), so credentials stay out
    /// of the command line (`ps`) and out of scenario files; a `-H` of the same name wins.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_file: Option<PathBuf>,
    /// Redirects to follow per request; the record keeps the final URL. Custom headers are
    /// never sent to another origin: such a redirect fails instead [default: 0].
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirects: Option<u32>,
    /// Largest response body read per request; a longer one is a `body` error. Whole bodies
    /// in flight together are bounded by twice this [default: 16MiB].
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_size: Option<String>,
    /// Largest server-sent event (or event line) a stream may carry; a longer one is a
    /// `stream` error [default: 1MiB].
    #[arg(long, value_name = "SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_event_size: Option<String>,
    /// Skip TLS certificate verification.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,
    /// Open a new connection for every request.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_keepalive: bool,
    /// Do not open connections before the schedule starts (by default a few HEAD requests per
    /// target, unrecorded, warm the pool; see README).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_warm_pool: bool,
    /// Never negotiate HTTP/2.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "is_false")]
    pub http1: bool,
    /// Prompts, one JSON object `{"prompt": "..."}` per line, drawn deterministically by --seed.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompts: Option<PathBuf>,
    /// A single prompt to send (when no --prompts file is given).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// HuggingFace tokenizer.json to count tokens the server does not report.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<PathBuf>,
    /// Synthetic prompts: mean prompt length in tokens, drawn per request (exact with
    /// --tokenizer, estimated without; chat APIs: the message content's tokens, before the
    /// server's chat template adds its own).
    #[arg(long, value_name = "MEAN", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u32>,
    /// Spread of --input-tokens (a normal clipped to min..max) [default: 0].
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens_stdev: Option<f64>,
    /// Shortest synthetic prompt, tokens [default: 1].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens_min: Option<u32>,
    /// Longest synthetic prompt, tokens (omitted: no bound).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens_max: Option<u32>,
    /// Output length per request, mean in tokens, drawn per request; over a dataset's own
    /// lengths and over --max-new-tokens. Add --ignore-eos where the server takes it (vLLM,
    /// rpload serve) so answers have that length; TGI treats it as a cap.
    #[arg(long, value_name = "MEAN", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u32>,
    /// Spread of --output-tokens [default: 0].
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens_stdev: Option<f64>,
    /// Shortest drawn output length, tokens [default: 1].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens_min: Option<u32>,
    /// Longest drawn output length, tokens (omitted: no bound).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens_max: Option<u32>,
    /// Shared prefixes: a system prompt of N tokens in front of every request (chat APIs: the
    /// system message), one of --prefix-count, so prefix-caching servers can be measured.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_tokens: Option<u32>,
    /// Distinct shared prefixes, assigned to requests by the seeded draw [default: 1].
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_count: Option<u32>,
    /// Requests from a local dataset file (over --prompts and --prompt): ShareGPT JSON, JSONL
    /// or CSV; see prompts/README.md.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<PathBuf>,
    /// The dataset's format: sharegpt, jsonl or csv (omitted: recognised from the content).
    #[arg(long, value_name = "FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_format: Option<String>,
    /// jsonl/csv datasets: the field (column) holding the prompt [default: prompt].
    #[arg(long, value_name = "NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_prompt_field: Option<String>,
    /// jsonl/csv datasets: the field holding the output length in tokens, or an answer text
    /// whose tokens are counted (omitted: --output-tokens or --max-new-tokens).
    #[arg(long, value_name = "NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_output_field: Option<String>,
    /// Replay a JSONL trace (timestamp ms, input_length, output_length, hash_ids, as the
    /// Mooncake traces): its requests at its own times instead of --rate's.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<PathBuf>,
    /// Play the trace this many times faster [default: 1].
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_speed: Option<f64>,
    /// Tokens per block of a trace's hash_ids [default: 512].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_block_tokens: Option<u32>,
    /// Conversations (openai-chat): turns per session, mean; each arrival starts a session
    /// whose later turns carry the earlier turns and the server's answers.
    #[arg(long, value_name = "MEAN", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turns: Option<u32>,
    /// Spread of --turns (clipped to 1..=4x the mean) [default: 0].
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turns_stdev: Option<f64>,
    /// Conversations: pause between an answer and the next turn [default: 0s].
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub think_time: Option<String>,
    /// Tokens to generate per request [default: 64; 20 against the embedded server].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<u32>,
    /// Sampling temperature (omitted: the server's default; TGI: greedy).
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches P
    /// (omitted: the server's default).
    #[arg(long, allow_negative_numbers = true, value_name = "P")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Sample among the K most likely tokens only (omitted: the server's default).
    #[arg(long, allow_negative_numbers = true, value_name = "K")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Penalty on tokens already generated, 1.0 for none (TGI and FastAPI-style servers that
    /// take it; omitted: the server's default).
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repetition_penalty: Option<f64>,
    /// Generation seed sent to the server (not the prompt draw: that is --seed).
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gen_seed: Option<u64>,
    /// Stop sequence; repeatable.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Ask the server to ignore end-of-sequence, for fixed output lengths.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "is_false")]
    pub ignore_eos: bool,
    /// OpenAI kinds: stream the answer (SSE with a usage chunk) to measure TTFT and ITL
    /// (TGI streams with --api tgi-stream).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "is_false")]
    pub stream: bool,
    /// OpenAI kinds: the `model` field. `auto` asks the server's /v1/models once before the
    /// first request and uses the first model it lists.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// fastapi: request body with {{prompt}} (and optionally {{max_new_tokens}}). The default
    /// sends max_new_tokens too: FastAPI (pydantic) apps ignore fields they do not declare, and
    /// `rpload serve`'s /predict honours it [default: {"prompt": "{{prompt}}", "max_new_tokens":
    /// {{max_new_tokens}}}].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_template: Option<String>,
    /// fastapi: JSON pointer to the generated text [default: /prediction].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_pointer: Option<String>,
    /// fastapi: JSON pointer to a generated-token count, if the app returns one.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_pointer: Option<String>,
    /// fastapi: an answer that starts with the prompt (prompt + continuation, as the study's
    /// app and `rpload serve` answer): auto removes it before counting output tokens, always
    /// requires it (an answer without it is a `body` error), never counts the whole answer
    /// [default: auto].
    #[arg(long, value_name = "auto|always|never")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strip_prompt: Option<String>,
}

pub const DEFAULT_API: &str = "tgi";
pub const DEFAULT_FORMAT: &str = "http";
pub const DEFAULT_METHOD: &str = "GET";
pub const DEFAULT_ARRIVAL: &str = "constant";
pub const DEFAULT_BURSTINESS: f64 = 1.0;
pub const DEFAULT_MAX_INFLIGHT: usize = 10_000;
pub const DEFAULT_BALANCE: &str = "round-robin";
pub const DEFAULT_TIMEOUT: &str = "30s";
pub const DEFAULT_MAX_NEW_TOKENS: u32 = 64;
pub const DEFAULT_TEXT_POINTER: &str = "/prediction";
pub const DEFAULT_STRIP_PROMPT: &str = "auto";
pub const DEFAULT_MAX_BODY_SIZE: &str = "16MiB";
pub const DEFAULT_MAX_EVENT_SIZE: &str = "1MiB";
/// Mooncake's traces hash prompts in blocks of 512 tokens.
pub const DEFAULT_TRACE_BLOCK_TOKENS: u32 = 512;

/// The resolved defaults: the only place an unset option gets its value.
impl AttackOptions {
    /// A targets file can only be plain HTTP, so it implies `--api http`.
    pub fn api(&self) -> &str {
        match (&self.api, &self.targets) {
            (Some(api), _) => api,
            (None, Some(_)) => "http",
            (None, None) => DEFAULT_API,
        }
    }

    pub fn format(&self) -> &str {
        self.format.as_deref().unwrap_or(DEFAULT_FORMAT)
    }

    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or(DEFAULT_METHOD)
    }

    pub fn arrival(&self) -> &str {
        self.arrival.as_deref().unwrap_or(DEFAULT_ARRIVAL)
    }

    pub fn burstiness(&self) -> f64 {
        self.burstiness.unwrap_or(DEFAULT_BURSTINESS)
    }

    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(0)
    }

    /// `--workers`, or the CPUs this process may use (its cgroup's share where one is set).
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    pub fn balance(&self) -> &str {
        self.balance.as_deref().unwrap_or(DEFAULT_BALANCE)
    }

    pub fn max_inflight(&self) -> usize {
        self.max_inflight.unwrap_or(DEFAULT_MAX_INFLIGHT)
    }

    pub fn timeout(&self) -> &str {
        self.timeout.as_deref().unwrap_or(DEFAULT_TIMEOUT)
    }

    pub fn input_tokens_stdev(&self) -> f64 {
        self.input_tokens_stdev.unwrap_or(0.0)
    }

    pub fn output_tokens_stdev(&self) -> f64 {
        self.output_tokens_stdev.unwrap_or(0.0)
    }

    pub fn input_tokens_min(&self) -> u32 {
        self.input_tokens_min.unwrap_or(1)
    }

    pub fn output_tokens_min(&self) -> u32 {
        self.output_tokens_min.unwrap_or(1)
    }

    pub fn prefix_count(&self) -> u32 {
        self.prefix_count.unwrap_or(1)
    }

    pub fn dataset_prompt_field(&self) -> &str {
        self.dataset_prompt_field.as_deref().unwrap_or("prompt")
    }

    pub fn replay_speed(&self) -> f64 {
        self.replay_speed.unwrap_or(1.0)
    }

    pub fn trace_block_tokens(&self) -> u32 {
        self.trace_block_tokens
            .unwrap_or(DEFAULT_TRACE_BLOCK_TOKENS)
    }

    pub fn turns_stdev(&self) -> f64 {
        self.turns_stdev.unwrap_or(0.0)
    }

    pub fn think_time(&self) -> &str {
        self.think_time.as_deref().unwrap_or("0s")
    }

    pub fn max_new_tokens(&self) -> u32 {
        self.max_new_tokens.unwrap_or(DEFAULT_MAX_NEW_TOKENS)
    }

    pub fn body_template(&self) -> &str {
        self.body_template
            .as_deref()
            .unwrap_or(FASTAPI_BODY_TEMPLATE)
    }

    pub fn text_pointer(&self) -> &str {
        self.text_pointer.as_deref().unwrap_or(DEFAULT_TEXT_POINTER)
    }

    pub fn strip_prompt(&self) -> &str {
        self.strip_prompt.as_deref().unwrap_or(DEFAULT_STRIP_PROMPT)
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    pub fn redirects(&self) -> u32 {
        self.redirects.unwrap_or(0)
    }

    pub fn max_body_size(&self) -> &str {
        self.max_body_size
            .as_deref()
            .unwrap_or(DEFAULT_MAX_BODY_SIZE)
    }

    pub fn max_event_size(&self) -> &str {
        self.max_event_size
            .as_deref()
            .unwrap_or(DEFAULT_MAX_EVENT_SIZE)
    }

    /// These options as they may be written to disk: credentials in headers and in the
    /// target URL replaced by [`crate::redact::MARK`].
    pub fn redacted(&self) -> AttackOptions {
        AttackOptions {
            target: self.target.iter().map(|t| crate::redact::url(t)).collect(),
            headers: self
                .headers
                .iter()
                .map(|h| crate::redact::header_line(h))
                .collect(),
            ..self.clone()
        }
    }

    /// `self` with every option `over` sets laid on top: the command line over a scenario
    /// file. Lists replace, except headers, which add up (a `-H` adds to the file's headers).
    pub fn overlaid(&self, over: &AttackOptions) -> AttackOptions {
        let mut merged: AttackOptions = crate::overlay::overlay(self, over);
        merged.headers = self.headers.iter().chain(&over.headers).cloned().collect();
        merged
    }

    /// File paths resolved next to `scenario_file` when they do not exist from the working
    /// directory, so a scenario can name files beside itself.
    pub fn with_paths_beside(&self, scenario_file: Option<&std::path::Path>) -> AttackOptions {
        let near = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| resolve_relative(&p.to_string_lossy(), scenario_file))
        };
        AttackOptions {
            targets: near(&self.targets),
            header_file: near(&self.header_file),
            body: near(&self.body),
            prompts: near(&self.prompts),
            tokenizer: near(&self.tokenizer),
            dataset: near(&self.dataset),
            trace: near(&self.trace),
            ..self.clone()
        }
    }
}

/// Resolves a path from a scenario: as given if it exists from the working directory, else
/// next to the scenario file.
pub fn resolve_relative(path: &str, scenario_file: Option<&std::path::Path>) -> PathBuf {
    let p = PathBuf::from(path);
    if p.is_absolute() || p.exists() {
        return p;
    }
    match scenario_file.and_then(std::path::Path::parent) {
        Some(dir) if dir.join(&p).exists() => dir.join(p),
        _ => p,
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Headers in a scenario: `["Name: value", ...]`, or a `[headers]` table (the older form).
fn header_lines<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Headers {
        Lines(Vec<String>),
        Table(std::collections::BTreeMap<String, String>),
    }
    Ok(match Headers::deserialize(d)? {
        Headers::Lines(lines) => lines,
        Headers::Table(t) => t.into_iter().map(|(k, v)| format!("{k}: {v}")).collect(),
    })
}

/// A scenario's `target`: one URL as a string, several as a list.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Targets {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Targets::deserialize(d)? {
        Targets::One(t) => vec![t],
        Targets::Many(ts) => ts,
    })
}

/// Writes one target back as a string, so a one-target run's `run.toml` reads as before.
fn one_or_many_out<S: serde::Serializer>(targets: &[String], s: S) -> Result<S::Ok, S::Error> {
    match targets {
        [one] => s.serialize_str(one),
        many => many.serialize(s),
    }
}

#[cfg(test)]
mod tests;
