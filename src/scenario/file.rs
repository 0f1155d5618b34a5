//! The scenario file: what a user writes (TOML) and what a sweep writes back as
//! `scenario.toml` (the scenario as run). Parsed strictly: an unknown key or a bad value is an
//! error at `file:line:column`.
//!
//! The top level holds the attack's options ([`AttackOptions`], the same struct `rpload
//! attack` and `rpload sweep` take as flags) beside `description`; the tables `[sweep]` (rate
//! plan and verdict settings), `[cost]` and `[serve]` (the embedded server) follow. The
//! sections are also the sweep's flags, so one struct per concept serves the command line and
//! the file, and the command line is laid over the file field by field ([`ScenarioFile::merge`]).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ScenarioError;
use super::search::Fraction;
use crate::attack::options::AttackOptions;
use crate::server::ServerOptions;

/// A scenario as written: every field optional so files and the command line layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScenarioFile {
    /// The attack's options, at the top level of the file.
    #[serde(flatten)]
    pub attack: AttackOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "SweepSection::is_empty")]
    pub sweep: SweepSection,
    #[serde(skip_serializing_if = "CostSection::is_empty")]
    pub cost: CostSection,
    /// The embedded server a target-less sweep starts.
    #[serde(skip_serializing_if = "is_default")]
    pub serve: ServerOptions,
}

/// Top-level keys that are not attack options.
const SECTIONS: [&str; 4] = ["description", "sweep", "cost", "serve"];

/// The part of the file beside the attack options (parsed on its own, strictly).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sections {
    description: Option<String>,
    #[serde(default)]
    sweep: SweepSection,
    #[serde(default)]
    cost: CostSection,
    #[serde(default)]
    serve: ServerOptions,
}

/// `[sweep]`: the rate plan and verdict settings (also `rpload sweep`'s flags).
#[derive(Debug, Clone, Default, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSection {
    /// Rate plan: 10..150 (with --step), 10,20,40, or log:1..1000:12 (requests/s). In a file
    /// also a list of numbers.
    #[arg(long, value_name = "PLAN", allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rps: Option<RateSpec>,
    /// Concurrency plan instead of a rate plan: N users in a closed loop per step, each
    /// sending its next request when its last one ends: 1,2,4,8, 1..64 (with --step) or
    /// log:1..256:9. In a file also a list of whole numbers.
    #[arg(
        long,
        value_name = "PLAN",
        allow_hyphen_values = true,
        conflicts_with = "rps"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<RateSpec>,
    /// Step of an A..B rate (or concurrency) plan.
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    /// How long each step sends, e.g. 10s (1s reproduces the study's bursts) [default: 10s].
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_duration: Option<String>,
    /// Unmeasured traffic at the step's rate before each step [default: 0s].
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup: Option<String>,
    /// Unmeasured traffic at the first step's rate before the sweep (kernel JIT, connections,
    /// caches); 0s skips it [default: 2s].
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_warmup: Option<String>,
    /// Pause after each step [default: 2s].
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<String>,
    /// Runs per rate; the report shows means over them (the study used 3) [default: 1].
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
    /// Stop after two unsustainable rates in a row (the command line's --no-early-stop sets
    /// it false).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<bool>,
    /// Objectives every sustainable step meets, e.g. 'p95<2s,ttft_p95<500ms'.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<String>,
    /// Largest send-lag p99 for "the client kept up" (default: derived per step, the smaller
    /// of one inter-arrival gap and a tenth of the median latency, at least 1ms).
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_send_lag: Option<String>,
    /// Search for the highest sustainable level between the bounds of --rps A..B (or
    /// --concurrency A..B) instead of running every level: double from A, then bisect (the
    /// command line's --search sets it).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<bool>,
    /// How close a search gets: it stops when (hi - lo) / lo is at most this, e.g. 5% or 0.05
    /// [default: 5%].
    #[arg(long, value_name = "SHARE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<Fraction>,
    /// Re-run a search's answer N more times; a failed run resumes the bisection below it
    /// [default: 0].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm: Option<u32>,
    /// The levels a search ran, in order (written by the sweep into the scenario as run, so
    /// `report --sweep` rebuilds its steps).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes: Option<Vec<f64>>,
    /// Judge the SLO per request: a step passes it when at least this share of its requests
    /// (failures counting as misses) meets every clause, e.g. 90% (DistServe's SLO
    /// attainment), instead of the clauses' percentiles over the step.
    #[arg(long, value_name = "SHARE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_attainment: Option<Fraction>,
    /// Exit 1 when the highest sustainable rate is below RATE req/s (with --concurrency: the
    /// highest sustainable concurrency below RATE users), for CI gates.
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_under: Option<f64>,
    /// Scrape the server's Prometheus metrics during each step into server-metrics.jsonl and
    /// the server_* columns: a URL, or the flag alone for the target's /metrics (the embedded
    /// server's without --target; "target" in a file).
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "target")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_metrics: Option<String>,
}

/// `[cost]`: what the instance costs and the study's token assumption (also sweep's flags).
#[derive(Debug, Clone, Default, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostSection {
    /// Instance from the pricing catalog (NAME or NAME@REGION).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Price in USD per hour (with --instance, labels the instance at this price).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_per_hour: Option<f64>,
    /// Extra pricing catalog (repeatable), same format as scenarios/pricing.toml.
    #[arg(long, value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pricing: Vec<String>,
    /// Input + output tokens per request for the study's cost formula (104 classification,
    /// 150 summarization; default: the measured mean).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_request: Option<f64>,
}

/// A rate plan in TOML: a string spec or a list of rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RateSpec {
    Text(String),
    List(Vec<f64>),
}

impl FromStr for RateSpec {
    type Err = std::convert::Infallible;

    /// The command line's form; checked with the rest of the scenario.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(RateSpec::Text(s.to_string()))
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateSpec::Text(s) => f.write_str(s),
            RateSpec::List(v) => {
                let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

impl SweepSection {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl CostSection {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl ScenarioFile {
    /// Parses scenario text; `origin` (a path) prefixes errors as `origin:line:column`.
    ///
    /// The attack options and the sections are parsed as two tables cut from one spanned
    /// document, each struct rejecting keys it does not know: serde's `flatten` would accept
    /// any key silently, and the spans keep every error's position in the user's text.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        let located = |e: toml::de::Error| {
            let (line, column) = crate::toml_error::position(&e, text);
            ScenarioError::Toml {
                path: origin.to_string(),
                line,
                column,
                message: crate::toml_error::message(&e),
            }
        };
        let root = toml::de::DeTable::parse(text).map_err(located)?;
        let span = root.span();
        let mut top = root.into_inner();
        let mut sections = toml::de::DeTable::new();
        for key in SECTIONS {
            if let Some((k, v)) = top.remove_entry(key) {
                sections.insert(k, v);
            }
        }
        let table = |t| toml::de::Deserializer::from(toml::Spanned::new(span.clone(), t));
        let attack = AttackOptions::deserialize(table(top)).map_err(located)?;
        let s = Sections::deserialize(table(sections)).map_err(located)?;
        Ok(Self {
            attack,
            description: s.description,
            sweep: s.sweep,
            cost: s.cost,
            serve: s.serve,
        })
    }

    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Lays every field set in `over` (the command line) onto `self`.
    pub fn merge(self, over: ScenarioFile) -> Self {
        use crate::overlay::overlay;
        let mut cost: CostSection = overlay(&self.cost, &over.cost);
        // A price on the command line replaces the file's whole price, not half of it.
        if over.cost.instance.is_some() || over.cost.price_per_hour.is_some() {
            cost.instance = over.cost.instance.clone();
            cost.price_per_hour = over.cost.price_per_hour;
        }
        cost.pricing = self
            .cost
            .pricing
            .iter()
            .chain(&over.cost.pricing)
            .cloned()
            .collect();
        let mut sweep: SweepSection = overlay(&self.sweep, &over.sweep);
        // A plan on the command line replaces the file's plan, on whichever axis it is.
        if over.sweep.concurrency.is_some() {
            sweep.rps = None;
        } else if over.sweep.rps.is_some() {
            sweep.concurrency = None;
        }
        Self {
            attack: self.attack.overlaid(&over.attack),
            description: over.description.or(self.description),
            sweep,
            cost,
            serve: overlay(&self.serve, &over.serve),
        }
    }

    /// TOML text of this scenario (the "scenario as run" file).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("scenario fields are all TOML-representable")
    }
}
