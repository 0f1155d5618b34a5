//! The study's FastAPI app: `POST /predict {"prompt"} -> {"prediction": prompt +
//! continuation}` with its fixed sampling, and `GET /health-check`. Its body is no TGI or
//! OpenAI format, so its type lives here rather than in `wire`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, JsonBody, ServerError, timing_headers};
use crate::server::validate::{RawParams, RouteOptions};

/// The study's FastAPI app: `APP_MAX_TARGET_LENGTH` 50, `top_p` 0.9, `temperature` 0.01.
const PREDICT_MAX_NEW_TOKENS: u32 = 50;

/// The study's body plus what a load test needs to fix the length: `max_new_tokens` (the
/// attacker's default fastapi template sends it; the study's pydantic model ignored it) and
/// vLLM's `ignore_eos`, as the other routes accept.
#[derive(Debug, Deserialize)]
pub(super) struct PredictRequest {
    prompt: String,
    #[serde(default)]
    max_new_tokens: Option<u32>,
    #[serde(default)]
    ignore_eos: bool,
}

pub(super) async fn predict(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PredictRequest>,
) -> Result<Response, ServerError> {
    let _permit = state.permit()?;
    let default_max = state.default_max_new_tokens(PREDICT_MAX_NEW_TOKENS);
    let raw = RawParams {
        do_sample: true,
        top_p: Some(0.9),
        temperature: Some(0.01),
        // Zero is left to validation, which answers with TGI's message.
        max_new_tokens: Some(req.max_new_tokens.unwrap_or(default_max)),
        ignore_eos: req.ignore_eos,
        ..RawParams::default()
    };
    let route = RouteOptions {
        stream: false,
        default_max_new_tokens: default_max,
        openai: None,
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

/// FastAPI's health route answers the JSON string `"ok"`.
pub(super) async fn health_check() -> axum::Json<&'static str> {
    axum::Json("ok")
}
