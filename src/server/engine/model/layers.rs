//! The dense part of GPT-NeoX: token embedding, per layer the LayerNorms, fused QKV, output
//! projection and MLP with sequential or parallel residual, then the final LayerNorm and the
//! untied head. They run once over the rows of all sequences stacked; attention is the
//! caller's closure, so the same layers serve the host kernel, the pooled path and a CUDA
//! graph body. Must not know about caches or positions.

use candle_core::{DType, Tensor};
use candle_nn::{LayerNorm, Linear, Module};

use super::config::Activation;
use crate::server::engine::profile::Laps;

/// One transformer layer's weights, by their HuggingFace names.
pub struct Block {
    pub input_layernorm: LayerNorm,
    pub post_attention_layernorm: LayerNorm,
    pub query_key_value: Linear,
    pub dense: Linear,
    pub dense_h_to_4h: Linear,
    pub dense_4h_to_h: Linear,
}

/// Every weight of the model but the rotary tables.
pub struct Layers {
    pub act: Activation,
    pub use_parallel_residual: bool,
    pub embed_in: Tensor,
    pub blocks: Vec<Block>,
    pub final_layer_norm: LayerNorm,
    /// `[vocab, hidden]`, transposed once at load so the head is a plain matmul.
    pub embed_out_t: Tensor,
}

impl Layers {
    /// Embeds `ids` and runs every layer, `attend(layer, qkv)` supplying attention.
    pub fn run(
        &self,
        ids: &Tensor,
        laps: Laps<'_>,
        mut attend: impl FnMut(usize, &Tensor) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Tensor> {
        let mut x = self.embed_in.index_select(ids, 0)?;
        laps.lap("embed");
        for (l, layer) in self.blocks.iter().enumerate() {
            let a_in = layer.input_layernorm.forward(&x)?;
            laps.lap("layernorm");
            let qkv = layer.query_key_value.forward(&a_in)?;
            laps.lap("qkv");
            let attn = attend(l, &qkv)?;
            let attn = layer.dense.forward(&attn)?;
            laps.lap("dense");
            x = if self.use_parallel_residual {
                let m = self.mlp(layer, &layer.post_attention_layernorm.forward(&x)?, laps)?;
                ((x + attn)? + m)?
            } else {
                let x = (x + attn)?;
                let m = self.mlp(layer, &layer.post_attention_layernorm.forward(&x)?, laps)?;
                (x + m)?
            };
        }
        Ok(x)
    }

    /// The final LayerNorm and the head over hidden rows `x`: `[rows, vocab]` logits in f32.
    pub fn head(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.final_layer_norm.forward(x)?;
        x.matmul(&self.embed_out_t)?.to_dtype(DType::F32)
    }

    fn mlp(&self, layer: &Block, xs: &Tensor, laps: Laps<'_>) -> candle_core::Result<Tensor> {
        laps.lap("layernorm");
        let hidden = self.act.apply(&layer.dense_h_to_4h.forward(xs)?)?;
        laps.lap("mlp_up");
        let out = layer.dense_4h_to_h.forward(&hidden)?;
        laps.lap("mlp_down");
        Ok(out)
    }
}
