//! [`ServerOptions`]: the reference server's settings, in one struct that `rpload serve` and a
//! target-less `rpload sweep` flatten into their command lines and that a scenario's
//! `[serve]` table holds. [`super::ServerConfig::from_options`] checks them.
//!
//! The model is not here: `serve` takes it as `--model`, while in a sweep `--model` is the
//! OpenAI `model` field of the attack, so the sweep calls it `--serve-model`. Like the attack's
//! options, fields are unset until the user sets them and the defaults live in the accessors.

use serde::{Deserialize, Serialize};

use super::mock::config as mock;

/// What model the embedded server runs and how.
#[derive(Debug, Clone, Default, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerOptions {
    /// The model: a preset (tiny, pythia-70m, redpajama-3b, redpajama-7b) with seeded random
    /// weights, or a local HuggingFace folder. Set by `serve --model` / `sweep --serve-model`.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Scheduling engine: continuous (TGI-like batching), single (one request at a time,
    /// FastAPI-like) or mock (no model: tokens on timers, set by --ttft, --itl, --tokens)
    /// [default: continuous].
    #[arg(long, alias = "serve-engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Weight and activation dtype: f32, f16 or bf16 [default: f32].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// Device: cpu, or cuda / cuda:N for the GPU of index N, one process per GPU for replicas
    /// (needs a build with `--features cuda`) [default: cpu].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Seed for the random weights of presets [default: 0].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights_seed: Option<u64>,
    /// Requests admitted at once (queued or running); more get 429 `overloaded`
    /// [default: 128].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<usize>,
    /// Longest prompt in tokens (default: the model's context minus one).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<usize>,
    /// Prompt plus generated tokens, per request (default: the model's context).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_total_tokens: Option<usize>,
    /// Tokens (prompt + max_new_tokens) resident in the running batch at once (default: TGI's
    /// 16000, or --max-total-tokens if larger).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch_total_tokens: Option<usize>,
    /// Sequences in the running batch at once (default: --max-concurrent-requests).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<usize>,
    /// Threads for the model's math (default: 1 for tiny, leaving a core to the load generator;
    /// otherwise every core).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Seconds a connection may take to send a request's headers (and to send its next
    /// request when kept alive) before it is closed [default: 10].
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_read_timeout: Option<f64>,
    /// Open connections held at once; one more is answered 503 and closed [default: 4096].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// --engine mock: time from a request's arrival to its first token, e.g. 50ms or 1.5ms
    /// [default: 50ms].
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft: Option<String>,
    /// --engine mock: time between two tokens of an answer [default: 20ms].
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub itl: Option<String>,
    /// --engine mock: tokens per answer when the request gives no max_new_tokens /
    /// max_tokens (a request that gives one gets exactly that many) [default: 100].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<usize>,
    /// --engine mock: vary each delay by up to this share, e.g. 10% (none by default).
    #[arg(long, value_name = "PERCENT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mock_jitter: Option<String>,
    /// --engine mock: the jitter's shape: uniform (within +-PERCENT) or normal (PERCENT is
    /// its standard deviation) [default: uniform].
    #[arg(long, value_name = "DIST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mock_jitter_dist: Option<String>,
    /// --engine mock: seed of the jitter [default: 0].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mock_seed: Option<u64>,
    /// --engine mock: at most N requests generate at once, the rest wait in arrival order,
    /// for a known capacity of N / (ttft + (tokens - 1) x itl) req/s (no limit by default).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mock_concurrency: Option<usize>,
}

pub const DEFAULT_MODEL: &str = "tiny";
pub const DEFAULT_ENGINE: &str = "continuous";
pub const DEFAULT_DTYPE: &str = "f32";
pub const DEFAULT_DEVICE: &str = "cpu";
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 128;
/// Long enough for any client on a working network, short enough that a slow-headers flood
/// frees its sockets well before the file-descriptor limit.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: f64 = 10.0;
/// Well under a common 20000-descriptor limit, and far over the connections a sweep opens
/// (requests past --max-concurrent-requests get a quick 429, not a held connection).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// The resolved defaults: the only place an unset option gets its value.
impl ServerOptions {
    pub fn model(&self) -> &str {
        self.model.as_deref().unwrap_or(DEFAULT_MODEL)
    }

    pub fn engine(&self) -> &str {
        self.engine.as_deref().unwrap_or(DEFAULT_ENGINE)
    }

    pub fn dtype(&self) -> &str {
        self.dtype.as_deref().unwrap_or(DEFAULT_DTYPE)
    }

    pub fn device(&self) -> &str {
        self.device.as_deref().unwrap_or(DEFAULT_DEVICE)
    }

    pub fn weights_seed(&self) -> u64 {
        self.weights_seed.unwrap_or(0)
    }

    pub fn max_concurrent_requests(&self) -> usize {
        self.max_concurrent_requests
            .unwrap_or(DEFAULT_MAX_CONCURRENT_REQUESTS)
    }

    pub fn header_read_timeout(&self) -> f64 {
        self.header_read_timeout
            .unwrap_or(DEFAULT_HEADER_READ_TIMEOUT_SECS)
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS)
    }

    pub fn ttft(&self) -> &str {
        self.ttft.as_deref().unwrap_or(mock::DEFAULT_TTFT)
    }

    pub fn itl(&self) -> &str {
        self.itl.as_deref().unwrap_or(mock::DEFAULT_ITL)
    }

    pub fn tokens(&self) -> usize {
        self.tokens.unwrap_or(mock::DEFAULT_TOKENS)
    }

    pub fn mock_jitter_dist(&self) -> &str {
        self.mock_jitter_dist
            .as_deref()
            .unwrap_or(mock::DEFAULT_JITTER_DIST)
    }

    pub fn mock_seed(&self) -> u64 {
        self.mock_seed.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command};

    #[test]
    fn help_states_the_resolved_defaults() {
        let none = ServerOptions::default();
        let expected = [
            ("engine", none.engine().to_string()),
            ("dtype", none.dtype().to_string()),
            ("device", none.device().to_string()),
            ("weights_seed", none.weights_seed().to_string()),
            (
                "max_concurrent_requests",
                none.max_concurrent_requests().to_string(),
            ),
            (
                "header_read_timeout",
                none.header_read_timeout().to_string(),
            ),
            ("max_connections", none.max_connections().to_string()),
            ("ttft", none.ttft().to_string()),
            ("itl", none.itl().to_string()),
            ("tokens", none.tokens().to_string()),
            ("mock_jitter_dist", none.mock_jitter_dist().to_string()),
            ("mock_seed", none.mock_seed().to_string()),
        ];
        let cmd = ServerOptions::augment_args(Command::new("t"));
        for (id, want) in expected {
            let arg = cmd.get_arguments().find(|a| a.get_id() == id).unwrap();
            let help = arg.get_help().unwrap().to_string();
            let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
            let flat = flat.trim_end_matches('.');
            assert!(
                flat.ends_with(&format!("[default: {want}]")),
                "--{id}: {flat}"
            );
        }
        for arg in cmd.get_arguments() {
            assert!(arg.get_help().is_some(), "--{} has no help", arg.get_id());
        }
    }
}

#[cfg(test)]
mod serde_tests {
    use super::*;

    #[test]
    fn connection_settings_read_from_a_serve_table() {
        let opts: ServerOptions =
            toml::from_str("header_read_timeout = 2.5\nmax_connections = 64\n").unwrap();
        assert_eq!(
            (opts.header_read_timeout(), opts.max_connections()),
            (2.5, 64)
        );
        let back = toml::to_string(&opts).unwrap();
        assert!(back.contains("header_read_timeout = 2.5"), "{back}");
        let none = ServerOptions::default();
        assert_eq!(
            (none.header_read_timeout(), none.max_connections()),
            (10.0, 4096)
        );
    }
}
