//! The numbers of a finished (or interrupted) sweep, built from per-step [`Metrics`]: one
//! [`StepRow`] per step, one [`RateRow`] per offered rate (repeats folded: the study's columns
//! are means over repeats), the headline, and the costs. Renderers in `report/` read only this.
//!
//! Built the same way live and by `report --sweep` (from `results.jsonl`), so both produce the
//! same bytes. No I/O, no clock.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cost::{self, Price, StepCost, Throughputs};
use crate::metrics::{Metrics, Percentiles, Summary};
use crate::record::Record;
use crate::scenario::{PlannedStep, Scenario};

use super::verdict::{self, Pcts, StepFigures, VerdictRules};

/// Quantiles (percent) of the latency distribution kept per step for the distribution chart.
pub const DISTRIBUTION_QUANTILES: [f64; 13] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
];

/// Percentiles in milliseconds (what reports print).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Ms {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Ms {
    fn from_ns(p: &Percentiles) -> Self {
        let ms = |v: u64| v as f64 / 1e6;
        Self {
            mean: ms(p.mean),
            p50: ms(p.p50),
            p90: ms(p.p90),
            p95: ms(p.p95),
            p99: ms(p.p99),
            p999: ms(p.p999),
            max: ms(p.max),
        }
    }

    fn mean_of(all: &[Ms]) -> Ms {
        let n = all.len().max(1) as f64;
        let avg = |f: fn(&Ms) -> f64| all.iter().map(f).sum::<f64>() / n;
        Ms {
            mean: avg(|m| m.mean),
            p50: avg(|m| m.p50),
            p90: avg(|m| m.p90),
            p95: avg(|m| m.p95),
            p99: avg(|m| m.p99),
            p999: avg(|m| m.p999),
            max: avg(|m| m.max),
        }
    }
}

fn pcts_ns(p: &Percentiles) -> Pcts {
    Pcts {
        mean: p.mean as f64,
        p50: p.p50 as f64,
        p90: p.p90 as f64,
        p95: p.p95 as f64,
        p99: p.p99 as f64,
        p999: p.p999 as f64,
        max: p.max as f64,
    }
}

/// Costs of one step (None when the run has no price or nothing succeeded).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct CostRow {
    /// Measured: price over input + output tokens per second of successful requests.
    pub usd_per_1k_tokens: Option<f64>,
    pub usd_per_1k_output_tokens: Option<f64>,
    pub usd_per_1k_requests: Option<f64>,
    /// The study's formula: offered rate x tokens per request (scenario's, else measured mean).
    pub study_usd_per_1k_tokens: Option<f64>,
    /// The study's window cost: price for the p90 latency (`P / 3600 x p90`).
    pub window_usd_p90: Option<f64>,
}

/// One step: one rate, one repeat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRow {
    pub step: u32,
    pub rate_index: usize,
    pub repeat: u32,
    pub target_rps: f64,
    /// Requests over the span of intended sends (Vegeta's `rate`).
    pub achieved_rps: f64,
    /// Successes over first intended send to last end (Vegeta's `throughput`, the study's
    /// column). It counts the final drain, so it trails the offered rate by about
    /// latency / step duration even when the target keeps up.
    pub throughput_rps: f64,
    /// Successes over the window less the median latency (see [`served_rps`]): what the
    /// verdict compares with the offered rate.
    pub served_rps: f64,
    pub requests: u64,
    pub success_ratio: f64,
    pub latency_ms: Ms,
    /// None when the API reported no tokens one by one (non-streaming).
    pub ttft_ms: Option<Ms>,
    pub itl_ms: Option<Ms>,
    pub tpot_ms: Option<Ms>,
    pub send_lag_p99_ms: f64,
    pub capped: u64,
    pub input_tokens_per_s: f64,
    pub output_tokens_per_s: f64,
    pub tokens_per_request: Option<f64>,
    pub cost: CostRow,
    pub status_codes: BTreeMap<String, u64>,
    pub error_kinds: BTreeMap<String, u64>,
    pub sustainable: bool,
    pub verdict: String,
    /// (percentile, latency ms) at [`DISTRIBUTION_QUANTILES`].
    pub latency_distribution: Vec<(f64, f64)>,
}

/// One offered rate with its repeats folded: means, as the study's tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateRow {
    pub rate_index: usize,
    pub target_rps: f64,
    pub repeats: u32,
    pub requests: u64,
    pub throughput_rps: f64,
    pub served_rps: f64,
    pub success_ratio: f64,
    pub latency_ms: Ms,
    pub ttft_ms: Option<Ms>,
    pub itl_ms: Option<Ms>,
    pub output_tokens_per_s: f64,
    pub cost: CostRow,
    /// Every repeat sustainable (design section 5).
    pub sustainable: bool,
    /// Every request of every repeat succeeded (the study's "max RPS" criterion).
    pub all_succeeded: bool,
}

/// The headline: the highest sustainable rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    pub target_rps: f64,
    pub throughput_rps: f64,
    pub latency_p50_ms: f64,
    pub latency_p90_ms: f64,
    pub latency_p95_ms: f64,
    pub cost: CostRow,
}

/// Everything the reports show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepSummary {
    pub name: String,
    pub target: String,
    pub api: String,
    pub plan: String,
    pub step_duration_s: f64,
    pub repeat: u32,
    pub price: Option<Price>,
    pub rules: VerdictRules,
    pub planned_steps: usize,
    /// Fewer steps ran than planned (early stop or an interruption).
    pub stopped_early: bool,
    pub headline: Option<Headline>,
    /// The study's "max RPS": the highest rate all of whose requests succeeded.
    pub study_max_rps: Option<f64>,
    pub rates: Vec<RateRow>,
    pub steps: Vec<StepRow>,
}

/// What one step's records add up to.
#[derive(Debug, Clone, Default)]
pub struct StepData {
    pub metrics: Metrics,
}

impl StepData {
    /// Folds one record in.
    pub fn add(&mut self, r: &Record) {
        self.metrics.add(r);
    }
}

/// The served rate of a step: successes over Vegeta's window (first intended send to last
/// end) less `unloaded_latency_ns`, the sweep's lowest median latency; never over a window
/// shorter than the sending span.
///
/// Why: Vegeta's throughput counts the final drain, so it trails the offered rate by about
/// latency / step duration even when the target keeps up (a 1.4 s latency in a 10 s step reads
/// 88%). A target that keeps up drains in about its unloaded latency, which is taken out. One
/// that falls behind drains far longer, whether it queues (FIFO: the last requests wait) or
/// shares itself (continuous batching: every request slows and they end together), and the
/// served rate falls. The step's own latency cannot be the allowance: overload raises it.
/// Steps should be long against the latency spread (a last request slower than the median
/// lengthens the window by the difference).
pub fn served_rps(s: &Summary, unloaded_latency_ns: u64) -> f64 {
    let successes = (s.success * s.requests as f64).round();
    let window_ns = (s.duration + s.wait)
        .saturating_sub(unloaded_latency_ns)
        .max(s.duration);
    if window_ns == 0 {
        successes
    } else {
        successes / (window_ns as f64 / 1e9)
    }
}

/// Inputs to [`build`]: the scenario, its price, and the metrics of each step that ran.
pub struct SweepInput<'a> {
    pub scenario: &'a Scenario,
    pub price: Option<&'a Price>,
    /// What `target` says in reports (the URL, or "embedded server").
    pub target: String,
    /// Records folded by step index, for the steps that ran.
    pub steps: &'a BTreeMap<u32, StepData>,
}

/// Builds the sweep's numbers from per-step metrics.
pub fn build(input: &SweepInput<'_>) -> SweepSummary {
    let sc = input.scenario;
    let planned = sc.steps();
    let summaries: Vec<(u32, Summary)> = input
        .steps
        .iter()
        .map(|(idx, d)| (*idx, d.metrics.summary()))
        .collect();
    let unloaded_latency_ns = unloaded_latency_ns(summaries.iter().map(|(_, s)| s));
    let rows: Vec<StepRow> = summaries
        .iter()
        .filter_map(|(idx, s)| {
            let p = planned.iter().find(|p| p.step == *idx)?;
            let data = &input.steps[idx];
            Some(step_row(
                &StepInput {
                    planned: p,
                    data,
                    summary: s,
                    unloaded_latency_ns,
                },
                &sc.rules,
                input.price,
                sc.tokens_per_request,
            ))
        })
        .collect();
    let mut rates = Vec::new();
    for (ri, &rps) in sc.plan.rates().iter().enumerate() {
        let reps: Vec<&StepRow> = rows.iter().filter(|r| r.rate_index == ri).collect();
        if reps.is_empty() {
            continue;
        }
        rates.push(rate_row(ri, rps, &reps));
    }
    let flags: Vec<(f64, bool)> = rates
        .iter()
        .map(|r| (r.target_rps, r.sustainable))
        .collect();
    let headline = verdict::headline(&flags).map(|i| {
        let r = &rates[i];
        Headline {
            target_rps: r.target_rps,
            throughput_rps: r.throughput_rps,
            latency_p50_ms: r.latency_ms.p50,
            latency_p90_ms: r.latency_ms.p90,
            latency_p95_ms: r.latency_ms.p95,
            cost: r.cost,
        }
    });
    let study_max_rps = rates
        .iter()
        .filter(|r| r.all_succeeded)
        .map(|r| r.target_rps)
        .max_by(f64::total_cmp);
    SweepSummary {
        name: sc.name.clone(),
        target: input.target.clone(),
        api: sc.api.clone(),
        plan: sc.plan.spec().to_string(),
        step_duration_s: sc.step_duration.as_secs_f64(),
        repeat: sc.repeat,
        price: input.price.cloned(),
        rules: sc.rules.clone(),
        planned_steps: planned.len(),
        stopped_early: rows.len() < planned.len(),
        headline,
        study_max_rps,
        rates,
        steps: rows,
    }
}

/// The verdict inputs of one step's summary; `served_rps` is what is compared with the offered
/// rate.
pub fn figures(target_rps: f64, s: &Summary, served_rps: f64) -> StepFigures {
    let opt = |p: &Percentiles| (p.count > 0).then(|| pcts_ns(p));
    StepFigures {
        offered_rps: target_rps,
        requests: s.requests,
        success_ratio: s.success,
        throughput_rps: served_rps,
        send_lag_p99_ns: s.send_lag.p99 as f64,
        inflight_cap_hits: s.capped,
        latency: pcts_ns(&s.latencies),
        service: None,
        ttft: opt(&s.ttft),
        itl: opt(&s.itl),
        tpot: opt(&s.tpot),
    }
}

/// The lowest median latency of the steps that had successes: the target's latency unloaded.
pub fn unloaded_latency_ns<'a>(steps: impl Iterator<Item = &'a Summary>) -> u64 {
    steps
        .filter(|s| s.success > 0.0 && s.latencies.count > 0)
        .map(|s| s.latencies.p50)
        .min()
        .unwrap_or(0)
}

/// One step's inputs to its row.
struct StepInput<'a> {
    planned: &'a PlannedStep,
    data: &'a StepData,
    summary: &'a Summary,
    unloaded_latency_ns: u64,
}

fn step_row(
    input: &StepInput<'_>,
    rules: &VerdictRules,
    price: Option<&Price>,
    tokens_per_request: Option<f64>,
) -> StepRow {
    let p = input.planned;
    let m = &input.data.metrics;
    let s = input.summary;
    let served_rps = served_rps(s, input.unloaded_latency_ns);
    let window_s = (s.duration + s.wait) as f64 / 1e9;
    let input_tps = if window_s > 0.0 {
        s.tokens.input_total as f64 / window_s
    } else {
        0.0
    };
    let successes = (s.success * s.requests as f64).round();
    let measured_tpr = (successes > 0.0 && s.tokens.input_total + s.tokens.output_total > 0)
        .then(|| (s.tokens.input_total + s.tokens.output_total) as f64 / successes);
    let verdict = verdict::judge(&figures(p.rps, s, served_rps), rules);
    let latency_ms = Ms::from_ns(&s.latencies);
    let cost = price
        .map(|price| {
            let c = StepCost::new(
                price.usd_per_hour,
                Throughputs {
                    requests_per_s: s.throughput,
                    input_tokens_per_s: input_tps,
                    output_tokens_per_s: s.tokens.output_per_second,
                },
            );
            CostRow {
                usd_per_1k_tokens: c.usd_per_1k_tokens,
                usd_per_1k_output_tokens: c.usd_per_1k_output_tokens,
                usd_per_1k_requests: c.usd_per_1k_requests,
                study_usd_per_1k_tokens: tokens_per_request
                    .or(measured_tpr)
                    .and_then(|t| cost::study_usd_per_1k_tokens(price.usd_per_hour, p.rps, t)),
                window_usd_p90: (s.requests > 0)
                    .then(|| cost::window_usd(price.usd_per_hour, latency_ms.p90 / 1e3)),
            }
        })
        .unwrap_or_default();
    let opt_ms = |p: &Percentiles| (p.count > 0).then(|| Ms::from_ns(p));
    StepRow {
        step: p.step,
        rate_index: p.rate_index,
        repeat: p.repeat,
        target_rps: p.rps,
        achieved_rps: s.rate,
        throughput_rps: s.throughput,
        served_rps,
        requests: s.requests,
        success_ratio: s.success,
        latency_ms,
        ttft_ms: opt_ms(&s.ttft),
        itl_ms: opt_ms(&s.itl),
        tpot_ms: opt_ms(&s.tpot),
        send_lag_p99_ms: s.send_lag.p99 as f64 / 1e6,
        capped: s.capped,
        input_tokens_per_s: input_tps,
        output_tokens_per_s: s.tokens.output_per_second,
        tokens_per_request: measured_tpr,
        cost,
        status_codes: s.status_codes.clone(),
        error_kinds: s.error_kinds.clone(),
        sustainable: verdict.sustainable(),
        verdict: verdict.describe(),
        latency_distribution: DISTRIBUTION_QUANTILES
            .iter()
            .map(|&q| (q, m.latency.quantile(q) as f64 / 1e6))
            .collect(),
    }
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Mean of the values present; None if none is.
fn mean_opt(xs: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = xs.flatten().collect();
    (!v.is_empty()).then(|| mean(v.into_iter()))
}

fn rate_row(rate_index: usize, rps: f64, reps: &[&StepRow]) -> RateRow {
    let ms_opt = |f: fn(&StepRow) -> Option<Ms>| {
        let v: Vec<Ms> = reps.iter().filter_map(|r| f(r)).collect();
        (!v.is_empty()).then(|| Ms::mean_of(&v))
    };
    let lat: Vec<Ms> = reps.iter().map(|r| r.latency_ms).collect();
    RateRow {
        rate_index,
        target_rps: rps,
        repeats: reps.len() as u32,
        requests: reps.iter().map(|r| r.requests).sum(),
        throughput_rps: mean(reps.iter().map(|r| r.throughput_rps)),
        served_rps: mean(reps.iter().map(|r| r.served_rps)),
        success_ratio: mean(reps.iter().map(|r| r.success_ratio)),
        latency_ms: Ms::mean_of(&lat),
        ttft_ms: ms_opt(|r| r.ttft_ms),
        itl_ms: ms_opt(|r| r.itl_ms),
        output_tokens_per_s: mean(reps.iter().map(|r| r.output_tokens_per_s)),
        cost: CostRow {
            usd_per_1k_tokens: mean_opt(reps.iter().map(|r| r.cost.usd_per_1k_tokens)),
            usd_per_1k_output_tokens: mean_opt(
                reps.iter().map(|r| r.cost.usd_per_1k_output_tokens),
            ),
            usd_per_1k_requests: mean_opt(reps.iter().map(|r| r.cost.usd_per_1k_requests)),
            study_usd_per_1k_tokens: mean_opt(reps.iter().map(|r| r.cost.study_usd_per_1k_tokens)),
            window_usd_p90: mean_opt(reps.iter().map(|r| r.cost.window_usd_p90)),
        },
        sustainable: reps.iter().all(|r| r.sustainable),
        all_succeeded: reps
            .iter()
            .all(|r| r.requests > 0 && r.success_ratio >= 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(requests: u64, duration_s: f64, wait_s: f64, p50_s: f64) -> Summary {
        let mut s = Summary {
            requests,
            success: 1.0,
            ..Default::default()
        };
        s.duration = (duration_s * 1e9) as u64;
        s.wait = (wait_s * 1e9) as u64;
        s.latencies.p50 = (p50_s * 1e9) as u64;
        s.latencies.count = requests;
        s
    }

    #[test]
    fn served_rate_keeps_up_whatever_the_latency() {
        // 10 req/s for 10 s, every request 1.44 s: Vegeta's throughput reads 8.8 req/s.
        let s = summary(100, 9.9, 1.44, 1.44);
        assert!((served_rps(&s, 1_440_000_000) - 100.0 / 9.9).abs() < 1e-9);
        // A fast last request never makes the window shorter than the sending span.
        let s = summary(100, 9.9, 0.1, 1.44);
        assert!((served_rps(&s, 1_440_000_000) - 100.0 / 9.9).abs() < 1e-9);
    }

    #[test]
    fn served_rate_drops_when_the_target_falls_behind() {
        // FIFO: 20 req/s offered to a 10 req/s target for 10 s, unloaded latency 0.1 s: the
        // last request ends about 10 s after it was sent.
        let s = summary(200, 9.95, 10.15, 5.1);
        let served = served_rps(&s, 100_000_000);
        assert!((9.5..10.5).contains(&served), "{served}");
        // Continuous batching: 6 req/s for 6 s to a target doing 2; all requests slow down
        // together (median 14 s) and the last ends 16 s after it was sent. Unloaded: 0.4 s.
        let s = summary(36, 5.83, 16.0, 14.0);
        let served = served_rps(&s, 400_000_000);
        assert!(served < 2.0, "{served}");
    }

    #[test]
    fn unloaded_latency_is_the_lowest_median() {
        let steps = [
            summary(10, 1.0, 0.5, 0.5),
            summary(10, 1.0, 3.0, 2.0),
            summary(0, 0.0, 0.0, 0.0),
        ];
        assert_eq!(unloaded_latency_ns(steps.iter()), 500_000_000);
    }
}
