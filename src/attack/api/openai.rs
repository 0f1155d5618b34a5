//! OpenAI-compatible `POST /v1/completions` and `POST /v1/chat/completions`, whole or streamed
//! (SSE chunks, a usage chunk when `stream_options.include_usage` is set, then `data: [DONE]`).

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};

use super::{ApiKind, DecodeError, Decoded, Decoder, GenParams, parse_json};
use crate::attack::sse::SseParser;

fn common(p: &GenParams) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "model".into(),
        p.model.clone().unwrap_or_else(|| "default".into()).into(),
    );
    m.insert("max_tokens".into(), p.max_new_tokens.into());
    if let Some(v) = p.temperature {
        m.insert("temperature".into(), v.into());
    }
    if let Some(v) = p.top_p {
        m.insert("top_p".into(), v.into());
    }
    if let Some(v) = p.top_k {
        // Not in OpenAI's schema; vLLM and rpload serve accept it.
        m.insert("top_k".into(), v.into());
    }
    if let Some(v) = p.repetition_penalty {
        m.insert("repetition_penalty".into(), v.into());
    }
    if let Some(v) = p.seed {
        m.insert("seed".into(), v.into());
    }
    if !p.stop.is_empty() {
        m.insert("stop".into(), p.stop.clone().into());
    }
    if p.ignore_eos {
        m.insert("ignore_eos".into(), true.into());
    }
    if p.stream {
        m.insert("stream".into(), true.into());
        m.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    m
}

pub fn completions_body(prompt: &str, p: &GenParams) -> Bytes {
    let mut m = common(p);
    m.insert("prompt".into(), prompt.into());
    Bytes::from(serde_json::to_vec(&Value::Object(m)).expect("json"))
}

pub fn chat_body(prompt: &str, p: &GenParams) -> Bytes {
    let mut m = common(p);
    m.insert(
        "messages".into(),
        json!([{ "role": "user", "content": prompt }]),
    );
    Bytes::from(serde_json::to_vec(&Value::Object(m)).expect("json"))
}

fn usage(value: &Value) -> (Option<u64>, Option<u64>) {
    let u = value.get("usage");
    (
        u.and_then(|u| u.get("completion_tokens"))
            .and_then(Value::as_u64),
        u.and_then(|u| u.get("prompt_tokens"))
            .and_then(Value::as_u64),
    )
}

/// A non-streamed answer: the first choice's text and `usage`.
pub fn parse_whole(kind: ApiKind, body: &[u8]) -> Result<Decoded, DecodeError> {
    let value = parse_json(body)?;
    let pointer = match kind {
        ApiKind::OpenaiChat => "/choices/0/message/content",
        _ => "/choices/0/text",
    };
    let text = match value.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) => String::new(),
        _ => {
            return Err(DecodeError::Body(format!(
                "no `{}` in the answer",
                pointer.trim_start_matches('/').replace('/', ".")
            )));
        }
    };
    let (tokens_out, tokens_in) = usage(&value);
    Ok(Decoded {
        text,
        tokens_out,
        tokens_in,
        ..Decoded::default()
    })
}

/// Streamed chunks: each chunk with non-empty content is a token event.
pub struct StreamDecoder {
    kind: ApiKind,
    sse: SseParser,
    out: Decoded,
    done: bool,
}

impl StreamDecoder {
    pub fn new(kind: ApiKind) -> Self {
        Self {
            kind,
            sse: SseParser::default(),
            out: Decoded::default(),
            done: false,
        }
    }
}

impl Decoder for StreamDecoder {
    fn chunk(&mut self, data: &[u8], at: Duration) -> Result<(), DecodeError> {
        for event in self.sse.feed(data) {
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                self.done = true;
                continue;
            }
            let value: Value = serde_json::from_str(data)
                .map_err(|e| DecodeError::Stream(format!("chunk is not JSON ({e})")))?;
            if let Some(err) = value.get("error") {
                let msg = err
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| err.to_string());
                return Err(DecodeError::Stream(format!("error chunk: {msg}")));
            }
            let pointer = match self.kind {
                ApiKind::OpenaiChat => "/choices/0/delta/content",
                _ => "/choices/0/text",
            };
            if let Some(text) = value.pointer(pointer).and_then(Value::as_str)
                && !text.is_empty()
            {
                self.out.token_times.push(at);
                self.out.first_token.get_or_insert(at);
                self.out.text.push_str(text);
            }
            let (out, inp) = usage(&value);
            if out.is_some() {
                self.out.tokens_out = out;
                self.out.tokens_in = inp;
            }
        }
        Ok(())
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
        let v: Value = serde_json::from_slice(&chat_body("hi", &p)).unwrap();
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
    }

    #[test]
    fn stream_needs_done_and_reads_the_usage_chunk() {
        let ms = Duration::from_millis;
        let mut d = Box::new(StreamDecoder::new(ApiKind::OpenaiCompletions));
        d.chunk(b"data: {\"choices\":[{\"text\":\"a\"}]}\n\n", ms(5))
            .unwrap();
        d.chunk(b"data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"length\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\n\n", ms(9)).unwrap();
        let mut unfinished = Box::new(StreamDecoder::new(ApiKind::OpenaiCompletions));
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
