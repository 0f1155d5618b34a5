//! The f32 CPU path of a step: the dense layers in candle over every sequence's tokens stacked,
//! attention through the plain-Rust kernel ([`super::cpu_attention`]) over each sequence's own
//! host cache. Must not know about the pool or graphs.

use candle_core::Tensor;

use super::cpu_attention::{self, SeqRows};
use crate::server::engine::model::Model;
use crate::server::engine::profile::Laps;
use crate::server::engine::step::SeqInput;

/// The transformer over the tokens of all sequences stacked, attention through the f32 host
/// kernel. Returns the hidden states and each sequence's last row.
pub fn layers(
    model: &Model,
    batch: &mut [SeqInput<'_>],
    laps: Laps<'_>,
) -> candle_core::Result<(Tensor, Vec<u32>)> {
    let mut ids = Vec::new();
    let mut spans = Vec::with_capacity(batch.len());
    for seq in batch.iter() {
        spans.push((ids.len(), seq.tokens.len(), seq.cache.len()));
        ids.extend_from_slice(seq.tokens);
    }
    let last = spans.iter().map(|&(s, t, _)| (s + t - 1) as u32).collect();
    let n = ids.len();
    let ids = Tensor::from_vec(ids, n, &model.device)?;
    let x = model
        .layers
        .run(&ids, laps, |l, qkv| attend(model, l, qkv, batch, &spans))?;
    Ok((x, last))
}

/// Attention of layer `l` through the f32 CPU kernel: one copy of QKV out, one of the result
/// back, and plain loops in between.
fn attend(
    model: &Model,
    l: usize,
    qkv: &Tensor,
    batch: &mut [SeqInput<'_>],
    spans: &[(usize, usize, usize)],
) -> candle_core::Result<Tensor> {
    let cfg = &model.cfg;
    let (h, heads, hd) = (cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim());
    let n = qkv.dim(0)?;
    let host = qkv.flatten_all()?.to_vec1::<f32>()?;
    let mut rows: Vec<SeqRows<'_>> = batch
        .iter_mut()
        .zip(spans)
        .map(|(seq, &(start, len, past))| SeqRows {
            start,
            len,
            past,
            kv: seq.cache.host_layer(l, heads, hd, len),
        })
        .collect();
    let mut out = vec![0f32; n * h];
    let shape = cpu_attention::Shape {
        heads,
        head_dim: hd,
        rotary_dims: cfg.rotary_dims(),
    };
    cpu_attention::attend(&host, shape, &model.rope.host, &mut rows, &mut out);
    Tensor::from_vec(out, (n, h), &model.device)
}
