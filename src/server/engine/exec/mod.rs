//! How a step runs over the KV cache, given a [`super::model::Model`]: [`plan`] lays out the
//! rows of a step over the shared pool, [`pooled`] runs it with candle ops (and is the body
//! CUDA graphs capture), [`host`] runs a step through the f32 CPU kernel in [`cpu_attention`]
//! over each sequence's own cache. Must not own weights, graphs or the pool.

pub mod cpu_attention;
pub mod host;
pub mod plan;
pub mod pooled;
