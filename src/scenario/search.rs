//! What a user writes to search instead of sweeping a grid (`--search`, `--precision`,
//! `--confirm`) and to judge by SLO attainment (`--slo-attainment`), checked into the values
//! `analysis::search` and the verdict use; and `probes`, the levels a search ran, which the
//! sweep writes back into the scenario as run so `report --sweep` rebuilds a search's steps
//! as it rebuilds any sweep's (the policy is not re-run on old data).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::plan::{Axis, RatePlan, fmt_rate};
use super::{RateSpec, ScenarioError, SweepSection, invalid};

/// What a search looks for, validated (the policy is `analysis::search`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Search {
    /// The lowest level, probed first.
    pub lo: f64,
    /// The highest level the search may probe.
    pub hi: f64,
    /// The widest bracket `(hi - lo) / lo` the search may answer with.
    pub precision: f64,
    /// Extra runs of the answer before it is final.
    pub confirm: u32,
    pub axis: Axis,
}

/// The precision a search stops at unless told: within 5% of the capacity.
pub const DEFAULT_PRECISION: f64 = 0.05;
/// The most confirmations one search may run.
pub const MAX_CONFIRM: u32 = 20;

/// A share: `5%` or `0.05` (in a file also a bare number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Fraction {
    Number(f64),
    Text(String),
}

impl FromStr for Fraction {
    type Err = std::convert::Infallible;

    /// The command line's form; checked with the rest of the scenario.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Fraction::Text(s.to_string()))
    }
}

impl fmt::Display for Fraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fraction::Number(x) => write!(f, "{x}"),
            Fraction::Text(t) => f.write_str(t),
        }
    }
}

impl Fraction {
    /// The share as a number: `5%` is 0.05, `0.05` is 0.05.
    pub fn value(&self, field: &'static str) -> Result<f64, ScenarioError> {
        let bad = |t: &str| {
            invalid(
                field,
                &format!(
                    "`{t}` is not a share; write a percentage like 5% or a fraction like 0.05"
                ),
            )
        };
        let x = match self {
            Fraction::Number(x) => *x,
            Fraction::Text(t) => {
                let s = t.trim();
                match s.strip_suffix('%') {
                    Some(p) => p.trim().parse::<f64>().map_err(|_| bad(t))? / 100.0,
                    None => s.parse::<f64>().map_err(|_| bad(t))?,
                }
            }
        };
        if !x.is_finite() {
            return Err(bad(&self.to_string()));
        }
        Ok(x)
    }
}

/// The search a `[sweep]` asks for (None: a grid sweep), with its bounds as the plan.
pub(super) fn check(
    sw: &SweepSection,
    axis: Axis,
    spec: &RateSpec,
) -> Result<Option<(Search, RatePlan)>, ScenarioError> {
    if sw.search != Some(true) {
        for (set, field) in [
            (sw.precision.is_some(), "precision"),
            (sw.confirm.is_some(), "confirm"),
            (sw.probes.is_some(), "probes"),
        ] {
            if set {
                return Err(invalid(
                    field,
                    "only a search has it; add --search (search = true in [sweep]) or drop it",
                ));
            }
        }
        return Ok(None);
    }
    let flag = match axis {
        Axis::Rate => "rps",
        Axis::Concurrency => "concurrency",
    };
    let (lo, hi) = match spec {
        RateSpec::Text(t) => RatePlan::parse_bounds(t).map_err(ScenarioError::Plan)?,
        RateSpec::List(v) => {
            return Err(invalid(
                flag,
                &format!(
                    "a search needs bounds A..B, got the list {spec}; write e.g. \"{}..{}\"",
                    fmt_rate(v.first().copied().unwrap_or(1.0)),
                    fmt_rate(v.last().copied().unwrap_or(100.0)),
                ),
            ));
        }
    };
    if axis == Axis::Concurrency && (lo.fract() != 0.0 || hi.fract() != 0.0) {
        return Err(invalid(
            "concurrency",
            &format!("search bounds are whole numbers of users, got {spec}; write e.g. 1..256"),
        ));
    }
    if sw.step.is_some() {
        return Err(invalid(
            "step",
            "a search chooses its own levels (doubling, then bisecting); drop --step",
        ));
    }
    if sw.repeat.is_some_and(|r| r > 1) {
        return Err(invalid(
            "repeat",
            "a search runs each probe once; use --confirm N to re-run its answer N times",
        ));
    }
    let precision = match &sw.precision {
        Some(p) => p.value("precision")?,
        None => DEFAULT_PRECISION,
    };
    if !(precision > 0.0 && precision <= 1.0) {
        return Err(invalid(
            "precision",
            &format!(
                "{}% must be above 0% and at most 100% (the widest bracket (hi - lo) / lo the search may answer with); e.g. --precision 5%",
                fmt_rate(precision * 100.0)
            ),
        ));
    }
    let confirm = sw.confirm.unwrap_or(0);
    if confirm > MAX_CONFIRM {
        return Err(invalid(
            "confirm",
            &format!("{confirm} is over the {MAX_CONFIRM} confirmations a search may run"),
        ));
    }
    if let Some(p) = &sw.probes
        && let Some(bad) = p.iter().find(|&&l| !(l >= lo && l <= hi))
    {
        return Err(invalid(
            "probes",
            &format!(
                "{} is outside the search's bounds {}..{}; `probes` is written by sweep --search, drop it to search again",
                fmt_rate(*bad),
                fmt_rate(lo),
                fmt_rate(hi)
            ),
        ));
    }
    let search = Search {
        lo,
        hi,
        precision,
        confirm,
        axis,
    };
    Ok(Some((search, RatePlan::search(lo, hi, precision))))
}

/// `--slo-attainment`: the share of requests that must meet every SLO clause, checked
/// against the SLO it needs.
pub(super) fn attainment(sw: &SweepSection, clauses: usize) -> Result<Option<f64>, ScenarioError> {
    let Some(f) = &sw.slo_attainment else {
        return Ok(None);
    };
    let x = f.value("slo_attainment")?;
    if !(x > 0.0 && x <= 1.0) {
        return Err(invalid(
            "slo_attainment",
            &format!(
                "{}% must be above 0% and at most 100% of requests; e.g. --slo-attainment 90%",
                fmt_rate(x * 100.0)
            ),
        ));
    }
    if clauses == 0 {
        return Err(invalid(
            "slo_attainment",
            "needs an SLO to judge each request against; add e.g. --slo 'ttft_p95<500ms,p95<2s'",
        ));
    }
    Ok(Some(x))
}

#[cfg(test)]
mod tests {
    use crate::scenario::ScenarioFile;

    fn check(sweep: &str) -> Result<crate::scenario::Scenario, String> {
        ScenarioFile::parse(
            &format!("target = \"http://127.0.0.1:9\"\n[sweep]\n{sweep}\n"),
            "s.toml",
        )
        .unwrap()
        .validate()
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_search_takes_bounds_precision_and_confirmations() {
        let s =
            check("rps = \"5..200\"\nsearch = true\nprecision = \"2.5%\"\nconfirm = 2").unwrap();
        let search = s.search.unwrap();
        assert_eq!((search.lo, search.hi, search.confirm), (5.0, 200.0, 2));
        assert!((search.precision - 0.025).abs() < 1e-12);
        assert_eq!(s.plan.spec(), "search 5..200 within 2.5%");
        assert!(s.steps().is_empty());
        let s = check("rps = \"5..200\"\nsearch = true\nprecision = 0.1").unwrap();
        assert!((s.search.unwrap().precision - 0.1).abs() < 1e-12);
    }

    #[test]
    fn bounds_it_cannot_bisect_are_refused_by_name() {
        let e = check("rps = \"5..5\"\nsearch = true").unwrap_err();
        assert!(e.contains("nothing to bisect between 5 and 5"), "{e}");
        let e = check("rps = \"10,20\"\nsearch = true").unwrap_err();
        assert!(e.contains("a search needs a range A..B"), "{e}");
        let e = check("rps = [10, 20]\nsearch = true").unwrap_err();
        assert!(e.starts_with("rps: a search needs bounds A..B"), "{e}");
        let e = check("rps = \"5..200\"\nstep = 5\nsearch = true").unwrap_err();
        assert!(e.starts_with("step: "), "{e}");
        let e = check("concurrency = \"1..2.5\"\nsearch = true").unwrap_err();
        assert!(e.starts_with("concurrency: "), "{e}");
        let e = check("rps = \"5..200\"\nsearch = true\nrepeat = 3").unwrap_err();
        assert!(e.contains("--confirm"), "{e}");
    }

    #[test]
    fn precisions_of_zero_or_over_all_are_refused() {
        for bad in ["\"0%\"", "0", "\"101%\"", "1.5", "\"-5%\"", "\"five\""] {
            let e = check(&format!(
                "rps = \"5..200\"\nsearch = true\nprecision = {bad}"
            ))
            .unwrap_err();
            assert!(e.starts_with("precision: "), "{bad}: {e}");
        }
        let e = check("rps = \"5..200\"\nprecision = \"5%\"").unwrap_err();
        assert!(e.contains("add --search"), "{e}");
    }

    #[test]
    fn slo_attainment_needs_a_share_and_an_slo() {
        let s = check("rps = \"10\"\nslo = \"p95<1s\"\nslo_attainment = \"90%\"").unwrap();
        assert_eq!(s.rules.slo_attainment, Some(0.9));
        let e = check("rps = \"10\"\nslo_attainment = 0.9").unwrap_err();
        assert!(e.contains("needs an SLO"), "{e}");
        let e = check("rps = \"10\"\nslo = \"p95<1s\"\nslo_attainment = \"0%\"").unwrap_err();
        assert!(e.starts_with("slo_attainment: 0% must be above 0%"), "{e}");
    }
}
