//! Turns [`AttackOptions`] and a [`Schedule`] into a checked `AttackConfig`: the one place an
//! attack's input is checked, for `attack`, `sweep` and scenario files alike. Every problem is
//! found here, before the first request: unknown API, malformed rate or duration, unreadable
//! prompts or targets, a template without its placeholder. Messages name the flag (a scenario
//! file's key has the same name) and the fix.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use reqwest::header::HeaderMap;

use super::api::{self, Api, ApiKind, FastapiFormat, GenParams, TokenCounter, http::TargetsFormat};
use super::balance::Balance;
use super::clock::ClockKind;
use super::options::AttackOptions;
use super::{AttackConfig, ClientOptions, Requests};
use crate::pacer::{self, Arrival, Ramp, Rate};
use crate::workload::Workload;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Api(#[from] api::UnknownApi),
    #[error("--rate: {0}")]
    Rate(pacer::ParseError),
    #[error("--{flag}: {source}")]
    Duration {
        flag: &'static str,
        source: pacer::ParseError,
    },
    #[error("--arrival {0:?} is not known; use constant, poisson or gamma")]
    Arrival(String),
    #[error("--burstiness shapes gamma arrivals only; add --arrival gamma (or drop --burstiness)")]
    BurstinessWithoutGamma,
    #[error("--ramp: {0}")]
    Ramp(crate::scenario::caret::CaretError),
    #[error(
        "--ramp sets the rate itself (its last rate holds after it); drop --rate or drop --ramp"
    )]
    RampWithRate,
    #[error(
        "--ramp lasts {ramp}, longer than --duration {duration}; raise --duration to at least {ramp} or shorten the ramp"
    )]
    RampTooLong { ramp: String, duration: String },
    #[error(
        "--ramp is for `rpload attack`: a sweep's steps set their own rates (--rps); drop --ramp here, or run the ramp with `rpload attack`"
    )]
    RampInSweep,
    #[error(
        "--stream is for the OpenAI kinds, not --api {0}; for TGI streaming use --api tgi-stream"
    )]
    Stream(ApiKind),
    #[error(transparent)]
    Model(#[from] super::models::ModelError),
    #[error("--format {0:?} is not known; use http or json")]
    Format(String),
    #[error(
        "--rate 0 runs a closed loop and needs a bound: set --duration, --max-requests or both"
    )]
    Unbounded,
    #[error("--max-inflight must be at least 1 (it is the number of requests in flight at once)")]
    Inflight,
    #[error(
        "--workers {0} is out of range: pass 1 to {MAX_WORKERS} (attacker threads; more than the CPUs only adds switching)"
    )]
    Workers(usize),
    #[error(
        "--max-rate only applies to a closed loop (--rate 0); with a rate the pacer already sets the pace"
    )]
    MaxRate,
    #[error("no target: pass --target URL (or --targets FILE with --api http)")]
    NoTarget,
    #[error("--targets is for --api http; LLM APIs take --target URL")]
    TargetsForLlm,
    #[error("--target {url:?}: {message}")]
    Target { url: String, message: String },
    #[error(
        "--target {0} is given twice: list each replica once (requests are spread over distinct targets)"
    )]
    TargetTwice(String),
    #[error(transparent)]
    Balance(#[from] super::balance::UnknownBalance),
    #[error(
        "--balance least-inflight spreads requests over replicas given by --target; a --targets file's lines are different requests, sent round-robin"
    )]
    BalanceTargetsFile,
    #[error("--header: {0}")]
    Header(String),
    #[error(transparent)]
    Targets(#[from] api::http::TargetsError),
    #[error(transparent)]
    WorkloadOption(#[from] super::workload_spec::WorkloadOptionError),
    #[error(transparent)]
    Workload(#[from] crate::workload::WorkloadError),
    #[error(transparent)]
    Tokenizer(#[from] api::TokenizerError),
    #[error(transparent)]
    Fastapi(#[from] api::fastapi::FormatError),
    #[error(transparent)]
    StripPrompt(#[from] api::fastapi::UnknownStripPrompt),
    #[error("--max-new-tokens must be at least 1")]
    MaxNewTokens,
    #[error("--{flag} {value}: {limit}")]
    Out {
        flag: &'static str,
        value: String,
        limit: String,
    },
    #[error("--{flag}: {source}")]
    Size {
        flag: &'static str,
        source: crate::size::SizeError,
    },
    #[error("reading --header-file {path}: {message}")]
    HeaderFile { path: String, message: String },
    #[error(
        "header {0} was redacted when this scenario was written; pass it again with -H '{0}: ...' or --header-file FILE"
    )]
    Redacted(String),
    #[error(
        "--target holds a redacted credential (written by rpload); pass the real URL with --target"
    )]
    RedactedTarget,
    #[error("reading --body {path}: {cause}; pass a readable file")]
    Body { path: String, cause: String },
    #[error(transparent)]
    Shard(#[from] super::shard::ShardSetupError),
}

/// More attacker threads than any machine has cores is a typo.
pub const MAX_WORKERS: usize = 1024;

/// When requests are due: `attack`'s `--rate` and `--duration`, or one step of a sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub rate: Rate,
    pub duration: Duration,
    /// Requests the whole run may send when it is more than this schedule's (a sweep's
    /// steps together): synthetic prompts are built for that many.
    pub volume: Option<u64>,
}

impl Schedule {
    /// `attack`'s `--rate` and `--duration` text.
    pub fn parse(rate: &str, duration: &str) -> Result<Self, SetupError> {
        Ok(Self {
            rate: pacer::parse_rate(rate).map_err(SetupError::Rate)?,
            duration: pacer::parse_duration(duration).map_err(|source| SetupError::Duration {
                flag: "duration",
                source,
            })?,
            volume: None,
        })
    }

    /// Requests this run may send: `max_requests`, else the rate times the duration (a
    /// closed loop's, unknown, is taken as 10000), else the volume a sweep states.
    pub fn expected(&self, max_requests: Option<u64>) -> u64 {
        if let Some(v) = self.volume {
            return v;
        }
        let by_time = (!self.rate.is_unlimited() && !self.duration.is_zero())
            .then(|| (self.rate.per_second() * self.duration.as_secs_f64()).ceil() as u64);
        match (max_requests, by_time) {
            (Some(m), Some(t)) => m.min(t),
            (Some(m), None) => m,
            (None, Some(t)) => t,
            (None, None) => 10_000,
        }
    }

    /// A constant `rps` for `duration`: a sweep's step.
    pub fn step(rps: f64, duration: Duration) -> Self {
        Self {
            rate: Rate {
                freq: rps,
                per: Duration::from_secs(1),
            },
            duration,
            volume: None,
        }
    }
}

/// The highest rate one attacker process is allowed to schedule. Its pacer hands over one
/// tick per request; at a million a second a tick is due every microsecond, below what a
/// thread's timer can resolve and far beyond what one process can send (bench/README.md
/// measures the real ceiling, tens of thousands a second). A higher number is a typo.
pub const MAX_RATE: f64 = 1_000_000.0;
/// In-flight requests each hold a socket and a task; a million is past any file-descriptor
/// limit a machine is configured with.
pub const MAX_INFLIGHT: usize = 1_000_000;

/// Checks the options and loads every file they name.
pub fn config(args: &AttackOptions, schedule: &Schedule) -> Result<AttackConfig, SetupError> {
    let kind = ApiKind::from_str(args.api())?;
    let Schedule { rate, duration, .. } = *schedule;
    check_numbers(args, rate)?;
    let timeout = pacer::parse_duration(args.timeout()).map_err(|source| SetupError::Duration {
        flag: "timeout",
        source,
    })?;
    let arrival = arrival(args)?;
    let ramp = ramp(args, duration)?;
    // With a ramp the pacer follows it; `rate` keeps its peak, so the closed-loop and
    // --max-rate checks below see an open loop.
    let rate = ramp.as_ref().map_or(rate, |r| Rate {
        freq: r.peak(),
        per: Duration::from_secs(1),
    });
    if args.stream && !matches!(kind, ApiKind::OpenaiChat | ApiKind::OpenaiCompletions) {
        // tgi-stream streams anyway; --stream there is redundant, not a mistake.
        if kind != ApiKind::TgiStream {
            return Err(SetupError::Stream(kind));
        }
    }
    let strip_prompt = args.strip_prompt().parse()?;
    let max_inflight = args.max_inflight();
    if max_inflight == 0 {
        return Err(SetupError::Inflight);
    }
    let workers = args.workers();
    if !(1..=MAX_WORKERS).contains(&workers) {
        return Err(SetupError::Workers(workers));
    }
    if rate.is_unlimited() && duration.is_zero() && args.max_requests.is_none() {
        return Err(SetupError::Unbounded);
    }
    if args.max_rate.is_some() && !rate.is_unlimited() {
        return Err(SetupError::MaxRate);
    }
    if kind != ApiKind::Http && args.max_new_tokens() == 0 {
        return Err(SetupError::MaxNewTokens);
    }
    let headers = headers(args, kind)?;
    let custom_headers = !headers.is_empty();
    if args.target.iter().any(|t| crate::redact::is_redacted(t)) {
        return Err(SetupError::RedactedTarget);
    }
    let balance = balance(args)?;
    let limits = super::Limits::new(
        size(args.max_body_size(), "max-body-size")?,
        size(args.max_event_size(), "max-event-size")?,
    );
    let counter = match &args.tokenizer {
        Some(path) => TokenCounter::from_file(path)?,
        None => TokenCounter::default(),
    };
    let requests = if kind == ApiKind::Http {
        http_requests(args, headers)?
    } else {
        if args.targets.is_some() {
            return Err(SetupError::TargetsForLlm);
        }
        let targets = (args.target.iter())
            .map(|t| api_url(t, kind))
            .collect::<Result<Vec<_>, _>>()?;
        distinct(&targets)?;
        let fastapi = FastapiFormat {
            body_template: args.body_template().to_owned(),
            text_pointer: args.text_pointer().to_owned(),
            tokens_pointer: args.tokens_pointer.clone(),
            strip_prompt,
        };
        if kind == ApiKind::Fastapi {
            api::fastapi::validate(&fastapi)?;
        }
        let expected = schedule.expected(args.max_requests);
        let within = (!duration.is_zero()).then_some(duration);
        let wspec = super::workload_spec::spec(args, kind, expected, within, rate.is_unlimited())?;
        let workload = Workload::build(&wspec, &counter)?;
        let params = GenParams {
            max_new_tokens: args.max_new_tokens(),
            // The wire carries f32 (TGI's and OpenAI's schemas); options keep f64 so a
            // scenario's `0.7` is written back as 0.7.
            temperature: args.temperature.map(|t| t as f32),
            top_p: args.top_p.map(|t| t as f32),
            top_k: args.top_k,
            repetition_penalty: args.repetition_penalty.map(|t| t as f32),
            seed: args.gen_seed,
            stop: args.stop.clone(),
            ignore_eos: args.ignore_eos,
            stream: args.stream,
            model: args.model.clone(),
        };
        Requests::Api {
            api: Box::new(Api {
                kind,
                targets: targets.iter().map(|t| api::Endpoint::new(t)).collect(),
                params,
                fastapi,
                headers,
                max_event: limits.max_event,
            }),
            workload,
        }
    };
    Ok(AttackConfig {
        requests,
        rate,
        arrival,
        ramp,
        duration,
        max_requests: args.max_requests,
        max_inflight,
        balance,
        max_rate: args.max_rate,
        timeout: if timeout.is_zero() {
            std::time::Duration::from_secs(365 * 24 * 3600)
        } else {
            timeout
        },
        client: ClientOptions {
            keepalive: !args.no_keepalive,
            warm: !args.no_warm_pool,
            http2: !args.http1,
            insecure: args.insecure,
            max_idle_per_host: max_inflight.min(10_000),
            redirects: args.redirects(),
            custom_headers,
        },
        limits,
        counter,
        name: args.name().to_owned(),
        step: None,
        clock: ClockKind::Thread,
        sharding: None,
        start_at: None,
        workers,
    })
}

/// `--arrival`, with `--burstiness` for gamma (and only there).
fn arrival(args: &AttackOptions) -> Result<Arrival, SetupError> {
    let arrival = match args.arrival() {
        "constant" => Arrival::Constant,
        "poisson" => Arrival::Poisson { seed: args.seed() },
        "gamma" => {
            let b = args.burstiness();
            // Below 0.01 most gaps round to zero and the rest are enormous (a CV of 10 is
            // already one burst after another); any finite shape above works.
            if !(b.is_finite() && b >= 0.01) {
                return Err(SetupError::Out {
                    flag: "burstiness",
                    value: b.to_string(),
                    limit: "must be a number of at least 0.01 (gaps' CV 1/sqrt(B): 0.25 is bursty, 1 is Poisson, 4 is even)".into(),
                });
            }
            Arrival::Gamma {
                seed: args.seed(),
                burstiness: b,
            }
        }
        other => return Err(SetupError::Arrival(other.to_owned())),
    };
    if args.burstiness.is_some() && !matches!(arrival, Arrival::Gamma { .. }) {
        return Err(SetupError::BurstinessWithoutGamma);
    }
    Ok(arrival)
}

/// `--ramp`, which must fit in `duration` (zero: no limit) and one attacker's reach.
fn ramp(args: &AttackOptions, duration: Duration) -> Result<Option<Ramp>, SetupError> {
    let Some(text) = &args.ramp else {
        return Ok(None);
    };
    let ramp = Ramp::parse(text).map_err(SetupError::Ramp)?;
    if ramp.peak() > MAX_RATE {
        return Err(SetupError::Out {
            flag: "ramp",
            value: ramp.to_string(),
            limit: format!(
                "reaches {} req/s, above the 1000000 req/s one attacker process can schedule",
                ramp.peak()
            ),
        });
    }
    if !duration.is_zero() && ramp.length() > duration {
        return Err(SetupError::RampTooLong {
            ramp: pacer::format_duration(ramp.length()),
            duration: pacer::format_duration(duration),
        });
    }
    Ok(Some(ramp))
}

/// Every numeric option within its meaning, named with its limit.
fn check_numbers(args: &AttackOptions, rate: Rate) -> Result<(), SetupError> {
    let out = |flag: &'static str, value: String, limit: &str| SetupError::Out {
        flag,
        value,
        limit: limit.to_owned(),
    };
    let per_s = rate.per_second();
    if !(per_s.is_finite() && per_s <= MAX_RATE) {
        return Err(out(
            "rate",
            rate.to_string(),
            "is above the 1000000 req/s one attacker process can schedule (a tick per microsecond); use --rate 0 for a closed loop as fast as the server answers",
        ));
    }
    if let Some(n) = args.max_inflight
        && n > MAX_INFLIGHT
    {
        return Err(out(
            "max-inflight",
            n.to_string(),
            "is above 1000000; each request in flight holds a socket",
        ));
    }
    if let Some(r) = args.max_rate
        && !(r.is_finite() && r > 0.0 && r <= MAX_RATE)
    {
        return Err(out(
            "max-rate",
            r.to_string(),
            "must be a number of requests per second above 0 and at most 1000000",
        ));
    }
    if args.max_requests == Some(0) {
        return Err(out(
            "max-requests",
            "0".into(),
            "must be at least 1 (omit it for no limit)",
        ));
    }
    if let Some(t) = args.temperature
        && !(t.is_finite() && (0.0..=100.0).contains(&t))
    {
        return Err(out(
            "temperature",
            t.to_string(),
            "must be between 0 and 100",
        ));
    }
    if let Some(p) = args.top_p
        && !(p.is_finite() && p > 0.0 && p <= 1.0)
    {
        return Err(out("top-p", p.to_string(), "must be above 0 and at most 1"));
    }
    if args.top_k == Some(0) {
        return Err(out(
            "top-k",
            "0".into(),
            "must be at least 1 (omit it for the server's default)",
        ));
    }
    if let Some(p) = args.repetition_penalty
        && !(p.is_finite() && p > 0.0 && p <= 100.0)
    {
        return Err(out(
            "repetition-penalty",
            p.to_string(),
            "must be above 0 and at most 100 (1.0 is no penalty)",
        ));
    }
    if let Some(n) = args.max_new_tokens
        && n > 1_000_000
    {
        return Err(out(
            "max-new-tokens",
            n.to_string(),
            "is above 1000000 tokens",
        ));
    }
    if let Some(n) = args.redirects
        && n > 100
    {
        return Err(out("redirects", n.to_string(), "is above 100 hops"));
    }
    Ok(())
}

/// A size flag, at least 1 KiB (below that no answer fits) and at most 4 GiB.
fn size(text: &str, flag: &'static str) -> Result<usize, SetupError> {
    let n = crate::size::parse_size(text).map_err(|source| SetupError::Size { flag, source })?;
    if !(1024..=1 << 32).contains(&n) {
        return Err(SetupError::Out {
            flag,
            value: text.to_owned(),
            limit: "must be between 1KiB and 4GiB".into(),
        });
    }
    Ok(n as usize)
}

/// The request headers: `--header-file`, then `OPENAI_API_KEY` (OpenAI kinds, as a bearer
/// token), then each `-H`; a later source replaces an earlier header of the same name, so an
/// explicit `-H` wins. A value rpload redacted when it wrote a scenario is refused by name.
fn headers(args: &AttackOptions, kind: ApiKind) -> Result<HeaderMap, SetupError> {
    let mut lines: Vec<String> = Vec::new();
    if let Some(path) = &args.header_file {
        let text = std::fs::read_to_string(path).map_err(|e| SetupError::HeaderFile {
            path: path.display().to_string(),
            message: crate::errors::io_cause(&e),
        })?;
        lines.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if matches!(kind, ApiKind::OpenaiChat | ApiKind::OpenaiCompletions)
        && let Ok(key) = std::env::var("OPENAI_API_KEY")
        && !key.trim().is_empty()
    {
        lines.push(format!("Authorization: Bearer {}", key.trim()));
    }
    lines.extend(args.headers.iter().cloned());
    let mut headers = HeaderMap::new();
    for line in &lines {
        let mut one = HeaderMap::new();
        api::http::add_header(&mut one, line).map_err(SetupError::Header)?;
        for (name, value) in &one {
            headers.insert(name.clone(), value.clone());
        }
    }
    if let Some((name, _)) = headers
        .iter()
        .find(|(_, v)| v.to_str().is_ok_and(crate::redact::is_redacted))
    {
        return Err(SetupError::Redacted(name.as_str().to_owned()));
    }
    Ok(headers)
}

fn http_requests(args: &AttackOptions, headers: HeaderMap) -> Result<Requests, SetupError> {
    if let Some(path) = &args.targets {
        let format = match args.format() {
            "http" => TargetsFormat::Http,
            "json" => TargetsFormat::Json,
            other => return Err(SetupError::Format(other.to_owned())),
        };
        return Ok(Requests::Targets(api::http::load_targets(
            path, format, &headers,
        )?));
    }
    distinct(&args.target)?;
    let body = match &args.body {
        Some(p) => read_body(p)?,
        None => Vec::new(),
    };
    let specs = (args.target.iter())
        .map(|url| {
            api::http::single(args.method(), url, headers.clone(), body.clone()).map_err(
                |message| SetupError::Target {
                    url: url.to_owned(),
                    message,
                },
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Requests::Targets(specs))
}

/// At least one target, none twice: a replica listed twice would get twice the requests,
/// and its records could not be told apart.
fn distinct(targets: &[String]) -> Result<(), SetupError> {
    if targets.is_empty() {
        return Err(SetupError::NoTarget);
    }
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].contains(t) {
            return Err(SetupError::TargetTwice(crate::redact::url(t)));
        }
    }
    Ok(())
}

/// `--balance`; least-inflight needs targets that are replicas, which a targets file's lines
/// are not (each is a different request).
fn balance(args: &AttackOptions) -> Result<Balance, SetupError> {
    let policy: Balance = args.balance().parse()?;
    if policy == Balance::LeastInflight && args.targets.is_some() {
        return Err(SetupError::BalanceTargetsFile);
    }
    Ok(policy)
}

fn read_body(path: &Path) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|e| SetupError::Body {
        path: path.display().to_string(),
        cause: crate::errors::io_cause(&e),
    })
}

/// A bare host gets the API's usual path; an OpenAI kind's base URL ending in `/v1` gets the
/// route under it (`/v1/chat/completions`), as OpenAI's own clients take a base URL; any other
/// path is used as given.
pub fn api_url(target: &str, kind: ApiKind) -> Result<String, SetupError> {
    let bad = |message: String| SetupError::Target {
        url: target.to_owned(),
        message,
    };
    let mut url = reqwest::Url::parse(target)
        .map_err(|e| bad(format!("not a URL ({e}); write it as http://host:port")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https".into()));
    }
    let base = url.path().trim_end_matches('/').to_owned();
    if base.is_empty() {
        url.set_path(kind.default_path());
    } else if base.ends_with("/v1")
        && matches!(kind, ApiKind::OpenaiChat | ApiKind::OpenaiCompletions)
    {
        // default_path is `/v1/...`: the route after the base's own `/v1`.
        url.set_path(&format!("{base}{}", &kind.default_path()[3..]));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests;
