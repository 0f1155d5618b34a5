//! TGI's routes: `POST /generate` (whole answer, `details` on request), `POST /generate_stream`
//! (SSE, `data:{StreamResponse}` per token), the compat `POST /` (either, answered in an array
//! when whole) and `GET /info`, `/health`, `/metrics`. Request and answer types are
//! `wire::tgi`'s.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;

use super::{
    AppState, JsonBody, MAX_CLIENT_BATCH_SIZE, ServerError, TGI_DEFAULT_MAX_NEW_TOKENS, sse_event,
    sse_response, timing_headers,
};
use crate::server::scheduler::{Event, Token, TopToken};
use crate::server::validate::RouteOptions;
use crate::wire::tgi::{
    CompatGenerateRequest, Details, ErrorResponse, GenerateRequest, GenerateResponse,
    StreamDetails, StreamResponse,
};

/// TGI frames its events with no space after `data:`.
const DATA: &str = "data:";

fn wire_token(t: &Token) -> crate::wire::tgi::Token {
    crate::wire::tgi::Token {
        id: t.id,
        text: t.text.clone(),
        logprob: Some(t.logprob),
        special: t.special,
    }
}

/// A token's alternatives as TGI writes them: `Token`s, best first.
fn wire_top_tokens(t: &Token) -> Vec<crate::wire::tgi::Token> {
    t.top_tokens
        .iter()
        .map(|a: &TopToken| crate::wire::tgi::Token {
            id: a.id,
            text: a.text.clone(),
            logprob: Some(a.logprob),
            special: a.special,
        })
        .collect()
}

pub(super) async fn generate(
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
        default_max_new_tokens: state.default_max_new_tokens(TGI_DEFAULT_MAX_NEW_TOKENS),
        openai: None,
    };
    let p = &req.parameters;
    let done = state.complete(&req.inputs, &p.generation, route).await?;
    let g = &done.generation;
    let mut generated_text = g.generated_text.clone();
    if p.return_full_text == Some(true) {
        generated_text = format!("{}{generated_text}", req.inputs);
    }
    let details = p.details.then(|| Details {
        finish_reason: g.finish_reason.as_tgi().to_owned(),
        generated_tokens: Some(g.generated_tokens as u64),
        seed: g.seed,
        prefill: Vec::new(),
        tokens: done.tokens.iter().map(wire_token).collect(),
        // TGI leaves `top_tokens` out unless `top_n_tokens` asked for them.
        top_tokens: if p.generation.top_n_tokens.unwrap_or(0) > 0 {
            done.tokens.iter().map(wire_top_tokens).collect()
        } else {
            Vec::new()
        },
    });
    let body = GenerateResponse {
        generated_text,
        details,
    };
    let headers = timing_headers(state, &done);
    Ok(if as_array {
        (headers, axum::Json([body])).into_response()
    } else {
        (headers, axum::Json(body)).into_response()
    })
}

pub(super) async fn generate_stream(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<GenerateRequest>,
) -> Result<Response, ServerError> {
    let permit = state.permit()?;
    tgi_stream(state, req, permit).await
}

pub(super) async fn compat_generate(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CompatGenerateRequest>,
) -> Result<Response, ServerError> {
    let permit = state.permit()?;
    let inner = GenerateRequest {
        inputs: req.inputs,
        parameters: req.parameters,
    };
    if req.stream {
        tgi_stream(state, inner, permit).await
    } else {
        generate_response(&state, inner, true).await
    }
}

/// TGI's SSE: `data:{StreamResponse}` per token, the last carrying `generated_text` and, with
/// `details`, the finish reason; errors as `data:{"error",..}`.
async fn tgi_stream(
    state: AppState,
    req: GenerateRequest,
    permit: OwnedSemaphorePermit,
) -> Result<Response, ServerError> {
    let route = RouteOptions {
        stream: true,
        default_max_new_tokens: state.default_max_new_tokens(TGI_DEFAULT_MAX_NEW_TOKENS),
        openai: None,
    };
    let raw = req.parameters.generation;
    let (stream, _validation, input_chars) = state.start(&req.inputs, &raw, route).await?;
    let prefix = if req.parameters.return_full_text == Some(true) {
        req.inputs.clone()
    } else {
        String::new()
    };
    let details = req.parameters.details;
    let device = state.info.model_device_type.clone();
    let started = Instant::now();
    let events = futures::stream::unfold(Some((stream, permit, 0u64)), move |st| {
        let (state, prefix, raw) = (state.clone(), prefix.clone(), raw.clone());
        async move {
            let (mut stream, permit, index) = st?;
            let index = index + 1;
            let line = match stream.next().await {
                Some(Event::Token(t)) => {
                    let ev = StreamResponse {
                        index,
                        token: Some(wire_token(&t)),
                        top_tokens: wire_top_tokens(&t),
                        ..StreamResponse::default()
                    };
                    return Some((sse_event(DATA, &ev), Some((stream, permit, index))));
                }
                Some(Event::End(t, g)) => {
                    state.record_success(&g, started, &raw);
                    let details = details.then(|| StreamDetails {
                        finish_reason: g.finish_reason.as_tgi().to_owned(),
                        generated_tokens: Some(g.generated_tokens as u64),
                        seed: g.seed,
                        input_length: Some(g.input_length as u64),
                    });
                    let ev = StreamResponse {
                        index,
                        token: Some(wire_token(&t)),
                        top_tokens: wire_top_tokens(&t),
                        generated_text: Some(format!("{prefix}{}", g.generated_text)),
                        details,
                        error: None,
                    };
                    return Some((sse_event(DATA, &ev), None));
                }
                Some(Event::Error(e)) => ServerError::Generation(e).body(),
                Some(Event::Overloaded(e)) => ServerError::OutOfCapacity(e).body(),
                None => {
                    state.metrics.request_failure("incomplete");
                    ErrorResponse {
                        error: "Incomplete generation stream".to_owned(),
                        error_type: "incomplete_generation_stream".to_owned(),
                    }
                }
            };
            Some((sse_event(DATA, &line), None))
        }
    });
    let mut extra = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&device) {
        extra.insert("x-compute-type", v);
    }
    extra.insert("x-compute-characters", HeaderValue::from(input_chars));
    Ok(sse_response(extra, events))
}

pub(super) async fn info(State(state): State<AppState>) -> axum::Json<Value> {
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
        "validation_workers": super::VALIDATION_WORKERS,
        "max_client_batch_size": MAX_CLIENT_BATCH_SIZE,
        "router": "text-generation-router",
        "version": env!("CARGO_PKG_VERSION"),
        "sha": null,
        "docker_label": null,
        "engine": i.engine,
    }))
}

pub(super) async fn health() -> StatusCode {
    StatusCode::OK
}

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
