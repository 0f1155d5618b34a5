//! Attention over the shared [`KvPool`] with candle ops (any dtype and device: the f16/bf16 and
//! CUDA path). A step's rows are laid out by its [`PooledPlan`]: the dense layers run once over
//! all rows; decode attention is one scatter and two batched matmuls per layer for every slot
//! at once; prefill attention runs per sequence. [`Pooled::decode_from_device`] is the same
//! decode step built from device inputs alone, the body a CUDA graph captures.
//! Must not decide which sequences share a step or own the graphs.

use candle_core::Tensor;

use super::plan::PooledPlan;
use crate::server::engine::kv_cache::KvPool;
use crate::server::engine::model::Model;
use crate::server::engine::profile::Laps;

/// A model and the pool its attention reads and writes, for one step.
#[derive(Clone, Copy)]
pub struct Pooled<'a> {
    pub model: &'a Model,
    pub pool: &'a KvPool,
    pub laps: Laps<'a>,
}

/// Device inputs of decode attention for slots `0..width`.
struct DecodeRows {
    width: usize,
    /// Keys read per slot.
    span: usize,
    /// `[width, heads, 1, head_dim]` u32: each slot's cache row for this step's K/V.
    write: Tensor,
    /// `[width, 1, 1, span]` additive mask.
    mask: Tensor,
}

impl Pooled<'_> {
    /// The transformer with attention over the pool. Rows are laid out as one decode row per
    /// slot `0..width` (slot order; slots not decoding this step get a dummy row whose output
    /// is discarded), then each prefilling sequence's tokens. Returns the hidden states and
    /// each sequence's last row.
    pub fn layers(self, plan: PooledPlan) -> candle_core::Result<(Tensor, Vec<u32>)> {
        let (model, pool, laps) = (self.model, self.pool, self.laps);
        let dev = &model.device;
        let n = plan.ids.len();
        let rope = model
            .rope
            .gather(&Tensor::from_vec(plan.positions.clone(), n, dev)?)?;
        let width = plan.width;
        let decode = if width > 0 {
            let write = Tensor::from_vec(plan.write.clone(), width, dev)?;
            let mask = Tensor::from_vec(plan.decode_mask(), (width, 1, 1, plan.span), dev)?
                .to_dtype(model.dtype)?;
            Some(self.decode_rows(&write, mask, plan.span)?)
        } else {
            None
        };
        let prefill_masks = plan
            .prefills
            .iter()
            .map(|p| self.causal_mask(p.t, p.past))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let h = model.cfg.hidden_size;
        laps.lap("step_setup");
        let ids = Tensor::from_vec(plan.ids.clone(), n, dev)?;
        let x = model.layers.run(&ids, laps, |l, qkv| {
            let (q, k, v) = model.rope.split_rotate(qkv, &rope)?;
            laps.lap("rope");
            let mut outs = Vec::with_capacity(1 + plan.prefills.len());
            if let Some(d) = &decode {
                outs.push(self.attend_decode(l, &q, &k, &v, d)?);
                laps.lap("attn_decode");
            }
            let (kc, vc) = pool.layer(l);
            for (p, mask) in plan.prefills.iter().zip(&prefill_masks) {
                // [t, heads, hd] -> [1, heads, t, hd], the slot's layout.
                let head_major = |x: &Tensor| {
                    x.narrow(0, p.start, p.t)?
                        .transpose(0, 1)?
                        .contiguous()?
                        .unsqueeze(0)
                };
                let (kc, vc) = (kc.narrow(0, p.slot, 1)?, vc.narrow(0, p.slot, 1)?);
                kc.slice_set(&head_major(&k)?, 2, p.past)?;
                vc.slice_set(&head_major(&v)?, 2, p.past)?;
                let keys = kc.narrow(2, 0, p.past + p.t)?;
                let values = vc.narrow(2, 0, p.past + p.t)?;
                let scores = head_major(&q)?.matmul(&keys.t()?)?.broadcast_add(mask)?;
                let probs = candle_nn::ops::softmax_last_dim(&scores)?;
                let out = probs.matmul(&values)?.squeeze(0)?.transpose(0, 1)?;
                outs.push(out.reshape((p.t, h))?);
            }
            laps.lap("attn_prefill");
            Tensor::cat(&outs, 0)
        })?;
        Ok((x, plan.last))
    }

    /// The decode-only step over slots `0..width` from device inputs alone, so that it can be
    /// captured as a CUDA graph and replayed: `input` is `[4, width]` u32 (token id, position,
    /// cache row to write, keys visible, per slot), `arange` is `0..span` u32. Returns the
    /// logits of every slot, `[width, vocab]` f32.
    pub fn decode_from_device(
        self,
        input: &Tensor,
        arange: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let model = self.model;
        let (_, width) = input.dims2()?;
        let span = arange.dim(0)?;
        let row = |i: usize| input.narrow(0, i, 1)?.squeeze(0);
        let (ids, positions, write, visible) = (row(0)?, row(1)?, row(2)?, row(3)?);
        // 0 where the key is visible, -1e4 (exp underflows to 0) where it is not.
        let mask = arange
            .reshape((1, span))?
            .broadcast_lt(&visible.reshape((width, 1))?)?
            .to_dtype(model.dtype)?
            .affine(1e4, -1e4)?
            .reshape((width, 1, 1, span))?;
        let rope = model.rope.gather(&positions)?;
        let decode = self.decode_rows(&write, mask, span)?;
        let x = model.layers.run(&ids, self.laps, |l, qkv| {
            let (q, k, v) = model.rope.split_rotate(qkv, &rope)?;
            self.attend_decode(l, &q, &k, &v, &decode)
        })?;
        model.layers.head(&x)
    }

    /// The per-step inputs of decode attention: `write` (`[width]` u32, the cache row of each
    /// slot's new K/V) expanded to the scatter's shape, and the additive key mask.
    fn decode_rows(
        &self,
        write: &Tensor,
        mask: Tensor,
        span: usize,
    ) -> candle_core::Result<DecodeRows> {
        let cfg = &self.model.cfg;
        let (heads, hd) = (cfg.num_attention_heads, cfg.head_dim());
        let width = write.dim(0)?;
        let write = write
            .reshape((width, 1, 1, 1))?
            .broadcast_as((width, heads, 1, hd))?
            .contiguous()?;
        Ok(DecodeRows {
            width,
            span,
            write,
            mask,
        })
    }

    /// Decode attention of layer `l` for slots `0..width` (the first rows of q, k, v): one
    /// scatter per cache writes every slot's new row, then two batched matmuls attend each
    /// slot's first `span` keys under the mask. Returns `[width, hidden]`.
    fn attend_decode(
        &self,
        l: usize,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        d: &DecodeRows,
    ) -> candle_core::Result<Tensor> {
        let cfg = &self.model.cfg;
        let (heads, hd) = (cfg.num_attention_heads, cfg.head_dim());
        let width = d.width;
        let rows = |t: &Tensor| t.narrow(0, 0, width)?.reshape((width, heads, 1, hd));
        let (kc, vc) = self.pool.layer(l);
        let (kc, vc) = (kc.narrow(0, 0, width)?, vc.narrow(0, 0, width)?);
        kc.scatter_set(&d.write, &rows(k)?, 2)?;
        vc.scatter_set(&d.write, &rows(v)?, 2)?;
        let keys = kc.narrow(2, 0, d.span)?;
        let values = vc.narrow(2, 0, d.span)?;
        let scores = rows(q)?.matmul(&keys.t()?)?.broadcast_add(&d.mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        probs.matmul(&values)?.reshape((width, cfg.hidden_size))
    }

    /// `[t, past + t]` additive mask: token i of this chunk sees cache rows 0..=past+i.
    fn causal_mask(&self, t: usize, past: usize) -> candle_core::Result<Tensor> {
        let total = past + t;
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| {
                (0..total).map(move |j| {
                    if j <= past + i {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
            })
            .collect();
        Tensor::from_vec(mask, (t, total), &self.model.device)?.to_dtype(self.model.dtype)
    }
}
