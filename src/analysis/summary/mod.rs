//! The numbers of a finished (or interrupted) sweep, built from per-step [`Metrics`] and
//! [`PaceData`]: one [`StepRow`] per step, one [`RateRow`] per offered rate (repeats folded: the
//! study's columns are means over repeats, `fold`), the headline, the costs, the goodput (each
//! request judged against the SLO, `analysis::goodput`) and, for a search, how it ended
//! (`search`). Renderers in `report/` read only this.
//!
//! Timing percentiles are of successful requests (errors are counted beside them); Vegeta's
//! `throughput` is kept for the study's tables; token rates and costs are per second of the
//! served rate, the same basis the verdict judges. Each step's row depends on that step alone,
//! so the verdict printed live is the final one. Built the same way live and by
//! `report --sweep` (from `results.jsonl`), so both produce the same bytes. No I/O, no clock.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cost::{self, Price, StepCost, Throughputs};
use crate::metrics::{Metrics, Percentiles, Summary};
use crate::record::Record;
use crate::scenario::{PlannedStep, Scenario};

use super::goodput::Attainment;
use super::pace::{PaceData, PaceEstimate, Window};
use super::scaling::{self, Scaling};
use super::verdict::{self, ClosedLoop, Pcts, Reason, Status, StepFigures};
use crate::scenario::plan::Axis;
use crate::scenario::rules::VerdictRules;
use crate::scenario::slo::Slo;

/// Quantiles (percent) of the latency distribution kept per step for the distribution chart.
pub const DISTRIBUTION_QUANTILES: [f64; 13] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
];

/// Percentiles in milliseconds (what reports print).
pub type Ms = Pcts;

const NS_PER_MS: f64 = 1e6;

/// Costs of one step (None when the run has no price or nothing succeeded).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct CostRow {
    /// Measured: price over input + output tokens per second of successful requests, at the
    /// served rate.
    pub usd_per_1k_tokens: Option<f64>,
    pub usd_per_1m_tokens: Option<f64>,
    pub usd_per_1k_output_tokens: Option<f64>,
    pub usd_per_1k_requests: Option<f64>,
    /// Price over the tokens of requests that met every SLO clause (`goodput`), per second
    /// on the same basis: what a token that met the objectives costs.
    pub usd_per_1k_good_tokens: Option<f64>,
    /// The study's formula: offered rate x tokens per request (scenario's, else measured mean).
    pub study_usd_per_1k_tokens: Option<f64>,
    /// The study's window cost: price for the p90 latency (`P / 3600 x p90`).
    pub window_usd_p90: Option<f64>,
}

/// One step: one rate, one repeat. (`Default` lets tests build one by hand.)
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct StepRow {
    pub step: u32,
    pub rate_index: usize,
    pub repeat: u32,
    /// The offered rate; 0 for a closed-loop step (`steps.csv` leaves it empty).
    pub target_rps: f64,
    /// Users of a closed-loop step (`--concurrency`).
    pub target_concurrency: Option<u32>,
    /// Requests over the span of intended sends (Vegeta's `rate`).
    pub achieved_rps: f64,
    /// Successes over first intended send to last end (Vegeta's `throughput`, the study's
    /// column). It counts the final drain, so it trails the offered rate by about
    /// latency / step duration even when the target keeps up.
    pub throughput_rps: f64,
    /// Departures of successful requests per second, estimated from the latency trend
    /// (`pace`): what the verdict compares with the arrivals, and the basis of token rates and
    /// costs. A closed loop's is its throughput (no arrivals to estimate from).
    pub served_rps: f64,
    /// Requests that met every SLO clause on their own, per second of the served rate (with
    /// no SLO: successes).
    pub goodput_rps: f64,
    /// Their share of all requests sent, failures counting as misses (None: none sent).
    pub slo_attainment: Option<f64>,
    /// A closed-loop step against the level below (None: a rate step, or the first level).
    pub scaling: Option<Scaling>,
    pub requests: u64,
    /// Requests that failed (any error kind).
    pub errors: u64,
    pub success_ratio: f64,
    /// Successful requests only.
    pub latency_ms: Ms,
    /// Successful requests' `end - sent`.
    pub service_ms: Option<Ms>,
    /// None when the API reported no tokens one by one (non-streaming).
    pub ttft_ms: Option<Ms>,
    pub itl_ms: Option<Ms>,
    pub tpot_ms: Option<Ms>,
    /// Latency growth across the step, ms per second (None: too few successes).
    pub latency_trend_ms_per_s: Option<f64>,
    /// Half-width of its 95% interval.
    pub latency_trend_margin_ms_per_s: Option<f64>,
    /// The requests the trend shown was fitted on (`pace::Window`).
    pub trend_window: Window,
    /// Successes outside that window.
    pub trend_left_out: u64,
    pub send_lag_p99_ms: f64,
    /// The send-lag p99 this step was allowed (explicit or derived).
    pub send_lag_limit_ms: f64,
    /// Receive-lag p99 and the p99 allowed (`metrics::recv_lag_allowance_ns`).
    pub recv_lag_p99_ms: f64,
    pub recv_lag_limit_ms: f64,
    /// The rate requests actually left at.
    pub sent_rps: Option<f64>,
    pub capped: u64,
    pub input_tokens_per_s: f64,
    pub output_tokens_per_s: f64,
    pub tokens_per_request: Option<f64>,
    pub cost: CostRow,
    pub status_codes: BTreeMap<String, u64>,
    pub error_kinds: BTreeMap<String, u64>,
    pub status: Status,
    pub sustainable: bool,
    pub verdict: String,
    pub reasons: Vec<Reason>,
    /// (percentile, latency ms of successes) at [`DISTRIBUTION_QUANTILES`].
    pub latency_distribution: Vec<(f64, f64)>,
    /// What the server's `/metrics` said about this step (`sweep --server-metrics`; filled by
    /// `server::attach` after [`build`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<super::server::ServerFigures>,
}

/// One offered rate with its repeats folded: means, as the study's tables.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RateRow {
    pub rate_index: usize,
    pub target_rps: f64,
    pub target_concurrency: Option<u32>,
    pub repeats: u32,
    pub requests: u64,
    pub throughput_rps: f64,
    pub served_rps: f64,
    pub goodput_rps: f64,
    pub slo_attainment: Option<f64>,
    pub success_ratio: f64,
    pub latency_ms: Ms,
    /// This and the token timings: means over the repeats that measured them (the charts draw
    /// the statistics SLO clauses name from them).
    pub service_ms: Option<Ms>,
    pub ttft_ms: Option<Ms>,
    pub itl_ms: Option<Ms>,
    pub tpot_ms: Option<Ms>,
    pub output_tokens_per_s: f64,
    pub cost: CostRow,
    /// Unsustainable if any repeat is, sustainable if every repeat is; when some repeats could
    /// not tell, the trend of all repeats pooled decides (`verdict::fold_repeats`).
    pub status: Status,
    pub sustainable: bool,
    /// The latency trend of the repeats pooled, and its 95% margin (ms per s).
    pub pooled_trend_ms_per_s: Option<f64>,
    pub pooled_trend_margin_ms_per_s: Option<f64>,
    /// Every request of every repeat succeeded (the study's "max RPS" criterion).
    pub all_succeeded: bool,
}

/// The headline: the highest sustainable rate (or concurrency).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    pub target_rps: f64,
    pub target_concurrency: Option<u32>,
    pub throughput_rps: f64,
    pub served_rps: f64,
    pub goodput_rps: f64,
    pub slo_attainment: Option<f64>,
    pub latency_p50_ms: f64,
    pub latency_p90_ms: f64,
    pub latency_p95_ms: f64,
    pub cost: CostRow,
}

impl Headline {
    /// The plan's level of the headline, as [`RateRow::level`].
    pub fn level(&self) -> f64 {
        self.target_concurrency.map_or(self.target_rps, f64::from)
    }

    /// `rate: 25 req/s` or `concurrency: 8 users`, after "highest sustainable".
    pub fn describe(&self) -> String {
        match self.target_concurrency {
            Some(_) => format!("concurrency: {}", Axis::Concurrency.fmt_level(self.level())),
            None => format!("rate: {}", Axis::Rate.fmt_level(self.level())),
        }
    }

    /// The headline figures of a rate row.
    pub fn of(r: &RateRow) -> Self {
        Headline {
            target_rps: r.target_rps,
            target_concurrency: r.target_concurrency,
            throughput_rps: r.throughput_rps,
            served_rps: r.served_rps,
            goodput_rps: r.goodput_rps,
            slo_attainment: r.slo_attainment,
            latency_p50_ms: r.latency_ms.p50,
            latency_p90_ms: r.latency_ms.p90,
            latency_p95_ms: r.latency_ms.p95,
            cost: r.cost,
        }
    }
}

/// Everything the reports show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepSummary {
    pub name: String,
    pub target: String,
    pub api: String,
    /// What the plan's levels are: rates, or closed-loop users.
    pub axis: Axis,
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
    /// How a search went (None: a grid sweep).
    pub search: Option<SearchSummary>,
    pub rates: Vec<RateRow>,
    pub steps: Vec<StepRow>,
    /// With several targets: each target judged on its own records by the same rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_target: Vec<TargetSummary>,
}

/// One target of a several-target sweep, judged alone: its levels are the plan's (the rate
/// offered to all targets together), its figures and verdicts from its own requests. The
/// rules need nothing else: arrival and served rates come from the records' own times, so
/// a target that got a third of the requests is held to a third of the rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetSummary {
    pub target: String,
    pub headline: Option<Headline>,
    pub rates: Vec<RateRow>,
}

/// What one step's records add up to.
#[derive(Debug, Clone, Default)]
pub struct StepData {
    pub metrics: Metrics,
    pub pace: PaceData,
    /// Requests judged one by one against the SLO.
    pub attainment: Attainment,
}

impl StepData {
    /// Empty, judging each request against `slo`.
    pub fn new(slo: &Slo) -> Self {
        Self {
            attainment: Attainment::new(slo),
            ..Self::default()
        }
    }

    /// Folds one record in.
    pub fn add(&mut self, r: &Record) {
        self.metrics.add(r);
        self.attainment.add(r);
        self.pace
            .add(r.intended_ns, r.sent_ns, r.latency, r.is_success());
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
    /// The same records by target URL, then step (empty unless the sweep had several).
    pub by_target: &'a BTreeMap<String, BTreeMap<u32, StepData>>,
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
    let max_inflight = Some(sc.file.attack.max_inflight() as u64);
    // Steps in run order, so a closed-loop level is compared with the levels already judged.
    let mut rows: Vec<StepRow> = Vec::new();
    let mut levels: Vec<scaling::Level> = Vec::new();
    for (idx, s) in &summaries {
        let Some(p) = planned.iter().find(|p| p.step == *idx) else {
            continue;
        };
        let data = &input.steps[idx];
        let closed_loop = p.concurrency.map(|users| {
            let here = scaling::Level {
                users,
                throughput_rps: s.throughput,
                successes: data.metrics.successes,
                latency_cv: data.metrics.latency_ok.cv(),
            };
            let below = level_below(&levels, users);
            levels.push(here);
            ClosedLoop { here, below }
        });
        rows.push(step_row(
            &StepInput {
                planned: p,
                data,
                summary: s,
                max_inflight: closed_loop.map_or(max_inflight, |c| Some(u64::from(c.here.users))),
                closed_loop,
            },
            &sc.rules,
            input.price,
            sc.tokens_per_request,
        ));
    }
    let mut rates = Vec::new();
    for (ri, &rps) in sc.levels().iter().enumerate() {
        let reps: Vec<&StepRow> = rows.iter().filter(|r| r.rate_index == ri).collect();
        if reps.is_empty() {
            continue;
        }
        let paces: Vec<&PaceData> = reps
            .iter()
            .filter_map(|r| input.steps.get(&r.step))
            .map(|d| &d.pace)
            .collect();
        let pooled = PaceData::pooled(&paces, sc.rules.max_slope());
        // The planned step says what the level is (a rate, or users with no rate).
        let load = planned
            .iter()
            .find(|p| p.rate_index == ri)
            .map_or((rps, None), |p| (p.rps, p.concurrency));
        rates.push(fold::rate_row(ri, load, &reps, pooled));
    }
    // A search's levels ran out of order; its rows, like a grid's, read from low to high.
    if sc.search.is_some() {
        rates.sort_by(|a, b| a.level().total_cmp(&b.level()));
    }
    let flags: Vec<(f64, Status)> = rates.iter().map(|r| (r.level(), r.status)).collect();
    let headline = verdict::headline(&flags).map(|i| Headline::of(&rates[i]));
    // The study's criterion is about offered rates; a closed loop has none.
    let study_max_rps = rates
        .iter()
        .filter(|r| r.all_succeeded && r.target_concurrency.is_none())
        .map(|r| r.target_rps)
        .max_by(f64::total_cmp);
    SweepSummary {
        name: sc.name.clone(),
        target: input.target.clone(),
        api: sc.api.clone(),
        axis: sc.axis,
        plan: sc.plan.spec().to_string(),
        step_duration_s: sc.step_duration.as_secs_f64(),
        repeat: sc.repeat,
        price: input.price.cloned(),
        rules: sc.rules.clone(),
        planned_steps: planned.len(),
        stopped_early: rows.len() < planned.len(),
        headline,
        study_max_rps,
        search: sc.search.map(|s| search::summarize(&s, &rates, &rows)),
        rates,
        steps: rows,
        by_target: (input.by_target.iter())
            .map(|(target, steps)| {
                let alone = build(&SweepInput {
                    target: target.clone(),
                    steps,
                    by_target: &BTreeMap::new(),
                    ..*input
                });
                TargetSummary {
                    target: target.clone(),
                    headline: alone.headline,
                    rates: alone.rates,
                }
            })
            .collect(),
    }
}

/// The closed-loop level a level of `users` is compared with: the nearest level of fewer
/// users that ran before it (a search may run a lower level after a higher one), its repeats
/// pooled.
fn level_below(levels: &[scaling::Level], users: u32) -> Option<scaling::Level> {
    let below = levels
        .iter()
        .map(|l| l.users)
        .filter(|&u| u < users)
        .max()?;
    let reps: Vec<scaling::Level> = levels
        .iter()
        .filter(|l| l.users == below)
        .copied()
        .collect();
    scaling::pooled(&reps)
}

impl RateRow {
    /// The plan's level of this row: its users on the concurrency axis, else its rate.
    pub fn level(&self) -> f64 {
        self.target_concurrency.map_or(self.target_rps, f64::from)
    }
}

impl StepRow {
    /// The plan's level of this row, as [`RateRow::level`].
    pub fn level(&self) -> f64 {
        self.target_concurrency.map_or(self.target_rps, f64::from)
    }
}

/// The verdict inputs of one step: its summary's success-only timings and its pace (or, in a
/// closed loop, its level against the one below).
pub fn figures(
    target_rps: f64,
    s: &Summary,
    pace: PaceEstimate,
    max_inflight: Option<u64>,
    closed_loop: Option<ClosedLoop>,
) -> StepFigures {
    let opt = |p: &Percentiles| (p.count > 0).then(|| Pcts::scaled(p, 1.0));
    StepFigures {
        offered_rps: target_rps,
        requests: s.requests,
        success_ratio: s.success,
        pace,
        send_lag_p99_ns: s.send_lag.p99 as f64,
        recv_lag_p99_ns: s.recv_lag.p99 as f64,
        recv_lag_limit_ns: s.recv_lag_allowance as f64,
        capped: s.capped,
        max_inflight,
        latency: Pcts::scaled(&s.latencies_ok, 1.0),
        service: opt(&s.service_ok),
        ttft: opt(&s.ttft),
        itl: opt(&s.itl),
        tpot: opt(&s.tpot),
        attainment: None,
        closed_loop,
    }
}

/// One step's inputs to its row.
struct StepInput<'a> {
    planned: &'a PlannedStep,
    data: &'a StepData,
    summary: &'a Summary,
    max_inflight: Option<u64>,
    closed_loop: Option<ClosedLoop>,
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
    let mut pace = input
        .data
        .pace
        .estimate(p.rps, s.success, rules.max_slope());
    if input.closed_loop.is_some() {
        // A closed loop sends as its answers come back: its throughput is what it served.
        pace.served_rps = s.throughput;
    }
    let mut fig = figures(p.rps, s, pace, input.max_inflight, input.closed_loop);
    let good = &input.data.attainment;
    fig.attainment = good.ratio();
    let verdict = verdict::judge(&fig, rules);
    let successes = m.successes;
    // Tokens per successful request times the served rate: the same window as the verdict.
    let per_success = |total: u64| {
        if successes == 0 {
            0.0
        } else {
            total as f64 / successes as f64
        }
    };
    let input_tps = pace.served_rps * per_success(s.tokens.input_total);
    // Good requests are successes, so they share the served rate's window.
    let goodput_rps = pace.served_rps * per_success(good.good);
    let good_tps = pace.served_rps * per_success(good.good_tokens);
    let output_tps = pace.served_rps * per_success(s.tokens.output_total);
    let measured_tpr = (successes > 0 && s.tokens.input_total + s.tokens.output_total > 0)
        .then(|| per_success(s.tokens.input_total + s.tokens.output_total));
    let latency_ms = Ms::scaled(&s.latencies_ok, NS_PER_MS);
    let cost = price
        .map(|price| {
            let c = StepCost::new(
                price.usd_per_hour,
                Throughputs {
                    requests_per_s: pace.served_rps,
                    input_tokens_per_s: input_tps,
                    output_tokens_per_s: output_tps,
                },
            );
            CostRow {
                usd_per_1k_tokens: c.usd_per_1k_tokens,
                usd_per_1m_tokens: c.usd_per_1k_tokens.map(|x| x * 1e3),
                usd_per_1k_output_tokens: c.usd_per_1k_output_tokens,
                usd_per_1k_requests: c.usd_per_1k_requests,
                usd_per_1k_good_tokens: cost::usd_per_1k(price.usd_per_hour, good_tps),
                // The study's formula prices an offered rate; a closed loop has none.
                study_usd_per_1k_tokens: tokens_per_request
                    .or(measured_tpr)
                    .filter(|_| p.concurrency.is_none())
                    .and_then(|t| cost::study_usd_per_1k_tokens(price.usd_per_hour, p.rps, t)),
                window_usd_p90: (successes > 0)
                    .then(|| cost::window_usd(price.usd_per_hour, latency_ms.p90 / 1e3)),
            }
        })
        .unwrap_or_default();
    let opt_ms = |p: &Percentiles| (p.count > 0).then(|| Ms::scaled(p, NS_PER_MS));
    StepRow {
        step: p.step,
        rate_index: p.rate_index,
        repeat: p.repeat,
        target_rps: p.rps,
        target_concurrency: p.concurrency,
        achieved_rps: s.rate,
        throughput_rps: s.throughput,
        served_rps: pace.served_rps,
        goodput_rps,
        slo_attainment: good.ratio(),
        scaling: input
            .closed_loop
            .and_then(|c| scaling::compare(&c.below?, &c.here)),
        requests: s.requests,
        errors: s.requests - successes,
        success_ratio: s.success,
        latency_ms,
        service_ms: opt_ms(&s.service_ok),
        ttft_ms: opt_ms(&s.ttft),
        itl_ms: opt_ms(&s.itl),
        tpot_ms: opt_ms(&s.tpot),
        latency_trend_ms_per_s: pace.slope.map(|b| b * 1e3),
        latency_trend_margin_ms_per_s: pace.slope_margin.map(|b| b * 1e3),
        trend_window: pace.window,
        trend_left_out: pace.left_out,
        send_lag_p99_ms: s.send_lag.p99 as f64 / 1e6,
        send_lag_limit_ms: fig.send_lag_limit_ns(rules) / 1e6,
        recv_lag_p99_ms: s.recv_lag.p99 as f64 / 1e6,
        recv_lag_limit_ms: s.recv_lag_allowance as f64 / 1e6,
        sent_rps: pace.sent_rps,
        capped: s.capped,
        input_tokens_per_s: input_tps,
        output_tokens_per_s: output_tps,
        tokens_per_request: measured_tpr,
        cost,
        status_codes: s.status_codes.clone(),
        error_kinds: s.error_kinds.clone(),
        status: verdict.status(),
        sustainable: verdict.sustainable(),
        verdict: verdict.describe(),
        reasons: verdict.reasons(),
        latency_distribution: DISTRIBUTION_QUANTILES
            .iter()
            .map(|&q| (q, m.latency_ok.quantile(q) as f64 / 1e6))
            .collect(),
        server: None,
    }
}

mod fold;
mod search;
#[cfg(test)]
mod tests;

pub use search::{SearchSummary, Spread};
