//! Scenarios: one experiment a user can copy, and everything that decides how it is judged.
//! [`ScenarioFile`] (the TOML, parsed strictly, layered under the command line) is validated
//! into a [`Scenario`] before anything touches the network. This module also owns the parts a
//! user writes that the judging reads: [`plan`] (rate plans), [`slo`] (objectives), [`rules`]
//! (the verdict's thresholds), and [`caret`] (errors that point at the bad character).
//!
//! Below `analysis`, `sweep` and `report`, which read it; above `attack` (whose options it
//! holds), `server` (the `[serve]` table) and `cost` (prices). Must not touch the network;
//! prices are resolved through [`Scenario::resolve_price`].
//!
//! ```toml
//! name = "RedPajama-3B classification on TGI"
//! target = "http://127.0.0.1:8080"
//! api = "tgi"
//! prompts = "prompts/news-classification.jsonl"
//! max_new_tokens = 20
//! timeout = "30s"
//!
//! [sweep]
//! rps = "5..135"
//! step = 10
//! step_duration = "1s"
//! repeat = 3
//! cooldown = "4s"
//! slo = "p90<30s"
//!
//! [cost]
//! instance = "g5.4xlarge"
//! tokens_per_request = 104
//! ```

use std::time::Duration;

pub mod caret;
mod file;
pub mod plan;
#[cfg(test)]
mod prop_tests;
pub mod rules;
pub mod search;
pub mod slo;

pub use file::{CostSection, RateSpec, ScenarioFile, SweepSection};

use crate::attack::api::ApiKind;
use crate::cost::{Catalog, CostError, Price};
use caret::CaretError;
use plan::{Axis, RatePlan};
use rules::VerdictRules;
use search::Search;
use slo::{Family, Slo};

/// Everything that can be wrong with a scenario, found before the first request.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("reading scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Toml {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{0}")]
    Plan(CaretError),
    #[error("{0}")]
    Slo(CaretError),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Cost(#[from] CostError),
}

impl ScenarioFile {
    /// Checks every field and builds the validated scenario. Prices are left to
    /// [`Scenario::resolve_price`] so that `report` can rebuild without the catalog.
    pub fn validate(&self) -> Result<Scenario, ScenarioError> {
        let sw = &self.sweep;
        let (axis, spec) = match (&sw.rps, &sw.concurrency) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "concurrency",
                    "a sweep steps either the rate (rps) or the number of users (concurrency), not both; drop one",
                ));
            }
            (Some(r), None) => (Axis::Rate, r),
            (None, Some(c)) => (Axis::Concurrency, c),
            (None, None) => {
                return Err(invalid(
                    "rps",
                    "no rate plan: pass --rps 10..150 --step 15 (or a list 10,20,40, or log:1..1000:12), or --concurrency 1,2,4,8 for a closed loop",
                ));
            }
        };
        let search = search::check(sw, axis, spec)?;
        let plan = match &search {
            Some((_, bounds)) => bounds.clone(),
            None => match spec {
                RateSpec::Text(t) => RatePlan::parse(t, sw.step),
                RateSpec::List(v) => RatePlan::from_rates(v),
            }
            .map_err(ScenarioError::Plan)?,
        };
        let plan = match axis {
            Axis::Rate => plan,
            Axis::Concurrency => {
                let plan = plan.whole_log_levels();
                check_users(&plan, self.attack.max_inflight)?;
                plan
            }
        };
        let slo = Slo::parse(sw.slo.as_deref().unwrap_or("")).map_err(ScenarioError::Slo)?;
        let slo_attainment = search::attainment(sw, slo.clauses.len())?;
        let step_duration = opt_duration("step_duration", sw.step_duration.as_deref(), "10s")?;
        if step_duration.is_zero() {
            return Err(invalid(
                "step_duration",
                "must be above zero, e.g. 10s (or 1s for the study's bursts)",
            ));
        }
        let repeat = sw.repeat.unwrap_or(1);
        if repeat == 0 {
            return Err(invalid("repeat", "must be at least 1"));
        }
        let max_send_lag = match sw.max_send_lag.as_deref() {
            Some(text) => Some(opt_duration("max_send_lag", Some(text), "0s")?),
            None => None,
        };
        let api = self.attack.api().to_string();
        check_slo_measurable(&slo, &api, self.attack.stream)?;
        if let Some(f) = sw.fail_under {
            let top = plan.rates().iter().copied().fold(0.0, f64::max);
            if !(f.is_finite() && f >= 0.0 && f <= top) {
                let what = match axis {
                    Axis::Rate => "a rate between 0 and the plan's top rate",
                    Axis::Concurrency => "a concurrency between 0 and the plan's top level",
                };
                return Err(invalid(
                    "fail_under",
                    &format!("--fail-under {f} must be {what} {}", axis.fmt_level(top)),
                ));
            }
        }
        if let Some(t) = (self.attack.target.iter())
            .find(|t| !(t.starts_with("http://") || t.starts_with("https://")))
        {
            return Err(invalid(
                "target",
                &format!("`{t}` must start with http:// or https://"),
            ));
        }
        let timeout = opt_duration("timeout", Some(self.attack.timeout()), "30s")?;
        if timeout.is_zero() {
            return Err(invalid("timeout", "must be above zero, e.g. 30s"));
        }
        if self.attack.max_inflight == Some(0) {
            return Err(invalid("max_inflight", "must be at least 1"));
        }
        if let Some(t) = self.cost.tokens_per_request
            && !(t.is_finite() && t > 0.0)
        {
            return Err(invalid(
                "tokens_per_request",
                &format!("must be positive, got {t}"),
            ));
        }
        Ok(Scenario {
            name: self.attack.name.clone().unwrap_or_else(|| "sweep".into()),
            target: self.attack.target.clone(),
            api,
            timeout,
            axis,
            plan,
            step_duration,
            warmup: opt_duration("warmup", sw.warmup.as_deref(), "0s")?,
            initial_warmup: opt_duration(
                "initial_warmup",
                sw.initial_warmup.as_deref(),
                DEFAULT_INITIAL_WARMUP,
            )?,
            cooldown: opt_duration("cooldown", sw.cooldown.as_deref(), "2s")?,
            repeat,
            early_stop: sw.early_stop.unwrap_or(true),
            fail_under: sw.fail_under,
            rules: VerdictRules {
                max_send_lag,
                slo,
                slo_attainment,
                ..VerdictRules::default()
            },
            tokens_per_request: self.cost.tokens_per_request,
            probes: sw.probes.clone().unwrap_or_default(),
            search: search.map(|(s, _)| s),
            file: self.clone(),
        })
    }
}

/// The warm-up before a sweep's first step: long enough for a fresh GPU server's kernel JIT
/// and the client's connections, short against a sweep.
pub const DEFAULT_INITIAL_WARMUP: &str = "2s";

/// TTFT, ITL and TPOT need a token stream; an SLO on them against an API that sends none would
/// fail every step for want of data, so it is refused before any request.
fn check_slo_measurable(slo: &Slo, api: &str, stream: bool) -> Result<(), ScenarioError> {
    let streams = match api.parse::<ApiKind>() {
        Ok(kind) => kind.streams(stream),
        // An unknown API is reported by the attacker's own check, with the list of names.
        Err(_) => return Ok(()),
    };
    for clause in &slo.clauses {
        if matches!(clause.family, Family::Ttft | Family::Itl | Family::Tpot) && !streams {
            return Err(invalid(
                "slo",
                &format!(
                    "`{clause}` needs token timings, which --api {api} does not stream; use --api tgi-stream, or --stream with an openai api, or drop the clause"
                ),
            ));
        }
    }
    Ok(())
}

/// A validated scenario: what `sweep` runs and `report --sweep` re-renders.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    /// Empty: start the embedded server. Several: replicas the requests are spread over.
    pub target: Vec<String>,
    pub api: String,
    pub timeout: Duration,
    /// Whether the plan's levels are rates or users.
    pub axis: Axis,
    pub plan: RatePlan,
    pub step_duration: Duration,
    pub warmup: Duration,
    pub initial_warmup: Duration,
    pub cooldown: Duration,
    pub repeat: u32,
    pub early_stop: bool,
    pub rules: VerdictRules,
    /// Exit 1 below this headline (req/s, or users on the concurrency axis).
    pub fail_under: Option<f64>,
    pub tokens_per_request: Option<f64>,
    /// A search instead of a grid (`--search`): the plan is then its bounds.
    pub search: Option<Search>,
    /// The levels a search has run, in order (repeats are its confirmations).
    pub probes: Vec<f64>,
    /// The merged file this came from (written as `scenario.toml`).
    pub file: ScenarioFile,
}

impl Scenario {
    /// The price from `[cost]`: `price_per_hour` if given (the instance name is then a label),
    /// else the instance looked up in the built-in catalog plus `pricing` files. None when
    /// neither is set (the run is then not costed).
    pub fn resolve_price(&self) -> Result<Option<Price>, ScenarioError> {
        let c = &self.file.cost;
        match (&c.instance, c.price_per_hour) {
            (None, None) => Ok(None),
            (Some(name), Some(p)) => {
                let mut price = Price::resolve(&Catalog::default(), None, Some(p))?;
                price.instance = name.clone();
                Ok(Some(price))
            }
            (inst, p) => {
                let catalog = Catalog::with_files(&c.pricing)?;
                Ok(Some(Price::resolve(&catalog, inst.as_deref(), p)?))
            }
        }
    }

    /// The plan's levels in run order, each once: the plan's rates, or a search's probes.
    pub fn levels(&self) -> Vec<f64> {
        if self.search.is_none() {
            return self.plan.rates().to_vec();
        }
        let mut out: Vec<f64> = Vec::new();
        for &l in &self.probes {
            if !out.contains(&l) {
                out.push(l);
            }
        }
        out
    }

    /// Steps in run order: (step index, level index, repeat index, offered rps or users). A
    /// search's steps are its probes so far; a level probed again is its next repeat.
    pub fn steps(&self) -> Vec<PlannedStep> {
        let levels = self.levels();
        let order: Vec<(usize, u32)> = if self.search.is_some() {
            let mut runs = vec![0u32; levels.len()];
            self.probes
                .iter()
                .map(|l| {
                    let ri = levels
                        .iter()
                        .position(|x| x == l)
                        .expect("a probe is a level");
                    runs[ri] += 1;
                    (ri, runs[ri] - 1)
                })
                .collect()
        } else {
            (0..levels.len())
                .flat_map(|ri| (0..self.repeat).map(move |rep| (ri, rep)))
                .collect()
        };
        order
            .into_iter()
            .enumerate()
            .map(|(step, (ri, repeat))| {
                let (rps, concurrency) = match self.axis {
                    Axis::Rate => (levels[ri], None),
                    // Whole numbers, checked by `check_users` and `search::check`.
                    Axis::Concurrency => (0.0, Some(levels[ri] as u32)),
                };
                PlannedStep {
                    step: step as u32,
                    rate_index: ri,
                    repeat,
                    rps,
                    concurrency,
                }
            })
            .collect()
    }
}

/// One step of the plan: a level and which repeat of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedStep {
    pub step: u32,
    pub rate_index: usize,
    pub repeat: u32,
    /// The offered rate; 0 on the concurrency axis (a closed loop has none).
    pub rps: f64,
    /// Users of a closed-loop step (`--concurrency`); None for a rate step.
    pub concurrency: Option<u32>,
}

impl PlannedStep {
    /// The first step of a search: its lower bound.
    pub fn first(s: &Search) -> Self {
        let (rps, concurrency) = match s.axis {
            Axis::Rate => (s.lo, None),
            Axis::Concurrency => (0.0, Some(s.lo as u32)),
        };
        Self {
            step: 0,
            rate_index: 0,
            repeat: 0,
            rps,
            concurrency,
        }
    }

    /// The plan's level this step runs: its rate, or its users.
    pub fn level(&self) -> f64 {
        self.concurrency.map_or(self.rps, f64::from)
    }
}

/// A concurrency plan's levels are whole numbers of users the attacker can hold in flight,
/// and the plan sets the in-flight count itself.
fn check_users(plan: &RatePlan, max_inflight: Option<usize>) -> Result<(), ScenarioError> {
    let max = crate::attack::setup::MAX_INFLIGHT as f64;
    if let Some(&bad) = plan.rates().iter().find(|&&n| n.fract() != 0.0 || n > max) {
        return Err(invalid(
            "concurrency",
            &format!(
                "{bad} is not a whole number of users from 1 to {max}; write e.g. 1,2,4,8 or 1..64 with --step 8"
            ),
        ));
    }
    if max_inflight.is_some() {
        return Err(invalid(
            "max_inflight",
            "a concurrency sweep sets the in-flight count of each step to its users; drop --max-inflight",
        ));
    }
    Ok(())
}

pub(crate) fn invalid(field: &'static str, message: &str) -> ScenarioError {
    ScenarioError::Invalid {
        field,
        message: message.to_string(),
    }
}

fn opt_duration(
    field: &'static str,
    text: Option<&str>,
    default: &str,
) -> Result<Duration, ScenarioError> {
    parse_duration(text.unwrap_or(default)).map_err(|m| invalid(field, &m))
}

/// `10s`, `500ms`, `1.5s`, `2m`, `1m30s`, `0` (zero needs no unit): the attacker's Go-style
/// durations ([`crate::pacer::parse_duration`]), with messages that say how to fix a field.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if !t.is_empty() && t != "0" && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("`{text}` needs a unit: write e.g. {t}s"));
    }
    crate::pacer::parse_duration(t).map_err(|_| {
        format!(
            "`{text}` is not a duration; write e.g. 10s, 500ms or 2m (units ns, us, ms, s, m, h)"
        )
    })
}

#[cfg(test)]
mod tests;
