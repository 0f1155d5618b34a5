//! OpenAI routes as vLLM serves them: `POST /v1/completions` (up to
//! [`MAX_CLIENT_BATCH_SIZE`] prompts), `POST /v1/chat/completions` and `GET /v1/models`.
//! Owns the mapping of OpenAI sampling onto TGI parameters, the fixed chat template and the
//! chunked stream (`data: {chunk}` per token, a usage chunk on request, then `data: [DONE]`).
//! Request and answer types are `wire::openai`'s.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;

use super::{
    AppState, JsonBody, MAX_CLIENT_BATCH_SIZE, ServerError, TGI_DEFAULT_MAX_NEW_TOKENS, sse_event,
    sse_response, timing_headers,
};
use crate::server::scheduler::{Event, FinishReason, Token, TokenStream};
use crate::server::validate::{OpenAiParams, RawParams, RouteOptions};
use crate::wire::openai::{
    ChatChoice, ChatLogprob, ChatLogprobs, ChatMessage, ChatRequest, ChunkChoice, Completion,
    CompletionLogprobs, CompletionRequest, Content, Delta, ErrorDetail, Message, OneOrMany,
    Sampling, StreamError, TextChoice, TopLogprob, Usage,
};

/// OpenAI's default `max_tokens` for completions (chat uses TGI's).
const OPENAI_COMPLETIONS_DEFAULT_MAX_TOKENS: u32 = 16;
/// OpenAI-style servers frame events with a space after `data:`.
const DATA: &str = "data: ";

/// What both routes derive from a request before generating.
struct OpenAiCall {
    raw: RawParams,
    route: RouteOptions,
    /// `stream_options.include_usage`: close the stream with a usage chunk.
    include_usage: bool,
    /// Log-probabilities asked for: each token's own and this many best alternatives.
    logprobs: Option<u32>,
    model: String,
    id: String,
    created: u64,
}

impl OpenAiCall {
    /// OpenAI semantics on TGI parameters: temperature 0 is greedy, anything else samples
    /// (the API's default temperature is 1); `top_p` 1.0 and `top_k` <= 0 mean "off";
    /// `frequency_penalty` and `presence_penalty` keep OpenAI's meaning (see
    /// [`OpenAiParams`]). `logprobs` is `(field, alternatives)` when the request asked for
    /// log-probabilities, the field named in errors. `model` is accepted and unused.
    fn new(
        s: Sampling,
        logprobs: Option<(&str, u32)>,
        state: &AppState,
        default_max: u32,
        id_prefix: &str,
    ) -> Result<Self, ServerError> {
        let max_top = state.limits.max_top_n_tokens;
        if let Some((field, n)) = logprobs.filter(|&(_, n)| n > max_top) {
            return Err(ServerError::Unsupported {
                message: format!(
                    "Input validation error: `{field}` must be <= {max_top} on this server. Given: {n}"
                ),
                error_type: "validation",
            });
        }
        if s.n.is_some_and(|n| n != 1) {
            return Err(ServerError::Unsupported {
                message: "Input validation error: `n` must be 1 on this server".to_string(),
                error_type: "validation",
            });
        }
        let max_new_tokens = s
            .max_completion_tokens
            .or(s.max_tokens)
            .unwrap_or(default_max);
        // vLLM's `min_tokens`: this scheduler can hold EOS off for the whole answer or not at
        // all, so a floor at the cap is ignore_eos and a lower one is refused, not ignored.
        if let Some(min) = s.min_tokens
            && min != 0
            && min < max_new_tokens
        {
            return Err(ServerError::Unsupported {
                message: format!(
                    "Input validation error: `min_tokens` {min} below `max_tokens` {max_new_tokens} is not supported on this server; send min_tokens equal to max_tokens or ignore_eos"
                ),
                error_type: "validation",
            });
        }
        let greedy = s.temperature == Some(0.0);
        let raw = RawParams {
            temperature: s.temperature.filter(|&t| t != 0.0),
            top_p: s.top_p.filter(|&p| p < 1.0),
            top_k: s.top_k.filter(|&k| k > 0),
            do_sample: !greedy,
            max_new_tokens: Some(max_new_tokens),
            stop: s.stop.map(OneOrMany::into_vec).unwrap_or_default(),
            seed: s.seed,
            repetition_penalty: s.repetition_penalty,
            frequency_penalty: s.frequency_penalty,
            top_n_tokens: logprobs.map(|(_, n)| n).filter(|&n| n > 0),
            ignore_eos: s.ignore_eos || s.min_tokens.is_some_and(|m| m >= max_new_tokens),
            ..RawParams::default()
        };
        Ok(Self {
            raw,
            route: RouteOptions {
                stream: s.stream,
                default_max_new_tokens: default_max,
                openai: Some(OpenAiParams {
                    presence_penalty: s.presence_penalty,
                }),
            },
            include_usage: s.stream_options.is_some_and(|o| o.include_usage),
            logprobs: logprobs.map(|(_, n)| n),
            model: state.info.model_id.clone(),
            id: state.fresh_id(id_prefix),
            created: unix_now(),
        })
    }

    /// An answer or chunk of this call.
    fn answer<C>(&self, object: &str, choices: Vec<C>, usage: Option<Usage>) -> Completion<C> {
        Completion {
            id: self.id.clone(),
            object: object.to_owned(),
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: Some(fingerprint()),
            choices,
            usage,
            error: None,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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

fn fingerprint() -> String {
    format!("rpload-{}-native", env!("CARGO_PKG_VERSION"))
}

pub(super) async fn models(State(state): State<AppState>) -> axum::Json<Value> {
    let id = &state.info.model_id;
    axum::Json(json!({"object": "list", "data": [{
        "id": id, "object": "model", "created": 0, "owned_by": "rpload",
        "max_model_len": state.limits.max_total_tokens}]}))
}

pub(super) async fn completions(
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
    let default_max = state.default_max_new_tokens(OPENAI_COMPLETIONS_DEFAULT_MAX_TOKENS);
    let logprobs = req.logprobs.map(|n| ("logprobs", n));
    let call = OpenAiCall::new(req.sampling, logprobs, &state, default_max, "cmpl")?;
    const OBJECT: &str = "text_completion";
    if !call.route.stream {
        let mut choices = Vec::new();
        let (mut p_tok, mut c_tok) = (0, 0);
        let mut last = None;
        for (index, prompt) in prompts.iter().enumerate() {
            let done = state.complete(prompt, &call.raw, call.route).await?;
            let g = &done.generation;
            p_tok += g.input_length;
            c_tok += g.generated_tokens;
            choices.push(TextChoice {
                index,
                text: Some(g.generated_text.clone()),
                logprobs: call
                    .logprobs
                    .map(|_| completion_logprobs(&done.tokens, &mut 0)),
                finish_reason: Some(openai_finish(g.finish_reason).to_owned()),
            });
            last = Some(done);
        }
        let body = call.answer(OBJECT, choices, Some(Usage::new(p_tok, c_tok)));
        let headers = last.map(|d| timing_headers(&state, &d)).unwrap_or_default();
        return Ok((headers, axum::Json(body)).into_response());
    }
    let mut streams = Vec::new();
    for (index, prompt) in prompts.iter().enumerate() {
        let (s, _, _) = state.start(prompt, &call.raw, call.route).await?;
        streams.push(token_events(s).map(move |e| (index, e)).boxed());
    }
    let wanted = call.logprobs.is_some();
    // Each prompt's character offset so far, for `text_offset`.
    let mut offsets = vec![0usize; prompts.len()];
    let events = openai_stream(
        state,
        permit,
        streams,
        call,
        OBJECT,
        move |index, token: &Token, finish| TextChoice {
            index,
            text: Some(token.delta.clone()),
            logprobs: wanted
                .then(|| completion_logprobs(std::slice::from_ref(token), &mut offsets[index])),
            finish_reason: finish.map(str::to_owned),
        },
    );
    Ok(sse_response(HeaderMap::new(), events))
}

pub(super) async fn chat_completions(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ChatRequest>,
) -> Result<Response, ServerError> {
    let permit = state.permit()?;
    let prompt = chat_prompt(&req.messages)?;
    let default_max = state.default_max_new_tokens(TGI_DEFAULT_MAX_NEW_TOKENS);
    let wants = req.logprobs == Some(true);
    if !wants && req.top_logprobs.is_some_and(|n| n > 0) {
        return Err(ServerError::Unsupported {
            message: "Input validation error: `top_logprobs` needs `logprobs` set to true"
                .to_string(),
            error_type: "validation",
        });
    }
    let logprobs = wants.then(|| ("top_logprobs", req.top_logprobs.unwrap_or(0)));
    let call = OpenAiCall::new(req.sampling, logprobs, &state, default_max, "chatcmpl")?;
    if !call.route.stream {
        let done = state.complete(&prompt, &call.raw, call.route).await?;
        let g = &done.generation;
        let choice = ChatChoice {
            index: 0,
            message: Message {
                role: "assistant".to_owned(),
                content: Some(g.generated_text.clone()),
            },
            logprobs: call.logprobs.map(|_| chat_logprobs(&done.tokens)),
            finish_reason: Some(openai_finish(g.finish_reason).to_owned()),
        };
        let usage = Usage::new(g.input_length, g.generated_tokens);
        let body = call.answer("chat.completion", vec![choice], Some(usage));
        return Ok((timing_headers(&state, &done), axum::Json(body)).into_response());
    }
    let (s, _, _) = state.start(&prompt, &call.raw, call.route).await?;
    let streams = vec![token_events(s).map(|e| (0usize, e)).boxed()];
    let wanted = call.logprobs.is_some();
    let events = openai_stream(
        state,
        permit,
        streams,
        call,
        "chat.completion.chunk",
        move |index, token: &Token, finish| ChunkChoice {
            index,
            delta: Delta {
                role: Some("assistant".to_owned()),
                content: Some(token.delta.clone()),
            },
            logprobs: wanted.then(|| chat_logprobs(std::slice::from_ref(token))),
            finish_reason: finish.map(str::to_owned),
        },
    );
    Ok(sse_response(HeaderMap::new(), events))
}

/// `/v1/completions`' `logprobs` for `tokens`; `offset` is the character offset of the first
/// in the generated text and moves past them (streams call this a token at a time).
fn completion_logprobs(tokens: &[Token], offset: &mut usize) -> Value {
    let mut out = CompletionLogprobs::default();
    for t in tokens {
        out.tokens.push(t.text.clone());
        out.token_logprobs.push(t.logprob);
        // Keyed by text, as OpenAI's legacy shape is: the best of equal texts stays, and the
        // chosen token is there even when it is not among the best.
        let mut top = std::collections::BTreeMap::new();
        for a in &t.top_tokens {
            top.entry(a.text.clone()).or_insert(a.logprob);
        }
        top.entry(t.text.clone()).or_insert(t.logprob);
        out.top_logprobs.push(top);
        out.text_offset.push(*offset);
        *offset += t.delta.chars().count();
    }
    // Strings and numbers only: this cannot fail.
    serde_json::to_value(out).unwrap_or_default()
}

/// `/v1/chat/completions`' `logprobs` for `tokens`. `bytes` are the token text's UTF-8 (a
/// token that ends inside a character shows the replacement character, as its text does).
fn chat_logprobs(tokens: &[Token]) -> Value {
    let content = tokens
        .iter()
        .map(|t| ChatLogprob {
            token: t.text.clone(),
            logprob: t.logprob,
            bytes: t.text.as_bytes().to_vec(),
            top_logprobs: t
                .top_tokens
                .iter()
                .map(|a| TopLogprob {
                    token: a.text.clone(),
                    logprob: a.logprob,
                    bytes: a.text.as_bytes().to_vec(),
                })
                .collect(),
        })
        .collect();
    serde_json::to_value(ChatLogprobs { content }).unwrap_or_default()
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
fn openai_stream<C, F>(
    state: AppState,
    permit: OwnedSemaphorePermit,
    streams: Vec<BoxStream<'static, (usize, Event)>>,
    call: OpenAiCall,
    object: &'static str,
    choice: F,
) -> impl Stream<Item = String> + Send + 'static
where
    C: Serialize + Send + 'static,
    F: FnMut(usize, &Token, Option<&'static str>) -> C + Send + 'static,
{
    let started = Instant::now();
    // (prompt tokens, completion tokens), read by the closing chunk once every stream ended.
    let totals = Arc::new(Mutex::new((0usize, 0usize)));
    let totals_in = totals.clone();
    let call = Arc::new(call);
    let call_in = call.clone();
    let mut choice = choice;
    let mut chunk = move |index, token: &Token, finish| {
        sse_event(
            DATA,
            &call_in.answer(object, vec![choice(index, token, finish)], None),
        )
    };
    let error = |http_status_code, e: ServerError| {
        let message = e.to_string();
        let body = StreamError {
            error: ErrorDetail {
                http_status_code,
                message,
            },
        };
        sse_event(DATA, &body)
    };
    let body = futures::stream::select_all(streams).map(move |(index, e)| match e {
        Event::Token(t) => chunk(index, &t, None),
        Event::End(t, g) => {
            if let Ok(mut tot) = totals_in.lock() {
                tot.0 += g.input_length;
                tot.1 += g.generated_tokens;
            }
            state.record_success(&g, started, &RawParams::default());
            chunk(index, &t, Some(openai_finish(g.finish_reason)))
        }
        Event::Error(msg) => error(424, ServerError::Generation(msg)),
        Event::Overloaded(msg) => error(503, ServerError::OutOfCapacity(msg)),
    });
    let tail = futures::stream::once(async move {
        let _permit = permit;
        let mut out = String::new();
        if call.include_usage {
            let (p, c) = totals.lock().map(|t| *t).unwrap_or_default();
            let closing = call.answer::<C>(object, Vec::new(), Some(Usage::new(p, c)));
            out.push_str(&sse_event(DATA, &closing));
        }
        out.push_str("data: [DONE]\n\n");
        out
    });
    body.chain(tail)
}
