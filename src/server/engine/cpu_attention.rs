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

/// The queries of one prefill chunk for one head: row `i` of the chunk is at
/// `queries[i * stride + offset..][..head_dim]` (the same layout as the output rows).
#[derive(Clone, Copy)]
struct Block<'a> {
    queries: &'a [f32],
    stride: usize,
    offset: usize,
    head_dim: usize,
    len: usize,
    past: usize,
    scale: f32,
}

/// Reused buffers.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    /// Keys transposed to `[head_dim, keys]` for the prefill kernel.
    keys_t: Vec<f32>,
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
    if shape.head_dim.is_multiple_of(8)
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

/// The inner loops of attention, per instruction set.
trait Kernel {
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
fn softmax_rows<K: Kernel + ?Sized>(
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
fn per_query<K: Kernel + ?Sized>(
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
        assert!(a.len() == b.len() && a.len().is_multiple_of(8));
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
    fn head(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        scale: f32,
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        match q.len() / 8 {
            2 => Self::head_fixed::<2>(q, keys, values, scale, scores, out),
            4 => Self::head_fixed::<4>(q, keys, values, scale, scores, out),
            8 => Self::head_fixed::<8>(q, keys, values, scale, scores, out),
            10 => Self::head_fixed::<10>(q, keys, values, scale, scores, out),
            16 => Self::head_fixed::<16>(q, keys, values, scale, scores, out),
            // Other sizes: the generic loops with this type's dot/axpy.
            _ => softmax_rows::<Self>(q, keys, values, scale, scores, out),
        }
    }

    #[inline(always)]
    fn head_block(
        block: Block<'_>,
        keys: &[f32],
        values: &[f32],
        scratch: &mut Scratch,
        out: &mut [f32],
    ) {
        match block.head_dim / 8 {
            2 => Self::block_fixed::<2>(block, keys, values, scratch, out),
            4 => Self::block_fixed::<4>(block, keys, values, scratch, out),
            8 => Self::block_fixed::<8>(block, keys, values, scratch, out),
            10 => Self::block_fixed::<10>(block, keys, values, scratch, out),
            16 => Self::block_fixed::<16>(block, keys, values, scratch, out),
            _ => per_query::<Self>(block, keys, values, scratch, out),
        }
    }

    #[inline(always)]
    fn axpy(w: f32, x: &[f32], acc: &mut [f32]) {
        use std::arch::x86_64::*;
        assert!(x.len() == acc.len() && x.len().is_multiple_of(8));
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
impl Avx2 {
    /// Per-head work specialised for `N` 8-lane vectors per row: the query and the output
    /// accumulators stay in registers across all keys, and the exponentials are vectorised.
    #[inline(always)]
    fn head_fixed<const N: usize>(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        scale: f32,
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let hd = N * 8;
        assert!(
            q.len() == hd
                && out.len() == hd
                && keys.len() == values.len()
                && keys.len().is_multiple_of(hd)
        );
        let visible = keys.len() / hd;
        scores.clear();
        scores.resize(visible.next_multiple_of(8), f32::NEG_INFINITY);
        // SAFETY: only reached from `attend_avx2` after the feature check; every pointer
        // offset stays inside the slices whose lengths are asserted above.
        unsafe {
            let mut qv = [_mm256_setzero_ps(); N];
            for (c, v) in qv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(q.as_ptr().add(c * 8));
            }
            let mut max = f32::NEG_INFINITY;
            for j in 0..visible {
                let kp = keys.as_ptr().add(j * hd);
                let mut acc = _mm256_mul_ps(qv[0], _mm256_loadu_ps(kp));
                for (c, qc) in qv.iter().enumerate().skip(1) {
                    acc = _mm256_fmadd_ps(*qc, _mm256_loadu_ps(kp.add(c * 8)), acc);
                }
                let s = hsum(acc) * scale;
                *scores.get_unchecked_mut(j) = s;
                max = max.max(s);
            }
            // exp(s - max) eight at a time; the padding (-inf) becomes 0.
            let maxv = _mm256_set1_ps(max);
            let mut totalv = _mm256_setzero_ps();
            for chunk in scores.chunks_exact_mut(8) {
                let e = exp256(_mm256_sub_ps(_mm256_loadu_ps(chunk.as_ptr()), maxv));
                _mm256_storeu_ps(chunk.as_mut_ptr(), e);
                totalv = _mm256_add_ps(totalv, e);
            }
            let total = hsum(totalv);
            let mut acc = [_mm256_setzero_ps(); N];
            for j in 0..visible {
                let w = _mm256_set1_ps(*scores.get_unchecked(j));
                let vp = values.as_ptr().add(j * hd);
                for (c, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(w, _mm256_loadu_ps(vp.add(c * 8)), *a);
                }
            }
            let inv = _mm256_set1_ps(1.0 / total);
            for (c, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.as_mut_ptr().add(c * 8), _mm256_mul_ps(*a, inv));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    /// A prefill chunk: keys are transposed once so that each query scores eight keys per
    /// vector instruction (no horizontal sum per key), then softmax and the weighted sum of
    /// values as in `head_fixed`.
    #[inline(always)]
    fn block_fixed<const N: usize>(
        block: Block<'_>,
        keys: &[f32],
        values: &[f32],
        scratch: &mut Scratch,
        out: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let hd = N * 8;
        let total = block.past + block.len;
        let padded = total.next_multiple_of(8);
        assert!(block.head_dim == hd && keys.len() >= total * hd && values.len() >= total * hd);
        assert!(
            block.len == 0
                || (block.len - 1) * block.stride + block.offset + hd
                    <= block.queries.len().min(out.len())
        );
        let kt = &mut scratch.keys_t;
        kt.clear();
        kt.resize(hd * padded, 0.0);
        for (j, row) in keys[..total * hd].chunks_exact(hd).enumerate() {
            for (d, &x) in row.iter().enumerate() {
                kt[d * padded + j] = x;
            }
        }
        let scores = &mut scratch.scores;
        scores.clear();
        scores.resize(padded, 0.0);
        // SAFETY: only reached from `attend_avx2` after the feature check; the asserts above
        // bound every query/output row, key column block (< padded) and value row (< total).
        unsafe {
            let scale = _mm256_set1_ps(block.scale);
            for i in 0..block.len {
                let visible = block.past + i + 1;
                let vis_pad = visible.next_multiple_of(8);
                let q = block.queries.as_ptr().add(i * block.stride + block.offset);
                let mut maxv = _mm256_set1_ps(f32::NEG_INFINITY);
                for jb in (0..vis_pad).step_by(8) {
                    let mut acc = _mm256_setzero_ps();
                    for d in 0..hd {
                        let k = _mm256_loadu_ps(kt.as_ptr().add(d * padded + jb));
                        acc = _mm256_fmadd_ps(_mm256_set1_ps(*q.add(d)), k, acc);
                    }
                    let s = _mm256_mul_ps(acc, scale);
                    _mm256_storeu_ps(scores.as_mut_ptr().add(jb), s);
                }
                // Keys past `visible` in the last block are masked out (causal).
                for s in &mut scores[visible..vis_pad] {
                    *s = f32::NEG_INFINITY;
                }
                for jb in (0..vis_pad).step_by(8) {
                    maxv = _mm256_max_ps(maxv, _mm256_loadu_ps(scores.as_ptr().add(jb)));
                }
                let max = hmax(maxv);
                let maxv = _mm256_set1_ps(max);
                let mut totalv = _mm256_setzero_ps();
                for jb in (0..vis_pad).step_by(8) {
                    let p = scores.as_mut_ptr().add(jb);
                    let e = exp256(_mm256_sub_ps(_mm256_loadu_ps(p), maxv));
                    _mm256_storeu_ps(p, e);
                    totalv = _mm256_add_ps(totalv, e);
                }
                let mut acc = [_mm256_setzero_ps(); N];
                for j in 0..visible {
                    let w = _mm256_set1_ps(*scores.get_unchecked(j));
                    let vp = values.as_ptr().add(j * hd);
                    for (c, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(w, _mm256_loadu_ps(vp.add(c * 8)), *a);
                    }
                }
                let inv = _mm256_set1_ps(1.0 / hsum(totalv));
                let o = out.as_mut_ptr().add(i * block.stride + block.offset);
                for (c, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(o.add(c * 8), _mm256_mul_ps(*a, inv));
                }
            }
        }
    }
}

/// Largest of the eight lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn hmax(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: callers run under the AVX2 feature check (register-only operations).
    unsafe {
        let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }
}

/// Sum of the eight lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn hsum(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: callers run under the AVX2 feature check (register-only operations).
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }
}

/// e^x for eight lanes with x <= 0 (Cephes-style: 2^n · p(r), r = x − n·ln 2, degree-6
/// polynomial; relative error about 2e-7, far inside the 1e-4 parity bound). Lanes below
/// −87 (including −inf) give 0.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn exp256(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    // SAFETY: callers run under the AVX2+FMA feature check (register-only operations).
    unsafe {
        let underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0), _CMP_LT_OQ);
        let x = _mm256_max_ps(x, _mm256_set1_ps(-87.0));
        let n = _mm256_round_ps(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        // r = x - n*ln2 with ln2 split in two for precision.
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let r2 = _mm256_mul_ps(r, r);
        let p = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
        let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
            23,
        ));
        _mm256_andnot_ps(underflow, _mm256_mul_ps(p, pow2))
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

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_exp_is_accurate_and_underflows_to_zero() {
        use std::arch::x86_64::*;
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        let xs: Vec<f32> = (0..800)
            .map(|i| -(i as f32) * 0.11)
            .chain([f32::NEG_INFINITY; 8])
            .collect();
        for chunk in xs.chunks_exact(8) {
            let mut out = [0f32; 8];
            // SAFETY: AVX2 and FMA were detected above.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), exp256(_mm256_loadu_ps(chunk.as_ptr()))) };
            for (x, e) in chunk.iter().zip(out) {
                let want = x.exp();
                assert!(
                    (e - want).abs() <= 1e-6 * want.max(1e-30) + 1e-37,
                    "exp({x}) = {e}, want {want}"
                );
            }
        }
    }

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
