//! Attention for f32 on the CPU, in plain Rust over each sequence's host KV cache: splits the
//! per-head fused QKV rows, applies the NeoX half-split rotary, appends K/V, and attends.
//!
//! Why not candle ops here: on small models a candle CPU op costs microseconds of dispatch and
//! allocation, and attention needs about ten of them per sequence and layer. With dozens of
//! sequences in a step that overhead, not arithmetic, set the step time and erased the gain of
//! batching. One pass of loops per sequence has no such cost. The dense layers stay in candle.
//! Other dtypes and devices use the candle path in `gpt_neox.rs`; tests pin both to the same
//! numbers. Must not know about weights or scheduling.

use super::kv_cache::HostKv;

/// Rotary tables for every position: `[max_positions][rot / 2]`, row-major.
pub struct RotaryTables {
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
    /// `rotary_dims / 2` (0 when nothing rotates).
    pub half: usize,
}

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

/// Computes attention for every sequence. `qkv` is `[n, 3h]` with per-head `[q|k|v]` blocks;
/// `out` is `[n, h]`.
pub fn attend(
    qkv: &[f32],
    shape: Shape,
    rotary: &RotaryTables,
    seqs: &mut [SeqRows<'_>],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if shape.head_dim % 8 == 0
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        // SAFETY: the CPU has just been checked for both features the function is compiled
        // for, and the head size is a multiple of the 8-lane vectors it uses.
        unsafe { attend_avx2(qkv, shape, rotary, seqs, out) };
        return;
    }
    attend_with::<Portable>(qkv, shape, rotary, seqs, out);
}

/// The two inner products of attention, per instruction set.
trait Kernel {
    /// `a · b`.
    fn dot(a: &[f32], b: &[f32]) -> f32;
    /// `acc += w * x`.
    fn axpy(w: f32, x: &[f32], acc: &mut [f32]);
}

/// Plain Rust; the compiler vectorises what it can for the build target.
struct Portable;

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

/// AVX2 + FMA intrinsics for head sizes that are multiples of 8. The default x86-64 target
/// only has SSE2, and for 16- or 32-wide heads the per-key horizontal sums the compiler
/// generated cost more than the arithmetic.
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Kernel for Avx2 {
    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        use std::arch::x86_64::*;
        assert!(a.len() == b.len() && a.len() % 8 == 0);
        // SAFETY: only reached from `attend_avx2`, which runs after the feature check; every
        // load reads 8 floats inside the slices (length checked above).
        unsafe {
            let mut acc = _mm256_setzero_ps();
            for i in (0..a.len()).step_by(8) {
                let x = _mm256_loadu_ps(a.as_ptr().add(i));
                let y = _mm256_loadu_ps(b.as_ptr().add(i));
                acc = _mm256_fmadd_ps(x, y, acc);
            }
            let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
            _mm_cvtss_f32(s)
        }
    }

    #[inline(always)]
    fn axpy(w: f32, x: &[f32], acc: &mut [f32]) {
        use std::arch::x86_64::*;
        assert!(x.len() == acc.len() && x.len() % 8 == 0);
        // SAFETY: as in `dot`; loads and stores stay inside the two slices.
        unsafe {
            let wv = _mm256_set1_ps(w);
            for i in (0..x.len()).step_by(8) {
                let a = _mm256_loadu_ps(acc.as_ptr().add(i));
                let v = _mm256_loadu_ps(x.as_ptr().add(i));
                _mm256_storeu_ps(acc.as_mut_ptr().add(i), _mm256_fmadd_ps(wv, v, a));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_avx2(
    qkv: &[f32],
    shape: Shape,
    rotary: &RotaryTables,
    seqs: &mut [SeqRows<'_>],
    out: &mut [f32],
) {
    attend_with::<Avx2>(qkv, shape, rotary, seqs, out);
}

#[inline(always)]
fn attend_with<K: Kernel>(
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
    let mut scores: Vec<f32> = Vec::new();
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
        for i in 0..seq.len {
            // Causal: token i sees the cache and the fed tokens up to itself.
            let visible = seq.past + i + 1;
            for head in 0..heads {
                let q = &q_rot[i * h + head * hd..i * h + (head + 1) * hd];
                // This head's rows are contiguous: [visible, hd].
                let first = kv.at(head, 0, hd);
                let keys = &kv.k[first..first + visible * hd];
                let values = &kv.v[first..first + visible * hd];
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
                let at = (seq.start + i) * h + head * hd;
                let o = &mut out[at..at + hd];
                o.fill(0.0);
                for (&p, v) in scores.iter().zip(values.chunks_exact(hd)) {
                    K::axpy(p, v, o);
                }
                let inv = 1.0 / total;
                o.iter_mut().for_each(|x| *x *= inv);
            }
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
