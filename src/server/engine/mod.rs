//! The compute side of the server: a GPT-NeoX model plus its tokenizer, loaded from a preset or a
//! HuggingFace folder, behind the [`Engine`] trait the scheduler drives one step at a time.
//!
//! Inputs: a [`ModelSpec`], dtype and device. Output: a [`LoadedModel`] (the engine and its
//! tokenizer). Must not know about queues, channels or HTTP; everything here is blocking compute
//! and runs on the scheduler's own OS thread.
//!
//! ```text
//! step      Engine trait, SeqInput, StepOutput, pick          <- the scheduler's whole view
//! gpt_neox  GptNeox: Model + attention path + pool + graphs   (implements Engine)
//!   model/    config, load (weights by HF name), layers (dense), rope     no per-step state
//!   exec/     plan (rows of a pooled step), pooled (attention over the KV pool, graph body),
//!             host + cpu_attention/ (the f32 CPU kernel over per-sequence caches)
//!   graphs    owner of the CUDA graphs: buckets, capture, replay of a step body it is handed
//! kv_cache  KvPool (device slots) and KvCache (one sequence's handle)
//! fake      FakeEngine: scripted step costs on a VirtualClock (clock), no model
//! error, presets, weights, tokenizer, sampler, profile
//! ```
//!
//! Imports point down that picture: nothing under `model/` knows about caches, `exec/` reads the
//! model and the pool, `graphs` knows neither, and no child imports this file.

pub mod clock;
pub mod error;
pub mod exec;
pub mod fake;
pub mod gpt_neox;
pub mod graphs;
pub mod kv_cache;
pub mod model;
pub mod presets;
pub mod profile;
pub mod sampler;
pub mod step;
pub mod tokenizer;
pub mod weights;

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device};

pub use clock::{Clock, VirtualClock};
pub use error::EngineError;
pub use fake::{FakeEngine, StepCosts};
pub use gpt_neox::GptNeox;
pub use kv_cache::{KvCache, PoolFull, PoolShape};
pub use model::Config;
pub use step::{Engine, SeqInput, StepOutput, pick};
pub use tokenizer::TextTokenizer;

/// What `--model` named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// One of [`presets::NAMES`], with random weights from this seed.
    Preset { name: String, seed: u64 },
    /// A local HuggingFace folder.
    Folder(PathBuf),
}

impl ModelSpec {
    /// The id reported by `/info` and `/v1/models`.
    pub fn id(&self) -> String {
        match self {
            Self::Preset { name, .. } => name.clone(),
            Self::Folder(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string()),
        }
    }
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    /// The GPU of this index (`--device cuda:N`; `cuda` is `cuda:0`), as the CUDA driver
    /// numbers them (after `CUDA_VISIBLE_DEVICES`).
    Cuda(usize),
}

impl DeviceKind {
    pub fn device(self) -> Result<Device, EngineError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            #[cfg(feature = "cuda")]
            Self::Cuda(index) => {
                let dev = Device::new_cuda(index).map_err(|e| EngineError::NoGpu {
                    index,
                    cause: e.to_string(),
                })?;
                if let Device::Cuda(cuda) = &dev
                    && std::env::var_os("RPLOAD_CUDA_EVENT_TRACKING").is_none()
                {
                    // SAFETY: every tensor of the server lives on candle's one stream of this
                    // device, so the per-buffer events that guard cross-stream use (recorded
                    // on every kernel launch) guard nothing here and only cost launch time.
                    unsafe { cuda.disable_event_tracking() };
                }
                Ok(dev)
            }
            #[cfg(not(feature = "cuda"))]
            Self::Cuda(_) => Err(EngineError::NoCuda),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda(_) => "cuda",
        }
    }
}

/// A model ready to serve.
pub struct LoadedModel {
    pub model: GptNeox,
    pub tokenizer: Arc<TextTokenizer>,
    pub model_id: String,
}

/// Loads `spec` onto `device` in `dtype`.
pub fn load(
    spec: &ModelSpec,
    dtype: DType,
    device: DeviceKind,
) -> Result<LoadedModel, EngineError> {
    let dev = device.device()?;
    match spec {
        ModelSpec::Preset { name, seed } => {
            let cfg = presets::config(name).ok_or_else(|| {
                EngineError::Config(format!(
                    "unknown preset `{name}`: use one of {} or a model folder",
                    presets::NAMES.join(", ")
                ))
            })?;
            let weights = weights::WeightSource::Random { seed: *seed };
            let model = GptNeox::load(cfg, &weights, dtype, &dev)?;
            Ok(LoadedModel {
                model,
                tokenizer: Arc::new(TextTokenizer::embedded()?),
                model_id: spec.id(),
            })
        }
        ModelSpec::Folder(folder) => {
            let cfg_path = folder.join("config.json");
            let text =
                std::fs::read_to_string(&cfg_path).map_err(|e| EngineError::io(&cfg_path, e))?;
            let cfg: Config = serde_json::from_str(&text)
                .map_err(|e| EngineError::Config(format!("{}: {e}", cfg_path.display())))?;
            let weights = weights::WeightSource::open_folder(folder)?;
            let eos = cfg.eos_token_id();
            let model = GptNeox::load(cfg, &weights, dtype, &dev)?;
            let tokenizer = TextTokenizer::from_file(&folder.join("tokenizer.json"), eos)?;
            Ok(LoadedModel {
                model,
                tokenizer: Arc::new(tokenizer),
                model_id: spec.id(),
            })
        }
    }
}
