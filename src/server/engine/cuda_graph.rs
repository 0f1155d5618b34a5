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
//! Must not decide what a step computes: the body is `GptNeox::decode_from_device`.

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
    use candle_core::{DType, Device, Tensor};

    use super::MAX_GRAPHS;
    use crate::server::engine::gpt_neox::GptNeox;

    /// A captured graph. cudarc leaves it `!Send` because graph objects need serialised
    /// access; the model (and so this) lives behind the scheduler's one worker thread and a
    /// mutex, so access is serialised.
    struct SendGraph(CudaGraph);
    // SAFETY: see above: only ever used by one thread at a time, under `Graphs`' owner's lock.
    unsafe impl Send for SendGraph {}

    struct Entry {
        /// `[4, width]` u32, refilled before each replay.
        input: Tensor,
        /// `0..span` u32.
        arange: Tensor,
        /// `[width, vocab]` f32, written by each replay.
        out: Tensor,
        graph: Option<SendGraph>,
    }

    /// The graphs of one model, by `(width, span)` bucket.
    #[derive(Default)]
    pub struct Graphs {
        entries: HashMap<(usize, usize), Entry>,
        captured: usize,
        off: bool,
    }

    impl Graphs {
        /// Runs a decode-only step of `width` slots reading `span` keys with `input` packed
        /// as `GptNeox::decode_from_device` reads it, returning every slot's logits. `None`:
        /// run this step the ordinary way (too many graphs, or graphs off).
        pub fn run(
            &mut self,
            model: &GptNeox,
            input: Vec<u32>,
            width: usize,
            span: usize,
        ) -> candle_core::Result<Option<Tensor>> {
            let dev = model.device();
            let Device::Cuda(cuda) = dev else {
                return Ok(None);
            };
            if self.off {
                return Ok(None);
            }
            let key = (width, span);
            if !self.entries.contains_key(&key) {
                if self.entries.len() >= MAX_GRAPHS {
                    return Ok(None);
                }
                let vocab = model.config().vocab_size;
                let entry = Entry {
                    input: Tensor::from_vec(input, (4, width), dev)?,
                    arange: Tensor::arange(0u32, span as u32, dev)?,
                    out: Tensor::zeros((width, vocab), DType::F32, dev)?,
                    graph: None,
                };
                // First sight: the body eagerly, filling candle's parameter cache.
                let logits = {
                    let _cache = cuda.enable_cuda_graph_htod_cache();
                    model.decode_from_device(&entry.input, &entry.arange)?
                };
                self.entries.insert(key, entry);
                return Ok(Some(logits));
            }
            // Unwrap is safe: checked just above.
            let entry = self.entries.get_mut(&key).expect("entry present");
            entry
                .input
                .slice_set(&Tensor::from_vec(input, (4, width), dev)?, 0, 0)?;
            if entry.graph.is_none() {
                let _cache = cuda.enable_cuda_graph_htod_cache();
                let started = Instant::now();
                let stream = cuda.cuda_stream();
                let mode = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
                stream
                    .begin_capture(mode)
                    .map_err(candle_core::Error::wrap)?;
                let body = model
                    .decode_from_device(&entry.input, &entry.arange)
                    .and_then(|logits| entry.out.slice_set(&logits, 0, 0));
                let flags = sys::CUgraphInstantiate_flags(0);
                let graph = stream.end_capture(flags);
                match (body, graph) {
                    (Ok(()), Ok(Some(g))) => {
                        entry.graph = Some(SendGraph(g));
                        self.captured += 1;
                        eprintln!(
                            "rpload serve: CUDA graph {} captured ({width} slots x {span} keys, {:.0} ms)",
                            self.captured,
                            started.elapsed().as_secs_f64() * 1e3
                        );
                    }
                    (body, graph) => {
                        let why = match (body, graph) {
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
    fn spans_round_up_to_the_step_within_a_slot() {
        assert_eq!(span_bucket(1, 1024), 128);
        assert_eq!(span_bucket(128, 1024), 128);
        assert_eq!(span_bucket(129, 1024), 256);
        assert_eq!(span_bucket(1000, 1024), 1024);
        assert_eq!(span_bucket(260, 260), 260);
    }
}
