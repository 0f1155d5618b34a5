//! The AVX2 + FMA [`Kernel`] of the host attention (x86-64 only), specialised for heads of 16,
//! 32, 64, 80 and 128 dims: query and output rows stay in registers, exponentials are
//! vectorised.
//! Must not be called without the CPU feature check in [`super::attend`].

use super::kernel::{Block, Kernel, Scratch, SeqRows, Shape, attend_with, per_query, softmax_rows};
use crate::server::engine::model::rope::RotaryTables;

/// AVX2 + FMA intrinsics for head sizes that are multiples of 8. The default x86-64 target
/// only has SSE2, and for 16- or 32-wide heads the per-key horizontal sums the compiler
/// generated cost more than the arithmetic.
struct Avx2;

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

#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn attend(
    qkv: &[f32],
    shape: Shape,
    rotary: &RotaryTables,
    seqs: &mut [SeqRows<'_>],
    out: &mut [f32],
) {
    attend_with::<Avx2>(qkv, shape, rotary, seqs, out);
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
}
