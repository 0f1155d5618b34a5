//! The embedded reference server (`rpload serve`): GPT-NeoX on candle behind TGI, OpenAI and
//! FastAPI routes, or the mock engine (no model, tokens on timers) behind the same routes.
//!
//! ```text
//! http (axum) -> validate -> generator -> scheduler (continuous | single, own OS thread) -> engine (candle)
//!                                      -> mock (timers per request, no thread of its own)
//! ```
//!
//! Owns [`ServerConfig`] (checked [`ServerOptions`]), wiring, and the ways to run: [`build`]
//! then [`serve`] on a bound listener until a shutdown future resolves (tests bind port 0;
//! `commands::serve` binds the user's address), and [`spawn_embedded`] for a target-less
//! `sweep` ([`spawn_embedded_fake`]: the same server around an [`engine::FakeEngine`], for
//! exact scheduling tests). Must not bind ports inside [`serve`] or do model math.
//!
//! `engine/` is the model and its step (see its header for the layout), `scheduler/` the
//! policies and the worker thread that drives an [`engine::Engine`], `mock/` the model-less
//! engine and its timing policy, `generator` the front both share, `http/` the routes by wire
//! format, `conn` the connections (cap, header deadline, drain), `validate` the request
//! checks, `metrics` the Prometheus text, `options` the flags.

pub mod conn;
mod embedded;
pub mod engine;
pub mod generator;
pub mod http;
pub mod metrics;
pub mod mock;
pub mod options;
pub mod scheduler;
pub mod validate;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context;
use candle_core::DType;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use embedded::{EmbeddedServer, spawn_embedded, spawn_embedded_fake};
use engine::{DeviceKind, Engine, ModelSpec, TextTokenizer};
use generator::Generator;
pub use http::ApiKey;
use mock::{MockConfig, MockEngine};
pub use options::ServerOptions;
use scheduler::{BatchLimits, SchedulerHandle, SchedulerKind};

/// TGI's defaults for what `rpload serve` does not expose as flags.
const MAX_STOP_SEQUENCES: usize = 4;
const MAX_BEST_OF: usize = 2;
const MAX_TOP_N_TOKENS: u32 = 5;
const MAX_BATCH_PREFILL_TOKENS: usize = 4096;
/// TGI's fallback `max_batch_total_tokens` when it cannot measure memory.
const MIN_BATCH_TOTAL_TOKENS: usize = 16000;

/// A flag with a value the server cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "--model `{0}` is neither a preset (tiny, pythia-70m, redpajama-3b, redpajama-7b) nor a folder: pass a preset name or a HuggingFace folder with config.json"
    )]
    Model(String),
    #[error("--engine `{0}` is unknown: use continuous, single or mock")]
    Engine(String),
    #[error("--dtype `{0}` is unknown: use f32, f16 or bf16")]
    Dtype(String),
    #[error("--device `{0}` is unknown: use cpu, cuda or cuda:N (the GPU's index, from 0)")]
    Device(String),
    #[error("{flag} must be at least 1: raise it")]
    Zero { flag: &'static str },
    #[error(
        "--max-input-tokens ({input}) must be less than --max-total-tokens ({total}): lower the first or raise the second"
    )]
    InputOverTotal { input: usize, total: usize },
    #[error(
        "--max-total-tokens ({total}) must be <= --max-batch-total-tokens ({batch}): a request must fit in a batch"
    )]
    TotalOverBatch { total: usize, batch: usize },
    #[error(
        "--max-total-tokens ({total}) exceeds the model's context ({context} positions): lower it"
    )]
    TotalOverContext { total: usize, context: usize },
    #[error(
        "--header-read-timeout ({0}) must be more than 0 and at most {MAX_HEADER_READ_TIMEOUT_SECS} seconds: pass e.g. 10"
    )]
    /// The value as given (a float, so kept as text for `Eq`).
    HeaderReadTimeout(String),
    #[error(transparent)]
    Mock(#[from] mock::MockFlagError),
}

/// The context the mock validates against unless --max-total-tokens is larger: the presets'.
const MOCK_CONTEXT: usize = 2048;

/// An hour: past that a "timeout" no longer protects anything.
const MAX_HEADER_READ_TIMEOUT_SECS: f64 = 3600.0;

/// Checked server settings. Token limits left `None` are derived from the model at start.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub model: ModelSpec,
    pub engine: SchedulerKind,
    /// `Some`: `--engine mock`, which loads no model (`model`, `engine`, `dtype`, `device`
    /// and `threads` are then unused).
    pub mock: Option<MockConfig>,
    pub dtype: DType,
    pub device: DeviceKind,
    pub max_concurrent_requests: usize,
    pub max_input_tokens: Option<usize>,
    pub max_total_tokens: Option<usize>,
    pub max_batch_total_tokens: Option<usize>,
    pub max_batch_size: Option<usize>,
    /// Threads for the model's math (`None`: one for `tiny`, which leaves the other core of a
    /// small machine to the in-process attacker of the default sweep, else every core).
    pub threads: Option<usize>,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// `rpload serve --api-key`: not a [`ServerOptions`] field, so no scenario file holds it
    /// and no sweep starts a server that its own attacker could not call.
    pub api_key: Option<ApiKey>,
}

impl Default for ServerConfig {
    /// The embedded default: preset `tiny`, continuous batching, f32 on CPU.
    fn default() -> Self {
        Self {
            model: ModelSpec::Preset {
                name: "tiny".to_string(),
                seed: 0,
            },
            engine: SchedulerKind::Continuous,
            mock: None,
            dtype: DType::F32,
            device: DeviceKind::Cpu,
            max_concurrent_requests: 128,
            max_input_tokens: None,
            max_total_tokens: None,
            max_batch_total_tokens: None,
            max_batch_size: None,
            threads: None,
            header_read_timeout: Duration::from_secs_f64(options::DEFAULT_HEADER_READ_TIMEOUT_SECS),
            max_connections: options::DEFAULT_MAX_CONNECTIONS,
            api_key: None,
        }
    }
}

impl ServerConfig {
    /// Checks the options of `rpload serve` (or of a sweep that starts the embedded server).
    pub fn from_options(opts: &ServerOptions) -> Result<Self, ConfigError> {
        let name = opts.model();
        let model = if engine::presets::NAMES.contains(&name) {
            ModelSpec::Preset {
                name: name.to_string(),
                seed: opts.weights_seed(),
            }
        } else {
            let dir = PathBuf::from(name);
            if !dir.join("config.json").is_file() {
                return Err(ConfigError::Model(name.to_string()));
            }
            ModelSpec::Folder(dir)
        };
        let mock = MockConfig::from_options(opts)?;
        let engine = match opts.engine() {
            "continuous" | "mock" => SchedulerKind::Continuous,
            "single" => SchedulerKind::Single,
            other => return Err(ConfigError::Engine(other.to_string())),
        };
        let dtype = match opts.dtype() {
            "f32" => DType::F32,
            "f16" => DType::F16,
            "bf16" => DType::BF16,
            other => return Err(ConfigError::Dtype(other.to_string())),
        };
        let device = match opts.device() {
            "cpu" => DeviceKind::Cpu,
            "cuda" => DeviceKind::Cuda(0),
            other => match other.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(index)) => DeviceKind::Cuda(index),
                _ => return Err(ConfigError::Device(other.to_string())),
            },
        };
        let timeout = opts.header_read_timeout();
        // Written so NaN fails too.
        if !(timeout > 0.0 && timeout <= MAX_HEADER_READ_TIMEOUT_SECS) {
            return Err(ConfigError::HeaderReadTimeout(timeout.to_string()));
        }
        let cfg = Self {
            model,
            engine,
            mock,
            dtype,
            device,
            max_concurrent_requests: opts.max_concurrent_requests(),
            max_input_tokens: opts.max_input_tokens,
            max_total_tokens: opts.max_total_tokens,
            max_batch_total_tokens: opts.max_batch_total_tokens,
            max_batch_size: opts.max_batch_size,
            threads: opts.threads,
            header_read_timeout: Duration::from_secs_f64(timeout),
            max_connections: opts.max_connections(),
            api_key: None,
        };
        cfg.check_flags()?;
        Ok(cfg)
    }

    fn check_flags(&self) -> Result<(), ConfigError> {
        let nonzero = [
            (
                Some(self.max_concurrent_requests),
                "--max-concurrent-requests",
            ),
            (self.max_input_tokens, "--max-input-tokens"),
            (self.max_total_tokens, "--max-total-tokens"),
            (self.max_batch_total_tokens, "--max-batch-total-tokens"),
            (self.max_batch_size, "--max-batch-size"),
            (self.threads, "--threads"),
            (Some(self.max_connections), "--max-connections"),
        ];
        for (value, flag) in nonzero {
            if value == Some(0) {
                return Err(ConfigError::Zero { flag });
            }
        }
        if let (Some(input), Some(total)) = (self.max_input_tokens, self.max_total_tokens)
            && input >= total
        {
            return Err(ConfigError::InputOverTotal { input, total });
        }
        match (self.max_total_tokens, self.max_batch_total_tokens) {
            (Some(total), Some(batch)) if total > batch => {
                Err(ConfigError::TotalOverBatch { total, batch })
            }
            _ => Ok(()),
        }
    }

    /// `` `tiny` (f32, cpu, engine continuous) ``, for log lines.
    pub fn describe(&self) -> String {
        if let Some(m) = &self.mock {
            return format!("engine mock, no model ({})", m.describe());
        }
        format!(
            "`{}` ({}, {}, engine {})",
            self.model.id(),
            dtype_name(self.dtype),
            self.device.name(),
            self.engine_name()
        )
    }

    /// `--engine` as run: continuous, single or mock.
    pub fn engine_name(&self) -> &'static str {
        if self.mock.is_some() {
            "mock"
        } else {
            self.engine.name()
        }
    }

    /// Threads for the model's math; see [`ServerConfig::threads`].
    pub fn compute_threads(&self) -> usize {
        let tiny = matches!(&self.model, ModelSpec::Preset { name, .. } if name == "tiny");
        self.threads.unwrap_or_else(|| {
            if tiny {
                1
            } else {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            }
        })
    }

    /// Fills the token limits from the model's context, as TGI's launcher does.
    fn resolve(&self, context: usize) -> Result<Resolved, ConfigError> {
        let total = self.max_total_tokens.unwrap_or(context);
        if total > context {
            return Err(ConfigError::TotalOverContext { total, context });
        }
        let input = self.max_input_tokens.unwrap_or(total - 1);
        if input >= total {
            return Err(ConfigError::InputOverTotal { input, total });
        }
        let batch_total = self
            .max_batch_total_tokens
            .unwrap_or(MIN_BATCH_TOTAL_TOKENS.max(total));
        if total > batch_total {
            return Err(ConfigError::TotalOverBatch {
                total,
                batch: batch_total,
            });
        }
        Ok(Resolved {
            limits: validate::Limits {
                max_input_tokens: input,
                max_total_tokens: total,
                max_stop_sequences: MAX_STOP_SEQUENCES,
                max_best_of: MAX_BEST_OF,
                max_top_n_tokens: MAX_TOP_N_TOKENS,
            },
            batch: BatchLimits {
                max_batch_size: self.max_batch_size.unwrap_or(self.max_concurrent_requests),
                max_batch_total_tokens: batch_total,
                max_batch_prefill_tokens: MAX_BATCH_PREFILL_TOKENS,
            },
        })
    }
}

/// Room left on the device after the KV cache, for a step's activations and logits.
const DEVICE_HEADROOM_BYTES: usize = 2 << 30;

/// Allocates the KV cache pool for `slots` sequences of `max_tokens`, halving the slots until
/// it fits with [`DEVICE_HEADROOM_BYTES`] to spare, as TGI sizes its batch from free memory.
/// Returns the slots allocated.
fn size_cache(
    model: &mut engine::GptNeox,
    mut slots: usize,
    max_tokens: usize,
) -> anyhow::Result<usize> {
    let dtype = model.dtype();
    loop {
        let shape = model.pool_shape(slots, max_tokens);
        let fits = model.reserve_cache(slots, max_tokens).and_then(|()| {
            if model.device().is_cpu() {
                return Ok(());
            }
            // Probe the headroom, then give it back.
            let probe =
                candle_core::Tensor::zeros(DEVICE_HEADROOM_BYTES / 2, DType::F16, model.device())?;
            drop(probe);
            Ok(())
        });
        match fits {
            Ok(()) => {
                eprintln!(
                    "rpload serve: KV cache of {slots} sequences x {max_tokens} tokens ({:.1} GiB {})",
                    shape.bytes(dtype) as f64 / (1u64 << 30) as f64,
                    dtype_name(dtype)
                );
                return Ok(slots);
            }
            Err(engine::EngineError::OutOfMemory(_)) if slots > 1 => slots /= 2,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "allocating the KV cache ({slots} sequences x {max_tokens} tokens): lower --max-total-tokens"
                    )
                });
            }
        }
    }
}

struct Resolved {
    limits: validate::Limits,
    batch: BatchLimits,
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "f32",
    }
}

/// Gives candle's CPU matmuls the thread count of [`ServerConfig::compute_threads`].
///
/// candle reads `RAYON_NUM_THREADS` on every matmul and, when it is unset, splits even tiny
/// matrices across all cores; on `tiny` that dispatch costs several times the arithmetic.
/// Setting the variable is only sound while no other thread exists, so call this first thing
/// in `main` (as [`crate::run`] does for `serve`), before any runtime starts. An explicit
/// `RAYON_NUM_THREADS` from the user wins.
pub fn configure_process(cfg: &ServerConfig) {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: documented precondition: called before the process starts other threads.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", cfg.compute_threads().to_string()) };
    }
}

/// What [`build`] makes and [`serve`] runs: the routes and how connections are held.
pub struct App {
    router: axum::Router,
    connections: conn::ConnLimits,
}

/// What answers the routes: a model (driven by the scheduler's worker) or the mock.
enum Backend {
    Model(Box<dyn Engine>),
    Mock(MockConfig),
}

/// Loads the model (on a blocking thread), starts the scheduler worker and builds the router;
/// for `--engine mock`, builds the router around the mock at once.
pub async fn build(cfg: ServerConfig) -> anyhow::Result<App> {
    if let Some(mock) = cfg.mock {
        // No weights: the embedded tokenizer still validates and counts the prompts.
        let context = cfg
            .max_total_tokens
            .unwrap_or(MOCK_CONTEXT)
            .max(MOCK_CONTEXT);
        let resolved = cfg.resolve(context)?;
        mock.check_total(resolved.limits.max_total_tokens)?;
        let tokenizer = Arc::new(TextTokenizer::embedded()?);
        return router(
            &cfg,
            resolved,
            Backend::Mock(mock),
            tokenizer,
            "mock".into(),
        );
    }
    let (spec, dtype, device) = (cfg.model.clone(), cfg.dtype, cfg.device);
    let loaded = tokio::task::spawn_blocking(move || engine::load(&spec, dtype, device))
        .await
        .context("model loading thread")?
        .with_context(|| format!("loading model `{}`", cfg.model.id()))?;
    let context = loaded.model.config().max_position_embeddings;
    let mut resolved = cfg.resolve(context)?;
    let mut model = loaded.model;
    if !model.uses_host_attention() {
        let slots = match cfg.engine {
            SchedulerKind::Single => 1,
            SchedulerKind::Continuous => resolved.batch.max_batch_size,
        };
        let max_tokens = resolved.limits.max_total_tokens;
        let (model_back, slots) = tokio::task::spawn_blocking(move || {
            let mut model = model;
            size_cache(&mut model, slots, max_tokens).map(|s| (model, s))
        })
        .await
        .context("cache allocation thread")??;
        model = model_back;
        resolved.batch.max_batch_size = resolved.batch.max_batch_size.min(slots);
    }
    router(
        &cfg,
        resolved,
        Backend::Model(Box::new(model)),
        loaded.tokenizer,
        loaded.model_id,
    )
}

/// Starts the scheduler worker around a model (or sets up the mock) and builds the router.
fn router(
    cfg: &ServerConfig,
    resolved: Resolved,
    backend: Backend,
    tokenizer: Arc<TextTokenizer>,
    model_id: String,
) -> anyhow::Result<App> {
    let metrics = Arc::new(metrics::Metrics::new(
        resolved.limits.max_input_tokens,
        resolved.limits.max_total_tokens,
    ));
    let scheduler = match backend {
        Backend::Model(engine) => Generator::Worker(
            SchedulerHandle::start(
                cfg.engine,
                resolved.batch,
                engine,
                tokenizer.clone(),
                metrics.clone(),
                cfg.compute_threads(),
            )
            .context("starting the scheduler thread")?,
        ),
        Backend::Mock(m) => {
            Generator::Mock(Arc::new(MockEngine::new(m, &tokenizer, metrics.clone())))
        }
    };
    let dtype = if cfg.mock.is_some() {
        "none"
    } else {
        dtype_name(cfg.dtype)
    };
    let info = http::ServerInfo {
        model_id,
        model_dtype: dtype.to_string(),
        model_device_type: cfg.device.name().to_string(),
        engine: cfg.engine_name().to_string(),
        max_concurrent_requests: cfg.max_concurrent_requests,
        max_batch_total_tokens: resolved.batch.max_batch_total_tokens,
        max_batch_size: resolved.batch.max_batch_size,
    };
    let state = http::AppState {
        scheduler,
        tokenizer,
        limits: resolved.limits,
        limiter: Arc::new(Semaphore::new(cfg.max_concurrent_requests)),
        metrics,
        info: Arc::new(info),
        next_id: Arc::new(AtomicU64::new(0)),
        validation: Arc::new(
            http::ValidationWorkers::start().context("starting the validation threads")?,
        ),
    };
    Ok(App {
        router: http::router(state, cfg.api_key.clone()),
        connections: conn::ConnLimits {
            header_read_timeout: cfg.header_read_timeout,
            max_connections: cfg.max_connections,
        },
    })
}

/// Serves `app` (from [`build`]) on `listener` until `shutdown` resolves, then drains
/// in-flight requests.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    app: App,
) -> anyhow::Result<()> {
    conn::serve(listener, shutdown, app.router, app.connections)
        .await
        .context("serving http")
}

#[cfg(test)]
mod tests;
