//! Builds a [`Model`] from a [`WeightSource`] by the HuggingFace tensor names of
//! `GPTNeoXForCausalLM`, checking every tensor's presence and shape against the config.
//! Must not run the model.

use candle_core::{DType, Device};
use candle_nn::{LayerNorm, Linear};

use super::Model;
use super::config::{Activation, Config};
use super::layers::{Block, Layers};
use super::rope::Rope;
use crate::server::engine::error::EngineError;
use crate::server::engine::weights::WeightSource;

impl Model {
    /// Loads `cfg`'s weights from `weights` onto `device` in `dtype`.
    pub fn load(
        cfg: Config,
        weights: &WeightSource,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, EngineError> {
        cfg.check()?;
        let act = Activation::parse(&cfg.hidden_act)?;
        let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
        let get = |name: &str, shape: &[usize]| weights.get(name, shape, dtype, device);
        let layer_norm = |prefix: &str| -> Result<LayerNorm, EngineError> {
            Ok(LayerNorm::new(
                get(&format!("{prefix}.weight"), &[h])?,
                get(&format!("{prefix}.bias"), &[h])?,
                cfg.layer_norm_eps,
            ))
        };
        let linear = |prefix: &str, out: usize, inp: usize| -> Result<Linear, EngineError> {
            Ok(Linear::new(
                get(&format!("{prefix}.weight"), &[out, inp])?,
                Some(get(&format!("{prefix}.bias"), &[out])?),
            ))
        };
        let embed_in = get("gpt_neox.embed_in.weight", &[v, h])?;
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("gpt_neox.layers.{l}");
            blocks.push(Block {
                input_layernorm: layer_norm(&format!("{p}.input_layernorm"))?,
                post_attention_layernorm: layer_norm(&format!("{p}.post_attention_layernorm"))?,
                query_key_value: linear(&format!("{p}.attention.query_key_value"), 3 * h, h)?,
                dense: linear(&format!("{p}.attention.dense"), h, h)?,
                dense_h_to_4h: linear(&format!("{p}.mlp.dense_h_to_4h"), i, h)?,
                dense_4h_to_h: linear(&format!("{p}.mlp.dense_4h_to_h"), h, i)?,
            });
        }
        let final_layer_norm = layer_norm("gpt_neox.final_layer_norm")?;
        let embed_out = if cfg.tie_word_embeddings {
            embed_in.clone()
        } else {
            get("embed_out.weight", &[v, h])?
        };
        let embed_out_t = embed_out.t()?.contiguous()?;
        let rope = Rope::new(&cfg, dtype, device)?;
        let layers = Layers {
            act,
            use_parallel_residual: cfg.use_parallel_residual,
            embed_in,
            blocks,
            final_layer_norm,
            embed_out_t,
        };
        Ok(Self {
            cfg,
            layers,
            rope,
            device: device.clone(),
            dtype,
        })
    }
}
