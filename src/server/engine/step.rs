//! One engine step, as the scheduler sees it: the [`Engine`] trait, each sequence's
//! [`SeqInput`] and [`StepOutput`], the [`Clock`] step times are read from, and [`pick`], which
//! turns a step's logits into outputs. Implemented by the model (`gpt_neox.rs`) and by
//! [`super::fake::FakeEngine`]. Must not know about weights or scheduling policy.

use candle_core::{DType, Tensor};

use super::clock::Clock;
use super::error::EngineError;
use super::kv_cache::KvCache;

/// One sequence's part of a step: the tokens to feed (the whole prompt on prefill, the last
/// sampled token on decode) and its cache, which the step extends.
pub struct SeqInput<'a> {
    pub tokens: &'a [u32],
    pub cache: &'a mut KvCache,
}

/// What a step gives one sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutput {
    /// The argmax token and its log-probability, picked on the device.
    Greedy { id: u32, logprob: f32 },
    /// The whole row of logits (`vocab_size` floats), for the host sampler.
    Logits(Vec<f32>),
}

/// One step over a ragged batch; the scheduler's only view of the model.
pub trait Engine: Send {
    /// Feeds each sequence its tokens and extends its cache. Sequence `i` gets its greedy pick
    /// when `greedy[i]`, else its last position's logits.
    fn step(
        &mut self,
        batch: &mut [SeqInput<'_>],
        greedy: &[bool],
    ) -> Result<Vec<StepOutput>, EngineError>;
    /// An empty cache for a new sequence that will hold up to `reserve` tokens.
    fn new_cache(&mut self, reserve: usize) -> Result<KvCache, EngineError>;
    /// The clock request and step times are read from: the wall clock for a real model, a
    /// virtual one that a fake engine advances by its scripted step costs.
    fn clock(&self) -> Clock {
        Clock::Wall
    }
}

/// Splits `[batch, vocab]` f32 logits into outputs. Greedy rows are reduced on the device, so
/// a step costs one small copy to the host (ids and log-probabilities of the whole batch)
/// rather than a vocabulary-wide row per sequence; only sampled rows come back whole.
pub fn pick(logits: &Tensor, greedy: &[bool]) -> candle_core::Result<Vec<StepOutput>> {
    let mut out: Vec<Option<StepOutput>> = vec![None; greedy.len()];
    if greedy.iter().any(|&g| g) {
        let ids = logits.argmax_keepdim(1)?;
        let max = logits.max_keepdim(1)?;
        let lse = (logits.broadcast_sub(&max)?.exp()?.sum_keepdim(1)?.log()? + &max)?;
        let logprob = (logits.gather(&ids, 1)? - lse)?;
        // One transfer: ids (exact in f32 below 2^24) beside their log-probabilities.
        let both = Tensor::cat(&[&ids.to_dtype(DType::F32)?, &logprob], 1)?.to_vec2::<f32>()?;
        for (i, row) in both.into_iter().enumerate() {
            if greedy[i] {
                out[i] = Some(StepOutput::Greedy {
                    id: row[0] as u32,
                    logprob: row[1],
                });
            }
        }
    }
    let sampled: Vec<u32> = (0..greedy.len())
        .filter(|&i| !greedy[i])
        .map(|i| i as u32)
        .collect();
    if !sampled.is_empty() {
        let rows = Tensor::from_vec(sampled.clone(), sampled.len(), logits.device())?;
        let rows = logits.index_select(&rows, 0)?.to_vec2::<f32>()?;
        for (i, row) in sampled.into_iter().zip(rows) {
            out[i as usize] = Some(StepOutput::Logits(row));
        }
    }
    // Unwrap is safe: every index is either greedy or sampled.
    Ok(out
        .into_iter()
        .map(|o| o.expect("each row picked"))
        .collect())
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::server::engine::sampler::{Sampler, SamplingParams};

    #[test]
    fn device_picks_match_the_host_sampler_and_sampled_rows_come_back_whole() {
        let rows = vec![
            vec![0.5f32, 2.0, -1.0, 1.5],
            vec![3.0, 0.0, 0.0, 3.5],
            vec![0.1, 0.2, 0.3, 0.4],
        ];
        let logits = Tensor::new(rows.clone(), &Device::Cpu).unwrap();
        let out = pick(&logits, &[true, true, false]).unwrap();
        for (row, got) in rows.iter().zip(&out[..2]) {
            let want = Sampler::new(SamplingParams::default()).next(&mut row.clone(), &[], 0);
            match got {
                StepOutput::Greedy { id, logprob } => {
                    assert_eq!(*id, want.id);
                    assert!(
                        (logprob - want.logprob).abs() < 1e-5,
                        "{logprob} vs {}",
                        want.logprob
                    );
                }
                other => panic!("expected a greedy pick, got {other:?}"),
            }
        }
        assert_eq!(out[2], StepOutput::Logits(rows[2].clone()));
    }
}
