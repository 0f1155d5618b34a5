//! One level's row from its steps: the study's columns as means over the repeats, the costs
//! likewise, and the status folded (`verdict::fold_repeats`, or for a closed loop each repeat
//! on its own scaling).

use super::{CostRow, Ms, RateRow, StepRow};
use crate::analysis::pace::{PaceCall, SlopeFit};
use crate::analysis::verdict::{self, Status};

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Mean of the values present; None if none is.
fn mean_opt(xs: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = xs.flatten().collect();
    (!v.is_empty()).then(|| mean(v.into_iter()))
}

pub(super) fn rate_row(
    rate_index: usize,
    (rps, users): (f64, Option<u32>),
    reps: &[&StepRow],
    (pooled, call): (Option<SlopeFit>, PaceCall),
) -> RateRow {
    let statuses: Vec<Status> = reps.iter().map(|r| r.status).collect();
    // A closed loop's repeats have no trend to pool; each is judged on its own scaling.
    let status = match users {
        Some(_) => Status::fold(statuses.iter().copied()),
        None => verdict::fold_repeats(&statuses, call),
    };
    let ms_opt = |f: fn(&StepRow) -> Option<Ms>| {
        let v: Vec<Ms> = reps.iter().filter_map(|r| f(r)).collect();
        (!v.is_empty()).then(|| Ms::mean_of(&v))
    };
    let lat: Vec<Ms> = reps.iter().map(|r| r.latency_ms).collect();
    RateRow {
        rate_index,
        target_rps: rps,
        target_concurrency: users,
        repeats: reps.len() as u32,
        requests: reps.iter().map(|r| r.requests).sum(),
        throughput_rps: mean(reps.iter().map(|r| r.throughput_rps)),
        served_rps: mean(reps.iter().map(|r| r.served_rps)),
        goodput_rps: mean(reps.iter().map(|r| r.goodput_rps)),
        slo_attainment: mean_opt(reps.iter().map(|r| r.slo_attainment)),
        success_ratio: mean(reps.iter().map(|r| r.success_ratio)),
        latency_ms: Ms::mean_of(&lat),
        service_ms: ms_opt(|r| r.service_ms),
        ttft_ms: ms_opt(|r| r.ttft_ms),
        itl_ms: ms_opt(|r| r.itl_ms),
        tpot_ms: ms_opt(|r| r.tpot_ms),
        output_tokens_per_s: mean(reps.iter().map(|r| r.output_tokens_per_s)),
        cost: CostRow {
            usd_per_1k_tokens: mean_opt(reps.iter().map(|r| r.cost.usd_per_1k_tokens)),
            usd_per_1m_tokens: mean_opt(reps.iter().map(|r| r.cost.usd_per_1m_tokens)),
            usd_per_1k_output_tokens: mean_opt(
                reps.iter().map(|r| r.cost.usd_per_1k_output_tokens),
            ),
            usd_per_1k_requests: mean_opt(reps.iter().map(|r| r.cost.usd_per_1k_requests)),
            usd_per_1k_good_tokens: mean_opt(reps.iter().map(|r| r.cost.usd_per_1k_good_tokens)),
            study_usd_per_1k_tokens: mean_opt(reps.iter().map(|r| r.cost.study_usd_per_1k_tokens)),
            window_usd_p90: mean_opt(reps.iter().map(|r| r.cost.window_usd_p90)),
        },
        status,
        sustainable: status == Status::Sustainable,
        pooled_trend_ms_per_s: pooled.map(|f| f.slope * 1e3),
        pooled_trend_margin_ms_per_s: pooled.map(|f| f.margin * 1e3),
        all_succeeded: reps
            .iter()
            .all(|r| r.requests > 0 && r.success_ratio >= 1.0),
    }
}
