//! What prices buy: cost per 1K tokens / output tokens / requests, the seed study's own
//! formulas, and capacity plans (instances for a target load, monthly cost at 730 h). Where
//! prices come from is [`catalog`]'s; finding instances by GPU and suggesting names is
//! [`gpu`]'s.
//!
//! Pure arithmetic over numbers handed in (no clock, no network). Units sit in the names:
//! `usd_per_hour`, `tokens_per_s`, `rps`.

use serde::{Deserialize, Serialize};

/// Hours in a month for monthly cost (AWS's convention: 365 x 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

mod catalog;
mod gpu;

pub use catalog::{
    BUILTIN_CATALOG, Catalog, CostError, DEFAULT_REGION, Instance, Price, edit_distance,
};
pub use gpu::{Suggestion, gpu_model, matches_gpu};

/// USD per 1K units when an instance at `usd_per_hour` processes `units_per_s`:
/// `P / 3600 / T * 1000`. `None` when nothing was processed (the cost is unbounded).
pub fn usd_per_1k(usd_per_hour: f64, units_per_s: f64) -> Option<f64> {
    (units_per_s > 0.0 && units_per_s.is_finite())
        .then(|| usd_per_hour / 3600.0 / units_per_s * 1000.0)
}

/// The study's formula: it assumes the server answers the *offered* rate for an hour, each
/// request carrying `tokens_per_request` tokens (input + output):
/// `P x 1000 / (rps x tokens_per_request x 3600)`.
pub fn study_usd_per_1k_tokens(
    usd_per_hour: f64,
    offered_rps: f64,
    tokens_per_request: f64,
) -> Option<f64> {
    usd_per_1k(usd_per_hour, offered_rps * tokens_per_request)
}

/// The study's "cost to get responses on N requests in L seconds": the instance's price for
/// the `latency_s` window, `P / 3600 x L`.
pub fn window_usd(usd_per_hour: f64, latency_s: f64) -> f64 {
    usd_per_hour / 3600.0 * latency_s
}

/// Throughputs of one step, as measured (successful requests only).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Throughputs {
    pub requests_per_s: f64,
    pub input_tokens_per_s: f64,
    pub output_tokens_per_s: f64,
}

/// The costs of one step at one price.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct StepCost {
    pub usd_per_1k_tokens: Option<f64>,
    pub usd_per_1k_output_tokens: Option<f64>,
    pub usd_per_1k_requests: Option<f64>,
}

impl StepCost {
    pub fn new(usd_per_hour: f64, t: Throughputs) -> Self {
        Self {
            usd_per_1k_tokens: usd_per_1k(
                usd_per_hour,
                t.input_tokens_per_s + t.output_tokens_per_s,
            ),
            usd_per_1k_output_tokens: usd_per_1k(usd_per_hour, t.output_tokens_per_s),
            usd_per_1k_requests: usd_per_1k(usd_per_hour, t.requests_per_s),
        }
    }
}

/// Instances needed for `target_rps` when one sustains `per_instance_rps`, with `headroom`
/// (1.2 = 20% spare): `ceil(target / per_instance x headroom)`. A relative tolerance of 1e-9
/// keeps float noise (300 x 1.2 / 30 = 12.000000000000002) from adding an instance.
pub fn instances_needed(target_rps: f64, per_instance_rps: f64, headroom: f64) -> Option<u64> {
    if !(per_instance_rps > 0.0 && target_rps >= 0.0 && headroom > 0.0) {
        return None;
    }
    let exact = target_rps / per_instance_rps * headroom;
    let rounded = exact.round();
    let n = if (exact - rounded).abs() <= 1e-9 * rounded.max(1.0) {
        rounded
    } else {
        exact.ceil()
    };
    Some(n.max(1.0) as u64)
}

/// One option of a capacity plan: a run measured on one instance type, scaled out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRow {
    /// Where the measurement came from (a run folder).
    pub run: String,
    pub instance: String,
    pub usd_per_hour: f64,
    /// Highest sustainable rate measured on one instance.
    pub sustainable_rps: f64,
    pub instances: u64,
    pub usd_per_hour_total: f64,
    pub usd_per_month: f64,
    /// Cost per 1K tokens at the sustainable step (one instance; scaling out keeps it).
    pub usd_per_1k_tokens: Option<f64>,
}

/// What one measured run offers to the planner.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInput {
    pub run: String,
    pub price: Price,
    pub sustainable_rps: f64,
    pub usd_per_1k_tokens: Option<f64>,
}

/// Scales each input to `target_rps`; rows sorted cheapest per month first (ties by name).
/// Inputs with nothing sustainable are left out.
pub fn plan(inputs: &[PlanInput], target_rps: f64, headroom: f64) -> Vec<PlanRow> {
    let mut rows: Vec<PlanRow> = inputs
        .iter()
        .filter_map(|i| {
            let instances = instances_needed(target_rps, i.sustainable_rps, headroom)?;
            let total = instances as f64 * i.price.usd_per_hour;
            Some(PlanRow {
                run: i.run.clone(),
                instance: i.price.instance.clone(),
                usd_per_hour: i.price.usd_per_hour,
                sustainable_rps: i.sustainable_rps,
                instances,
                usd_per_hour_total: total,
                usd_per_month: total * HOURS_PER_MONTH,
                usd_per_1k_tokens: i.usd_per_1k_tokens,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        a.usd_per_month
            .total_cmp(&b.usd_per_month)
            .then_with(|| a.instance.cmp(&b.instance))
            .then_with(|| a.run.cmp(&b.run))
    });
    rows
}

/// Formats `x` with `sig` significant digits in plain decimal (no exponent), as the study
/// prints costs: `fmt_sig(3.2130e-5, 3) == "0.0000321"`.
pub fn fmt_sig(x: f64, sig: usize) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (sig as i32 - 1 - magnitude).max(0) as usize;
    format!("{x:.decimals$}")
}

/// Formats a USD amount with thousands separators and cents: `11855.2 -> "11,855.20"`.
pub fn fmt_usd(x: f64) -> String {
    let cents = format!("{:.2}", x.abs());
    let (int, frac) = cents.split_once('.').unwrap_or((&cents, "00"));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if x < 0.0 { "-" } else { "" };
    format!("{sign}{grouped}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const A10G: f64 = 1.624;

    #[test]
    fn the_study_figure_for_135_rps_and_104_tokens() {
        let c = study_usd_per_1k_tokens(A10G, 135.0, 104.0).unwrap();
        assert_eq!(fmt_sig(c, 3), "0.0000321");
    }

    /// Section 1.6 of the reference: the study's formula at T = 104 (classification) and
    /// T = 150 (summarization) for every RedPajama table row.
    #[test]
    fn study_formula_matches_every_table_row() {
        let rows = [
            (4.0, 104.0, "0.00108"),
            (135.0, 104.0, "0.0000321"),
            (125.0, 104.0, "0.0000347"),
            (160.0, 150.0, "0.0000188"),
            (195.0, 150.0, "0.0000154"),
            (145.0, 150.0, "0.0000207"),
        ];
        for (rps, t, want) in rows {
            let c = study_usd_per_1k_tokens(A10G, rps, t).unwrap();
            assert_eq!(fmt_sig(c, 3), want, "rps {rps} tokens {t}");
        }
        // The later code's CSV check: 30 rps -> 0.0001445869.
        let c = study_usd_per_1k_tokens(A10G, 30.0, 104.0).unwrap();
        assert!((c - 0.0001445869).abs() < 1e-10, "{c}");
    }

    #[test]
    fn window_cost_matches_the_study_sentences() {
        // "US$0.0006 to get responses on 135 requests in 1.44 seconds"
        assert_eq!(fmt_sig(window_usd(A10G, 1.44), 2), "0.00065");
        assert_eq!(fmt_sig(window_usd(A10G, 3.98), 2), "0.0018");
        assert_eq!(fmt_sig(window_usd(A10G, 0.7139), 2), "0.00032");
        assert_eq!(fmt_sig(window_usd(A10G, 28.4), 3), "0.0128");
    }

    #[test]
    fn measured_throughput_costs() {
        // Reference 1.6: with measured throughput instead, 3B cls TGI (57.37 req/s x 104
        // tokens) costs 7.6e-5 USD per 1K tokens.
        let t = Throughputs {
            requests_per_s: 57.37,
            input_tokens_per_s: 57.37 * 100.0,
            output_tokens_per_s: 57.37 * 4.0,
        };
        let c = StepCost::new(A10G, t);
        assert_eq!(fmt_sig(c.usd_per_1k_tokens.unwrap(), 2), "0.000076");
        assert_eq!(fmt_sig(c.usd_per_1k_output_tokens.unwrap(), 3), "0.00197");
        assert_eq!(fmt_sig(c.usd_per_1k_requests.unwrap(), 3), "0.00786");
        let none = StepCost::new(A10G, Throughputs::default());
        assert_eq!(none.usd_per_1k_tokens, None);
    }

    #[test]
    fn plan_matches_the_issue_example() {
        let input = PlanInput {
            run: "run-a".into(),
            price: Price::resolve(&Catalog::builtin(), Some("g5.4xlarge"), None).unwrap(),
            sustainable_rps: 30.0,
            usd_per_1k_tokens: None,
        };
        let rows = plan(&[input], 300.0, 1.0);
        assert_eq!(rows[0].instances, 10);
        assert_eq!(fmt_usd(rows[0].usd_per_month), "11,855.20");
    }

    #[test]
    fn plan_rounds_up_with_headroom_and_sorts_cheapest_first() {
        assert_eq!(instances_needed(300.0, 30.0, 1.2), Some(12));
        assert_eq!(instances_needed(301.0, 30.0, 1.0), Some(11));
        assert_eq!(instances_needed(1.0, 30.0, 1.0), Some(1));
        assert_eq!(instances_needed(100.0, 0.0, 1.0), None);
        let price = |name: &str, p: f64| Price {
            instance: name.into(),
            region: None,
            usd_per_hour: p,
        };
        let inputs = [
            PlanInput {
                run: "tgi".into(),
                price: price("g5.4xlarge", A10G),
                sustainable_rps: 135.0,
                usd_per_1k_tokens: None,
            },
            PlanInput {
                run: "fastapi".into(),
                price: price("g5.4xlarge", A10G),
                sustainable_rps: 4.0,
                usd_per_1k_tokens: None,
            },
            PlanInput {
                run: "dead".into(),
                price: price("g5.xlarge", 1.0),
                sustainable_rps: 0.0,
                usd_per_1k_tokens: None,
            },
        ];
        let rows = plan(&inputs, 300.0, 1.2);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].run.as_str(), rows[0].instances), ("tgi", 3));
        assert_eq!((rows[1].run.as_str(), rows[1].instances), ("fastapi", 90));
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_sig(0.00108333, 3), "0.00108");
        assert_eq!(fmt_sig(123.456, 3), "123");
        assert_eq!(fmt_usd(1234567.891), "1,234,567.89");
        assert_eq!(fmt_usd(12.0), "12.00");
    }
}
