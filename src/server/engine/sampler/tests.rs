//! The sampler's tests: each processor against the transformers / TGI fixtures
//! (`tests/fixtures/sampler-processors.json`, made by `scripts/make-sampler-fixtures.py`), and the
//! draw's own behaviour (seeds, greedy, alternatives).

use serde_json::Value;

use super::processors as pr;
use super::*;

const FIXTURES: &str = include_str!("../../../../tests/fixtures/sampler-processors.json");
/// The fixtures are written to 7 significant digits from float32 rows.
const TOL: f32 = 1e-4;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().map_or(f32::NEG_INFINITY, |f| f as f32))
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn param(case: &Value, name: &str) -> f32 {
    case["params"][name].as_f64().unwrap() as f32
}

/// Each fixture case of `processor`: (logits, prompt + generated ids, prompt length, case).
fn cases(processor: &str) -> Vec<(Vec<f32>, Vec<u32>, usize, Value)> {
    let doc: Value = serde_json::from_str(FIXTURES).unwrap();
    let out: Vec<_> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["processor"] == processor)
        .map(|c| {
            let v = &doc["vectors"][c["vector"].as_u64().unwrap() as usize];
            let prompt = ids(&v["prompt"]);
            let mut all = prompt.clone();
            all.extend(ids(&v["generated"]));
            (floats(&v["logits"]), all, prompt.len(), c.clone())
        })
        .collect();
    assert!(!out.is_empty(), "no fixture for {processor}");
    out
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = if w.is_finite() {
            (g - w).abs() <= TOL
        } else {
            g == w
        };
        assert!(same, "{what}: token {i}: got {g}, want {w}");
    }
    let argmax = |xs: &[f32]| (0..xs.len()).fold(0, |b, i| if xs[i] > xs[b] { i } else { b });
    assert_eq!(argmax(got), argmax(want), "{what}: argmax");
}

/// The row a warper leaves: kept tokens keep their logit, the rest are -inf.
fn masked(logits: &[f32], kept: &[usize]) -> Vec<f32> {
    let mut out = vec![f32::NEG_INFINITY; logits.len()];
    for &i in kept {
        out[i] = logits[i];
    }
    out
}

/// Applies one warper to the whole row (every token a candidate), as transformers does.
fn warped(logits: &[f32], f: impl FnOnce(&mut Vec<usize>, &[f32])) -> Vec<f32> {
    let mut kept: Vec<usize> = (0..logits.len()).collect();
    pr::sort_desc(&mut kept, logits);
    f(&mut kept, logits);
    masked(logits, &kept)
}

#[test]
fn repetition_penalty_matches_transformers_once_per_distinct_token() {
    for (mut logits, all, _, case) in cases("repetition") {
        pr::repetition(&mut logits, &all, param(&case, "penalty"));
        assert_close(&logits, &floats(&case["output"]), &format!("{case}"));
    }
    // Token 0 seen three times is penalised once, not three times.
    let mut row = [4.0f32, -2.0];
    pr::repetition(&mut row, &[0, 0, 0, 1, 1], 2.0);
    assert_eq!(row, [2.0, -4.0]);
}

#[test]
fn tgi_frequency_penalty_matches_tgi_count_over_length() {
    for (mut logits, all, _, case) in cases("frequency_tgi") {
        pr::frequency_tgi(&mut logits, &all, param(&case, "penalty"));
        assert_close(&logits, &floats(&case["output"]), &format!("{case}"));
    }
}

#[test]
fn openai_frequency_and_presence_count_generated_tokens_only() {
    for (mut logits, all, prompt_len, case) in cases("openai") {
        let (f, p) = (param(&case, "frequency"), param(&case, "presence"));
        pr::frequency_presence_openai(&mut logits, &all[prompt_len..], f, p);
        assert_close(&logits, &floats(&case["output"]), &format!("{case}"));
    }
}

#[test]
fn temperature_matches_transformers() {
    for (mut logits, _, _, case) in cases("temperature") {
        pr::temperature(&mut logits, param(&case, "t"));
        assert_close(&logits, &floats(&case["output"]), &format!("{case}"));
    }
}

#[test]
fn top_k_top_p_and_typical_p_keep_transformers_sets() {
    for (logits, _, _, case) in cases("top_k") {
        let k = case["params"]["k"].as_u64().unwrap() as usize;
        let got = warped(&logits, |kept, l| pr::top_k(kept, l, k));
        assert_close(&got, &floats(&case["output"]), &format!("{case}"));
    }
    for (logits, _, _, case) in cases("top_p") {
        let p = param(&case, "p");
        let got = warped(&logits, |kept, l| pr::top_p(kept, l, p));
        assert_close(&got, &floats(&case["output"]), &format!("{case}"));
    }
    for (logits, _, _, case) in cases("typical_p") {
        let mass = param(&case, "mass");
        let got = warped(&logits, |kept, l| pr::typical_p(kept, l, mass));
        assert_close(&got, &floats(&case["output"]), &format!("{case}"));
    }
}

/// The sampler's own chain (temperature, top-k, top-p, typical-p, with its tail pruning and
/// partial selection) against transformers' warpers run in generation's order, then the
/// log-softmax the server reports; every kept token's logprob, the alternatives and the chosen
/// token's logprob come from it.
#[test]
fn the_warper_chain_and_its_logprobs_match_transformers() {
    for (logits, all, prompt_len, case) in cases("chain") {
        let want = floats(&case["output"]);
        let params = SamplingParams {
            do_sample: true,
            temperature: param(&case, "t"),
            top_k: case["params"]["k"].as_u64().map(|k| k as usize),
            top_p: case["params"]["p"].as_f64().map(|p| p as f32),
            typical_p: Some(param(&case, "mass")),
            top_n_tokens: 3,
            ..SamplingParams::default()
        };
        let mut row = logits.clone();
        pr::temperature(&mut row, params.temperature);
        let kept = warp(&row, &params);
        let lse = pr::log_sum_exp(&kept, &row);
        let got: Vec<f32> = masked(&row, &kept).iter().map(|l| l - lse).collect();
        assert_close(&got, &want, &format!("{case}"));
        for seed in 0..8 {
            let pick = Sampler::new(SamplingParams {
                seed,
                ..params.clone()
            })
            .next(&mut logits.clone(), &all, prompt_len);
            let i = pick.id as usize;
            assert!(want[i].is_finite(), "{case}: drew removed token {i}");
            assert!((pick.logprob - want[i]).abs() <= TOL, "{case}");
            let mut best: Vec<usize> = (0..want.len()).filter(|&i| want[i].is_finite()).collect();
            best.sort_by(|&a, &b| want[b].total_cmp(&want[a]));
            best.truncate(3);
            let top_ids: Vec<usize> = pick.top.iter().map(|&(id, _)| id as usize).collect();
            assert_eq!(top_ids, best, "{case}");
            for &(id, lp) in &pick.top {
                assert!((lp - want[id as usize]).abs() <= TOL, "{case}");
            }
        }
    }
}

#[test]
fn greedy_alternatives_are_torch_topk_of_the_log_softmax() {
    for (logits, _, _, case) in cases("greedy_top3") {
        let want = floats(&case["output"]);
        let params = SamplingParams {
            top_n_tokens: 3,
            ..SamplingParams::default()
        };
        let pick = Sampler::new(params).next(&mut logits.clone(), &[], 0);
        let top_ids: Vec<u32> = pick.top.iter().map(|&(id, _)| id).collect();
        assert_eq!(top_ids, ids(&case["top_ids"]), "{case}");
        assert_eq!(pick.id, top_ids[0]);
        assert!((pick.logprob - want[pick.id as usize]).abs() <= TOL);
        for &(id, lp) in &pick.top {
            assert!((lp - want[id as usize]).abs() <= TOL, "{case}");
        }
    }
}

fn sample(params: SamplingParams, logits: &[f32], seen: &[u32]) -> u32 {
    Sampler::new(params)
        .next(&mut logits.to_vec(), seen, seen.len())
        .id
}

#[test]
fn greedy_picks_the_largest_id_and_its_logprob() {
    let pick = Sampler::new(SamplingParams::default()).next(&mut [0.0, 2.0, 1.0, 2.0], &[], 0);
    assert_eq!(pick.id, 1);
    let want = 2.0 - (1.0f32 + 2.0 * 2f32.exp() + 1f32.exp()).ln();
    assert!((pick.logprob - want).abs() < 1e-5);
    assert!(pick.top.is_empty());
}

#[test]
fn alternatives_list_ties_with_the_last_place_as_tgi_does() {
    let params = SamplingParams {
        top_n_tokens: 2,
        ..SamplingParams::default()
    };
    let pick = Sampler::new(params).next(&mut [0.0, 2.0, 1.0, 1.0], &[], 0);
    let ids: Vec<u32> = pick.top.iter().map(|t| t.0).collect();
    assert_eq!(ids, [1, 2, 3]);
    // Sampling with top_k 1 keeps one token: one alternative, whatever was asked.
    let params = SamplingParams {
        do_sample: true,
        top_k: Some(1),
        top_n_tokens: 5,
        ..SamplingParams::default()
    };
    let pick = Sampler::new(params).next(&mut [0.0, 2.0, 1.0, 1.0], &[], 0);
    assert_eq!(pick.top, vec![(1, 0.0)]);
}

#[test]
fn penalties_read_the_prompt_or_the_output_as_each_api_defines() {
    let row = [1.0f32, 1.0, 0.0];
    let ids = [0u32, 0, 1];
    // OpenAI's presence penalty looks at the output only: with token 0 in the prompt alone,
    // only token 1 (generated) is demoted.
    let presence = SamplingParams {
        presence_penalty: 2.0,
        ..SamplingParams::default()
    };
    assert_eq!(
        Sampler::new(presence).next(&mut row.to_vec(), &ids, 2).id,
        0
    );
    // TGI's frequency penalty counts the prompt too: token 0 (2 of 3 ids) falls below token 1.
    let tgi = SamplingParams {
        frequency_penalty: FrequencyPenalty::Tgi(2.0),
        ..SamplingParams::default()
    };
    assert_eq!(Sampler::new(tgi).next(&mut row.to_vec(), &ids, 2).id, 1);
    assert!(!SamplingParams::default().has_penalties());
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
            .map(|_| s.next(&mut logits.to_vec(), &[], 0).id)
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
