//! GPT-NeoX rotary position embedding: the cos/sin tables of every position (on the device for
//! candle ops, and as [`RotaryTables`] on the host for the f32 CPU kernel), their rows gathered
//! for one step, and the NeoX half-split rotation of the first `rotary_dims` of each head.
//! Must not know about caches or attention.

use candle_core::{DType, Device, Tensor};

use super::config::Config;
use crate::server::engine::error::EngineError;

/// Rotary tables for every position: `[max_positions][rot / 2]`, row-major.
pub struct RotaryTables {
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
    /// `rotary_dims / 2` (0 when nothing rotates).
    pub half: usize,
}

/// The rotary tables of one model, with the head shape they apply to.
pub struct Rope {
    heads: usize,
    head_dim: usize,
    rotary_dims: usize,
    /// `[max_position_embeddings, rotary_dims / 2]`.
    cos: Tensor,
    sin: Tensor,
    /// The same tables on the host, for the f32 CPU kernel.
    pub host: RotaryTables,
}

/// Rotary tables gathered for one step's rows, `[n, rotary_dims / 2]`.
pub struct RopeRows {
    cos: Tensor,
    sin: Tensor,
    /// q's tables, carrying the score scale when the rotation covers the whole head.
    cos_q: Tensor,
    sin_q: Tensor,
    /// The score scale still to apply to q (partial rotary).
    q_scale: Option<f64>,
}

impl Rope {
    /// cos/sin for every position (the half-split rotation uses each frequency twice, which
    /// candle's `rope` handles).
    pub fn new(cfg: &Config, dtype: DType, device: &Device) -> Result<Self, EngineError> {
        let rot = cfg.rotary_dims().max(2);
        let base = cfg.rope_base();
        let inv_freq: Vec<f32> = (0..rot / 2)
            .map(|i| (1.0 / base.powf((2 * i) as f64 / rot as f64)) as f32)
            .collect();
        let max = cfg.max_position_embeddings;
        let inv_freq = Tensor::from_vec(inv_freq, (1, rot / 2), device)?;
        let pos = Tensor::arange(0u32, max as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((max, 1))?;
        let freqs = pos.broadcast_mul(&inv_freq)?;
        let (cos, sin) = (freqs.cos()?.to_dtype(dtype)?, freqs.sin()?.to_dtype(dtype)?);
        let host = RotaryTables {
            cos: cos.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
            sin: sin.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
            half: cfg.rotary_dims().max(2) / 2,
        };
        Ok(Self {
            heads: cfg.num_attention_heads,
            head_dim: cfg.head_dim(),
            rotary_dims: cfg.rotary_dims(),
            cos,
            sin,
            host,
        })
    }

    /// Rotary tables gathered for `positions`; with full rotary the 1/sqrt(head_dim) score
    /// scale rides in q's tables, saving a multiply per layer.
    pub fn gather(&self, positions: &Tensor) -> candle_core::Result<RopeRows> {
        let hd = self.head_dim;
        let cos = self.cos.index_select(positions, 0)?;
        let sin = self.sin.index_select(positions, 0)?;
        let scale = 1.0 / (hd as f64).sqrt();
        let scale_in_rope = self.rotary_dims == hd;
        let (cos_q, sin_q) = if scale_in_rope {
            ((&cos * scale)?, (&sin * scale)?)
        } else {
            (cos.clone(), sin.clone())
        };
        Ok(RopeRows {
            cos,
            sin,
            cos_q,
            sin_q,
            q_scale: (!scale_in_rope).then_some(scale),
        })
    }

    /// Splits the fused QKV rows `[n, 3h]` into rotated q (scaled), rotated k and v, each
    /// `[n, heads, head_dim]` and contiguous.
    pub fn split_rotate(
        &self,
        qkv: &Tensor,
        rope: &RopeRows,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let (heads, hd) = (self.heads, self.head_dim);
        let n = qkv.dim(0)?;
        // Per-head fused layout: output features are [head][q|k|v][head_dim].
        let qkv = qkv.reshape((n, heads, 3 * hd))?;
        let mut q = self.rotate(&qkv.narrow(2, 0, hd)?, &rope.cos_q, &rope.sin_q)?;
        if let Some(scale) = rope.q_scale {
            q = (q * scale)?;
        }
        let k = self.rotate(&qkv.narrow(2, hd, hd)?, &rope.cos, &rope.sin)?;
        let v = qkv.narrow(2, 2 * hd, hd)?.contiguous()?;
        Ok((q, k, v))
    }

    /// NeoX rotary on the first `rotary_dims` of each head of `xs` `[n, heads, head_dim]`;
    /// returns a contiguous tensor. `cos`/`sin` are already gathered per token `[n, rot/2]`.
    fn rotate(&self, xs: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
        let (n, heads, hd) = xs.dims3()?;
        let rot = self.rotary_dims;
        if rot == 0 {
            return xs.contiguous();
        }
        // candle's `rope` wants [b, h, t, d] with per-batch tables [b, t, d/2]: every token is
        // its own "batch" of length one, so each gets its own position.
        let x_rot = xs
            .narrow(2, 0, rot)?
            .contiguous()?
            .reshape((n, heads, 1, rot))?;
        let cos = cos.reshape((n, 1, rot / 2))?;
        let sin = sin.reshape((n, 1, rot / 2))?;
        let rotated = candle_nn::rotary_emb::rope(&x_rot, &cos, &sin)?.reshape((n, heads, rot))?;
        if rot == hd {
            Ok(rotated)
        } else {
            Tensor::cat(&[&rotated, &xs.narrow(2, rot, hd - rot)?], 2)
        }
    }
}
