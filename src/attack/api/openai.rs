//! OpenAI-compatible `POST /v1/completions` and `POST /v1/chat/completions`, whole or streamed
//! (SSE chunks, a usage chunk when `stream_options.include_usage` is set, then `data: [DONE]`).

use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use super::{ApiKind, DecodeError, Decoded, Decoder, GenParams, parse_event, parse_json};
use crate::attack::sse::SseParser;
use crate::prompts::Prompt;
use crate::wire::openai::{
    ChatChoice, ChatMessage, ChatRequest, Choice, ChunkChoice, Completion, CompletionRequest,
    Content, OneOrMany, Sampling, StreamOptions, TextChoice, Usage,
};

fn sampling(p: &GenParams) -> Sampling {
    Sampling {
        model: Some(p.model.clone().unwrap_or_else(|| "default".into())),
        max_tokens: Some(p.max_new_tokens),
        temperature: p.temperature,
        top_p: p.top_p,
        // Not in OpenAI's schema; vLLM and rpload serve accept it (as i32, like TGI).
        top_k: p.top_k.map(|k| i32::try_from(k).unwrap_or(i32::MAX)),
        repetition_penalty: p.repetition_penalty,
        seed: p.seed,
        stop: (!p.stop.is_empty()).then(|| OneOrMany::Many(p.stop.clone())),
        ignore_eos: p.ignore_eos,
        // vLLM's way to fix the length where ignore_eos alone is not honoured.
        min_tokens: p.ignore_eos.then_some(p.max_new_tokens),
        stream: p.stream,
        stream_options: p.stream.then_some(StreamOptions {
            include_usage: true,
        }),
        ..Sampling::default()
    }
}

pub fn completions_body(prompt: &str, p: &GenParams) -> Bytes {
    let req = CompletionRequest {
        prompt: OneOrMany::One(prompt.to_owned()),
        suffix: None,
        logprobs: None,
        sampling: sampling(p),
    };
    Bytes::from(serde_json::to_vec(&req).expect("json"))
}

/// A chat request: the shared prefix as the system message, a conversation's earlier turns,
/// then the prompt as the user's message.
pub fn chat_body(prompt: &Prompt, p: &GenParams) -> Bytes {
    let message = |role: &str, text: &str| ChatMessage {
        role: role.into(),
        content: Some(Content::Text(text.to_owned())),
    };
    let mut messages = Vec::with_capacity(2 + 2 * prompt.history.len());
    if let Some(system) = &prompt.system {
        messages.push(message("system", system));
    }
    for (user, answer) in &prompt.history {
        messages.push(message("user", user));
        messages.push(message("assistant", answer));
    }
    messages.push(message("user", &prompt.text));
    let req = ChatRequest {
        messages,
        logprobs: None,
        top_logprobs: None,
        sampling: sampling(p),
    };
    Bytes::from(serde_json::to_vec(&req).expect("json"))
}

/// (output tokens, prompt tokens) as the server counted them.
fn counts(usage: Option<Usage>) -> (Option<u64>, Option<u64>) {
    usage.map_or((None, None), |u| (u.completion_tokens, u.prompt_tokens))
}

/// A non-streamed answer: the first choice's text and `usage`.
pub fn parse_whole(kind: ApiKind, body: &[u8]) -> Result<Decoded, DecodeError> {
    match kind {
        ApiKind::OpenaiChat => parse_answer::<ChatChoice>(body),
        _ => parse_answer::<TextChoice>(body),
    }
}

fn parse_answer<C: Choice + DeserializeOwned>(body: &[u8]) -> Result<Decoded, DecodeError> {
    let answer: Completion<C> = parse_json(body)?;
    let text = answer
        .choices
        .first()
        .and_then(C::text)
        .ok_or_else(|| DecodeError::Body(format!("no `{}` in the answer", C::TEXT_PATH)))?
        .to_owned();
    let (tokens_out, tokens_in) = counts(answer.usage);
    Ok(Decoded {
        text,
        tokens_out,
        tokens_in,
        ..Decoded::default()
    })
}

/// The stream decoder for `kind`'s chunks.
pub fn stream_decoder(kind: ApiKind, max_event: usize) -> Box<dyn Decoder> {
    match kind {
        ApiKind::OpenaiChat => Box::new(StreamDecoder::<ChunkChoice>::new(max_event)),
        _ => Box::new(StreamDecoder::<TextChoice>::new(max_event)),
    }
}

/// Streamed chunks of choice type `C`: each chunk with non-empty content is a token event.
pub struct StreamDecoder<C> {
    sse: SseParser,
    out: Decoded,
    done: bool,
    choice: PhantomData<fn() -> C>,
}

impl<C> Default for StreamDecoder<C> {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl<C> StreamDecoder<C> {
    /// A decoder refusing events longer than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self {
            sse: SseParser::new(max_event),
            out: Decoded::default(),
            done: false,
            choice: PhantomData,
        }
    }
}

impl<C: Choice + DeserializeOwned> Decoder for StreamDecoder<C> {
    fn chunk(&mut self, data: &[u8], at: Duration) -> Result<(), DecodeError> {
        let events = self
            .sse
            .feed(data)
            .map_err(|e| DecodeError::Stream(e.to_string()))?;
        for event in events {
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                self.done = true;
                continue;
            }
            let chunk: Completion<C> = parse_event(data)?;
            if let Some(err) = chunk.error {
                return Err(DecodeError::Stream(format!("error chunk: {err}")));
            }
            if let Some(text) = chunk.choices.first().and_then(C::text)
                && !text.is_empty()
            {
                self.out.token_times.push(at);
                self.out.first_token.get_or_insert(at);
                self.out.text.push_str(text);
            }
            let (out, inp) = counts(chunk.usage);
            if out.is_some() {
                self.out.tokens_out = out;
                self.out.tokens_in = inp;
            }
        }
        Ok(())
    }

    fn wants_event_stream(&self) -> bool {
        true
    }

    fn finish(self: Box<Self>, _headers: &HeaderMap) -> Result<Decoded, DecodeError> {
        if !self.done {
            return Err(DecodeError::Stream(format!(
                "ended after {} content chunks without `data: [DONE]`",
                self.out.token_times.len()
            )));
        }
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn bodies_carry_the_fields_each_route_expects() {
        let p = GenParams {
            max_new_tokens: 8,
            stream: true,
            model: Some("m".into()),
            ignore_eos: true,
            ..GenParams::default()
        };
        let v: Value = serde_json::from_slice(&chat_body(&Prompt::plain("hi", 1), &p)).unwrap();
        assert_eq!(v["messages"][0], json!({"role": "user", "content": "hi"}));
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(
            (v["model"].as_str(), v["max_tokens"].as_u64()),
            (Some("m"), Some(8))
        );
        assert_eq!(v["ignore_eos"], true);
        let v: Value =
            serde_json::from_slice(&completions_body("hi", &GenParams::default())).unwrap();
        assert_eq!(v["prompt"], "hi");
        assert!(v.get("stream").is_none());
    }

    #[test]
    fn whole_answers_read_usage() {
        let d = parse_whole(
            ApiKind::OpenaiChat,
            br#"{"choices":[{"message":{"role":"assistant","content":"yo"}}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        )
        .unwrap();
        assert_eq!(
            (d.text.as_str(), d.tokens_out, d.tokens_in),
            ("yo", Some(2), Some(3))
        );
        let err = parse_whole(ApiKind::OpenaiCompletions, br#"{"choices":[]}"#).unwrap_err();
        assert!(err.to_string().contains("choices.0.text"), "{err}");
        // `content: null` is no answer, even with a usage block.
        let err = parse_whole(
            ApiKind::OpenaiChat,
            br#"{"choices":[{"message":{"role":"assistant","content":null}}],"usage":{"completion_tokens":9}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("message.content"), "{err}");
    }

    #[test]
    fn stream_needs_done_and_reads_the_usage_chunk() {
        let ms = Duration::from_millis;
        let mut d = Box::new(StreamDecoder::<TextChoice>::default());
        d.chunk(b"data: {\"choices\":[{\"text\":\"a\"}]}\n\n", ms(5))
            .unwrap();
        d.chunk(b"data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"length\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\n\n", ms(9)).unwrap();
        let mut unfinished = Box::new(StreamDecoder::<TextChoice>::default());
        unfinished
            .chunk(b"data: {\"choices\":[{\"text\":\"a\"}]}\n\n", ms(1))
            .unwrap();
        assert!(matches!(
            unfinished.finish(&HeaderMap::new()),
            Err(DecodeError::Stream(_))
        ));
        d.chunk(b"data: [DONE]\n\n", ms(10)).unwrap();
        let out = d.finish(&HeaderMap::new()).unwrap();
        assert_eq!(out.token_times, vec![ms(5)]);
        assert_eq!((out.tokens_out, out.tokens_in), (Some(2), Some(4)));
    }
}
