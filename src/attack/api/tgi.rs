//! HuggingFace TGI: `POST /generate` (one JSON answer with `details`) and `POST /generate_stream`
//! (SSE, one event per token, the last carrying `generated_text` and `details`).

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::{DecodeError, Decoded, Decoder, GenParams, header_u64, parse_json};
use crate::attack::sse::SseParser;

/// The request body. `details` is always asked for so the server counts the tokens.
pub fn body(prompt: &str, p: &GenParams) -> Bytes {
    let mut params = json!({ "max_new_tokens": p.max_new_tokens, "details": true });
    let obj = params.as_object_mut().expect("object literal");
    let sampling = p.temperature.is_some_and(|t| t > 0.0) || p.top_p.is_some() || p.top_k.is_some();
    obj.insert("do_sample".into(), sampling.into());
    if let Some(t) = p.temperature.filter(|t| *t > 0.0) {
        obj.insert("temperature".into(), t.into());
    }
    if let Some(v) = p.top_p {
        obj.insert("top_p".into(), v.into());
    }
    if let Some(v) = p.top_k {
        obj.insert("top_k".into(), v.into());
    }
    if let Some(v) = p.repetition_penalty {
        obj.insert("repetition_penalty".into(), v.into());
    }
    if let Some(v) = p.seed {
        obj.insert("seed".into(), v.into());
    }
    if !p.stop.is_empty() {
        obj.insert("stop".into(), p.stop.clone().into());
    }
    if p.ignore_eos {
        // Not a TGI parameter (TGI ignores unknown ones); rpload serve honours it.
        obj.insert("ignore_eos".into(), true.into());
    }
    Bytes::from(
        serde_json::to_vec(&json!({ "inputs": prompt, "parameters": params })).expect("json"),
    )
}

/// `/generate` (an object) or the compat route `/` (an array of one object).
pub fn parse_generate(body: &[u8], headers: &HeaderMap) -> Result<Decoded, DecodeError> {
    let value = parse_json(body)?;
    let answer = match &value {
        Value::Array(items) => items.first().unwrap_or(&Value::Null),
        other => other,
    };
    let text = answer
        .get("generated_text")
        .and_then(Value::as_str)
        .ok_or_else(|| DecodeError::Body("no `generated_text` in TGI answer".into()))?;
    let tokens_out = answer
        .pointer("/details/generated_tokens")
        .and_then(Value::as_u64)
        .or_else(|| header_u64(headers, "x-generated-tokens"));
    Ok(Decoded {
        text: text.to_owned(),
        tokens_out,
        tokens_in: header_u64(headers, "x-prompt-tokens"),
        ..Decoded::default()
    })
}

/// `/generate_stream`: every `token` event is a token arrival; the final event ends the stream.
#[derive(Default)]
pub struct StreamDecoder {
    sse: SseParser,
    out: Decoded,
    events: u64,
    done: bool,
}

impl Decoder for StreamDecoder {
    fn chunk(&mut self, data: &[u8], at: Duration) -> Result<(), DecodeError> {
        for event in self.sse.feed(data) {
            if event.data.is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(&event.data)
                .map_err(|e| DecodeError::Stream(format!("event is not JSON ({e})")))?;
            if let Some(err) = value.get("error") {
                let msg = err
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| err.to_string());
                return Err(DecodeError::Stream(format!("error event: {msg}")));
            }
            let token = value
                .get("token")
                .ok_or_else(|| DecodeError::Stream("event without `token`".into()))?;
            let text = token.get("text").and_then(Value::as_str).unwrap_or("");
            let special = token
                .get("special")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            self.events += 1;
            self.out.token_times.push(at);
            if self.out.first_token.is_none() && !text.is_empty() && !special {
                self.out.first_token = Some(at);
            }
            if let Some(full) = value.get("generated_text").and_then(Value::as_str) {
                self.out.text = full.to_owned();
                self.out.tokens_out = value
                    .pointer("/details/generated_tokens")
                    .and_then(Value::as_u64);
                self.out.tokens_in = value
                    .pointer("/details/input_length")
                    .and_then(Value::as_u64);
                self.done = true;
            } else if !special {
                self.out.text.push_str(text);
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>, headers: &HeaderMap) -> Result<Decoded, DecodeError> {
        if !self.done {
            return Err(DecodeError::Stream(format!(
                "ended after {} token events without the final event",
                self.events
            )));
        }
        let mut out = self.out;
        out.tokens_out = out.tokens_out.or(Some(self.events));
        out.tokens_in = out
            .tokens_in
            .or_else(|| header_u64(headers, "x-prompt-tokens"));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn body_sets_only_given_parameters() {
        let p = GenParams {
            max_new_tokens: 20,
            ..GenParams::default()
        };
        let v: Value = serde_json::from_slice(&body("hi", &p)).unwrap();
        assert_eq!(
            v,
            json!({"inputs": "hi", "parameters": {"max_new_tokens": 20, "details": true, "do_sample": false}})
        );
        let p = GenParams {
            max_new_tokens: 5,
            temperature: Some(0.7),
            top_k: Some(40),
            seed: Some(3),
            stop: vec!["\n".into()],
            ..GenParams::default()
        };
        let v: Value = serde_json::from_slice(&body("hi", &p)).unwrap();
        assert_eq!(v["parameters"]["do_sample"], true);
        assert_eq!(v["parameters"]["top_k"], 40);
        assert_eq!(v["parameters"]["seed"], 3);
        assert_eq!(v["parameters"]["stop"], json!(["\n"]));
    }

    #[test]
    fn generate_reads_details_or_headers() {
        let d = parse_generate(
            br#"{"generated_text":"abc","details":{"generated_tokens":3}}"#,
            &HeaderMap::new(),
        )
        .unwrap();
        assert_eq!((d.text.as_str(), d.tokens_out), ("abc", Some(3)));
        let mut h = HeaderMap::new();
        h.insert("x-generated-tokens", "9".parse().unwrap());
        h.insert("x-prompt-tokens", "4".parse().unwrap());
        let d = parse_generate(br#"[{"generated_text":"x"}]"#, &h).unwrap();
        assert_eq!((d.tokens_out, d.tokens_in), (Some(9), Some(4)));
        assert!(matches!(
            parse_generate(b"oops", &h),
            Err(DecodeError::Body(_))
        ));
        assert!(matches!(
            parse_generate(b"{}", &h),
            Err(DecodeError::Body(_))
        ));
    }

    #[test]
    fn stream_times_every_token() {
        let mut d = Box::new(StreamDecoder::default());
        d.chunk(b"data:{\"index\":1,\"token\":{\"id\":1,\"text\":\"a\",\"special\":false},\"generated_text\":null}\n\n", ms(10)).unwrap();
        d.chunk(b"data:{\"index\":2,\"token\":{\"id\":2,\"text\":\"b\",\"special\":false},\"generated_text\":null}\n\ndata:{\"index\":3,\"token\":{\"id\":0,\"text\":\"\",\"special\":true},", ms(15)).unwrap();
        d.chunk(b"\"generated_text\":\"ab\",\"details\":{\"generated_tokens\":3,\"input_length\":7}}\n\n", ms(18)).unwrap();
        let out = d.finish(&HeaderMap::new()).unwrap();
        assert_eq!(out.first_token, Some(ms(10)));
        assert_eq!(out.token_times, vec![ms(10), ms(15), ms(18)]);
        assert_eq!((out.tokens_out, out.tokens_in), (Some(3), Some(7)));
        assert_eq!(out.text, "ab");
    }

    #[test]
    fn stream_errors_are_reported() {
        let mut d = Box::new(StreamDecoder::default());
        d.chunk(
            b"data:{\"token\":{\"text\":\"a\"},\"generated_text\":null}\n\n",
            ms(1),
        )
        .unwrap();
        let err = d.finish(&HeaderMap::new()).unwrap_err();
        assert!(err.to_string().contains("without the final event"), "{err}");
        let mut d = Box::new(StreamDecoder::default());
        let err = d
            .chunk(
                b"data:{\"error\":\"boom\",\"error_type\":\"generation\"}\n\n",
                ms(1),
            )
            .unwrap_err();
        assert_eq!(err, DecodeError::Stream("error event: boom".into()));
    }
}
