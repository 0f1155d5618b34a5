//! The compute side of the server: a GPT-NeoX model plus its tokenizer, loaded from a preset or a
//! HuggingFace folder, behind the [`Engine`] trait the scheduler drives one step at a time.
//!
//! Inputs: a [`ModelSpec`], dtype and device. Output: a [`LoadedModel`] (the engine and its
//! tokenizer). Must not know about queues, channels or HTTP; everything here is blocking compute
//! and runs on the scheduler's own OS thread.

pub mod cpu_attention;
pub mod cuda_graph;
pub mod gpt_neox;
pub mod kv_cache;
pub mod presets;
pub mod profile;
pub mod sampler;
pub mod tokenizer;
pub mod weights;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

pub use gpt_neox::{Config, GptNeox, SeqInput};
pub use kv_cache::{KvCache, PoolFull, PoolShape};
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
    #[error(
        "--device cuda: no usable GPU ({0}); check that `nvidia-smi` lists one and the driver is >= 580, or use --device cpu"
    )]
    NoGpu(String),
    /// The KV cache cannot take the sequence now: the request is refused as overloaded.
    #[error("{0}")]
    CacheFull(#[from] PoolFull),
    /// The device ran out of memory in a step; the requests of that step are refused as
    /// overloaded and the server goes on.
    #[error(
        "out of GPU memory: {0}; restart the server with a lower --max-batch-size or --max-total-tokens"
    )]
    OutOfMemory(String),
    #[error("tensor error: {0}")]
    Candle(candle_core::Error),
}

impl From<candle_core::Error> for EngineError {
    fn from(e: candle_core::Error) -> Self {
        // cudarc reports CUDA_ERROR_OUT_OF_MEMORY inside a wrapped error; only the text tells.
        let text = e.to_string();
        if text.contains("OUT_OF_MEMORY") || text.contains("out of memory") {
            Self::OutOfMemory(text)
        } else {
            Self::Candle(e)
        }
    }
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
            Self::Cuda => {
                let dev = Device::new_cuda(0).map_err(|e| EngineError::NoGpu(e.to_string()))?;
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

/// What a step gives one sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutput {
    /// The argmax token and its log-probability, picked on the device.
    Greedy { id: u32, logprob: f32 },
    /// The whole row of logits (`vocab_size` floats), for the host sampler.
    Logits(Vec<f32>),
}

/// One step over a ragged batch; the scheduler's only view of the model.
pub trait Engine: Send {
    /// Feeds each sequence its tokens and extends its cache. Sequence `i` gets its greedy pick
    /// when `greedy[i]`, else its last position's logits.
    fn step(
        &mut self,
        batch: &mut [SeqInput<'_>],
        greedy: &[bool],
    ) -> Result<Vec<StepOutput>, EngineError>;
    /// An empty cache for a new sequence that will hold up to `reserve` tokens.
    fn new_cache(&mut self, reserve: usize) -> Result<KvCache, EngineError>;
}

impl Engine for GptNeox {
    fn step(
        &mut self,
        batch: &mut [SeqInput<'_>],
        greedy: &[bool],
    ) -> Result<Vec<StepOutput>, EngineError> {
        let logits = self.forward(batch)?;
        let out = pick(&logits, greedy)?;
        if let Some(p) = self.profile() {
            p.lap(self.device(), "pick");
            p.end_step(batch.len());
        }
        Ok(out)
    }

    fn new_cache(&mut self, reserve: usize) -> Result<KvCache, EngineError> {
        GptNeox::new_cache(self, reserve)
    }
}

/// Splits `[batch, vocab]` f32 logits into outputs. Greedy rows are reduced on the device, so
/// a step costs one small copy to the host (ids and log-probabilities of the whole batch)
/// rather than a vocabulary-wide row per sequence; only sampled rows come back whole.
pub fn pick(logits: &Tensor, greedy: &[bool]) -> candle_core::Result<Vec<StepOutput>> {
    let mut out: Vec<Option<StepOutput>> = vec![None; greedy.len()];
    if greedy.iter().any(|&g| g) {
        let ids = logits.argmax_keepdim(1)?;
        let max = logits.max_keepdim(1)?;
        let lse = (logits.broadcast_sub(&max)?.exp()?.sum_keepdim(1)?.log()? + &max)?;
        let logprob = (logits.gather(&ids, 1)? - lse)?;
        // One transfer: ids (exact in f32 below 2^24) beside their log-probabilities.
        let both = Tensor::cat(&[&ids.to_dtype(DType::F32)?, &logprob], 1)?.to_vec2::<f32>()?;
        for (i, row) in both.into_iter().enumerate() {
            if greedy[i] {
                out[i] = Some(StepOutput::Greedy {
                    id: row[0] as u32,
                    logprob: row[1],
                });
            }
        }
    }
    let sampled: Vec<u32> = (0..greedy.len())
        .filter(|&i| !greedy[i])
        .map(|i| i as u32)
        .collect();
    if !sampled.is_empty() {
        let rows = Tensor::from_vec(sampled.clone(), sampled.len(), logits.device())?;
        let rows = logits.index_select(&rows, 0)?.to_vec2::<f32>()?;
        for (i, row) in sampled.into_iter().zip(rows) {
            out[i as usize] = Some(StepOutput::Logits(row));
        }
    }
    // Unwrap is safe: every index is either greedy or sampled.
    Ok(out
        .into_iter()
        .map(|o| o.expect("each row picked"))
        .collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::engine::sampler::{Sampler, SamplingParams};

    #[test]
    fn device_picks_match_the_host_sampler_and_sampled_rows_come_back_whole() {
        let rows = vec![
            vec![0.5f32, 2.0, -1.0, 1.5],
            vec![3.0, 0.0, 0.0, 3.5],
            vec![0.1, 0.2, 0.3, 0.4],
        ];
        let logits = Tensor::new(rows.clone(), &Device::Cpu).unwrap();
        let out = pick(&logits, &[true, true, false]).unwrap();
        for (row, got) in rows.iter().zip(&out[..2]) {
            let want = Sampler::new(SamplingParams::default()).next(&mut row.clone(), &[]);
            match got {
                StepOutput::Greedy { id, logprob } => {
                    assert_eq!(*id, want.0);
                    assert!((logprob - want.1).abs() < 1e-5, "{logprob} vs {}", want.1);
                }
                other => panic!("expected a greedy pick, got {other:?}"),
            }
        }
        assert_eq!(out[2], StepOutput::Logits(rows[2].clone()));
    }
}
