//! Picks the next token id from one row of logits, in TGI's order: the penalties (repetition,
//! then frequency, then presence), then greedy or the warpers transformers and TGI run in this
//! order (temperature, top-k, top-p, typical-p) and a seeded draw. Reports the log-probability of
//! the chosen token and of the `top_n_tokens` best alternatives, from the log-softmax of the
//! processed logits (what TGI returns as `logprob` and `top_tokens`, and OpenAI as `logprobs`).
//! The processors themselves are in [`processors`]. Must not touch tensors, text or scheduling.

pub mod processors;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which definition of `frequency_penalty` a request asked for (TGI's and OpenAI's differ).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum FrequencyPenalty {
    #[default]
    Off,
    /// TGI: `penalty * count / len` over the whole sequence, prompt included.
    Tgi(f32),
    /// OpenAI and vLLM: `penalty * count` over the generated tokens only.
    OpenAi(f32),
}

/// Resolved sampling parameters (validation has filled every default).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// false = greedy (argmax); temperature and the warpers are then ignored, the penalties are
    /// not (as in TGI).
    pub do_sample: bool,
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub typical_p: Option<f32>,
    /// HF/TGI style: divides positive and multiplies negative logits of the distinct tokens
    /// already seen (prompt and generated). 1.0 = off.
    pub repetition_penalty: f32,
    pub frequency_penalty: FrequencyPenalty,
    /// OpenAI: subtracted once from each token the output already holds. 0.0 = off.
    pub presence_penalty: f32,
    /// How many best alternatives each token reports (TGI's `top_n_tokens`, OpenAI's
    /// `logprobs` / `top_logprobs`). 0 = none.
    pub top_n_tokens: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            do_sample: false,
            temperature: 1.0,
            top_k: None,
            top_p: None,
            typical_p: None,
            repetition_penalty: 1.0,
            frequency_penalty: FrequencyPenalty::Off,
            presence_penalty: 0.0,
            top_n_tokens: 0,
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Greedy with nothing that reads the row first and no alternatives to report: the argmax
    /// can be taken on the device (see `engine::pick`) and the sampler is not needed.
    pub fn is_plain_greedy(&self) -> bool {
        !self.do_sample && !self.has_penalties() && self.top_n_tokens == 0
    }

    fn has_penalties(&self) -> bool {
        self.repetition_penalty != 1.0
            || self.frequency_penalty != FrequencyPenalty::Off
            || self.presence_penalty != 0.0
    }
}

/// What one draw chose.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub id: u32,
    pub logprob: f32,
    /// The best `top_n_tokens` ids and log-probabilities, best first (more when the last place
    /// is tied, as TGI's `batch_top_tokens` lists every token tied with the n-th); only tokens
    /// the draw could have taken, so fewer when the warpers kept fewer.
    pub top: Vec<(u32, f32)>,
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

    /// Chooses a token from `logits` (modified in place) given the ids so far: `ids` is the
    /// prompt then the generated tokens, `prompt_len` where the first ends.
    pub fn next(&mut self, logits: &mut [f32], ids: &[u32], prompt_len: usize) -> Pick {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            processors::repetition(logits, ids, p.repetition_penalty);
        }
        let generated = ids.get(prompt_len..).unwrap_or(&[]);
        match p.frequency_penalty {
            FrequencyPenalty::Off => {}
            FrequencyPenalty::Tgi(f) => processors::frequency_tgi(logits, ids, f),
            FrequencyPenalty::OpenAi(f) => {
                processors::frequency_presence_openai(logits, generated, f, 0.0)
            }
        }
        if p.presence_penalty != 0.0 {
            processors::frequency_presence_openai(logits, generated, 0.0, p.presence_penalty);
        }
        if !p.do_sample {
            return greedy(logits, p.top_n_tokens);
        }
        processors::temperature(logits, p.temperature);
        let kept = warp(logits, p);
        let lse = processors::log_sum_exp(&kept, logits);
        let draw: f32 = self.rng.random();
        let mut acc = 0.0;
        let mut pick = kept.len() - 1;
        for (n, &i) in kept.iter().enumerate() {
            acc += (logits[i] - lse).exp();
            if draw < acc {
                pick = n;
                break;
            }
        }
        let id = kept[pick];
        let top = top_n(&kept, logits, lse, p.top_n_tokens);
        Pick {
            id: id as u32,
            logprob: (logits[id] - lse).max(f32::MIN_POSITIVE.ln()),
            top,
        }
    }
}

/// The candidates after top-k, top-p and typical-p, sorted best first.
fn warp(logits: &[f32], p: &SamplingParams) -> Vec<usize> {
    // Tokens more than TAIL below the best have probability under e^-TAIL relative to it: their
    // whole mass (< vocab x 4e-18) is below f32's resolution next to 1, so dropping them before
    // the sort changes no probability, no warper's cut and no draw, and spares sorting a 50k
    // vocab on every token. (They are never listed as alternatives either.)
    const TAIL: f32 = 40.0;
    let best = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut kept: Vec<usize> = (0..logits.len())
        .filter(|&i| logits[i] >= best - TAIL)
        .collect();
    if kept.is_empty() {
        kept = (0..logits.len()).collect(); // NaN logits: keep the old behaviour
    }
    if let Some(k) = p.top_k.filter(|&k| k < kept.len()) {
        // Partial selection first: the k best (and their ties) are all the sort needs.
        let k = k.max(1);
        kept.select_nth_unstable_by(k - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
        let kth = logits[kept[k - 1]];
        kept.retain(|&i| logits[i] >= kth);
    }
    processors::sort_desc(&mut kept, logits);
    if let Some(k) = p.top_k {
        processors::top_k(&mut kept, logits, k);
    }
    if let Some(top_p) = p.top_p {
        processors::top_p(&mut kept, logits, top_p);
    }
    if let Some(mass) = p.typical_p {
        processors::typical_p(&mut kept, logits, mass);
    }
    kept
}

/// Argmax (the first maximum wins, as torch.argmax does), with log-probabilities over the
/// whole row.
fn greedy(logits: &[f32], n: usize) -> Pick {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    let all: Vec<usize> = (0..logits.len()).collect();
    let lse = processors::log_sum_exp(&all, logits);
    let top = if n == 0 {
        Vec::new()
    } else {
        let mut cand = all;
        if n < cand.len() {
            cand.select_nth_unstable_by(n - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
            let nth = logits[cand[n - 1]];
            cand.retain(|&i| logits[i] >= nth);
        }
        processors::sort_desc(&mut cand, logits);
        top_n(&cand, logits, lse, n)
    };
    Pick {
        id: best as u32,
        logprob: logits[best] - lse,
        top,
    }
}

/// The first `n` of `sorted` (best first) and every later one tied with the n-th.
fn top_n(sorted: &[usize], logits: &[f32], lse: f32, n: usize) -> Vec<(u32, f32)> {
    if n == 0 || sorted.is_empty() {
        return Vec::new();
    }
    let nth = logits[sorted[n.min(sorted.len()) - 1]];
    sorted
        .iter()
        .enumerate()
        .take_while(|&(k, &i)| k < n || logits[i] >= nth)
        .map(|(_, &i)| (i as u32, logits[i] - lse))
        .collect()
}

#[cfg(test)]
mod tests;
