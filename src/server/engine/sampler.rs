//! Picks the next token id from one row of logits: repetition penalty, then greedy or
//! temperature / top-k / top-p sampling with a seeded generator. Reports the log-probability of
//! the chosen token under the distribution it was drawn from (what TGI returns as `logprob`).
//! Must not touch tensors, text or scheduling.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Resolved sampling parameters (validation has filled every default).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// false = greedy (argmax); the other fields below except the penalty are then ignored.
    pub do_sample: bool,
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    /// HF/TGI style: divides positive and multiplies negative logits of tokens already seen
    /// (prompt and generated). 1.0 = off.
    pub repetition_penalty: f32,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            do_sample: false,
            temperature: 1.0,
            top_k: None,
            top_p: None,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Greedy with nothing that reads the row first: the argmax can be taken on the device
    /// (see `engine::pick`) and the sampler is not needed.
    pub fn is_plain_greedy(&self) -> bool {
        !self.do_sample && self.repetition_penalty == 1.0
    }
}

/// A sampler for one sequence (its generator advances with each draw).
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = StdRng::seed_from_u64(params.seed);
        Self { params, rng }
    }

    /// Chooses a token from `logits` (modified in place) given the ids seen so far.
    /// Returns the id and its log-probability.
    pub fn next(&mut self, logits: &mut [f32], seen: &[u32]) -> (u32, f32) {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            for &id in seen {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 {
                        *l / p.repetition_penalty
                    } else {
                        *l * p.repetition_penalty
                    };
                }
            }
        }
        if !p.do_sample {
            let id = argmax(logits);
            return (id as u32, log_softmax_at(logits, id));
        }
        if p.temperature != 1.0 {
            for l in logits.iter_mut() {
                *l /= p.temperature;
            }
        }
        // Candidates sorted by logit, best first; the index vector keeps the token ids. Tokens
        // more than TAIL below the best have probability under e^-TAIL relative to it: their
        // whole mass (< vocab x 4e-18) is below f32's resolution next to 1, so dropping them
        // before the sort changes no probability and no draw, and spares sorting a 50k vocab
        // on every token.
        const TAIL: f32 = 40.0;
        let best = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut idx: Vec<usize> = (0..logits.len())
            .filter(|&i| logits[i] >= best - TAIL)
            .collect();
        if idx.is_empty() {
            idx = (0..logits.len()).collect(); // NaN logits: keep the old behaviour
        }
        let keep = p.top_k.unwrap_or(idx.len()).clamp(1, idx.len());
        if keep < idx.len() {
            idx.select_nth_unstable_by(keep - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
            idx.truncate(keep);
        }
        idx.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        let max = logits[idx[0]];
        let mut probs: Vec<f32> = idx.iter().map(|&i| (logits[i] - max).exp()).collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|q| *q /= total);
        if let Some(top_p) = p.top_p {
            // Keep the smallest prefix whose mass reaches top_p (at least one token).
            let mut mass = 0.0;
            let mut cut = probs.len();
            for (i, q) in probs.iter().enumerate() {
                mass += q;
                if mass >= top_p {
                    cut = i + 1;
                    break;
                }
            }
            probs.truncate(cut);
            idx.truncate(cut);
            let total: f32 = probs.iter().sum();
            probs.iter_mut().for_each(|q| *q /= total);
        }
        let draw: f32 = self.rng.random();
        let mut acc = 0.0;
        let mut pick = probs.len() - 1;
        for (i, q) in probs.iter().enumerate() {
            acc += q;
            if draw < acc {
                pick = i;
                break;
            }
        }
        (idx[pick] as u32, probs[pick].max(f32::MIN_POSITIVE).ln())
    }
}

fn argmax(xs: &[f32]) -> usize {
    // First maximum wins, as torch.argmax does.
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

fn log_softmax_at(xs: &[f32], i: usize) -> f32 {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = xs.iter().map(|&x| (x - max).exp()).sum();
    xs[i] - max - sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(params: SamplingParams, logits: &[f32], seen: &[u32]) -> u32 {
        Sampler::new(params).next(&mut logits.to_vec(), seen).0
    }

    #[test]
    fn greedy_picks_the_largest_id_and_its_logprob() {
        let (id, lp) = Sampler::new(SamplingParams::default()).next(&mut [0.0, 2.0, 1.0, 2.0], &[]);
        assert_eq!(id, 1);
        let want = 2.0 - (1.0f32 + 2.0 * 2f32.exp() + 1f32.exp()).ln();
        assert!((lp - want).abs() < 1e-5);
    }

    #[test]
    fn repetition_penalty_demotes_seen_tokens() {
        let p = SamplingParams {
            repetition_penalty: 4.0,
            ..Default::default()
        };
        assert_eq!(sample(p.clone(), &[0.0, 2.0, 1.0], &[1]), 2);
        // A negative logit gets more negative, never promoted.
        assert_eq!(sample(p, &[-1.0, -0.5, -2.0], &[1]), 0);
    }

    #[test]
    fn top_k_one_is_greedy_whatever_the_seed() {
        for seed in 0..20 {
            let p = SamplingParams {
                do_sample: true,
                top_k: Some(1),
                seed,
                ..Default::default()
            };
            assert_eq!(sample(p, &[0.1, 0.3, 5.0, 0.2], &[]), 2);
        }
    }

    #[test]
    fn a_far_tail_is_never_drawn_and_near_tokens_keep_their_odds() {
        // Tokens 2 and 3 sit 50 below the best two: pruned, and never drawn.
        let logits = [0.0f32, 0.0, -50.0, -50.0];
        let mut picks = [0usize; 4];
        for seed in 0..200 {
            let p = SamplingParams {
                do_sample: true,
                top_p: Some(0.99),
                seed,
                ..Default::default()
            };
            picks[sample(p, &logits, &[]) as usize] += 1;
        }
        assert_eq!(picks[2] + picks[3], 0);
        assert!(picks[0] > 60 && picks[1] > 60, "{picks:?}");
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // Token 3 holds ~0.98 of the mass; top_p 0.5 keeps only it.
        for seed in 0..20 {
            let p = SamplingParams {
                do_sample: true,
                top_p: Some(0.5),
                seed,
                ..Default::default()
            };
            assert_eq!(sample(p, &[0.0, 0.0, 0.0, 5.0], &[]), 3);
        }
    }

    #[test]
    fn same_seed_same_draws_and_sampling_explores() {
        let p = |seed| SamplingParams {
            do_sample: true,
            seed,
            ..Default::default()
        };
        let logits = [1.0f32; 16];
        let draws = |seed| {
            let mut s = Sampler::new(p(seed));
            (0..32)
                .map(|_| s.next(&mut logits.to_vec(), &[]).0)
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        let distinct: std::collections::BTreeSet<u32> = draws(3).into_iter().collect();
        assert!(
            distinct.len() > 4,
            "uniform logits should give varied ids: {distinct:?}"
        );
    }

    #[test]
    fn low_temperature_concentrates_on_the_best() {
        for seed in 0..20 {
            let p = SamplingParams {
                do_sample: true,
                temperature: 0.01,
                seed,
                ..Default::default()
            };
            assert_eq!(sample(p, &[1.0, 1.5, 0.5], &[]), 1);
        }
    }
}
