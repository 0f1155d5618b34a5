//! Scenario files (TOML): one experiment a user can copy. Parsed strictly (an unknown key is an
//! error with `file:line`), merged with command-line overrides, and validated into a
//! [`Scenario`] before anything touches the network.
//!
//! Inputs: the TOML text and a [`ScenarioFile`] of overrides built from the CLI. Output: the
//! checked [`Scenario`], plus the merged [`ScenarioFile`] that `sweep` writes as
//! `scenario.toml` (the scenario as run). Must not touch the network; prices are resolved by
//! `cost` through [`Scenario::resolve_price`].
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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::attack::api::ApiKind;
use crate::cost::{Catalog, CostError, Price};
use crate::sweep::caret::CaretError;
use crate::sweep::plan::RatePlan;
use crate::sweep::slo::{Family, Slo};
use crate::sweep::verdict::VerdictRules;

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

/// The TOML shape of a scenario; every field optional so files and CLI overrides merge.
/// Attack options sit at the top level, named like `rpload attack`'s flags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// A short title for reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Base URL of the endpoint; absent: the embedded reference server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Wire format: tgi, tgi-stream, openai-chat, openai-completions, fastapi, http.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Model name sent to OpenAI-style APIs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Prompt set: a JSONL file (`{"prompt": ...}` per line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Ask the server to stream tokens (needed for TTFT and ITL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Seed for the prompt draw and Poisson arrivals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Per-request timeout (`30s`, Vegeta's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Requests in flight at once; a tick that finds them all busy is counted as "capped".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_inflight: Option<u32>,
    /// Arrival process: constant (Vegeta's) or poisson.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrival: Option<String>,
    /// Extra HTTP headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Generate `max_new_tokens` whatever the model says (servers that support it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_eos: Option<bool>,
    /// A tokenizer.json to count tokens the server does not report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    /// FastAPI-style APIs: the request body with a `{{prompt}}` placeholder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_template: Option<String>,
    /// FastAPI-style APIs: JSON pointer to the generated text in the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_pointer: Option<String>,
    /// FastAPI-style APIs: JSON pointer to a generated-token count, if the answer has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_pointer: Option<String>,
    /// FastAPI-style APIs: `auto` (remove a prompt the answer starts with before counting),
    /// `always` (require that echo) or `never` (count the whole answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strip_prompt: Option<String>,
    /// Accept invalid TLS certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    #[serde(default, skip_serializing_if = "SweepSection::is_empty")]
    pub sweep: SweepSection,
    #[serde(default, skip_serializing_if = "CostSection::is_empty")]
    pub cost: CostSection,
}

/// `[sweep]`: the rate plan and verdict settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSection {
    /// `"10..150"` (with `step`), `"10,20,40"`, `"log:1..1000:12"`, or an array of numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rps: Option<RateSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_duration: Option<String>,
    /// Unmeasured traffic at the step's rate before each step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup: Option<String>,
    /// Unmeasured traffic at the first step's rate before the sweep starts (kernel JIT,
    /// connections, caches); default `2s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_warmup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<bool>,
    /// `"p95<2s,ttft_p95<500ms"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<String>,
    /// Largest send-lag p99 for "the client kept up"; absent: derived per step from the
    /// schedule and the latency (`scenarios/README.md`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_send_lag: Option<String>,
    /// Exit 1 when the highest sustainable rate is below this (req/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_under: Option<f64>,
}

impl SweepSection {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A rate plan in TOML: a string spec or a list of rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RateSpec {
    Text(String),
    List(Vec<f64>),
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

/// `[cost]`: what the instance costs and the study's token assumption.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostSection {
    /// A catalog name (`g5.4xlarge`, `g5.4xlarge@eu-west-1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// USD per hour; with `instance` too, this price wins and the name is a label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_per_hour: Option<f64>,
    /// Extra pricing catalogs (same format as scenarios/pricing.toml).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pricing: Vec<String>,
    /// Input + output tokens per request for the study's formula (104 classification,
    /// 150 summarization); when absent the formula uses the measured mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_request: Option<f64>,
}

impl CostSection {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl ScenarioFile {
    /// Parses scenario text; `origin` (a path) prefixes errors as `origin:line:column`.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ScenarioError::Toml {
                path: origin.to_string(),
                line,
                column,
                message: first_line(e.message()),
            }
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

    /// Overlays every field set in `over` (the command line) onto `self`.
    pub fn merge(mut self, over: ScenarioFile) -> Self {
        macro_rules! take {
            ($($f:ident).+) => { if over.$($f).+.is_some() { self.$($f).+ = over.$($f).+; } };
        }
        take!(name);
        take!(description);
        take!(target);
        take!(api);
        take!(model);
        take!(prompts);
        take!(max_new_tokens);
        take!(temperature);
        take!(top_p);
        take!(stream);
        take!(seed);
        take!(timeout);
        take!(max_inflight);
        take!(arrival);
        self.headers.extend(over.headers);
        take!(top_k);
        if !over.stop.is_empty() {
            self.stop = over.stop;
        }
        take!(ignore_eos);
        take!(tokenizer);
        take!(body_template);
        take!(text_pointer);
        take!(tokens_pointer);
        take!(strip_prompt);
        take!(insecure);
        take!(sweep.rps);
        take!(sweep.step);
        take!(sweep.step_duration);
        take!(sweep.warmup);
        take!(sweep.initial_warmup);
        take!(sweep.cooldown);
        take!(sweep.repeat);
        take!(sweep.early_stop);
        take!(sweep.slo);
        take!(sweep.max_send_lag);
        take!(sweep.fail_under);
        // A price on the command line replaces the file's whole price, not half of it.
        if over.cost.instance.is_some() || over.cost.price_per_hour.is_some() {
            self.cost.instance = over.cost.instance;
            self.cost.price_per_hour = over.cost.price_per_hour;
        }
        self.cost.pricing.extend(over.cost.pricing);
        take!(cost.tokens_per_request);
        self
    }

    /// TOML text of this scenario (the "scenario as run" file).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("scenario fields are all TOML-representable")
    }

    /// Checks every field and builds the validated scenario. Prices are left to
    /// [`Scenario::resolve_price`] so that `report` can rebuild without the catalog.
    pub fn validate(&self) -> Result<Scenario, ScenarioError> {
        let sw = &self.sweep;
        let spec = sw.rps.as_ref().ok_or(ScenarioError::Invalid {
            field: "rps",
            message:
                "no rate plan: pass --rps 10..150 --step 15 (or a list 10,20,40, or log:1..1000:12)"
                    .into(),
        })?;
        let plan = match spec {
            RateSpec::Text(t) => RatePlan::parse(t, sw.step),
            RateSpec::List(v) => RatePlan::from_rates(v),
        }
        .map_err(ScenarioError::Plan)?;
        let slo = Slo::parse(sw.slo.as_deref().unwrap_or("")).map_err(ScenarioError::Slo)?;
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
        let api = self.api.clone().unwrap_or_else(|| "tgi".into());
        check_slo_measurable(&slo, &api, self.stream == Some(true))?;
        if let Some(f) = sw.fail_under {
            let top = plan.rates().iter().copied().fold(0.0, f64::max);
            if !(f.is_finite() && f >= 0.0 && f <= top) {
                return Err(invalid(
                    "fail_under",
                    &format!(
                        "--fail-under {f} must be a rate between 0 and the plan's top rate {top} req/s"
                    ),
                ));
            }
        }
        if let Some(t) = &self.target
            && !(t.starts_with("http://") || t.starts_with("https://"))
        {
            return Err(invalid(
                "target",
                &format!("`{t}` must start with http:// or https://"),
            ));
        }
        let timeout = opt_duration("timeout", self.timeout.as_deref(), "30s")?;
        if timeout.is_zero() {
            return Err(invalid("timeout", "must be above zero, e.g. 30s"));
        }
        if self.max_inflight == Some(0) {
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
            name: self.name.clone().unwrap_or_else(|| "sweep".into()),
            target: self.target.clone(),
            api,
            timeout,
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
                ..VerdictRules::default()
            },
            tokens_per_request: self.cost.tokens_per_request,
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
    /// None: start the embedded server.
    pub target: Option<String>,
    pub api: String,
    pub timeout: Duration,
    pub plan: RatePlan,
    pub step_duration: Duration,
    pub warmup: Duration,
    pub initial_warmup: Duration,
    pub cooldown: Duration,
    pub repeat: u32,
    pub early_stop: bool,
    pub rules: VerdictRules,
    /// Exit 1 below this headline (req/s).
    pub fail_under: Option<f64>,
    pub tokens_per_request: Option<f64>,
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

    /// Steps in run order: (step index, rate index, repeat index, offered rps).
    pub fn steps(&self) -> Vec<PlannedStep> {
        let mut out = Vec::new();
        for (ri, &rps) in self.plan.rates().iter().enumerate() {
            for rep in 0..self.repeat {
                out.push(PlannedStep {
                    step: out.len() as u32,
                    rate_index: ri,
                    repeat: rep,
                    rps,
                });
            }
        }
        out
    }
}

/// One step of the plan: a rate and which repeat of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedStep {
    pub step: u32,
    pub rate_index: usize,
    pub repeat: u32,
    pub rps: f64,
}

fn invalid(field: &'static str, message: &str) -> ScenarioError {
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

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// A toml error as `line L, column C: message` (for files whose errors are not ScenarioError).
pub fn describe_toml_error(e: &toml::de::Error, text: &str) -> String {
    match e.span() {
        Some(s) => {
            let (l, c) = line_col(text, s.start);
            format!("line {l}, column {c}: {}", first_line(e.message()))
        }
        None => first_line(e.message()),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

/// Resolves a path from a scenario: as given if it exists from the working directory, else
/// next to the scenario file.
pub fn resolve_relative(path: &str, scenario_file: Option<&Path>) -> PathBuf {
    let p = PathBuf::from(path);
    if p.is_absolute() || p.exists() {
        return p;
    }
    match scenario_file.and_then(Path::parent) {
        Some(dir) if dir.join(&p).exists() => dir.join(p),
        _ => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STUDY: &str = r#"
name = "RedPajama-3B classification on TGI"
target = "http://127.0.0.1:8080"
api = "tgi"
prompts = "prompts/news-classification.jsonl"
max_new_tokens = 20

[sweep]
rps = "5..135"
step = 10
step_duration = "1s"
repeat = 3
cooldown = "4s"

[cost]
instance = "g5.4xlarge"
tokens_per_request = 104
"#;

    #[test]
    fn send_lag_is_derived_unless_given() {
        let derived = ScenarioFile::parse(STUDY, "study.toml")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(derived.rules.max_send_lag, None);
        assert_eq!(derived.initial_warmup, Duration::from_secs(2));
        let explicit = STUDY.replace(
            "cooldown = \"4s\"",
            "cooldown = \"4s\"\nmax_send_lag = \"3ms\"",
        );
        let s = ScenarioFile::parse(&explicit, "e.toml")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(s.rules.max_send_lag, Some(Duration::from_millis(3)));
    }

    #[test]
    fn bad_fail_under_and_unmeasurable_slos_are_refused() {
        let with = |extra: &str| {
            let text = STUDY.replace("cooldown = \"4s\"", &format!("cooldown = \"4s\"\n{extra}"));
            ScenarioFile::parse(&text, "s.toml").unwrap().validate()
        };
        assert!(with("fail_under = 100").is_ok());
        let e = with("fail_under = 500").unwrap_err().to_string();
        assert!(
            e.contains("--fail-under 500") && e.contains("top rate 135"),
            "{e}"
        );
        let e = with("fail_under = -1").unwrap_err().to_string();
        assert!(e.contains("--fail-under -1"), "{e}");
        let e = with("slo = \"ttft_p95<500ms\"").unwrap_err().to_string();
        assert!(e.contains("--api tgi does not stream"), "{e}");
        assert!(with("slo = \"service_p95<500ms,p90<1s\"").is_ok());
        let streamed = STUDY
            .replace("api = \"tgi\"", "api = \"tgi-stream\"")
            .replace(
                "cooldown = \"4s\"",
                "cooldown = \"4s\"\nslo = \"ttft_p95<500ms\"",
            );
        assert!(
            ScenarioFile::parse(&streamed, "s.toml")
                .unwrap()
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn parses_validates_and_merges() {
        let file = ScenarioFile::parse(STUDY, "study.toml").unwrap();
        let s = file.validate().unwrap();
        assert_eq!(s.plan.rates().len(), 14);
        assert_eq!(s.step_duration, Duration::from_secs(1));
        assert_eq!(s.steps().len(), 42);
        assert_eq!(s.resolve_price().unwrap().unwrap().usd_per_hour, 1.624);

        let over = ScenarioFile {
            target: Some("http://10.0.0.1:80".into()),
            sweep: SweepSection {
                rps: Some(RateSpec::Text("10,20".into())),
                repeat: Some(1),
                ..Default::default()
            },
            cost: CostSection {
                price_per_hour: Some(2.0),
                ..Default::default()
            },
            ..Default::default()
        };
        let merged = file.merge(over);
        let s = merged.validate().unwrap();
        assert_eq!(s.plan.rates(), [10.0, 20.0]);
        assert_eq!(s.target.as_deref(), Some("http://10.0.0.1:80"));
        assert_eq!(merged.cost.instance, None);
        assert_eq!(s.resolve_price().unwrap().unwrap().usd_per_hour, 2.0);
        assert_eq!(merged.max_new_tokens, Some(20));

        // The as-run text parses back to the same thing.
        let again = ScenarioFile::parse(&merged.to_toml(), "as-run").unwrap();
        assert_eq!(again, merged);
    }

    #[test]
    fn unknown_keys_name_file_and_line() {
        let text = "target = \"http://x\"\n\n[sweep]\nrps = \"1..2\"\nstpe = 1\n";
        let err = ScenarioFile::parse(text, "s.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("s.toml:5:1: unknown field `stpe`"), "{msg}");
        let err = ScenarioFile::parse("colour = 1\n", "s.toml").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("s.toml:1:1: unknown field `colour`"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_caught() {
        let bad = |t: &str| {
            ScenarioFile::parse(t, "x.toml")
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        assert!(bad("[sweep]\nrps = \"150..10\"\nstep = 5\n").contains("reversed range"));
        assert!(bad("[sweep]\nrps = \"10..150\"\nstep = 0\n").contains("step must be positive"));
        assert!(bad("[sweep]\nrps = \"10\"\nslo = \"p95<2q\"\n").contains("unknown unit `q`"));
        assert!(
            bad("[sweep]\nrps = \"10\"\nstep_duration = \"10\"\n")
                .starts_with("step_duration: `10` needs a unit")
        );
        assert!(bad("[sweep]\nrps = \"10\"\nrepeat = 0\n").starts_with("repeat:"));
        assert!(bad("target = \"localhost:80\"\n[sweep]\nrps = \"10\"\n").starts_with("target:"));
        assert!(bad("").starts_with("rps: no rate plan"));
        let s = ScenarioFile::parse(
            "[sweep]\nrps = [1, 2.5]\n[cost]\ninstance = \"g5.4xlarg\"\n",
            "x",
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(s.plan.rates(), [1.0, 2.5]);
        assert!(
            s.resolve_price()
                .unwrap_err()
                .to_string()
                .contains("nearest in the catalog: g5.4xlarge")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("ten").is_err());
    }
}
