//! GPT-NeoX (Pythia, RedPajama-INCITE) as data: the [`Model`] is its config, weights and rotary
//! tables on one device, with no per-step state.
//!
//! Key characteristics (HF `modeling_gpt_neox.py`):
//! - fused QKV whose 3h output rows are laid out PER HEAD as `[q, k, v]` (not contiguous thirds);
//! - rotary embedding on the first `rotary_pct` of each head, NeoX half-split rotation;
//! - sequential or parallel residual (`use_parallel_residual`), exact erf GELU, biases everywhere
//!   except the untied `embed_out`.
//!
//! `config` parses and checks `config.json`, `load` builds the weights by their HF names
//! ([`Model::load`]),
//! `layers` runs the dense layers around an attention closure, `rope` owns the rotary tables.
//! How attention reads the KV cache is `exec`'s business. Must not sample, tokenize or schedule.

pub mod config;
pub mod layers;
pub mod load;
pub mod rope;

use candle_core::{DType, Device};

pub use config::{Config, RopeParameters};

/// A loaded GPT-NeoX: everything the forward pass reads and nothing it writes.
pub struct Model {
    pub cfg: Config,
    pub layers: layers::Layers,
    pub rope: rope::Rope,
    pub device: Device,
    pub dtype: DType,
}
