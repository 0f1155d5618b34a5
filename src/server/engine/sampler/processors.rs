//! The logits processors and warpers, each a plain function over one row of logits or over the
//! candidate list a warper narrows: the penalties (repetition, TGI's and OpenAI's frequency,
//! OpenAI's presence), temperature, top-k, top-p and typical-p. Learnt from transformers'
//! `generation/logits_process.py` and TGI's `server/.../utils/logits_process.py`; the fixtures in
//! `tests/fixtures/sampler-processors.json` (from `scripts/make-sampler-fixtures.py`) pin each one
//! against the real processors. Must not draw, keep state or know about requests.

/// Transformers' `RepetitionPenaltyLogitsProcessor`: each DISTINCT id in `ids` (prompt and
/// generated) has its logit divided by `penalty` when positive, multiplied when not. Applying it
/// once per occurrence instead would push a token said ten times down by penalty^10.
pub fn repetition(logits: &mut [f32], ids: &[u32], penalty: f32) {
    for id in distinct(ids) {
        if let Some(l) = logits.get_mut(id as usize) {
            // transformers: `torch.where(score < 0, score * penalty, score / penalty)`.
            *l = if *l < 0.0 { *l * penalty } else { *l / penalty };
        }
    }
}

/// TGI's `frequency_penalty`, as its batched `HeterogeneousFrequencyPenaltyLogitsProcessor` (the
/// one every flash model runs) computes it: `logits -= penalty * count(id in ids) / len(ids)`,
/// where `ids` is the whole sequence so far, prompt included. Not OpenAI's definition (a count
/// over the generated text only, undivided); TGI's single-request `FrequencyPenaltyLogitsProcessor`
/// differs again, but the batched one is what TGI's router serves.
pub fn frequency_tgi(logits: &mut [f32], ids: &[u32], penalty: f32) {
    if ids.is_empty() {
        return;
    }
    let len = ids.len() as f32;
    for (id, count) in counts(ids) {
        if let Some(l) = logits.get_mut(id as usize) {
            *l -= penalty * (count as f32 / len);
        }
    }
}

/// OpenAI's (and vLLM's) `frequency_penalty` and `presence_penalty` over the GENERATED ids only:
/// `logit -= frequency * count + presence * (count > 0)`.
pub fn frequency_presence_openai(
    logits: &mut [f32],
    generated: &[u32],
    frequency: f32,
    presence: f32,
) {
    for (id, count) in counts(generated) {
        if let Some(l) = logits.get_mut(id as usize) {
            *l -= frequency * count as f32 + presence;
        }
    }
}

/// Transformers' `TemperatureLogitsWarper`.
pub fn temperature(logits: &mut [f32], t: f32) {
    if t != 1.0 {
        logits.iter_mut().for_each(|l| *l /= t);
    }
}

/// Sorts candidate ids best first (lower id first among equal logits, so draws are
/// reproducible).
pub fn sort_desc(kept: &mut [usize], logits: &[f32]) {
    kept.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
}

/// Transformers' `TopKLogitsWarper` on candidates sorted best first: everything below the k-th
/// logit goes, so a tie with the k-th stays (`scores < kth` is what is removed).
pub fn top_k(kept: &mut Vec<usize>, logits: &[f32], k: usize) {
    let k = k.max(1);
    if kept.len() <= k {
        return;
    }
    let kth = logits[kept[k - 1]];
    let end = kept
        .iter()
        .position(|&i| logits[i] < kth)
        .unwrap_or(kept.len());
    kept.truncate(end);
}

/// Transformers' `TopPLogitsWarper` on candidates sorted best first. It removes a token when the
/// mass of the tokens ranked at or below it is <= 1 - top_p; read from the top, that keeps each
/// token whose better-ranked mass is still below top_p (at least one).
pub fn top_p(kept: &mut Vec<usize>, logits: &[f32], p: f32) {
    let probs = softmax(kept, logits);
    let mut before = 0.0f32;
    let mut end = kept.len();
    for (n, q) in probs.iter().enumerate() {
        if n > 0 && before >= p {
            end = n;
            break;
        }
        before += q;
    }
    kept.truncate(end);
}

/// Transformers' `TypicalLogitsWarper` (min_tokens_to_keep 1) on candidates sorted best first:
/// ranks tokens by how far their surprisal `-log p` is from the entropy, takes the ranked prefix
/// whose mass first reaches `mass` (index = how many cumulative sums stay below it), and keeps
/// every token at most as far as the one at that index. The result is sorted best first again.
pub fn typical_p(kept: &mut Vec<usize>, logits: &[f32], mass: f32) {
    if kept.len() <= 1 {
        return;
    }
    let lse = log_sum_exp(kept, logits);
    let logp: Vec<f32> = kept.iter().map(|&i| logits[i] - lse).collect();
    let entropy: f32 = -logp.iter().map(|&lp| lp.exp() * lp).sum::<f32>();
    let shifted: Vec<f32> = logp.iter().map(|&lp| (-lp - entropy).abs()).collect();
    let mut order: Vec<usize> = (0..kept.len()).collect();
    order.sort_by(|&a, &b| shifted[a].total_cmp(&shifted[b]).then(a.cmp(&b)));
    let mut cum = 0.0f32;
    let mut below = 0;
    for &o in &order {
        cum += logp[o].exp();
        if cum < mass {
            below += 1;
        }
    }
    let limit = shifted[order[below.min(order.len() - 1)]];
    let mut out: Vec<usize> = (0..kept.len())
        .filter(|&n| shifted[n] <= limit)
        .map(|n| kept[n])
        .collect();
    if out.is_empty() {
        // NaN logits only: keep the best, as min_tokens_to_keep does.
        out.push(kept[0]);
    }
    sort_desc(&mut out, logits);
    *kept = out;
}

/// `log Σ exp(logits[i])` over `kept`, shifted by the max for range.
pub fn log_sum_exp(kept: &[usize], logits: &[f32]) -> f32 {
    let max = kept
        .iter()
        .map(|&i| logits[i])
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    let sum: f32 = kept.iter().map(|&i| (logits[i] - max).exp()).sum();
    max + sum.ln()
}

/// Probabilities of `kept` under a softmax over `kept` alone (the warped-away tokens are -inf).
pub fn softmax(kept: &[usize], logits: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(kept, logits);
    kept.iter().map(|&i| (logits[i] - lse).exp()).collect()
}

fn distinct(ids: &[u32]) -> Vec<u32> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// (id, occurrences) for each distinct id.
fn counts(ids: &[u32]) -> Vec<(u32, u32)> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for id in v {
        match out.last_mut() {
            Some((last, n)) if *last == id => *n += 1,
            _ => out.push((id, 1)),
        }
    }
    out
}
