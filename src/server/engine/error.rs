//! [`EngineError`]: why a model could not be loaded or a step failed. Load errors name the file
//! or tensor; the scheduler branches on the capacity variants (`CacheFull`, `OutOfMemory`) to
//! answer 503 instead of 424. Must not depend on any other engine file but the KV pool's
//! [`PoolFull`].

use std::path::Path;

use super::kv_cache::PoolFull;

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
        "--device cuda:{index}: no usable GPU of that index ({cause}); `nvidia-smi -L` lists the GPUs from 0 (after CUDA_VISIBLE_DEVICES), the driver must be >= 580; or use --device cpu"
    )]
    NoGpu { index: usize, cause: String },
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
