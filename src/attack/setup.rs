//! Turns [`AttackOptions`] and a [`Schedule`] into a checked `AttackConfig`: the one place an
//! attack's input is checked, for `attack`, `sweep` and scenario files alike. Every problem is
//! found here, before the first request: unknown API, malformed rate or duration, unreadable
//! prompts or targets, a template without its placeholder. Messages name the flag (a scenario
//! file's key has the same name) and the fix.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;

use super::api::{self, Api, ApiKind, FastapiFormat, GenParams, TokenCounter, http::TargetsFormat};
use super::clock::ClockKind;
use super::options::AttackOptions;
use super::{AttackConfig, ClientOptions, Requests};
use crate::pacer::{self, Arrival, Rate};
use crate::prompts::{DEFAULT_PROMPT, PromptSet};

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
    #[error("--arrival {0:?} is not known; use constant or poisson")]
    Arrival(String),
    #[error("--format {0:?} is not known; use http or json")]
    Format(String),
    #[error(
        "--rate 0 runs a closed loop and needs a bound: set --duration, --max-requests or both"
    )]
    Unbounded,
    #[error("--max-inflight must be at least 1 (it is the number of requests in flight at once)")]
    Inflight,
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
    #[error("--header: {0}")]
    Header(String),
    #[error(transparent)]
    Targets(#[from] api::http::TargetsError),
    #[error(transparent)]
    Prompts(#[from] crate::prompts::PromptError),
    #[error(transparent)]
    Tokenizer(#[from] api::TokenizerError),
    #[error(transparent)]
    Fastapi(#[from] api::fastapi::FormatError),
    #[error(transparent)]
    StripPrompt(#[from] api::fastapi::UnknownStripPrompt),
    #[error("--max-new-tokens must be at least 1")]
    MaxNewTokens,
    #[error("reading --body {path}: {source}")]
    Body {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// When requests are due: `attack`'s `--rate` and `--duration`, or one step of a sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub rate: Rate,
    pub duration: Duration,
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
        })
    }

    /// A constant `rps` for `duration`: a sweep's step.
    pub fn step(rps: f64, duration: Duration) -> Self {
        Self {
            rate: Rate {
                freq: rps,
                per: Duration::from_secs(1),
            },
            duration,
        }
    }
}

/// Checks the options and loads every file they name.
pub fn config(args: &AttackOptions, schedule: &Schedule) -> Result<AttackConfig, SetupError> {
    let kind = ApiKind::from_str(args.api())?;
    let Schedule { rate, duration } = *schedule;
    let timeout = pacer::parse_duration(args.timeout()).map_err(|source| SetupError::Duration {
        flag: "timeout",
        source,
    })?;
    let arrival = match args.arrival() {
        "constant" => Arrival::Constant,
        "poisson" => Arrival::Poisson { seed: args.seed() },
        other => return Err(SetupError::Arrival(other.to_owned())),
    };
    let strip_prompt = args.strip_prompt().parse()?;
    let max_inflight = args.max_inflight();
    if max_inflight == 0 {
        return Err(SetupError::Inflight);
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
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        api::http::add_header(&mut headers, h).map_err(SetupError::Header)?;
    }
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
        let target = args.target.as_deref().ok_or(SetupError::NoTarget)?;
        let url = api_url(target, kind)?;
        let fastapi = FastapiFormat {
            body_template: args.body_template().to_owned(),
            text_pointer: args.text_pointer().to_owned(),
            tokens_pointer: args.tokens_pointer.clone(),
            strip_prompt,
        };
        if kind == ApiKind::Fastapi {
            api::fastapi::validate(&fastapi)?;
        }
        let count = |t: &str| counter.count(t);
        let prompts = match (&args.prompts, &args.prompt) {
            (Some(path), _) => PromptSet::load(path, args.seed(), &count)?,
            (None, Some(p)) => PromptSet::new(vec![p.clone()], args.seed(), &count),
            (None, None) => PromptSet::new(vec![DEFAULT_PROMPT.to_owned()], args.seed(), &count),
        };
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
                url: Arc::from(url.as_str()),
                params,
                fastapi,
                headers,
            }),
            prompts,
        }
    };
    Ok(AttackConfig {
        requests,
        rate,
        arrival,
        duration,
        max_requests: args.max_requests,
        max_inflight,
        max_rate: args.max_rate,
        timeout: if timeout.is_zero() {
            std::time::Duration::from_secs(365 * 24 * 3600)
        } else {
            timeout
        },
        client: ClientOptions {
            keepalive: !args.no_keepalive,
            http2: !args.http1,
            insecure: args.insecure,
            max_idle_per_host: max_inflight.min(10_000),
        },
        counter,
        name: args.name().to_owned(),
        step: None,
        clock: ClockKind::Thread,
    })
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
    let url = args.target.as_deref().ok_or(SetupError::NoTarget)?;
    let body = match &args.body {
        Some(p) => read_body(p)?,
        None => Vec::new(),
    };
    let spec = api::http::single(args.method(), url, headers, body).map_err(|message| {
        SetupError::Target {
            url: url.to_owned(),
            message,
        }
    })?;
    Ok(Requests::Targets(vec![spec]))
}

fn read_body(path: &Path) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|source| SetupError::Body {
        path: path.display().to_string(),
        source,
    })
}

/// A bare host gets the API's usual path; a URL with a path is used as given.
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
    if url.path() == "/" || url.path().is_empty() {
        url.set_path(kind.default_path());
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_filled_in() {
        assert_eq!(
            api_url("http://127.0.0.1:8080", ApiKind::TgiStream).unwrap(),
            "http://127.0.0.1:8080/generate_stream"
        );
        assert_eq!(
            api_url("http://h:1/custom/predict", ApiKind::Fastapi).unwrap(),
            "http://h:1/custom/predict"
        );
        assert!(api_url("127.0.0.1:8080", ApiKind::Tgi).is_err());
    }
}
