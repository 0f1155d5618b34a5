//! The compute side of the server: a GPT-NeoX model plus its tokenizer, loaded from a preset or a
//! HuggingFace folder, behind the [`Engine`] trait the scheduler drives one step at a time.
//!
//! Inputs: a [`ModelSpec`], dtype and device. Output: a [`LoadedModel`] (the engine and its
//! tokenizer). Must not know about queues, channels or HTTP; everything here is blocking compute
//! and runs on the scheduler's own OS thread.

pub mod cpu_attention;
pub mod gpt_neox;
pub mod kv_cache;
pub mod presets;
pub mod sampler;
pub mod tokenizer;
pub mod weights;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};

pub use gpt_neox::{Config, GptNeox, SeqInput};
pub use kv_cache::KvCache;
pub use tokenizer::TextTokenizer;

/// Why a model could not be loaded or a step failed. Load errors name the file or tensor.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "tensor `{name}` is missing from {folder}: the checkpoint is not a GPTNeoXForCausalLM or is incomplete"
    )]
    MissingTensor { name: String, folder: String },
    #[error(
        "tensor `{name}` has shape {found:?} but config.json implies {expected:?}: the config does not match the weights"
    )]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("model config: {0}")]
    Config(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("this build has no CUDA support: rebuild with `cargo build --release --features cuda`")]
    NoCuda,
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

impl EngineError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

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
    Cuda,
}

impl DeviceKind {
    pub fn device(self) -> Result<Device, EngineError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            #[cfg(feature = "cuda")]
            Self::Cuda => Ok(Device::new_cuda(0)?),
            #[cfg(not(feature = "cuda"))]
            Self::Cuda => Err(EngineError::NoCuda),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }
}

/// One step over a ragged batch; the scheduler's only view of the model.
pub trait Engine: Send {
    /// Feeds each sequence its tokens, extends its cache and returns, per sequence, the
    /// logits of its last position (`vocab_size` floats).
    fn step(&mut self, batch: &mut [SeqInput<'_>]) -> Result<Vec<Vec<f32>>, EngineError>;
    /// An empty cache for a new sequence that will hold up to `reserve` tokens.
    fn new_cache(&self, reserve: usize) -> KvCache;
}

impl Engine for GptNeox {
    fn step(&mut self, batch: &mut [SeqInput<'_>]) -> Result<Vec<Vec<f32>>, EngineError> {
        Ok(self.forward(batch)?.to_vec2::<f32>()?)
    }

    fn new_cache(&self, reserve: usize) -> KvCache {
        KvCache::new(self.config().num_hidden_layers, reserve)
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
