//! Wire formats the attacker speaks. Each API kind builds a request body from a prompt and
//! generation parameters, and decodes a response (whole or streamed) into `Decoded`: status is
//! judged by the attacker, the body by the decoder. One file per format; no timing, no retries.

pub mod fastapi;
pub mod http;
pub mod openai;
pub mod tgi;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::prompts::Prompt;
pub use crate::tokens::{TokenCounter, TokenizerError, estimate_tokens};

/// The API kinds `--api` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiKind {
    Tgi,
    TgiStream,
    OpenaiCompletions,
    OpenaiChat,
    Fastapi,
    Http,
}

impl ApiKind {
    pub const NAMES: &'static str =
        "tgi, tgi-stream, openai-completions, openai-chat, fastapi, http";

    pub fn as_str(self) -> &'static str {
        match self {
            ApiKind::Tgi => "tgi",
            ApiKind::TgiStream => "tgi-stream",
            ApiKind::OpenaiCompletions => "openai-completions",
            ApiKind::OpenaiChat => "openai-chat",
            ApiKind::Fastapi => "fastapi",
            ApiKind::Http => "http",
        }
    }

    /// The path used when the target URL has none.
    pub fn default_path(self) -> &'static str {
        match self {
            ApiKind::Tgi => "/generate",
            ApiKind::TgiStream => "/generate_stream",
            ApiKind::OpenaiCompletions => "/v1/completions",
            ApiKind::OpenaiChat => "/v1/chat/completions",
            ApiKind::Fastapi => "/predict",
            ApiKind::Http => "/",
        }
    }

    /// Whether responses arrive as server-sent events (given the `--stream` flag for OpenAI).
    pub fn streams(self, stream_flag: bool) -> bool {
        match self {
            ApiKind::TgiStream => true,
            ApiKind::OpenaiCompletions | ApiKind::OpenaiChat => stream_flag,
            _ => false,
        }
    }
}

impl fmt::Display for ApiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown --api {0:?}: choose one of {names}", names = ApiKind::NAMES)]
pub struct UnknownApi(pub String);

impl FromStr for ApiKind {
    type Err = UnknownApi;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "tgi" => ApiKind::Tgi,
            "tgi-stream" => ApiKind::TgiStream,
            "openai-completions" => ApiKind::OpenaiCompletions,
            "openai-chat" => ApiKind::OpenaiChat,
            "fastapi" => ApiKind::Fastapi,
            "http" => ApiKind::Http,
            other => return Err(UnknownApi(other.to_owned())),
        })
    }
}

/// Generation parameters; each API sends the ones it knows, and only those the user set
/// (so the server's own defaults apply otherwise), except the output length.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenParams {
    pub max_new_tokens: u32,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<u32>,
    pub repetition_penalty: Option<f32>,
    pub seed: Option<u64>,
    #[serde(default)]
    pub stop: Vec<String>,
    /// Ask the server to ignore end-of-sequence so every request generates `max_new_tokens`
    /// (vLLM's and rpload serve's `ignore_eos`).
    #[serde(default)]
    pub ignore_eos: bool,
    /// OpenAI kinds: stream with `stream_options.include_usage`.
    #[serde(default)]
    pub stream: bool,
    /// OpenAI kinds: the `model` field.
    pub model: Option<String>,
}

/// How the `fastapi` kind shapes its JSON: configured, not coded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastapiFormat {
    /// Request body with `{{prompt}}` (and optionally `{{max_new_tokens}}`) placeholders.
    pub body_template: String,
    /// JSON pointer to the generated text in the response.
    pub text_pointer: String,
    /// JSON pointer to a generated-token count in the response, if the app returns one.
    pub tokens_pointer: Option<String>,
    /// Whether the answer's leading prompt is removed before anything uses the text.
    #[serde(default)]
    pub strip_prompt: fastapi::StripPrompt,
}

/// The default `--body-template`: the study's `{"prompt"}` plus the requested length, which
/// pydantic models ignore unless they declare it (FastAPI's default) and `rpload serve` honours.
pub const FASTAPI_BODY_TEMPLATE: &str =
    r#"{"prompt": "{{prompt}}", "max_new_tokens": {{max_new_tokens}}}"#;

impl Default for FastapiFormat {
    /// The study's app: `POST /predict {"prompt": ...} -> {"prediction": prompt + continuation}`.
    fn default() -> Self {
        Self {
            body_template: FASTAPI_BODY_TEMPLATE.to_owned(),
            text_pointer: "/prediction".to_owned(),
            tokens_pointer: None,
            strip_prompt: fastapi::StripPrompt::Auto,
        }
    }
}

/// A request ready to send (method, absolute URL, headers, body).
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: reqwest::Method,
    pub url: Arc<str>,
    /// `url` as records show it: credentials redacted (`crate::redact`).
    pub shown_url: Arc<str>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a body did not decode; becomes `error_kind` `body` or `stream` on the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("response body: {0}")]
    Body(String),
    #[error("stream: {0}")]
    Stream(String),
}

/// What a response said about generation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Generated text, for token counting when the server gives no count.
    pub text: String,
    /// Output tokens as the server reported them.
    pub tokens_out: Option<u64>,
    /// Prompt tokens as the server reported them.
    pub tokens_in: Option<u64>,
    /// Arrival offsets of token events (streaming only), from the attack start.
    pub token_times: Vec<Duration>,
    /// Arrival of the first event carrying non-empty generated text.
    pub first_token: Option<Duration>,
}

/// Decodes one response incrementally. `chunk` is called per body chunk with its arrival
/// offset; `finish` once the body is complete.
pub trait Decoder: Send {
    fn chunk(&mut self, data: &[u8], at: Duration) -> Result<(), DecodeError>;
    fn finish(self: Box<Self>, headers: &HeaderMap) -> Result<Decoded, DecodeError>;
    /// Whether what it is fed stays in memory (a whole body, a stream's text), so the bytes
    /// count against the attack's body budget. Plain HTTP bodies are counted and dropped.
    fn keeps_body(&self) -> bool {
        true
    }
    /// Whether the body must be `text/event-stream` (the streaming kinds).
    fn wants_event_stream(&self) -> bool {
        false
    }
}

/// Collects a whole body and parses it once at the end (the non-streaming kinds).
pub struct WholeBody<F> {
    body: Vec<u8>,
    parse: F,
}

impl<F> WholeBody<F>
where
    F: FnOnce(&[u8], &HeaderMap) -> Result<Decoded, DecodeError> + Send,
{
    pub fn new(parse: F) -> Self {
        Self {
            body: Vec::new(),
            parse,
        }
    }
}

impl<F> Decoder for WholeBody<F>
where
    F: FnOnce(&[u8], &HeaderMap) -> Result<Decoded, DecodeError> + Send,
{
    fn chunk(&mut self, data: &[u8], _at: Duration) -> Result<(), DecodeError> {
        self.body.extend_from_slice(data);
        Ok(())
    }

    fn finish(self: Box<Self>, headers: &HeaderMap) -> Result<Decoded, DecodeError> {
        (self.parse)(&self.body, headers)
    }
}

/// A header holding an integer (TGI's `x-prompt-tokens`, `x-generated-tokens`).
pub fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Parses a whole body as `T`, telling a body that is not JSON from JSON of the wrong shape.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(body).map_err(|e| {
        let preview: String = String::from_utf8_lossy(&body[..body.len().min(60)]).into();
        let what = if e.is_data() {
            "not the expected answer"
        } else {
            "not JSON"
        };
        DecodeError::Body(format!("{what} ({e}): {preview:?}"))
    })
}

/// Parses one stream event's `data` as `T`, like [`parse_json`].
pub fn parse_event<T: DeserializeOwned>(data: &str) -> Result<T, DecodeError> {
    serde_json::from_str(data).map_err(|e| {
        let what = if e.is_data() {
            "not the expected event"
        } else {
            "not JSON"
        };
        DecodeError::Stream(format!("event is {what} ({e})"))
    })
}

/// One target of an LLM attack: its URL, and that URL as records show it (credentials
/// redacted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: Arc<str>,
    pub shown_url: Arc<str>,
}

impl Endpoint {
    pub fn new(url: &str) -> Self {
        Self {
            url: Arc::from(url),
            shown_url: Arc::from(crate::redact::url(url)),
        }
    }
}

/// The configured request builder and decoder factory for one attack.
#[derive(Debug, Clone)]
pub struct Api {
    pub kind: ApiKind,
    /// Every `--target`, at least one; requests are spread over them (`super::balance`).
    pub targets: Vec<Endpoint>,
    pub params: GenParams,
    pub fastapi: FastapiFormat,
    pub headers: HeaderMap,
    /// `--max-event-size`: the longest server-sent event a stream decoder accepts.
    pub max_event: usize,
}

impl Api {
    /// The request for one prompt, to `self.targets[target]`.
    pub fn request(&self, prompt: &Prompt, target: usize) -> RequestSpec {
        // A length the workload drew for this request replaces --max-new-tokens.
        let own;
        let params = match prompt.output_tokens {
            Some(n) if n != self.params.max_new_tokens => {
                own = GenParams {
                    max_new_tokens: n,
                    ..self.params.clone()
                };
                &own
            }
            _ => &self.params,
        };
        let body = match self.kind {
            ApiKind::Tgi | ApiKind::TgiStream => tgi::body(&prompt.flat(), params),
            ApiKind::OpenaiCompletions => openai::completions_body(&prompt.flat(), params),
            ApiKind::OpenaiChat => openai::chat_body(prompt, params),
            ApiKind::Fastapi => fastapi::body(&self.fastapi, &prompt.flat(), params),
            ApiKind::Http => Bytes::new(),
        };
        let mut headers = self.headers.clone();
        if !body.is_empty() && !headers.contains_key(reqwest::header::CONTENT_TYPE) {
            headers.insert(
                reqwest::header::CONTENT_TYPE,
                reqwest::header::HeaderValue::from_static("application/json"),
            );
        }
        let to = &self.targets[target];
        RequestSpec {
            method: reqwest::Method::POST,
            url: to.url.clone(),
            shown_url: to.shown_url.clone(),
            headers,
            body,
        }
    }

    /// A fresh decoder for the response to `prompt`.
    pub fn decoder(&self, prompt: &Prompt) -> Box<dyn Decoder> {
        match self.kind {
            ApiKind::Tgi => Box::new(WholeBody::new(tgi::parse_generate)),
            ApiKind::TgiStream => Box::new(tgi::StreamDecoder::new(self.max_event)),
            ApiKind::OpenaiCompletions | ApiKind::OpenaiChat if self.params.stream => {
                openai::stream_decoder(self.kind, self.max_event)
            }
            ApiKind::OpenaiCompletions | ApiKind::OpenaiChat => {
                let kind = self.kind;
                Box::new(WholeBody::new(move |b: &[u8], _: &HeaderMap| {
                    openai::parse_whole(kind, b)
                }))
            }
            ApiKind::Fastapi => {
                let format = self.fastapi.clone();
                let prompt: Arc<str> = match &prompt.system {
                    None => prompt.text.clone(),
                    Some(_) => Arc::from(prompt.flat()),
                };
                Box::new(WholeBody::new(move |b: &[u8], _: &HeaderMap| {
                    fastapi::parse(&format, &prompt, b)
                }))
            }
            ApiKind::Http => Box::new(http::Discard),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_round_trip_and_unknown_lists_choices() {
        for name in ApiKind::NAMES.split(", ") {
            assert_eq!(name.parse::<ApiKind>().unwrap().as_str(), name);
        }
        let err = "grpc".parse::<ApiKind>().unwrap_err().to_string();
        assert!(err.contains("unknown --api \"grpc\""), "{err}");
        assert!(err.contains("openai-chat"), "{err}");
    }
}
