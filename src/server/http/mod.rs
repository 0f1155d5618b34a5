//! The HTTP face of the server (axum): TGI routes (`POST /`, `/generate`, `/generate_stream`,
//! `GET /info`, `/health`, `/metrics`), OpenAI routes as vLLM serves them (`/v1/completions`,
//! `/v1/chat/completions`, `GET /v1/models`) and the study's FastAPI `POST /predict`.
//!
//! Owns the wire types, SSE framing, TGI's `x-*` timing headers, the concurrency limit (429
//! before validation, as TGI) and the ONE map from [`ServerError`] to status and body.
//! Must not tokenize, batch or touch tensors: it validates through `validate` and generates
//! through the scheduler handle. Every request holds a permit until its response (or stream)
//! is dropped, so a client that disconnects frees its slot at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::engine::TextTokenizer;
use super::metrics::{Metrics, RequestSample};
use super::scheduler::{Event, FinishReason, Generation, SchedulerHandle, Token, TokenStream};
use super::validate::{self, Limits, RawParams, RouteOptions, ValidationError};

/// TGI's `--payload-limit` default.
pub const PAYLOAD_LIMIT_BYTES: usize = 2_000_000;
/// TGI v1.0.3's default `max_new_tokens` (the study's version); OpenAI's for completions.
const TGI_DEFAULT_MAX_NEW_TOKENS: u32 = 20;
const OPENAI_COMPLETIONS_DEFAULT_MAX_TOKENS: u32 = 16;
/// The study's FastAPI app: `APP_MAX_TARGET_LENGTH` 50, `top_p` 0.9, `temperature` 0.01.
const PREDICT_MAX_NEW_TOKENS: u32 = 50;
/// TGI's `--max-client-batch-size`: prompts in one `/v1/completions` request.
const MAX_CLIENT_BATCH_SIZE: usize = 4;

/// What `/info` reports that the handlers do not otherwise know.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub model_id: String,
    pub model_dtype: String,
    pub model_device_type: String,
    pub engine: String,
    pub max_concurrent_requests: usize,
    pub max_batch_total_tokens: usize,
    pub max_batch_size: usize,
}

/// Everything a handler needs, shared.
#[derive(Clone)]
pub struct AppState {
    pub scheduler: SchedulerHandle,
    pub tokenizer: Arc<TextTokenizer>,
    pub limits: Limits,
    pub limiter: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
    pub info: Arc<ServerInfo>,
    pub next_id: Arc<AtomicU64>,
}

/// The router with every route and the body limit.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(health).post(compat_generate))
        .route("/generate", post(generate))
        .route("/generate_stream", post(generate_stream))
        .route("/info", get(info))
        .route("/health", get(health))
        .route("/ping", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/predict", post(predict))
        .route("/health-check", get(|| async { axum::Json("ok") }))
        .layer(DefaultBodyLimit::max(PAYLOAD_LIMIT_BYTES))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Errors: the one map to status codes.

/// Every way a request can fail, mapped to TGI's status and `{"error","error_type"}` body.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("Model is overloaded")]
    Overloaded,
    #[error("Input validation error: {0}")]
    Validation(#[from] ValidationError),
    #[error("Request failed during generation: {0}")]
    Generation(String),
    /// Admitted but refused for lack of KV cache or device memory (503, TGI's `overloaded`).
    #[error("Model is overloaded: {0}")]
    OutOfCapacity(String),
    #[error("Incomplete generation")]
    Incomplete,
    /// The body is not the JSON the route expects (axum's statuses: 400 syntax, 422 data,
    /// 413 too large), reported with a JSON body rather than axum's plain text.
    #[error("{message}")]
    Body { status: StatusCode, message: String },
    /// A field this server accepts but cannot honour (e.g. `suffix`, `n` > 1).
    #[error("{message}")]
    Unsupported {
        message: String,
        error_type: &'static str,
    },
}

impl ServerError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            Self::OutOfCapacity(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Validation(_) | Self::Unsupported { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Generation(_) => StatusCode::FAILED_DEPENDENCY,
            Self::Incomplete => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Body { status, .. } => *status,
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            Self::Overloaded | Self::OutOfCapacity(_) => "overloaded",
            Self::Validation(_) | Self::Body { .. } => "validation",
            Self::Generation(_) => "generation",
            Self::Incomplete => "incomplete_generation",
            Self::Unsupported { error_type, .. } => error_type,
        }
    }

    fn body(&self) -> Value {
        json!({"error": self.to_string(), "error_type": self.error_type()})
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(self.body())).into_response()
    }
}

/// A JSON body parsed whatever the content type (FastAPI-style leniency; load tools often omit
/// the header), with parse failures as [`ServerError::Body`].
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ServerError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ServerError::Body {
                status: e.status(),
                message: e.body_text(),
            })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            let status = match e.classify() {
                serde_json::error::Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::BAD_REQUEST,
            };
            let what = if status == StatusCode::BAD_REQUEST {
                "Failed to parse the request body as JSON"
            } else {
                "Failed to deserialize the JSON body into the target type"
            };
            ServerError::Body {
                status,
                message: format!("{what}: {e}"),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// TGI wire types.

/// TGI's `parameters`: the ones validation reads ([`RawParams`]) and those only the
/// response shape or an unsupported feature uses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GenerateParameters {
    #[serde(flatten)]
    pub raw: RawParams,
    pub return_full_text: Option<bool>,
    pub watermark: bool,
    pub details: bool,
    pub grammar: Option<Value>,
    pub adapter_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct GenerateRequest {
    pub inputs: String,
    #[serde(default)]
    pub parameters: GenerateParameters,
}

#[derive(Debug, Deserialize)]
pub struct CompatGenerateRequest {
    pub inputs: String,
    #[serde(default)]
    pub parameters: GenerateParameters,
    #[serde(default)]
    pub stream: bool,
}

#[derive(Debug, Serialize)]
struct TokenJson {
    id: u32,
    text: String,
    logprob: f32,
    special: bool,
}

impl From<&Token> for TokenJson {
    fn from(t: &Token) -> Self {
        Self {
            id: t.id,
            text: t.text.clone(),
            logprob: t.logprob,
            special: t.special,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generation shared by all routes.

/// A finished generation and its timings.
struct Completed {
    tokens: Vec<Token>,
    generation: Generation,
    validation: Duration,
    started: Instant,
    input_chars: usize,
}

impl AppState {
    fn permit(&self) -> Result<OwnedSemaphorePermit, ServerError> {
        self.metrics.request_received();
        self.limiter.clone().try_acquire_owned().map_err(|_| {
            self.metrics.request_failure("overloaded");
            ServerError::Overloaded
        })
    }

    /// Validates and submits one prompt; returns the stream and the validation time.
    fn start(
        &self,
        inputs: &str,
        params: &RawParams,
        route: RouteOptions,
    ) -> Result<(TokenStream, Duration, usize), ServerError> {
        let t0 = Instant::now();
        let valid = validate::validate(inputs, params, route, &self.tokenizer, &self.limits)
            .inspect_err(|_| self.metrics.request_failure("validation"))?;
        let validation = t0.elapsed();
        self.metrics.validation_time(validation.as_secs_f64());
        let stream = self
            .scheduler
            .submit(valid)
            .map_err(|e| ServerError::Generation(e.to_string()))?;
        Ok((stream, validation, inputs.chars().count()))
    }

    /// Runs one prompt to completion.
    async fn complete(
        &self,
        inputs: &str,
        params: &RawParams,
        route: RouteOptions,
    ) -> Result<Completed, ServerError> {
        let started = Instant::now();
        let (mut stream, validation, input_chars) = self.start(inputs, params, route)?;
        let mut tokens = Vec::new();
        loop {
            match stream.next().await {
                Some(Event::Token(t)) => tokens.push(t),
                Some(Event::End(t, mut generation)) => {
                    tokens.append(&mut generation.earlier_tokens);
                    tokens.push(t);
                    let done = Completed {
                        tokens,
                        generation: *generation,
                        validation,
                        started,
                        input_chars,
                    };
                    self.record_success(&done.generation, started, params);
                    return Ok(done);
                }
                Some(Event::Error(e)) => return Err(ServerError::Generation(e)),
                Some(Event::Overloaded(e)) => return Err(ServerError::OutOfCapacity(e)),
                None => {
                    self.metrics.request_failure("incomplete");
                    return Err(ServerError::Incomplete);
                }
            }
        }
    }

    fn record_success(&self, g: &Generation, started: Instant, params: &RawParams) {
        let inference = g.finished.duration_since(g.started).as_secs_f64();
        self.metrics.request_success(&RequestSample {
            total: started.elapsed().as_secs_f64(),
            inference,
            per_token: inference / g.generated_tokens.max(1) as f64,
            input_tokens: g.input_length,
            generated_tokens: g.generated_tokens,
            max_new_tokens: params.max_new_tokens.unwrap_or(0) as usize,
        });
    }

    fn fresh_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// TGI's response headers (times in milliseconds, `x-compute-time` in seconds).
fn timing_headers(state: &AppState, done: &Completed) -> HeaderMap {
    let g = &done.generation;
    let total = done.started.elapsed();
    let queue = g.started.duration_since(g.queued);
    let inference = g.finished.duration_since(g.started);
    let per_token = inference / (g.generated_tokens.max(1) as u32);
    let mut h = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    put("x-compute-type", state.info.model_device_type.clone());
    put("x-compute-time", format!("{}", total.as_secs_f64()));
    put("x-compute-characters", done.input_chars.to_string());
    put("x-total-time", total.as_millis().to_string());
    put("x-validation-time", done.validation.as_millis().to_string());
    put("x-queue-time", queue.as_millis().to_string());
    put("x-inference-time", inference.as_millis().to_string());
    put("x-time-per-token", per_token.as_millis().to_string());
    put("x-prompt-tokens", g.input_length.to_string());
    put("x-generated-tokens", g.generated_tokens.to_string());
    h
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An SSE response from a stream of already-framed events.
fn sse_response(extra: HeaderMap, events: impl Stream<Item = String> + Send + 'static) -> Response {
    let body = Body::from_stream(events.map(|e| Ok::<_, Infallible>(Bytes::from(e))));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.extend(extra);
    resp
}

// ---------------------------------------------------------------------------------------------
// TGI routes.

async fn generate(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<GenerateRequest>,
) -> Result<Response, ServerError> {
    let _permit = state.permit()?;
    generate_response(&state, req, false).await
}

async fn generate_response(
    state: &AppState,
    req: GenerateRequest,
    as_array: bool,
) -> Result<Response, ServerError> {
    let route = RouteOptions {
        stream: false,
        default_max_new_tokens: TGI_DEFAULT_MAX_NEW_TOKENS,
    };
    let p = &req.parameters;
    let done = state.complete(&req.inputs, &p.raw, route).await?;
    let g = &done.generation;
    let mut text = g.generated_text.clone();
    if p.return_full_text == Some(true) {
        text = format!("{}{text}", req.inputs);
    }
    let mut body = json!({"generated_text": text});
    if p.details {
        let tokens: Vec<TokenJson> = done.tokens.iter().map(TokenJson::from).collect();
        body["details"] = json!({
            "finish_reason": g.finish_reason.as_tgi(),
            "generated_tokens": g.generated_tokens,
            "seed": g.seed,
            "prefill": [],
            "tokens": tokens,
        });
    }
    let headers = timing_headers(state, &done);
    let body = if as_array { json!([body]) } else { body };
    Ok((headers, axum::Json(body)).into_response())
}

async fn generate_stream(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<GenerateRequest>,
) -> Result<Response, ServerError> {
    let permit = state.permit()?;
    tgi_stream(state, req, permit)
}

async fn compat_generate(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CompatGenerateRequest>,
) -> Result<Response, ServerError> {
    let permit = state.permit()?;
    let inner = GenerateRequest {
        inputs: req.inputs,
        parameters: req.parameters,
    };
    if req.stream {
        tgi_stream(state, inner, permit)
    } else {
        generate_response(&state, inner, true).await
    }
}

/// TGI's SSE: `data:{StreamResponse}` per token (no space after `data:`), the last carrying
/// `generated_text` and, with `details`, the finish reason; errors as `data:{"error",..}`.
fn tgi_stream(
    state: AppState,
    req: GenerateRequest,
    permit: OwnedSemaphorePermit,
) -> Result<Response, ServerError> {
    let route = RouteOptions {
        stream: true,
        default_max_new_tokens: TGI_DEFAULT_MAX_NEW_TOKENS,
    };
    let raw = req.parameters.raw;
    let (stream, _validation, input_chars) = state.start(&req.inputs, &raw, route)?;
    let prefix = if req.parameters.return_full_text == Some(true) {
        req.inputs.clone()
    } else {
        String::new()
    };
    let details = req.parameters.details;
    let device = state.info.model_device_type.clone();
    let started = Instant::now();
    let events = futures::stream::unfold(Some((stream, permit, 0usize)), move |st| {
        let (state, prefix, raw) = (state.clone(), prefix.clone(), raw.clone());
        async move {
            let (mut stream, permit, index) = st?;
            let index = index + 1;
            let line = match stream.next().await {
                Some(Event::Token(t)) => {
                    let ev = json!({"index": index, "token": TokenJson::from(&t),
                            "generated_text": null, "details": null});
                    return Some((format!("data:{ev}\n\n"), Some((stream, permit, index))));
                }
                Some(Event::End(t, g)) => {
                    state.record_success(&g, started, &raw);
                    let details = details.then(|| {
                        json!({"finish_reason": g.finish_reason.as_tgi(),
                                "generated_tokens": g.generated_tokens, "seed": g.seed,
                                "input_length": g.input_length})
                    });
                    json!({"index": index, "token": TokenJson::from(&t),
                            "generated_text": format!("{prefix}{}", g.generated_text),
                            "details": details})
                }
                Some(Event::Error(e)) => ServerError::Generation(e).body(),
                Some(Event::Overloaded(e)) => ServerError::OutOfCapacity(e).body(),
                None => {
                    state.metrics.request_failure("incomplete");
                    json!({"error": "Incomplete generation stream",
                            "error_type": "incomplete_generation_stream"})
                }
            };
            Some((format!("data:{line}\n\n"), None))
        }
    });
    let mut extra = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&device) {
        extra.insert("x-compute-type", v);
    }
    extra.insert("x-compute-characters", HeaderValue::from(input_chars));
    Ok(sse_response(extra, events))
}

async fn info(State(state): State<AppState>) -> axum::Json<Value> {
    let i = &state.info;
    let l = &state.limits;
    axum::Json(json!({
        "model_id": i.model_id,
        "model_sha": null,
        "model_dtype": i.model_dtype,
        "model_device_type": i.model_device_type,
        "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": i.max_concurrent_requests,
        "max_best_of": l.max_best_of,
        "max_stop_sequences": l.max_stop_sequences,
        "max_input_tokens": l.max_input_tokens,
        "max_total_tokens": l.max_total_tokens,
        "max_input_length": l.max_input_tokens,
        "max_batch_total_tokens": i.max_batch_total_tokens,
        "max_batch_size": i.max_batch_size,
        "validation_workers": 2,
        "max_client_batch_size": MAX_CLIENT_BATCH_SIZE,
        "router": "text-generation-router",
        "version": env!("CARGO_PKG_VERSION"),
        "sha": null,
        "docker_label": null,
        "engine": i.engine,
    }))
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// OpenAI routes.

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// Sampling fields common to both OpenAI routes.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OpenAiSampling {
    model: Option<String>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i32>,
    seed: Option<u64>,
    stop: Option<OneOrMany>,
    stream: bool,
    stream_options: Option<StreamOptions>,
    repetition_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    ignore_eos: bool,
    n: Option<usize>,
}

impl OpenAiSampling {
    /// OpenAI semantics on TGI parameters: temperature 0 is greedy, anything else samples
    /// (the API's default temperature is 1); `top_p` 1.0 and `top_k` <= 0 mean "off".
    fn into_call(
        self,
        state: &AppState,
        default_max: u32,
        id_prefix: &str,
    ) -> Result<OpenAiCall, ServerError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ServerError::Unsupported {
                message: "Input validation error: `n` must be 1 on this server".to_string(),
                error_type: "validation",
            });
        }
        let greedy = self.temperature == Some(0.0);
        let params = RawParams {
            temperature: self.temperature.filter(|&t| t != 0.0),
            top_p: self.top_p.filter(|&p| p < 1.0),
            top_k: self.top_k.filter(|&k| k > 0),
            do_sample: !greedy,
            max_new_tokens: Some(
                self.max_completion_tokens
                    .or(self.max_tokens)
                    .unwrap_or(default_max),
            ),
            stop: self.stop.map(OneOrMany::into_vec).unwrap_or_default(),
            seed: self.seed,
            repetition_penalty: self.repetition_penalty,
            frequency_penalty: self.frequency_penalty,
            ignore_eos: self.ignore_eos,
            ..RawParams::default()
        };
        let _ = (self.model, self.presence_penalty);
        Ok(OpenAiCall {
            raw: params,
            route: RouteOptions {
                stream: self.stream,
                default_max_new_tokens: default_max,
            },
            include_usage: self.stream_options.is_some_and(|o| o.include_usage),
            model: state.info.model_id.clone(),
            id: state.fresh_id(id_prefix),
            created: unix_now(),
        })
    }
}

/// What both OpenAI routes derive from a request before generating.
struct OpenAiCall {
    raw: RawParams,
    route: RouteOptions,
    /// `stream_options.include_usage`: close the stream with a usage chunk.
    include_usage: bool,
    model: String,
    id: String,
    created: u64,
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    prompt: OneOrMany,
    #[serde(default)]
    suffix: Option<String>,
    #[serde(flatten)]
    sampling: OpenAiSampling,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    messages: Vec<ChatMessage>,
    #[serde(flatten)]
    sampling: OpenAiSampling,
}

/// The prompt for a chat. Presets and most GPT-NeoX folders ship no chat template, so a fixed
/// one is used: `<|role|>\ncontent\n` per message, then `<|assistant|>\n`.
fn chat_prompt(messages: &[ChatMessage]) -> Result<String, ServerError> {
    let mut out = String::new();
    for m in messages {
        let text = match &m.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(parts)) => {
                let mut s = String::new();
                for p in parts {
                    if p.kind != "text" {
                        return Err(ServerError::Unsupported {
                            message: format!(
                                "Input validation error: content part type `{}` is not supported: send text parts",
                                p.kind
                            ),
                            error_type: "validation",
                        });
                    }
                    s.push_str(p.text.as_deref().unwrap_or(""));
                }
                s
            }
        };
        out.push_str(&format!("<|{}|>\n{text}\n", m.role));
    }
    out.push_str("<|assistant|>\n");
    Ok(out)
}

/// OpenAI finish reasons: EOS and stop sequences are both `stop`.
fn openai_finish(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Length => "length",
        FinishReason::EosToken | FinishReason::StopSequence => "stop",
    }
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion})
}

fn fingerprint() -> String {
    format!("rpload-{}-native", env!("CARGO_PKG_VERSION"))
}

async fn models(State(state): State<AppState>) -> axum::Json<Value> {
    let id = &state.info.model_id;
    axum::Json(json!({"object": "list", "data": [{
        "id": id, "object": "model", "created": 0, "owned_by": "rpload",
        "max_model_len": state.limits.max_total_tokens}]}))
}

async fn completions(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CompletionRequest>,
) -> Result<Response, ServerError> {
    let permit = state.permit()?;
    if req.suffix.is_some() {
        return Err(ServerError::Unsupported {
            message: "Input validation error: suffix is not supported".to_string(),
            error_type: "suffix not supported",
        });
    }
    let prompts = req.prompt.into_vec();
    if prompts.len() > MAX_CLIENT_BATCH_SIZE {
        return Err(ServerError::Unsupported {
            message: format!(
                "Input validation error: number of prompts must be <= {MAX_CLIENT_BATCH_SIZE}. Given: {}",
                prompts.len()
            ),
            error_type: "batch size exceeded",
        });
    }
    let OpenAiCall {
        raw,
        route,
        include_usage,
        model,
        id,
        created,
    } = req
        .sampling
        .into_call(&state, OPENAI_COMPLETIONS_DEFAULT_MAX_TOKENS, "cmpl")?;
    if !route.stream {
        let mut choices = Vec::new();
        let (mut p_tok, mut c_tok) = (0, 0);
        let mut last = None;
        for (index, prompt) in prompts.iter().enumerate() {
            let done = state.complete(prompt, &raw, route).await?;
            let g = &done.generation;
            p_tok += g.input_length;
            c_tok += g.generated_tokens;
            choices.push(
                json!({"index": index, "text": g.generated_text, "logprobs": null,
                "finish_reason": openai_finish(g.finish_reason)}),
            );
            last = Some(done);
        }
        let body = json!({"id": id, "object": "text_completion", "created": created,
            "model": model, "system_fingerprint": fingerprint(), "choices": choices,
            "usage": usage(p_tok, c_tok)});
        let headers = last.map(|d| timing_headers(&state, &d)).unwrap_or_default();
        return Ok((headers, axum::Json(body)).into_response());
    }
    let mut streams = Vec::new();
    for (index, prompt) in prompts.iter().enumerate() {
        let (s, _, _) = state.start(prompt, &raw, route)?;
        streams.push(token_events(s).map(move |e| (index, e)).boxed());
    }
    let closing = chunk_usage("text_completion", id.clone(), model.clone(), created);
    let chunk = move |choices: Value, usage_v: Value| {
        json!({"id": id, "object": "text_completion", "created": created, "model": model,
            "system_fingerprint": fingerprint(), "choices": choices, "usage": usage_v})
    };
    let events = openai_stream(
        state,
        permit,
        streams,
        include_usage,
        move |index, delta, finish| {
            chunk(
                json!([{"index": index, "text": delta, "logprobs": null, "finish_reason": finish}]),
                Value::Null,
            )
        },
        closing,
    );
    Ok(sse_response(HeaderMap::new(), events))
}

/// The closing usage chunk (`stream_options.include_usage`): no choices, only `usage`.
fn chunk_usage(
    object: &'static str,
    id: String,
    model: String,
    created: u64,
) -> impl FnOnce(Value) -> Value + Send {
    move |usage_v| {
        json!({"id": id, "object": object, "created": created, "model": model,
            "system_fingerprint": fingerprint(), "choices": [], "usage": usage_v})
    }
}

async fn chat_completions(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ChatRequest>,
) -> Result<Response, ServerError> {
    let permit = state.permit()?;
    let prompt = chat_prompt(&req.messages)?;
    let OpenAiCall {
        raw,
        route,
        include_usage,
        model,
        id,
        created,
    } = req
        .sampling
        .into_call(&state, TGI_DEFAULT_MAX_NEW_TOKENS, "chatcmpl")?;
    if !route.stream {
        let done = state.complete(&prompt, &raw, route).await?;
        let g = &done.generation;
        let body = json!({"id": id, "object": "chat.completion", "created": created,
            "model": model, "system_fingerprint": fingerprint(),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": g.generated_text},
                "logprobs": null, "finish_reason": openai_finish(g.finish_reason)}],
            "usage": usage(g.input_length, g.generated_tokens)});
        return Ok((timing_headers(&state, &done), axum::Json(body)).into_response());
    }
    let (s, _, _) = state.start(&prompt, &raw, route)?;
    let streams = vec![token_events(s).map(|e| (0usize, e)).boxed()];
    let closing = chunk_usage("chat.completion.chunk", id.clone(), model.clone(), created);
    let events = openai_stream(
        state,
        permit,
        streams,
        include_usage,
        move |index, delta, finish| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created,
                "model": model, "system_fingerprint": fingerprint(),
                "choices": [{"index": index, "delta": {"role": "assistant", "content": delta},
                    "logprobs": null, "finish_reason": finish}], "usage": null})
        },
        closing,
    );
    Ok(sse_response(HeaderMap::new(), events))
}

/// A token stream as a `futures` stream that ends after `End`/`Error`.
fn token_events(s: TokenStream) -> impl Stream<Item = Event> + Send {
    futures::stream::unfold(Some(s), |s| async move {
        let mut s = s?;
        let e = s.next().await?;
        let done = !matches!(e, Event::Token(_));
        Some((e, if done { None } else { Some(s) }))
    })
}

/// OpenAI SSE (`data: {chunk}` per token, an optional usage chunk, then `data: [DONE]`),
/// merging the streams of several prompts. The permit lives as long as the stream.
fn openai_stream<F, U>(
    state: AppState,
    permit: OwnedSemaphorePermit,
    streams: Vec<futures::stream::BoxStream<'static, (usize, Event)>>,
    include_usage: bool,
    token_chunk: F,
    usage_chunk: U,
) -> impl Stream<Item = String> + Send + 'static
where
    F: Fn(usize, String, Option<&'static str>) -> Value + Send + 'static,
    U: FnOnce(Value) -> Value + Send + 'static,
{
    let started = Instant::now();
    // (prompt tokens, completion tokens), read by the closing chunk once every stream ended.
    let totals = Arc::new(std::sync::Mutex::new((0usize, 0usize)));
    let totals_in = totals.clone();
    let body = futures::stream::select_all(streams).map(move |(index, e)| {
        let chunk = match e {
            Event::Token(t) => token_chunk(index, t.delta, None),
            Event::End(t, g) => {
                if let Ok(mut tot) = totals_in.lock() {
                    tot.0 += g.input_length;
                    tot.1 += g.generated_tokens;
                }
                state.record_success(&g, started, &RawParams::default());
                token_chunk(index, t.delta, Some(openai_finish(g.finish_reason)))
            }
            Event::Error(msg) => json!({"error": {
                "message": ServerError::Generation(msg).to_string(), "http_status_code": 424}}),
            Event::Overloaded(msg) => json!({"error": {
                "message": ServerError::OutOfCapacity(msg).to_string(), "http_status_code": 503}}),
        };
        format!("data: {chunk}\n\n")
    });
    let tail = futures::stream::once(async move {
        let _permit = permit;
        let mut out = String::new();
        if include_usage {
            let (p, c) = totals.lock().map(|t| *t).unwrap_or_default();
            out.push_str(&format!("data: {}\n\n", usage_chunk(usage(p, c))));
        }
        out.push_str("data: [DONE]\n\n");
        out
    });
    body.chain(tail)
}

// ---------------------------------------------------------------------------------------------
// The study's FastAPI app.

/// The study's body plus what a load test needs to fix the length: `max_new_tokens` (the
/// attacker's default fastapi template sends it; the study's pydantic model ignored it) and
/// vLLM's `ignore_eos`, as the other routes accept.
#[derive(Debug, Deserialize)]
struct PredictRequest {
    prompt: String,
    #[serde(default)]
    max_new_tokens: Option<u32>,
    #[serde(default)]
    ignore_eos: bool,
}

async fn predict(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PredictRequest>,
) -> Result<Response, ServerError> {
    let _permit = state.permit()?;
    let raw = RawParams {
        do_sample: true,
        top_p: Some(0.9),
        temperature: Some(0.01),
        // Zero is left to validation, which answers with TGI's message.
        max_new_tokens: Some(req.max_new_tokens.unwrap_or(PREDICT_MAX_NEW_TOKENS)),
        ignore_eos: req.ignore_eos,
        ..RawParams::default()
    };
    let route = RouteOptions {
        stream: false,
        default_max_new_tokens: PREDICT_MAX_NEW_TOKENS,
    };
    let done = state.complete(&req.prompt, &raw, route).await?;
    // The study's app returned the prompt followed by the continuation.
    let prediction = format!("{}{}", req.prompt, done.generation.generated_text);
    Ok((
        timing_headers(&state, &done),
        axum::Json(json!({"prediction": prediction})),
    )
        .into_response())
}
