//! CUDA graphs for decode-only steps. A decode step of a 32-layer model is about 850 small
//! kernel launches; on the H100 machine candle issues them at ~12 us each, so a batch-1 step
//! of RedPajama-3B took 9.8 ms against a memory floor of 1.8 ms. A graph captured once per
//! shape replays the whole step with one launch.
//!
//! Shapes are bucketed so that few graphs serve every step: slots `0..width` with `width`
//! rounded up to a power of two (the pool's slot count at most), keys read per slot rounded up
//! to [`SPAN_STEP`]. Padding rows are dummies (see `PooledPlan`), padding keys are masked.
//! Each graph reads its inputs from a small device buffer that is refilled before each replay,
//! and writes the logits of every slot to a buffer of its own.
//!
//! candle uploads small kernel parameters (dims and strides of strided operands) from host
//! memory on each op; a graph captured around such an upload would re-read host memory that
//! is gone by replay time. So the body runs under candle's `enable_cuda_graph_htod_cache`,
//! which keeps one device copy of each distinct parameter block: a bucket runs the body
//! eagerly the first time it is seen (filling that cache and loading every kernel and cuBLAS
//! choice, neither of which may happen during capture) and is captured the second time. If a
//! capture fails, graphs are switched off for the server's life and steps run eagerly.
//! `RPLOAD_CUDA_GRAPHS=0` switches them off; so does `RPLOAD_PROFILE`.
//!
//! [`Graphs`] owns the captured graphs and their buffers; the model owns a `Graphs` and hands
//! [`Graphs::run`] the step body as a closure over [`StepInputs`], so this file knows nothing
//! of the model and the model needs no lock to reach its graphs. A mixed prefill+decode step
//! would be one more [`Bucket`] field and more input rows, not a change of owner.
//! Must not decide what a step computes: the body is the caller's (for decode steps,
//! `exec::pooled::Pooled::decode_from_device`).

/// Keys per slot are read in multiples of this.
pub const SPAN_STEP: usize = 128;
/// Graphs kept at most (each holds its own intermediate buffers).
pub const MAX_GRAPHS: usize = 96;

/// Slots a decode step over `0..width` is padded to.
pub fn width_bucket(width: usize, slots: usize) -> usize {
    width.next_power_of_two().min(slots).max(width)
}

/// Keys a decode step reading `span` keys per slot is padded to.
pub fn span_bucket(span: usize, max_tokens: usize) -> usize {
    (span.div_ceil(SPAN_STEP) * SPAN_STEP)
        .min(max_tokens)
        .max(span)
}

/// The shape one graph is captured for: slots `0..width`, `span` keys read per slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bucket {
    pub width: usize,
    pub span: usize,
}

impl Bucket {
    /// The bucket of a decode step over `width` slots reading `span` keys, in a pool of
    /// `slots` sequences of `max_tokens`.
    pub fn of(width: usize, span: usize, slots: usize, max_tokens: usize) -> Self {
        Self {
            width: width_bucket(width, slots),
            span: span_bucket(span, max_tokens),
        }
    }
}

/// What a step body reads, all on the device so that a replay sees new values.
pub struct StepInputs {
    /// `[rows, width]` u32, refilled before each replay; the body defines the rows.
    pub packed: candle_core::Tensor,
    /// `0..span` u32.
    pub arange: candle_core::Tensor,
}

/// Whether graphs are wanted: on a CUDA device, unless switched off or profiling.
pub fn wanted() -> bool {
    std::env::var("RPLOAD_CUDA_GRAPHS").map_or(true, |v| v != "0")
        && std::env::var_os("RPLOAD_PROFILE").is_none()
}

#[cfg(feature = "cuda")]
pub use imp::Graphs;

#[cfg(feature = "cuda")]
mod imp {
    use std::collections::HashMap;
    use std::time::Instant;

    use candle_core::cuda_backend::cudarc::driver::{CudaGraph, sys};
    use candle_core::{Device, Tensor};

    use super::{Bucket, MAX_GRAPHS, StepInputs};

    /// A captured graph. cudarc leaves it `!Send` because graph objects need serialised
    /// access; it is only reached through `&mut Graphs`, so one thread at a time uses it.
    struct SendGraph(CudaGraph);
    // SAFETY: see above: `Graphs` hands out no shared access to its graphs, and the borrow
    // checker makes every use go through the one `&mut Graphs` of the model's owner.
    unsafe impl Send for SendGraph {}

    struct Entry {
        inputs: StepInputs,
        /// The body's output, written by each replay.
        out: Tensor,
        graph: Option<SendGraph>,
    }

    /// The graphs of one model, by bucket.
    #[derive(Default)]
    pub struct Graphs {
        entries: HashMap<Bucket, Entry>,
        captured: usize,
        off: bool,
    }

    impl Graphs {
        /// Runs `body` for `bucket` with `packed` as its [`StepInputs::packed`] (row-major,
        /// `bucket.width` columns): eagerly the first time the bucket is seen, captured the
        /// second, replayed after. Returns the body's output. `None`: run this step the
        /// ordinary way (not a CUDA device, too many graphs, or graphs off).
        pub fn run(
            &mut self,
            dev: &Device,
            bucket: Bucket,
            packed: Vec<u32>,
            body: impl Fn(&StepInputs) -> candle_core::Result<Tensor>,
        ) -> candle_core::Result<Option<Tensor>> {
            let Device::Cuda(cuda) = dev else {
                return Ok(None);
            };
            if self.off || bucket.width == 0 {
                return Ok(None);
            }
            let dims = (packed.len() / bucket.width, bucket.width);
            if !self.entries.contains_key(&bucket) {
                if self.entries.len() >= MAX_GRAPHS {
                    return Ok(None);
                }
                let inputs = StepInputs {
                    packed: Tensor::from_vec(packed, dims, dev)?,
                    arange: Tensor::arange(0u32, bucket.span as u32, dev)?,
                };
                // First sight: the body eagerly, filling candle's parameter cache.
                let out = {
                    let _cache = cuda.enable_cuda_graph_htod_cache();
                    body(&inputs)?
                };
                let entry = Entry {
                    inputs,
                    out: out.zeros_like()?,
                    graph: None,
                };
                self.entries.insert(bucket, entry);
                return Ok(Some(out));
            }
            // Unwrap is safe: checked just above.
            let entry = self.entries.get_mut(&bucket).expect("entry present");
            entry
                .inputs
                .packed
                .slice_set(&Tensor::from_vec(packed, dims, dev)?, 0, 0)?;
            if entry.graph.is_none() {
                let _cache = cuda.enable_cuda_graph_htod_cache();
                let started = Instant::now();
                let stream = cuda.cuda_stream();
                let mode = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
                stream
                    .begin_capture(mode)
                    .map_err(candle_core::Error::wrap)?;
                let captured = body(&entry.inputs).and_then(|out| entry.out.slice_set(&out, 0, 0));
                let flags = sys::CUgraphInstantiate_flags(0);
                let graph = stream.end_capture(flags);
                match (captured, graph) {
                    (Ok(()), Ok(Some(g))) => {
                        entry.graph = Some(SendGraph(g));
                        self.captured += 1;
                        eprintln!(
                            "rpload serve: CUDA graph {} captured ({} slots x {} keys, {:.0} ms)",
                            self.captured,
                            bucket.width,
                            bucket.span,
                            started.elapsed().as_secs_f64() * 1e3
                        );
                    }
                    (captured, graph) => {
                        let why = match (captured, graph) {
                            (Err(e), _) => e.to_string(),
                            (_, Err(e)) => e.to_string(),
                            _ => "empty capture".to_string(),
                        };
                        eprintln!("rpload serve: CUDA graphs off ({why}); decoding eagerly");
                        self.off = true;
                        self.entries.clear();
                        return Ok(None);
                    }
                }
            }
            // Unwrap is safe: captured just above or earlier.
            let graph = &entry.graph.as_ref().expect("graph captured").0;
            graph.launch().map_err(candle_core::Error::wrap)?;
            Ok(Some(entry.out.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_round_up_to_powers_of_two_within_the_pool() {
        assert_eq!(width_bucket(1, 64), 1);
        assert_eq!(width_bucket(3, 64), 4);
        assert_eq!(width_bucket(33, 64), 64);
        assert_eq!(width_bucket(33, 48), 48, "never past the pool");
        assert_eq!(width_bucket(64, 64), 64);
    }

    #[test]
    fn a_bucket_rounds_both_dimensions() {
        assert_eq!(
            Bucket::of(3, 129, 64, 1024),
            Bucket {
                width: 4,
                span: 256
            }
        );
    }

    #[test]
    fn spans_round_up_to_the_step_within_a_slot() {
        assert_eq!(span_bucket(1, 1024), 128);
        assert_eq!(span_bucket(128, 1024), 128);
        assert_eq!(span_bucket(129, 1024), 256);
        assert_eq!(span_bucket(1000, 1024), 1024);
        assert_eq!(span_bucket(260, 260), 260);
    }
}
