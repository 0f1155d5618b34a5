//! Attention for f32 on the CPU, in plain Rust over each sequence's host KV cache: splits the
//! per-head fused QKV rows, applies the NeoX half-split rotary, appends K/V, and attends.
//!
//! Why not candle ops here: on small models a candle CPU op costs microseconds of dispatch and
//! allocation, and attention needs about ten of them per sequence and layer. With dozens of
//! sequences in a step that overhead, not arithmetic, set the step time and erased the gain of
//! batching. One pass of loops per sequence has no such cost. The dense layers stay in candle.
//! Other dtypes and devices use the candle path in `exec/pooled.rs`; tests pin both to the same
//! numbers. `kernel.rs` holds the loops once, generic over the inner kernel; `avx2.rs` the
//! x86-64 kernel. Must not know about weights or scheduling.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod kernel;

pub use kernel::{SeqRows, Shape};

use crate::server::engine::model::rope::RotaryTables;

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
        unsafe { avx2::attend(qkv, shape, rotary, seqs, out) };
        return;
    }
    kernel::attend_with::<kernel::Portable>(qkv, shape, rotary, seqs, out);
}
