//! Two sweeps side by side (`rpload compare BASE NEW`): which levels both measured, the change
//! of each figure from BASE to NEW, and the regression rule that sets the exit status. Works on
//! two [`SweepSummary`] values only: no I/O, no clock, so the rule is tested without a run.
//!
//! NEW regresses when, by more than the tolerance (exactly at it is not a regression): its
//! headline level is lower (or it has none where BASE had one), its p95 latency at a level both
//! measured is higher, or its cost per 1K tokens at the headline or at such a level is higher.
//! Every other figure is shown, never judged: the served rate follows the level, and p50/p99
//! move with p95 but are noisier on short steps.

use crate::analysis::summary::{RateRow, SweepSummary};
use crate::analysis::verdict::Status;
use crate::scenario::plan::{Axis, fmt_rate};

/// Levels this close (relative) are the same level: plans parsed from `log:` specs or ranges
/// with a fractional step give the same rate with a different last bit.
pub const LEVEL_EPSILON: f64 = 1e-9;
/// The largest `--tolerance` (1000%): beyond it nothing could regress, which is a typo.
pub const MAX_TOLERANCE: f64 = 10.0;
/// Slack on the tolerance itself, so a change of exactly 10% computed as 0.10000000000000009 is
/// still "at" a 10% tolerance.
const TOLERANCE_SLACK: f64 = 1e-9;

/// Why two runs cannot be compared; each message names the field and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompareError {
    /// A path that is not a run folder (nor a file inside one).
    #[error(
        "{which} {path}: not a run folder (no {missing}); compare needs a folder written by `rpload sweep`, or a file inside one (summary.json, results.jsonl, steps.csv)"
    )]
    NotARun {
        which: &'static str,
        path: String,
        missing: &'static str,
    },
    /// One run is a rate sweep, the other a concurrency sweep.
    #[error(
        "BASE is a {} sweep and NEW a {} sweep: compare needs two runs on the same axis; re-run one with {}",
        axis_name(*base),
        axis_name(*new),
        axis_flag(*base)
    )]
    Axes { base: Axis, new: Axis },
    /// No level was measured by both runs.
    #[error(
        "BASE measured {}; NEW measured {}; compare needs at least one level both measured — re-run NEW with {} {}",
        list_levels(*axis, base),
        list_levels(*axis, new),
        axis_flag(*axis),
        plan_spec(base)
    )]
    NoCommonLevel {
        axis: Axis,
        base: Vec<f64>,
        new: Vec<f64>,
    },
    /// `--tolerance` that is not a number, negative, or over 1000%.
    #[error("--tolerance {text:?}: {why}; write a share such as 10% or 0.1 (0 to 1000%)")]
    Tolerance { text: String, why: &'static str },
}

fn axis_name(axis: Axis) -> &'static str {
    match axis {
        Axis::Rate => "rate (--rps)",
        Axis::Concurrency => "concurrency (--concurrency)",
    }
}

fn axis_flag(axis: Axis) -> &'static str {
    match axis {
        Axis::Rate => "--rps",
        Axis::Concurrency => "--concurrency",
    }
}

/// `10, 25, 40 req/s` (the unit once, after the last level).
fn list_levels(axis: Axis, levels: &[f64]) -> String {
    match levels.split_last() {
        None => "no level (no step ran)".into(),
        Some((last, rest)) => {
            let mut parts: Vec<String> = rest.iter().map(|l| fmt_rate(*l)).collect();
            parts.push(axis.fmt_level(*last));
            parts.join(", ")
        }
    }
}

/// `10,25,40`: a plan that measures exactly these levels.
fn plan_spec(levels: &[f64]) -> String {
    levels
        .iter()
        .map(|l| fmt_rate(*l))
        .collect::<Vec<_>>()
        .join(",")
}

/// How much worse NEW may be, as a share (0.1 = 10%).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance(pub f64);

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance(0.1)
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}%", fmt_rate((self.0 * 1e4).round() / 1e2))
    }
}

impl std::str::FromStr for Tolerance {
    type Err = CompareError;

    /// `10%` or `0.1`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |why| CompareError::Tolerance {
            text: text.to_string(),
            why,
        };
        let t = text.trim();
        let (number, scale) = match t.strip_suffix('%') {
            Some(n) => (n.trim(), 0.01),
            None => (t, 1.0),
        };
        let v: f64 = number.parse().map_err(|_| err("not a number"))?;
        let v = v * scale;
        if !v.is_finite() {
            return Err(err("not a number"));
        }
        if v < 0.0 {
            return Err(err("negative (NEW could never pass)"));
        }
        if v > MAX_TOLERANCE + TOLERANCE_SLACK {
            return Err(err("over 1000% (nothing could regress)"));
        }
        Ok(Tolerance(v))
    }
}

/// One figure in both runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delta {
    pub base: f64,
    pub new: f64,
}

impl Delta {
    /// The change from BASE to NEW as a share of BASE (0.5 = +50%); None when BASE is 0 or a
    /// figure is not finite.
    pub fn change(&self) -> Option<f64> {
        (self.base != 0.0 && self.base.is_finite() && self.new.is_finite())
            .then(|| (self.new - self.base) / self.base)
    }

    /// NEW is higher than BASE by more than `tol` (worse, for a latency or a cost).
    pub fn higher_beyond(&self, tol: Tolerance) -> bool {
        self.change().is_some_and(|c| c > tol.0 + TOLERANCE_SLACK)
    }

    /// NEW is lower than BASE by more than `tol` (worse, for a sustainable level).
    pub fn lower_beyond(&self, tol: Tolerance) -> bool {
        self.change().is_some_and(|c| -c > tol.0 + TOLERANCE_SLACK)
    }
}

/// Both figures when both runs have one.
fn both(base: Option<f64>, new: Option<f64>) -> Option<Delta> {
    Some(Delta {
        base: base?,
        new: new?,
    })
}

/// The headlines of both runs (each None when that run had no sustainable level).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadlinePair {
    pub base: Option<f64>,
    pub new: Option<f64>,
    /// The rest only when both runs have a headline.
    pub level: Option<Delta>,
    pub served_rps: Option<Delta>,
    pub p50_ms: Option<Delta>,
    pub p95_ms: Option<Delta>,
    /// Only when both runs have a price.
    pub usd_per_1k_tokens: Option<Delta>,
}

/// A level both runs measured.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedLevel {
    pub level: f64,
    pub base_status: Status,
    pub new_status: Status,
    pub p50_ms: Delta,
    pub p95_ms: Delta,
    pub p99_ms: Delta,
    /// Only when both runs measured TTFT (streaming APIs).
    pub ttft_p95_ms: Option<Delta>,
    /// Only when both runs have a price and a successful request at this level.
    pub usd_per_1k_tokens: Option<Delta>,
}

/// Which figure regressed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Figure {
    /// The highest sustainable level.
    Headline,
    /// NEW has no sustainable level where BASE had one.
    HeadlineLost,
    /// Cost per 1K tokens at the headline.
    HeadlineCost,
    /// p95 latency at a matched level.
    P95At(f64),
    /// Cost per 1K tokens at a matched level.
    CostAt(f64),
}

/// A figure of NEW worse than BASE's by more than the tolerance.
#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    pub figure: Figure,
    /// BASE and NEW (for [`Figure::HeadlineLost`], BASE's level and NaN).
    pub delta: Delta,
}

/// Everything `compare` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub axis: Axis,
    pub tolerance: Tolerance,
    pub headline: HeadlinePair,
    /// In ascending level order.
    pub matched: Vec<MatchedLevel>,
    /// Levels only one run measured (not compared).
    pub base_only: Vec<f64>,
    pub new_only: Vec<f64>,
    pub regressions: Vec<Regression>,
}

impl Comparison {
    /// NEW regressed beyond the tolerance (exit status 1).
    pub fn regressed(&self) -> bool {
        !self.regressions.is_empty()
    }
}

/// The two levels are the same level (within [`LEVEL_EPSILON`], relative).
pub fn same_level(a: f64, b: f64) -> bool {
    (a - b).abs() <= LEVEL_EPSILON * a.abs().max(b.abs())
}

/// The measured levels of a run, ascending.
fn levels(s: &SweepSummary) -> Vec<f64> {
    let mut v: Vec<f64> = s.rates.iter().map(RateRow::level).collect();
    v.sort_by(f64::total_cmp);
    v.dedup_by(|a, b| same_level(*a, *b));
    v
}

/// Pairs of rate rows at the levels both runs measured, ascending.
pub fn match_levels<'a>(
    base: &'a SweepSummary,
    new: &'a SweepSummary,
) -> Vec<(&'a RateRow, &'a RateRow)> {
    let mut pairs: Vec<(&RateRow, &RateRow)> = base
        .rates
        .iter()
        .filter_map(|b| {
            new.rates
                .iter()
                .find(|n| same_level(b.level(), n.level()))
                .map(|n| (b, n))
        })
        .collect();
    pairs.sort_by(|a, b| a.0.level().total_cmp(&b.0.level()));
    pairs
}

/// Compares NEW with BASE; refuses runs on different axes or with no level in common.
pub fn compare(
    base: &SweepSummary,
    new: &SweepSummary,
    tolerance: Tolerance,
) -> Result<Comparison, CompareError> {
    if base.axis != new.axis {
        return Err(CompareError::Axes {
            base: base.axis,
            new: new.axis,
        });
    }
    let pairs = match_levels(base, new);
    if pairs.is_empty() {
        return Err(CompareError::NoCommonLevel {
            axis: base.axis,
            base: levels(base),
            new: levels(new),
        });
    }
    let priced = base.price.is_some() && new.price.is_some();
    let matched: Vec<MatchedLevel> = pairs
        .iter()
        .map(|(b, n)| MatchedLevel {
            level: b.level(),
            base_status: b.status,
            new_status: n.status,
            p50_ms: Delta {
                base: b.latency_ms.p50,
                new: n.latency_ms.p50,
            },
            p95_ms: Delta {
                base: b.latency_ms.p95,
                new: n.latency_ms.p95,
            },
            p99_ms: Delta {
                base: b.latency_ms.p99,
                new: n.latency_ms.p99,
            },
            ttft_p95_ms: both(b.ttft_ms.map(|m| m.p95), n.ttft_ms.map(|m| m.p95)),
            usd_per_1k_tokens: both(b.cost.usd_per_1k_tokens, n.cost.usd_per_1k_tokens)
                .filter(|_| priced),
        })
        .collect();
    let (bh, nh) = (base.headline.as_ref(), new.headline.as_ref());
    let pair = |f: fn(&crate::analysis::summary::Headline) -> Option<f64>| {
        both(bh.and_then(f), nh.and_then(f))
    };
    let headline = HeadlinePair {
        base: bh.map(|h| h.level()),
        new: nh.map(|h| h.level()),
        level: pair(|h| Some(h.level())),
        served_rps: pair(|h| Some(h.served_rps)),
        p50_ms: pair(|h| Some(h.latency_p50_ms)),
        p95_ms: pair(|h| Some(h.latency_p95_ms)),
        usd_per_1k_tokens: pair(|h| h.cost.usd_per_1k_tokens).filter(|_| priced),
    };
    let regressions = regressions(&headline, &matched, tolerance);
    let only = |s: &SweepSummary, other: &SweepSummary| {
        levels(s)
            .into_iter()
            .filter(|l| !levels(other).iter().any(|o| same_level(*l, *o)))
            .collect()
    };
    Ok(Comparison {
        axis: base.axis,
        tolerance,
        headline,
        base_only: only(base, new),
        new_only: only(new, base),
        matched,
        regressions,
    })
}

/// The regression rule (module docs), headline first, then level by level.
pub fn regressions(
    headline: &HeadlinePair,
    matched: &[MatchedLevel],
    tol: Tolerance,
) -> Vec<Regression> {
    let mut out = Vec::new();
    match (headline.base, headline.new) {
        (Some(base), None) => out.push(Regression {
            figure: Figure::HeadlineLost,
            delta: Delta {
                base,
                new: f64::NAN,
            },
        }),
        _ => {
            if let Some(d) = headline.level.filter(|d| d.lower_beyond(tol)) {
                out.push(Regression {
                    figure: Figure::Headline,
                    delta: d,
                });
            }
        }
    }
    if let Some(d) = headline.usd_per_1k_tokens.filter(|d| d.higher_beyond(tol)) {
        out.push(Regression {
            figure: Figure::HeadlineCost,
            delta: d,
        });
    }
    for m in matched {
        if m.p95_ms.higher_beyond(tol) {
            out.push(Regression {
                figure: Figure::P95At(m.level),
                delta: m.p95_ms,
            });
        }
        if let Some(d) = m.usd_per_1k_tokens.filter(|d| d.higher_beyond(tol)) {
            out.push(Regression {
                figure: Figure::CostAt(m.level),
                delta: d,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
