//! The HTTP face of the server (axum): the router, the state every handler shares, the ONE
//! map from [`ServerError`] to status and body, body parsing, TGI's `x-*` timing headers and
//! SSE framing. The routes live by wire format: `tgi` (`POST /`, `/generate`,
//! `/generate_stream`, `GET /info`, `/health`, `/metrics`), `openai` (`/v1/completions`,
//! `/v1/chat/completions`, `GET /v1/models`, as vLLM serves them) and `predict` (the study's
//! FastAPI app); the JSON types of the first two are `crate::wire`'s.
//!
//! Owns the concurrency limit (429 before validation, as TGI) and hands tokenizing to the
//! validation workers (`workers`), off the async threads. Must not batch or touch
//! tensors: it validates through `validate` and generates through the scheduler handle.
//! Every request holds a permit until its response (or stream) is dropped, so a client that
//! disconnects frees its slot at once. `guard` holds the API key and content-type gates.

mod guard;
mod openai;
mod predict;
mod tgi;
mod workers;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::engine::TextTokenizer;
use super::generator::Generator;
use super::metrics::{Metrics, RequestSample};
use super::scheduler::{Event, Generation, Token, TokenStream};
use super::validate::{self, Limits, RawParams, RouteOptions, ValidationError};
use crate::wire;

pub use guard::ApiKey;
pub use workers::{VALIDATION_WORKERS, ValidationWorkers};

/// TGI's `--payload-limit` default.
pub const PAYLOAD_LIMIT_BYTES: usize = 2_000_000;
/// TGI v1.0.3's default `max_new_tokens` (the study's version), also chat's.
const TGI_DEFAULT_MAX_NEW_TOKENS: u32 = 20;
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
    /// The engine behind the routes: the scheduler's worker or the mock.
    pub scheduler: Generator,
    pub tokenizer: Arc<TextTokenizer>,
    pub limits: Limits,
    pub limiter: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
    pub info: Arc<ServerInfo>,
    pub next_id: Arc<AtomicU64>,
    /// The threads that tokenize.
    pub validation: Arc<ValidationWorkers>,
}

/// The router with every route and the body limit; with `api_key`, every route but
/// `/health` and `/metrics` needs it as a bearer token.
pub fn router(state: AppState, api_key: Option<ApiKey>) -> Router {
    let routes = Router::new()
        .route("/", get(tgi::health).post(tgi::compat_generate))
        .route("/generate", post(tgi::generate))
        .route("/generate_stream", post(tgi::generate_stream))
        .route("/info", get(tgi::info))
        .route("/health", get(tgi::health))
        .route("/ping", get(tgi::health))
        .route("/metrics", get(tgi::metrics))
        .route("/v1/models", get(openai::models))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/predict", post(predict::predict))
        .route("/health-check", get(predict::health_check))
        .layer(DefaultBodyLimit::max(PAYLOAD_LIMIT_BYTES))
        .with_state(state);
    match api_key {
        Some(key) => routes.layer(middleware::from_fn_with_state(
            Arc::new(key),
            guard::require_key,
        )),
        None => routes,
    }
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
    #[error(
        "missing or wrong API key: this server was started with --api-key; send `Authorization: Bearer <key>`"
    )]
    Unauthorized,
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
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Body { status, .. } => *status,
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            Self::Overloaded | Self::OutOfCapacity(_) => "overloaded",
            Self::Validation(_) | Self::Body { .. } => "validation",
            Self::Generation(_) => "generation",
            Self::Incomplete => "incomplete_generation",
            Self::Unauthorized => "authentication",
            Self::Unsupported { error_type, .. } => error_type,
        }
    }

    fn body(&self) -> wire::tgi::ErrorResponse {
        wire::tgi::ErrorResponse {
            error: self.to_string(),
            error_type: self.error_type().to_owned(),
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(self.body())).into_response()
    }
}

/// A JSON body declared as such (415 otherwise, as axum's `Json`), with every failure as
/// [`ServerError::Body`] in the routes' error shape rather than axum's plain text.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ServerError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        guard::json_content_type(req.headers())?;
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
    async fn start(
        &self,
        inputs: &str,
        params: &RawParams,
        route: RouteOptions,
    ) -> Result<(TokenStream, Duration, usize), ServerError> {
        let t0 = Instant::now();
        let valid = self
            .validate(inputs, params, route)
            .await
            .inspect_err(|_| self.metrics.request_failure("validation"))?;
        let validation = t0.elapsed();
        self.metrics.validation_time(validation.as_secs_f64());
        let stream = self
            .scheduler
            .submit(valid, t0)
            .map_err(|e| ServerError::Generation(e.to_string()))?;
        Ok((stream, validation, inputs.chars().count()))
    }

    /// The cheap checks here, then the tokenizer on a validation worker once one is free (the
    /// wait counts as validation time, as in TGI's queue to its workers).
    async fn validate(
        &self,
        inputs: &str,
        params: &RawParams,
        route: RouteOptions,
    ) -> Result<validate::ValidRequest, ServerError> {
        let checked = validate::check(inputs, params, route, &self.tokenizer, &self.limits)?;
        let (tokenizer, inputs) = (self.tokenizer.clone(), inputs.to_owned());
        let valid = self
            .validation
            .run(move || checked.tokenize(&inputs, &tokenizer))
            .await
            .map_err(|e| ServerError::Generation(e.to_string()))?;
        Ok(valid?)
    }

    /// Runs one prompt to completion.
    async fn complete(
        &self,
        inputs: &str,
        params: &RawParams,
        route: RouteOptions,
    ) -> Result<Completed, ServerError> {
        let started = Instant::now();
        let (mut stream, validation, input_chars) = self.start(inputs, params, route).await?;
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

    /// A route's default answer length, or the mock's `--tokens` (see
    /// [`Generator::default_max_new_tokens`]).
    fn default_max_new_tokens(&self, route_default: u32) -> u32 {
        self.scheduler.default_max_new_tokens(route_default)
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

/// One SSE event. TGI writes `data:` with no space, OpenAI-style servers `data: `; clients
/// accept both, but each route keeps its server's framing.
fn sse_event(prefix: &str, body: &impl Serialize) -> String {
    let json = serde_json::to_string(body).expect("wire types have string keys only");
    format!("{prefix}{json}\n\n")
}
