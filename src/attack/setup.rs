//! Turns `attack` flags into a checked `AttackConfig`. Every problem with the input is found
//! here, before the first request: unknown API, malformed rate or duration, unreadable prompts
//! or targets, a template without its placeholder. Messages name the flag and the fix.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use reqwest::header::HeaderMap;

use super::api::{self, Api, ApiKind, FastapiFormat, GenParams, TokenCounter, http::TargetsFormat};
use super::{AttackConfig, ClientOptions, Requests};
use crate::cli::AttackArgs;
use crate::pacer::{self, Arrival};
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

/// Checks the flags and loads every file they name.
pub fn config(args: &AttackArgs) -> Result<AttackConfig, SetupError> {
    let kind = ApiKind::from_str(&args.api)?;
    let rate = pacer::parse_rate(&args.rate).map_err(SetupError::Rate)?;
    let duration =
        pacer::parse_duration(&args.duration).map_err(|source| SetupError::Duration {
            flag: "duration",
            source,
        })?;
    let timeout = pacer::parse_duration(&args.timeout).map_err(|source| SetupError::Duration {
        flag: "timeout",
        source,
    })?;
    let arrival = match args.arrival.as_str() {
        "constant" => Arrival::Constant,
        "poisson" => Arrival::Poisson { seed: args.seed },
        other => return Err(SetupError::Arrival(other.to_owned())),
    };
    let strip_prompt = args.strip_prompt.parse()?;
    if args.max_inflight == 0 {
        return Err(SetupError::Inflight);
    }
    if rate.is_unlimited() && duration.is_zero() && args.max_requests.is_none() {
        return Err(SetupError::Unbounded);
    }
    if args.max_rate.is_some() && !rate.is_unlimited() {
        return Err(SetupError::MaxRate);
    }
    if kind != ApiKind::Http && args.max_new_tokens == 0 {
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
            body_template: args.body_template.clone(),
            text_pointer: args.text_pointer.clone(),
            tokens_pointer: args.tokens_pointer.clone(),
            strip_prompt,
        };
        if kind == ApiKind::Fastapi {
            api::fastapi::validate(&fastapi)?;
        }
        let count = |t: &str| counter.count(t);
        let prompts = match (&args.prompts, &args.prompt) {
            (Some(path), _) => PromptSet::load(path, args.seed, &count)?,
            (None, Some(p)) => PromptSet::new(vec![p.clone()], args.seed, &count),
            (None, None) => PromptSet::new(vec![DEFAULT_PROMPT.to_owned()], args.seed, &count),
        };
        let params = GenParams {
            max_new_tokens: args.max_new_tokens,
            temperature: args.temperature,
            top_p: args.top_p,
            top_k: args.top_k,
            repetition_penalty: args.repetition_penalty,
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
        max_inflight: args.max_inflight,
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
            max_idle_per_host: args.max_inflight.min(10_000),
        },
        counter,
        name: args.name.clone(),
        step: None,
    })
}

fn http_requests(args: &AttackArgs, headers: HeaderMap) -> Result<Requests, SetupError> {
    if let Some(path) = &args.targets {
        let format = match args.format.as_str() {
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
    let spec = api::http::single(&args.method, url, headers, body).map_err(|message| {
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
    use clap::Parser;

    fn args(extra: &[&str]) -> AttackArgs {
        let mut argv = vec!["rpload", "attack"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Attack(a) => *a,
            _ => unreachable!(),
        }
    }

    fn err(extra: &[&str]) -> String {
        config(&args(extra)).unwrap_err().to_string()
    }

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

    #[test]
    fn bad_input_is_named_before_any_request() {
        let t = ["--target", "http://127.0.0.1:9"];
        assert!(err(&["--api", "grpc", "--target", "http://x"]).contains("unknown --api \"grpc\""));
        assert!(err(&[&t[..], &["--rate", "fast"]].concat()).starts_with("--rate: invalid rate"));
        assert!(
            err(&[&t[..], &["--duration", "10"]].concat())
                .starts_with("--duration: invalid duration")
        );
        assert!(err(&[&t[..], &["--arrival", "burst"]].concat()).contains("constant or poisson"));
        assert!(
            err(&[&t[..], &["--rate", "0", "--duration", "0"]].concat()).contains("closed loop")
        );
        assert!(err(&[&t[..], &["--max-rate", "5"]].concat()).contains("--rate 0"));
        assert!(err(&["--api", "tgi"]).contains("no target"));
        assert!(err(&[&t[..], &["-H", "nocolon"]].concat()).starts_with("--header:"));
        let e = err(&[
            "--api",
            "tgi",
            "--target",
            "http://127.0.0.1:9",
            "--prompts",
            "/nonexistent/p.jsonl",
        ]);
        assert!(e.contains("/nonexistent/p.jsonl"), "{e}");
        let e = err(&[
            "--api",
            "fastapi",
            "--target",
            "http://127.0.0.1:9",
            "--body-template",
            "{}",
        ]);
        assert!(e.contains("{{prompt}}"), "{e}");
        let e = err(&[
            "--api",
            "fastapi",
            "--target",
            "http://127.0.0.1:9",
            "--strip-prompt",
            "sometimes",
        ]);
        assert!(
            e.starts_with("--strip-prompt \"sometimes\" is not known; use auto"),
            "{e}"
        );
    }

    #[test]
    fn a_valid_llm_attack() {
        let c = config(&args(&[
            "--api",
            "openai-chat",
            "--target",
            "http://127.0.0.1:9",
            "--rate",
            "5/s",
            "--duration",
            "2s",
            "--stream",
            "--max-new-tokens",
            "8",
        ]))
        .unwrap();
        assert_eq!(c.rate.per_second(), 5.0);
        let Requests::Api { api, prompts } = c.requests else {
            panic!("expected an API attack")
        };
        assert_eq!(&*api.url, "http://127.0.0.1:9/v1/chat/completions");
        assert!(api.params.stream);
        assert_eq!(prompts.len(), 1);
    }
}
