//! Prices and what they buy: the pricing catalog (`scenarios/pricing.toml` plus `--pricing FILE`),
//! cost per 1K tokens / output tokens / requests, the seed study's own formulas, and capacity
//! plans (instances for a target load, monthly cost at 730 h).
//!
//! Pure arithmetic over numbers handed in (no clock, no network); the only I/O is reading a
//! catalog file. Units sit in the names: `usd_per_hour`, `tokens_per_s`, `rps`.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The catalog shipped with rpload, compiled in so `--instance` works from any directory.
pub const BUILTIN_CATALOG: &str = include_str!("../scenarios/pricing.toml");

/// Hours in a month for monthly cost (AWS's convention: 365 x 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// Region preferred when a name is listed in several regions and none is asked for.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Errors of the pricing catalog and the cost arguments; callers branch on `UnknownInstance`.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("reading pricing catalog {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("pricing catalog {path}: {message}")]
    Parse { path: String, message: String },
    #[error(
        "unknown instance `{name}`{region}; nearest in the catalog: {nearest}\n\
         (add it with --pricing FILE, or pass --price-per-hour USD)",
        region = region.as_ref().map(|r| format!(" in region `{r}`")).unwrap_or_default(),
        nearest = nearest.join(", ")
    )]
    UnknownInstance {
        name: String,
        region: Option<String>,
        nearest: Vec<String>,
    },
    #[error("{field} must be a positive finite number, got {value}")]
    NotPositive { field: &'static str, value: f64 },
    #[error("pass either --instance or --price-per-hour, not both")]
    BothPrices,
    #[error("no price: pass --instance NAME (see scenarios/pricing.toml) or --price-per-hour USD")]
    NoPrice,
}

/// One priced instance type in one region at one date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub name: String,
    pub provider: String,
    pub region: String,
    pub gpu: String,
    pub gpu_count: u32,
    pub usd_per_hour: f64,
    pub source: String,
    pub date: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    instance: Vec<Instance>,
}

/// A list of priced instances; later-added entries win over earlier ones with the same
/// name, region and date.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    instances: Vec<Instance>,
}

impl Catalog {
    /// The catalog compiled into the binary.
    pub fn builtin() -> Self {
        Self::parse(BUILTIN_CATALOG, "scenarios/pricing.toml (built in)")
            .expect("the built-in pricing catalog parses (checked by a unit test)")
    }

    /// The built-in catalog extended by the user's files, in order (later files win).
    pub fn with_files(files: &[impl AsRef<Path>]) -> Result<Self, CostError> {
        let mut catalog = Self::builtin();
        for file in files {
            catalog.extend(Self::load(file.as_ref())?);
        }
        Ok(catalog)
    }

    /// Reads one catalog file.
    pub fn load(path: &Path) -> Result<Self, CostError> {
        let text = std::fs::read_to_string(path).map_err(|source| CostError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses catalog text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CostError> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| CostError::Parse {
            path: origin.to_string(),
            message: crate::scenario::describe_toml_error(&e, text),
        })?;
        for inst in &file.instance {
            if !(inst.usd_per_hour.is_finite() && inst.usd_per_hour > 0.0) {
                return Err(CostError::Parse {
                    path: origin.to_string(),
                    message: format!(
                        "instance `{}`: usd_per_hour must be positive, got {}",
                        inst.name, inst.usd_per_hour
                    ),
                });
            }
        }
        Ok(Self {
            instances: file.instance,
        })
    }

    /// Adds `other`'s entries; an entry with the same name, region and date replaces ours.
    pub fn extend(&mut self, other: Catalog) {
        for inst in other.instances {
            self.instances.retain(|mine| {
                !(mine.name == inst.name && mine.region == inst.region && mine.date == inst.date)
            });
            self.instances.push(inst);
        }
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// Finds `name` or `name@region`. Without a region: us-east-1 if listed, else the first
    /// region listed; within a region the latest `date` wins (user entries win ties).
    pub fn lookup(&self, spec: &str) -> Result<&Instance, CostError> {
        let (name, region) = match spec.split_once('@') {
            Some((n, r)) => (n.trim(), Some(r.trim())),
            None => (spec.trim(), None),
        };
        let named: Vec<&Instance> = self.instances.iter().filter(|i| i.name == name).collect();
        let region = match region {
            Some(r) => Some(r),
            None if named.iter().any(|i| i.region == DEFAULT_REGION) => Some(DEFAULT_REGION),
            None => named.first().map(|i| i.region.as_str()),
        };
        let best = named
            .iter()
            .filter(|i| Some(i.region.as_str()) == region)
            .enumerate()
            .max_by_key(|(pos, i)| (date_key(&i.date), *pos))
            .map(|(_, i)| *i);
        best.ok_or_else(|| CostError::UnknownInstance {
            name: name.to_string(),
            region: if named.is_empty() {
                None
            } else {
                region.map(str::to_string)
            },
            nearest: if named.is_empty() {
                self.nearest(name, 5)
            } else {
                let mut regions: Vec<String> = named
                    .iter()
                    .map(|i| format!("{}@{}", i.name, i.region))
                    .collect();
                regions.dedup();
                regions
            },
        })
    }

    /// The `n` distinct names closest to `name` by edit distance (ties alphabetical).
    pub fn nearest(&self, name: &str, n: usize) -> Vec<String> {
        let mut names: Vec<&str> = self.instances.iter().map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let lower = name.to_ascii_lowercase();
        let mut scored: Vec<(usize, &str)> = names
            .into_iter()
            .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(n)
            .map(|(_, c)| c.to_string())
            .collect()
    }
}

/// Orders `date` strings: a leading `YYYY[-MM[-DD]]` sorts by value; anything else
/// ("before 2025-06", "unrecorded") sorts before every dated entry.
fn date_key(date: &str) -> (u32, u32, u32) {
    let mut parts = date.trim().splitn(3, '-').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    match parts.next().flatten() {
        Some(y) if y >= 1000 => {
            let m = parts.next().flatten().unwrap_or(0);
            let d = parts.next().flatten().unwrap_or(0);
            (y, m, d)
        }
        _ => (0, 0, 0),
    }
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The price a run is costed at: an hourly figure and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// Catalog name (`g5.4xlarge`) or `custom` for `--price-per-hour`.
    pub instance: String,
    pub region: Option<String>,
    pub usd_per_hour: f64,
}

impl Price {
    /// Resolves `--instance` / `--price-per-hour` (exactly one of them) against `catalog`.
    pub fn resolve(
        catalog: &Catalog,
        instance: Option<&str>,
        price_per_hour: Option<f64>,
    ) -> Result<Self, CostError> {
        match (instance, price_per_hour) {
            (Some(_), Some(_)) => Err(CostError::BothPrices),
            (None, None) => Err(CostError::NoPrice),
            (None, Some(p)) => Ok(Price {
                instance: "custom".into(),
                region: None,
                usd_per_hour: positive("price per hour", p)?,
            }),
            (Some(name), None) => {
                let inst = catalog.lookup(name)?;
                Ok(Price {
                    instance: inst.name.clone(),
                    region: Some(inst.region.clone()),
                    usd_per_hour: inst.usd_per_hour,
                })
            }
        }
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.region {
            Some(r) => write!(f, "{} ({r}, {} USD/h)", self.instance, self.usd_per_hour),
            None if self.instance == "custom" => write!(f, "{} USD/h", self.usd_per_hour),
            None => write!(f, "{} at {} USD/h", self.instance, self.usd_per_hour),
        }
    }
}

fn positive(field: &'static str, value: f64) -> Result<f64, CostError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(CostError::NotPositive { field, value })
    }
}

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
    fn builtin_catalog_parses_and_has_the_seed_instance() {
        let c = Catalog::builtin();
        let g5 = c.lookup("g5.4xlarge").unwrap();
        assert_eq!(g5.usd_per_hour, 1.624);
        assert_eq!(g5.region, "us-east-1");
        assert_eq!(
            c.lookup("g5.4xlarge@eu-west-1").unwrap().usd_per_hour,
            1.81287
        );
        // Only region listed is picked without asking.
        assert_eq!(c.lookup("g5.16xlarge").unwrap().region, "us-west-2");
        // Latest date wins: the post-cut P5 price.
        assert_eq!(c.lookup("p5.48xlarge").unwrap().usd_per_hour, 55.04);
        for i in c.instances() {
            assert!(
                !i.source.is_empty() && !i.date.is_empty() && i.gpu_count > 0,
                "{i:?}"
            );
        }
    }

    #[test]
    fn unknown_instance_lists_nearest_names() {
        let err = Catalog::builtin().lookup("g5.4xlarg").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("unknown instance `g5.4xlarg`"), "{msg}");
        match err {
            CostError::UnknownInstance { nearest, .. } => assert_eq!(nearest[0], "g5.4xlarge"),
            other => panic!("{other:?}"),
        }
        let err = Catalog::builtin().lookup("g5.4xlarge@mars-1").unwrap_err();
        assert!(err.to_string().contains("g5.4xlarge@eu-west-1"), "{err}");
    }

    #[test]
    fn user_catalog_overrides_and_adds() {
        let mut c = Catalog::builtin();
        let mine = Catalog::parse(
            r#"
[[instance]]
name = "g5.4xlarge"
provider = "aws"
region = "us-east-1"
gpu = "A10G 24GB"
gpu_count = 1
usd_per_hour = 1.0
source = "my reserved price"
date = "2023-06"

[[instance]]
name = "my-box"
provider = "onprem"
region = "basement"
gpu = "RTX 4090"
gpu_count = 2
usd_per_hour = 0.4
source = "electricity + amortisation"
date = "2025-01"
"#,
            "mine.toml",
        )
        .unwrap();
        c.extend(mine);
        assert_eq!(c.lookup("g5.4xlarge").unwrap().usd_per_hour, 1.0);
        assert_eq!(c.lookup("my-box").unwrap().usd_per_hour, 0.4);
    }

    #[test]
    fn catalog_rejects_unknown_keys_with_line() {
        let err =
            Catalog::parse("[[instance]]\nname = \"x\"\nprice = 1\n", "bad.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bad.toml") && msg.contains("line 3"), "{msg}");
    }

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
    fn price_resolution_errors() {
        let c = Catalog::builtin();
        assert!(matches!(
            Price::resolve(&c, None, None),
            Err(CostError::NoPrice)
        ));
        assert!(matches!(
            Price::resolve(&c, Some("g5.4xlarge"), Some(1.0)),
            Err(CostError::BothPrices)
        ));
        assert!(matches!(
            Price::resolve(&c, None, Some(-1.0)),
            Err(CostError::NotPositive { .. })
        ));
        assert_eq!(
            Price::resolve(&c, None, Some(2.5)).unwrap().usd_per_hour,
            2.5
        );
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_sig(0.00108333, 3), "0.00108");
        assert_eq!(fmt_sig(123.456, 3), "123");
        assert_eq!(fmt_usd(1234567.891), "1,234,567.89");
        assert_eq!(fmt_usd(12.0), "12.00");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(date_key("2025-06"), (2025, 6, 0));
        assert_eq!(date_key("before 2025-06"), (0, 0, 0));
        assert!(date_key("2023-07") < date_key("2025-06"));
    }
}
