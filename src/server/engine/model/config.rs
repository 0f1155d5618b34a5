//! `config.json` of a GPT-NeoX checkpoint ([`Config`]) and the shape rules the forward pass
//! relies on, plus the MLP [`Activation`] it names. Must not touch tensors beyond applying the
//! activation.

use candle_core::Tensor;
use serde::Deserialize;

use crate::server::engine::error::EngineError;

/// `config.json` of a `GPTNeoXForCausalLM`. Older files (Pythia, RedPajama) name the rotary
/// settings `rotary_pct`/`rotary_emb_base`; transformers 4.4x+ writes `partial_rotary_factor`/
/// `rope_theta`, and 5.x nests them in `rope_parameters`. All three are accepted.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default)]
    pub rotary_pct: Option<f64>,
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
    #[serde(default)]
    pub rotary_emb_base: Option<f64>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_true")]
    pub use_parallel_residual: bool,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// An id or a list of ids; the first is used.
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
}

fn default_max_position_embeddings() -> usize {
    2048
}
fn default_layer_norm_eps() -> f64 {
    1e-5
}
fn default_true() -> bool {
    true
}
fn default_hidden_act() -> String {
    "gelu".to_string()
}

impl Config {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    pub fn rotary_fraction(&self) -> f64 {
        let nested = self.rope_parameters.as_ref();
        self.rotary_pct
            .or(self.partial_rotary_factor)
            .or(nested.and_then(|r| r.partial_rotary_factor))
            .unwrap_or(0.25)
    }

    /// Dimensions of each head that are rotated (`int(head_dim * rotary_pct)`, as HF does).
    pub fn rotary_dims(&self) -> usize {
        (self.head_dim() as f64 * self.rotary_fraction()) as usize
    }

    pub fn rope_base(&self) -> f64 {
        let nested = self.rope_parameters.as_ref();
        self.rotary_emb_base
            .or(self.rope_theta)
            .or(nested.and_then(|r| r.rope_theta))
            .unwrap_or(10000.0)
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        match &self.eos_token_id {
            Some(serde_json::Value::Number(n)) => n.as_u64().map(|v| v as u32),
            Some(serde_json::Value::Array(a)) => {
                a.first().and_then(|v| v.as_u64()).map(|v| v as u32)
            }
            _ => None,
        }
    }

    /// Checks the shape rules the forward pass relies on.
    pub fn check(&self) -> Result<(), EngineError> {
        let bad = |msg: String| Err(EngineError::Config(msg));
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return bad(format!(
                "hidden_size {} must be a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self.rotary_dims().is_multiple_of(2) {
            return bad(format!(
                "rotary dims {} (head_dim {} x rotary_pct {}) must be even",
                self.rotary_dims(),
                self.head_dim(),
                self.rotary_fraction()
            ));
        }
        if self.vocab_size == 0 || self.num_hidden_layers == 0 {
            return bad("vocab_size and num_hidden_layers must be positive".to_string());
        }
        Activation::parse(&self.hidden_act)?;
        Ok(())
    }
}

/// The MLP activation: HF `gelu` is the exact erf form; the tanh forms are accepted for
/// fine-tunes that changed it.
#[derive(Debug, Clone, Copy)]
pub enum Activation {
    GeluErf,
    GeluTanh,
}

impl Activation {
    pub fn parse(name: &str) -> Result<Self, EngineError> {
        match name {
            "gelu" => Ok(Self::GeluErf),
            "gelu_new" | "gelu_fast" | "gelu_pytorch_tanh" => Ok(Self::GeluTanh),
            other => Err(EngineError::Config(format!(
                "hidden_act `{other}` is not supported: use gelu (GPT-NeoX's exact GELU)"
            ))),
        }
    }

    pub fn apply(self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::GeluErf => xs.gelu_erf(),
            Self::GeluTanh => xs.gelu(),
        }
    }
}
