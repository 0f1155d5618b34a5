//! Command-line structs (clap derive). Doc comments here are the `--help` text.
//! Values stay raw: parsing into checked configs happens in the module that owns them.

use clap::{Args, Parser, Subcommand};

/// Open-loop, token-aware load testing and cost benchmarking for LLM endpoints.
#[derive(Debug, Parser)]
#[command(name = "rpload", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send requests at a fixed rate (open loop) and write one JSON record per request.
    Attack(Box<AttackArgs>),
    /// Summarise result files (merged exactly) as text, JSON, a histogram or an HDR plot.
    Report(Box<ReportArgs>),
    /// Run the embedded reference server: GPT-NeoX on candle behind TGI, OpenAI and FastAPI routes.
    Serve(Box<ServeArgs>),
    /// Attack at each rate of a plan, judge every step, and write reports/<run-id>/
    /// (steps.csv, summary.json, results.jsonl, report.md, charts).
    Sweep(Box<SweepArgs>),
    /// Cost per 1K tokens and per 1K requests for a rate on an instance (the study's formula).
    Cost(CostArgs),
    /// Instances and monthly cost to serve a target load, from measured sweeps (cheapest first).
    Plan(PlanArgs),
}

/// Flags of `rpload attack` (shared with `sweep`, which sets rate and duration per step).
#[derive(Debug, Clone, Args)]
pub struct AttackArgs {
    /// Target URL. For LLM APIs a bare host (`http://127.0.0.1:8080`) gets the API's usual path
    /// (/generate, /generate_stream, /v1/completions, /v1/chat/completions, /predict).
    #[arg(long, short = 't')]
    pub target: Option<String>,
    /// Wire format: tgi, tgi-stream, openai-completions, openai-chat, fastapi or http.
    #[arg(long, default_value = "http")]
    pub api: String,
    /// Plain HTTP only: a Vegeta targets file (instead of --target).
    #[arg(long, conflicts_with = "target")]
    pub targets: Option<std::path::PathBuf>,
    /// Targets file format: http or json (Vegeta's).
    #[arg(long, default_value = "http")]
    pub format: String,
    /// Requests per period: `50`, `50/s`, `1/5s`. 0 runs a closed loop of --max-inflight users.
    #[arg(long, short = 'r', default_value = "50/1s")]
    pub rate: String,
    /// How long to schedule requests (`10s`, `1m30s`; 0 = until Ctrl-C or --max-requests).
    #[arg(long, short = 'd', default_value = "10s")]
    pub duration: String,
    /// Arrival process: constant (evenly spaced) or poisson (exponential gaps, seeded).
    #[arg(long, default_value = "constant")]
    pub arrival: String,
    /// Seed for Poisson arrivals and the prompt draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop scheduling after this many requests.
    #[arg(long)]
    pub max_requests: Option<u64>,
    /// Requests in flight at once; later ones wait (and are flagged `capped`).
    #[arg(long, default_value_t = 10_000)]
    pub max_inflight: usize,
    /// Closed loop (--rate 0) only: cap the users' combined rate, requests per second.
    #[arg(long)]
    pub max_rate: Option<f64>,
    /// Exit 1 when more than this share of requests failed, e.g. 5% or 0.05 (for CI gates).
    #[arg(long, value_name = "RATIO")]
    pub fail_on_errors: Option<String>,
    /// Whole-exchange timeout per request (0 = none).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// Extra request header `Name: value`; repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Skip TLS certificate verification.
    #[arg(long)]
    pub insecure: bool,
    /// Open a new connection for every request.
    #[arg(long)]
    pub no_keepalive: bool,
    /// Never negotiate HTTP/2.
    #[arg(long)]
    pub http1: bool,
    /// Attack name, written into every record.
    #[arg(long, default_value = "")]
    pub name: String,
    /// Results file (JSON lines); `-` or omitted writes to stdout.
    #[arg(long, short = 'o')]
    pub output: Option<std::path::PathBuf>,
    /// Prompts, one JSON object `{"prompt": "..."}` per line, drawn deterministically by --seed.
    #[arg(long)]
    pub prompts: Option<std::path::PathBuf>,
    /// A single prompt to send (when no --prompts file is given).
    #[arg(long)]
    pub prompt: Option<String>,
    /// HuggingFace tokenizer.json to count tokens the server does not report.
    #[arg(long)]
    pub tokenizer: Option<std::path::PathBuf>,
    /// Tokens to generate per request.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: u32,
    /// Sampling temperature (omitted: the server's default; TGI: greedy).
    #[arg(long)]
    pub temperature: Option<f32>,
    #[arg(long)]
    pub top_p: Option<f32>,
    #[arg(long)]
    pub top_k: Option<u32>,
    #[arg(long)]
    pub repetition_penalty: Option<f32>,
    /// Generation seed sent to the server.
    #[arg(long)]
    pub gen_seed: Option<u64>,
    /// Stop sequence; repeatable.
    #[arg(long)]
    pub stop: Vec<String>,
    /// Ask the server to ignore end-of-sequence, for fixed output lengths.
    #[arg(long)]
    pub ignore_eos: bool,
    /// OpenAI kinds: stream the answer (SSE with a usage chunk) to measure TTFT and ITL.
    #[arg(long)]
    pub stream: bool,
    /// OpenAI kinds: the `model` field.
    #[arg(long)]
    pub model: Option<String>,
    /// fastapi: request body with {{prompt}} (and optionally {{max_new_tokens}}). The default
    /// sends max_new_tokens too: FastAPI (pydantic) apps ignore fields they do not declare, and
    /// `rpload serve`'s /predict honours it.
    #[arg(long, default_value = crate::attack::api::FASTAPI_BODY_TEMPLATE)]
    pub body_template: String,
    /// fastapi: JSON pointer to the generated text.
    #[arg(long, default_value = "/prediction")]
    pub text_pointer: String,
    /// fastapi: JSON pointer to a generated-token count, if the app returns one.
    #[arg(long)]
    pub tokens_pointer: Option<String>,
    /// fastapi: an answer that starts with the prompt (prompt + continuation, as the study's
    /// app and `rpload serve` answer): auto removes it before counting output tokens, always
    /// requires it (an answer without it is a `body` error), never counts the whole answer.
    #[arg(long, default_value = "auto", value_name = "auto|always|never")]
    pub strip_prompt: String,
    /// http: method for --target.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// http: request body file for --target.
    #[arg(long)]
    pub body: Option<std::path::PathBuf>,
}

/// Flags of `rpload report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Result files (JSON lines); several merge exactly into one report. None or `-`: stdin.
    pub files: Vec<std::path::PathBuf>,
    /// text, json, hist[0,100ms,1s] (buckets) or hdrplot.
    #[arg(long = "type", default_value = "text")]
    pub kind: String,
    /// Write the report here instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<std::path::PathBuf>,
    /// Rebuild a sweep's folder (steps.csv, summary.json, report.md, charts) from its
    /// results.jsonl and scenario.toml, without re-running it.
    #[arg(long, value_name = "DIR", conflicts_with = "files")]
    pub sweep: Option<std::path::PathBuf>,
}

/// Flags of `rpload serve` (and of the embedded server a target-less `sweep` starts).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Model: a preset (tiny, pythia-70m, redpajama-3b, redpajama-7b) with seeded random
    /// weights, or a local HuggingFace folder (config.json, *.safetensors, tokenizer.json).
    #[arg(long, default_value = "tiny")]
    pub model: String,
    /// Scheduling engine: continuous (TGI-like batching) or single (one request at a time).
    #[arg(long, default_value = "continuous")]
    pub engine: String,
    /// Weight and activation dtype: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Device: cpu, or cuda (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Requests admitted at once (queued or running); more get 429 `overloaded`.
    #[arg(long, default_value_t = 128)]
    pub max_concurrent_requests: usize,
    /// Longest prompt in tokens (default: the model's context minus one).
    #[arg(long)]
    pub max_input_tokens: Option<usize>,
    /// Prompt plus generated tokens, per request (default: the model's context).
    #[arg(long)]
    pub max_total_tokens: Option<usize>,
    /// Tokens (prompt + max_new_tokens) resident in the running batch at once.
    #[arg(long)]
    pub max_batch_total_tokens: Option<usize>,
    /// Sequences in the running batch at once.
    #[arg(long)]
    pub max_batch_size: Option<usize>,
    /// Threads for the model's math (default: 1 for tiny, leaving a core to the load generator;
    /// otherwise every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seed for the random weights of presets.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Flags of `rpload sweep`. Each overrides the same field of `--scenario`.
#[derive(Debug, Clone, Default, Args)]
pub struct SweepArgs {
    /// Scenario TOML (see scenarios/); flags below override its fields.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<std::path::PathBuf>,
    /// Base URL of the endpoint (without it, the embedded reference server is started).
    #[arg(long)]
    pub target: Option<String>,
    /// Wire format: tgi, tgi-stream, openai-chat, openai-completions, fastapi, http.
    #[arg(long)]
    pub api: Option<String>,
    /// Model name for OpenAI-style APIs.
    #[arg(long)]
    pub model: Option<String>,
    /// Prompt set: JSONL with one {"prompt": ...} per line.
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<String>,
    #[arg(long)]
    pub max_new_tokens: Option<u32>,
    #[arg(long)]
    pub temperature: Option<f64>,
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Ask for a token stream (needed for TTFT and ITL).
    #[arg(long)]
    pub stream: bool,
    /// Seed for the prompt draw and Poisson arrivals.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Per-request timeout, e.g. 30s.
    #[arg(long)]
    pub timeout: Option<String>,
    /// Requests in flight at once.
    #[arg(long)]
    pub max_inflight: Option<u32>,
    /// Arrival process: constant or poisson.
    #[arg(long)]
    pub arrival: Option<String>,
    /// Extra header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    #[arg(long)]
    pub top_k: Option<u32>,
    /// Stop sequence (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Generate max_new_tokens whatever the model says (servers that support it).
    #[arg(long)]
    pub ignore_eos: bool,
    /// tokenizer.json for counting tokens the server does not report.
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<String>,
    /// FastAPI-style body with a {{prompt}} placeholder.
    #[arg(long)]
    pub body_template: Option<String>,
    /// FastAPI-style: JSON pointer to the generated text.
    #[arg(long)]
    pub text_pointer: Option<String>,
    /// FastAPI-style: JSON pointer to a generated-token count.
    #[arg(long)]
    pub tokens_pointer: Option<String>,
    /// FastAPI-style: auto (default) removes a prompt the answer starts with before counting,
    /// always requires that echo, never counts the whole answer.
    #[arg(long, value_name = "auto|always|never")]
    pub strip_prompt: Option<String>,
    /// Accept invalid TLS certificates.
    #[arg(long)]
    pub insecure: bool,
    /// Rate plan: 10..150 (with --step), 10,20,40, or log:1..1000:12 (requests/s).
    #[arg(long)]
    pub rps: Option<String>,
    /// Step of an A..B rate plan.
    #[arg(long)]
    pub step: Option<f64>,
    /// How long each step sends, e.g. 10s (1s reproduces the study's bursts).
    #[arg(long)]
    pub step_duration: Option<String>,
    /// Unmeasured traffic at the step's rate before each step (default 0s).
    #[arg(long)]
    pub warmup: Option<String>,
    /// Unmeasured traffic at the first step's rate before the sweep (kernel JIT, connections,
    /// caches); default 2s, 0s to skip.
    #[arg(long)]
    pub initial_warmup: Option<String>,
    /// Pause after each step.
    #[arg(long)]
    pub cooldown: Option<String>,
    /// Runs per rate; the report shows means over them (the study used 3).
    #[arg(long)]
    pub repeat: Option<u32>,
    /// Objectives every sustainable step meets, e.g. 'p95<2s,ttft_p95<500ms'.
    #[arg(long)]
    pub slo: Option<String>,
    /// Largest send-lag p99 for "the client kept up". Default: derived per step, the smaller
    /// of one inter-arrival gap and a tenth of the median latency, at least 1ms.
    #[arg(long)]
    pub max_send_lag: Option<String>,
    /// Exit 1 when the highest sustainable rate is below RATE req/s (for CI gates).
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    pub fail_under: Option<f64>,
    /// Run every step even after two unsustainable ones in a row.
    #[arg(long)]
    pub no_early_stop: bool,
    /// Instance from the pricing catalog (NAME or NAME@REGION).
    #[arg(long)]
    pub instance: Option<String>,
    /// Price in USD per hour (with --instance, labels the instance at this price).
    #[arg(long)]
    pub price_per_hour: Option<f64>,
    /// Extra pricing catalog (repeatable), same format as scenarios/pricing.toml.
    #[arg(long, value_name = "FILE")]
    pub pricing: Vec<String>,
    /// Tokens per request (input + output) for the study's cost formula.
    #[arg(long)]
    pub tokens_per_request: Option<f64>,
    /// Output folder (default reports/<run-id>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
    /// Title for reports.
    #[arg(long)]
    pub name: Option<String>,
    /// Without --target: the embedded server's model (a preset or a HuggingFace folder).
    #[arg(long, default_value = "tiny")]
    pub serve_model: String,
    /// Without --target: the embedded server's engine, continuous (TGI-like) or single
    /// (FastAPI-like).
    #[arg(long, alias = "engine", default_value = "continuous")]
    pub serve_engine: String,
    /// No progress bars (the final table is still printed).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Flags of `rpload cost`.
#[derive(Debug, Clone, Default, Args)]
pub struct CostArgs {
    /// Requests per second (offered, as the study; or measured).
    #[arg(long)]
    pub rps: Option<f64>,
    /// Input + output tokens per request (study: 104 classification, 150 summarization).
    #[arg(long)]
    pub tokens_per_request: Option<f64>,
    /// Measured token throughput (input + output tokens/s) instead of rps x tokens.
    #[arg(long)]
    pub tokens_per_s: Option<f64>,
    /// A latency for the study's window cost (price / 3600 x latency), e.g. 1.44s.
    #[arg(long)]
    pub latency: Option<String>,
    /// Instance from the pricing catalog (NAME or NAME@REGION).
    #[arg(long)]
    pub instance: Option<String>,
    /// Price in USD per hour.
    #[arg(long)]
    pub price_per_hour: Option<f64>,
    /// Extra pricing catalog (repeatable).
    #[arg(long, value_name = "FILE")]
    pub pricing: Vec<String>,
    /// Print the pricing catalog and exit.
    #[arg(long)]
    pub list: bool,
}

/// Flags of `rpload plan`.
#[derive(Debug, Clone, Default, Args)]
pub struct PlanArgs {
    /// A sweep output folder (repeatable): its highest sustainable rate and price.
    #[arg(long = "from", value_name = "DIR", required = true)]
    pub from: Vec<std::path::PathBuf>,
    /// Load to serve, requests per second.
    #[arg(long)]
    pub target_rps: f64,
    /// Spare capacity factor: 1.2 plans for 20% more than the target.
    #[arg(long, default_value_t = 1.2)]
    pub headroom: f64,
    /// Re-judge every step with this SLO instead of the run's, e.g. 'p95<1s'.
    #[arg(long)]
    pub slo: Option<String>,
}
