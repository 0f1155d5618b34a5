//! HuggingFace TGI: `POST /generate` (one JSON answer with `details`) and `POST /generate_stream`
//! (SSE, one event per token, the last carrying `generated_text` and `details`).

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;

use super::{DecodeError, Decoded, Decoder, GenParams, header_u64, parse_event, parse_json};
use crate::attack::sse::SseParser;
use crate::wire::tgi::{
    GenerateRequest, GenerateResponse, GenerationParameters, Parameters, StreamResponse,
};

/// The request body. `details` is always asked for so the server counts the tokens.
pub fn body(prompt: &str, p: &GenParams) -> Bytes {
    let sampling = p.temperature.is_some_and(|t| t > 0.0) || p.top_p.is_some() || p.top_k.is_some();
    let req = GenerateRequest {
        inputs: prompt.to_owned(),
        parameters: Parameters {
            generation: GenerationParameters {
                max_new_tokens: Some(p.max_new_tokens),
                do_sample: sampling,
                temperature: p.temperature.filter(|t| *t > 0.0),
                top_p: p.top_p,
                // TGI's type is i32; a cap past it is no cap at all.
                top_k: p.top_k.map(|k| i32::try_from(k).unwrap_or(i32::MAX)),
                repetition_penalty: p.repetition_penalty,
                seed: p.seed,
                stop: p.stop.clone(),
                // Not a TGI parameter (TGI ignores unknown ones); rpload serve honours it.
                ignore_eos: p.ignore_eos,
                ..GenerationParameters::default()
            },
            details: true,
            ..Parameters::default()
        },
    };
    Bytes::from(serde_json::to_vec(&req).expect("json"))
}

/// `/generate` (an object) or the compat route `/` (an array of one object).
pub fn parse_generate(body: &[u8], headers: &HeaderMap) -> Result<Decoded, DecodeError> {
    let answer = if body.trim_ascii_start().starts_with(b"[") {
        parse_json::<Vec<GenerateResponse>>(body)?
            .into_iter()
            .next()
    } else {
        Some(parse_json::<GenerateResponse>(body)?)
    };
    let answer =
        answer.ok_or_else(|| DecodeError::Body("no `generated_text` in TGI answer".into()))?;
    let tokens_out = answer
        .details
        .and_then(|d| d.generated_tokens)
        .or_else(|| header_u64(headers, "x-generated-tokens"));
    Ok(Decoded {
        text: answer.generated_text,
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

impl StreamDecoder {
    /// A decoder refusing events longer than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self {
            sse: SseParser::new(max_event),
            ..Self::default()
        }
    }
}

impl Decoder for StreamDecoder {
    fn chunk(&mut self, data: &[u8], at: Duration) -> Result<(), DecodeError> {
        let events = self
            .sse
            .feed(data)
            .map_err(|e| DecodeError::Stream(e.to_string()))?;
        for event in events {
            if event.data.is_empty() {
                continue;
            }
            let ev: StreamResponse = parse_event(&event.data)?;
            if let Some(err) = ev.error {
                return Err(DecodeError::Stream(format!("error event: {err}")));
            }
            let token = ev
                .token
                .ok_or_else(|| DecodeError::Stream("event without `token`".into()))?;
            self.events += 1;
            self.out.token_times.push(at);
            if self.out.first_token.is_none() && !token.text.is_empty() && !token.special {
                self.out.first_token = Some(at);
            }
            if let Some(full) = ev.generated_text {
                self.out.text = full;
                let details = ev.details.unwrap_or_default();
                self.out.tokens_out = details.generated_tokens;
                self.out.tokens_in = details.input_length;
                self.done = true;
            } else if !token.special {
                self.out.text.push_str(&token.text);
            }
        }
        Ok(())
    }

    fn wants_event_stream(&self) -> bool {
        true
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
    use serde_json::{Value, json};

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
