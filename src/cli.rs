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
    /// Run the embedded reference server: GPT-NeoX on candle behind TGI, OpenAI and FastAPI routes.
    Serve(ServeArgs),
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
    /// Threads for the model's math (default: 1 for tiny, whose ops are too small to split;
    /// otherwise every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seed for the random weights of presets.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}
