//! The portable core of the host attention kernel: the per-sequence pass over the fused QKV
//! rows (rotate, append K/V, attend) written once against the [`Kernel`] trait of inner loops,
//! and the plain-Rust [`Portable`] kernel. Instruction-set kernels (`avx2.rs`) implement the
//! same trait. Must not detect CPU features.

use crate::server::engine::kv_cache::HostKv;
use crate::server::engine::model::rope::RotaryTables;

/// The shape of one layer's attention.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub heads: usize,
    pub head_dim: usize,
    /// Rotated dimensions at the start of each head (even).
    pub rotary_dims: usize,
}

/// One sequence's part of the step: its rows in the stacked batch and its cache for this layer.
pub struct SeqRows<'a> {
    /// First row of this sequence in the stacked `[n, 3h]` QKV.
    pub start: usize,
    /// Rows (tokens) fed this step.
    pub len: usize,
    /// Tokens already cached (position of the first fed token).
    pub past: usize,
    /// Holds `past` rows per head and room for `len` more; the fed rows are written.
    pub kv: &'a mut HostKv,
}

/// The queries of one prefill chunk for one head: row `i` of the chunk is at
/// `queries[i * stride + offset..][..head_dim]` (the same layout as the output rows).
#[derive(Clone, Copy)]
pub(super) struct Block<'a> {
    pub(super) queries: &'a [f32],
    pub(super) stride: usize,
    pub(super) offset: usize,
    pub(super) head_dim: usize,
    pub(super) len: usize,
    pub(super) past: usize,
    pub(super) scale: f32,
}

/// Reused buffers.
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) scores: Vec<f32>,
    /// Keys transposed to `[head_dim, keys]` for the prefill kernel.
    pub(super) keys_t: Vec<f32>,
}

/// The inner loops of attention, per instruction set.
pub(super) trait Kernel {
    /// `a · b`.
    fn dot(a: &[f32], b: &[f32]) -> f32;
    /// `acc += w * x`.
    fn axpy(w: f32, x: &[f32], acc: &mut [f32]);

    /// All `block.len` queries of one sequence and one head (a prefill chunk): query `i` sees
    /// key rows `0..=past + i`. The default runs [`Kernel::head`] per query.
    #[inline(always)]
    fn head_block(
        block: Block<'_>,
        keys: &[f32],
        values: &[f32],
        scratch: &mut Scratch,
        out: &mut [f32],
    ) {
        per_query::<Self>(block, keys, values, scratch, out);
    }

    /// `out = softmax(q · keysᵀ · scale) · values` for one query and one head; `keys` and
    /// `values` are `[visible, head_dim]` rows.
    #[inline(always)]
    fn head(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        scale: f32,
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        softmax_rows::<Self>(q, keys, values, scale, scores, out);
    }
}

/// [`Kernel::head`] with `K`'s dot and axpy, for any head size: the default, and the fallback
/// of kernels specialised for some sizes.
#[inline(always)]
pub(super) fn softmax_rows<K: Kernel + ?Sized>(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let hd = q.len();
    scores.clear();
    let mut max = f32::NEG_INFINITY;
    for k in keys.chunks_exact(hd) {
        let s = K::dot(q, k) * scale;
        max = max.max(s);
        scores.push(s);
    }
    let mut total = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        total += *s;
    }
    out.fill(0.0);
    for (&p, v) in scores.iter().zip(values.chunks_exact(hd)) {
        K::axpy(p, v, out);
    }
    let inv = 1.0 / total;
    out.iter_mut().for_each(|x| *x *= inv);
}

/// [`Kernel::head_block`] as one [`Kernel::head`] per query: the default, and the fallback of
/// kernels specialised for some sizes.
#[inline(always)]
pub(super) fn per_query<K: Kernel + ?Sized>(
    block: Block<'_>,
    keys: &[f32],
    values: &[f32],
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let hd = block.head_dim;
    for i in 0..block.len {
        let visible = block.past + i + 1;
        let q = &block.queries[i * block.stride + block.offset..][..hd];
        let o = &mut out[i * block.stride + block.offset..][..hd];
        K::head(
            q,
            &keys[..visible * hd],
            &values[..visible * hd],
            block.scale,
            &mut scratch.scores,
            o,
        );
    }
}

/// Plain Rust; the compiler vectorises what it can for the build target.
pub(super) struct Portable;

impl Kernel for Portable {
    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        dot(a, b)
    }

    #[inline(always)]
    fn axpy(w: f32, x: &[f32], acc: &mut [f32]) {
        for (a, &v) in acc.iter_mut().zip(x) {
            *a = w.mul_add(v, *a);
        }
    }
}

#[inline(always)]
pub(super) fn attend_with<K: Kernel>(
    qkv: &[f32],
    shape: Shape,
    rotary: &RotaryTables,
    seqs: &mut [SeqRows<'_>],
    out: &mut [f32],
) {
    let (heads, hd) = (shape.heads, shape.head_dim);
    let h = heads * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut q_rot = Vec::new();
    let mut scratch = Scratch::default();
    for seq in seqs.iter_mut() {
        q_rot.clear();
        q_rot.resize(seq.len * h, 0.0);
        let kv = &mut *seq.kv;
        for i in 0..seq.len {
            let row = &qkv[(seq.start + i) * 3 * h..(seq.start + i + 1) * 3 * h];
            let pos = seq.past + i;
            for head in 0..heads {
                let base = head * 3 * hd;
                let q_out = &mut q_rot[i * h + head * hd..i * h + (head + 1) * hd];
                rotate(&row[base..base + hd], q_out, rotary, pos, shape.rotary_dims);
                let at = kv.at(head, pos, hd);
                let k_row = &row[base + hd..base + 2 * hd];
                rotate(
                    k_row,
                    &mut kv.k[at..at + hd],
                    rotary,
                    pos,
                    shape.rotary_dims,
                );
                kv.v[at..at + hd].copy_from_slice(&row[base + 2 * hd..base + 3 * hd]);
            }
        }
        if seq.len > 1 {
            // A prefill chunk: one block per head.
            for head in 0..heads {
                let first = kv.at(head, 0, hd);
                let total = seq.past + seq.len;
                let block = Block {
                    queries: &q_rot,
                    stride: h,
                    offset: head * hd,
                    head_dim: hd,
                    len: seq.len,
                    past: seq.past,
                    scale,
                };
                let rows = &mut out[seq.start * h..(seq.start + seq.len) * h];
                K::head_block(
                    block,
                    &kv.k[first..first + total * hd],
                    &kv.v[first..first + total * hd],
                    &mut scratch,
                    rows,
                );
            }
            continue;
        }
        for head in 0..heads {
            let q = &q_rot[head * hd..(head + 1) * hd];
            // This head's rows are contiguous: [visible, hd].
            let visible = seq.past + 1;
            let first = kv.at(head, 0, hd);
            let keys = &kv.k[first..first + visible * hd];
            let values = &kv.v[first..first + visible * hd];
            let at = seq.start * h + head * hd;
            K::head(
                q,
                keys,
                values,
                scale,
                &mut scratch.scores,
                &mut out[at..at + hd],
            );
        }
    }
}

/// NeoX half-split rotation of the first `rot` dims of `x` at `pos`, written to `out`; the
/// rest is copied. `out[i] = x[i]·cos − x[i+rot/2]·sin`, `out[i+rot/2] = x[i+rot/2]·cos + x[i]·sin`.
#[inline(always)]
fn rotate(x: &[f32], out: &mut [f32], rotary: &RotaryTables, pos: usize, rot: usize) {
    let half = rot / 2;
    if half > 0 {
        let cos = &rotary.cos[pos * rotary.half..pos * rotary.half + half];
        let sin = &rotary.sin[pos * rotary.half..pos * rotary.half + half];
        for i in 0..half {
            let (a, b) = (x[i], x[i + half]);
            out[i] = a * cos[i] - b * sin[i];
            out[i + half] = b * cos[i] + a * sin[i];
        }
    }
    out[rot..].copy_from_slice(&x[rot..]);
}

/// Dot product with eight independent accumulators so the compiler can vectorise it
/// (a single running sum would force strict left-to-right order).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Two 8-lane accumulators: independent dependency chains for the FMA units.
    let mut acc = [[0f32; 8]; 2];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (i, (x, y)) in ca.zip(cb).enumerate() {
        for ((acc, x), y) in acc[i % 2].iter_mut().zip(x).zip(y) {
            *acc = x.mul_add(*y, *acc);
        }
    }
    let mut sum: f32 = acc[0].iter().chain(&acc[1]).sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::engine::model::rope::RotaryTables;

    #[test]
    fn dot_matches_the_naive_sum() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.25).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn rotation_at_position_zero_is_identity_and_pass_dims_are_copied() {
        let tables = RotaryTables {
            cos: vec![1.0, 1.0, 0.0, 0.5],
            sin: vec![0.0, 0.0, 1.0, 0.5],
            half: 2,
        };
        let x = [1.0, 2.0, 3.0, 4.0, 9.0];
        let mut out = [0.0; 5];
        rotate(&x, &mut out, &tables, 0, 4);
        assert_eq!(out, x);
        rotate(&x, &mut out, &tables, 1, 4);
        // i=0: cos 0, sin 1 -> (-3, 1); i=1: cos .5, sin .5 -> (2*.5-4*.5, 4*.5+2*.5)
        assert_eq!(out, [-3.0, -1.0, 1.0, 3.0, 9.0]);
    }
}
