//! TGI's `POST /generate`, `/generate_stream` and compat `POST /` bodies: the request with its
//! `parameters`, the answer with `details`, the per-token stream event and the error body.
//!
//! Requests: every field is optional and unknown ones are ignored, as TGI does; the client
//! sends only what it sets. Answers: the fields the client reads are optional, because TGI
//! versions differ (v1.0.3 stream events have no `index` nor `details.input_length`) and
//! `details` only comes when asked for.

use serde::{Deserialize, Serialize};

use super::{ErrorMessage, is_false, null_as_empty};

/// `{"inputs", "parameters"}` of `/generate` and `/generate_stream`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub inputs: String,
    #[serde(default)]
    pub parameters: Parameters,
}

/// The compat route `POST /`: a [`GenerateRequest`] plus `stream`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompatGenerateRequest {
    pub inputs: String,
    #[serde(default)]
    pub parameters: Parameters,
    #[serde(default)]
    pub stream: bool,
}

/// TGI's `parameters`: those that shape generation (and that validation reads) and those
/// only the answer's shape or an unsupported feature uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Parameters {
    #[serde(flatten)]
    pub generation: GenerationParameters,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_full_text: Option<bool>,
    #[serde(skip_serializing_if = "is_false")]
    pub watermark: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub details: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grammar: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter_id: Option<String>,
}

/// The parameters that shape generation, with TGI's names and types; the OpenAI and
/// `/predict` routes map their requests onto these.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationParameters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_of: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repetition_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typical_p: Option<f32>,
    /// Always sent: TGI's default for a missing `do_sample` changed between versions (v3
    /// samples when `parameters` is absent), so the client states greedy decoding outright.
    pub do_sample: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncate: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_n_tokens: Option<u32>,
    #[serde(skip_serializing_if = "is_false")]
    pub decoder_input_details: bool,
    /// vLLM's extension, accepted on TGI's routes too so TGI-format load tests get fixed
    /// lengths: keep generating through EOS. TGI itself ignores it.
    #[serde(skip_serializing_if = "is_false")]
    pub ignore_eos: bool,
}

/// One generated token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Token {
    pub id: u32,
    pub text: String,
    /// TGI writes `null` where the log-probability is NaN.
    pub logprob: Option<f32>,
    pub special: bool,
}

/// `/generate`'s answer; the compat route sends it in an array of one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerateResponse {
    pub generated_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
}

/// `details` of a whole answer (`parameters.details`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Details {
    /// `length`, `eos_token` or `stop_sequence`.
    pub finish_reason: String,
    /// Optional so a client can fall back to `x-generated-tokens` when it is missing.
    pub generated_tokens: Option<u64>,
    pub seed: Option<u64>,
    pub prefill: Vec<Token>,
    pub tokens: Vec<Token>,
    /// With `top_n_tokens`: each generated token's best alternatives (TGI omits it otherwise;
    /// some versions write `null`).
    #[serde(
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub top_tokens: Vec<Vec<Token>>,
}

/// One `data:` event of `/generate_stream`: a token, the last also carrying the whole
/// `generated_text` and (with `details`) [`StreamDetails`]. An error replaces a token as an
/// [`ErrorResponse`]; clients read both shapes as this type and find it in `error`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamResponse {
    /// 1-based; v1.0.3 did not send it.
    #[serde(default)]
    pub index: u64,
    /// Optional only so an error event parses as this type; token events always have one.
    #[serde(default)]
    pub token: Option<Token>,
    /// With `top_n_tokens`: this token's best alternatives.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub top_tokens: Vec<Token>,
    /// `null` until the last event.
    #[serde(default)]
    pub generated_text: Option<String>,
    #[serde(default)]
    pub details: Option<StreamDetails>,
    /// Read, never written: servers write errors as [`ErrorResponse`].
    #[serde(default, skip_serializing)]
    pub error: Option<ErrorMessage>,
}

/// `details` of the last stream event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamDetails {
    pub finish_reason: String,
    pub generated_tokens: Option<u64>,
    pub seed: Option<u64>,
    /// Prompt tokens; v1.0.3 did not send it.
    pub input_length: Option<u64>,
}

/// TGI's error body, also sent as a stream event in place of a token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
    pub error_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From TGI's docs (v3): a middle event, then the last with `details`.
    const TGI_EVENTS: [&str; 2] = [
        r#"{"index":16,"token":{"id":28723,"text":".","logprob":-0.6196289,"special":false},"generated_text":null,"details":null}"#,
        r#"{"index":17,"token":{"id":2,"text":"</s>","logprob":-0.01,"special":true},"top_tokens":[],"generated_text":"This is a test.","details":{"finish_reason":"eos_token","generated_tokens":17,"seed":null,"input_length":5}}"#,
    ];

    #[test]
    fn client_reads_real_tgi_stream_events() {
        let mid: StreamResponse = serde_json::from_str(TGI_EVENTS[0]).unwrap();
        assert_eq!(mid.token.as_ref().map(|t| t.text.as_str()), Some("."));
        assert_eq!((mid.generated_text, mid.details), (None, None));
        let last: StreamResponse = serde_json::from_str(TGI_EVENTS[1]).unwrap();
        assert!(last.token.unwrap().special);
        assert_eq!(last.generated_text.as_deref(), Some("This is a test."));
        let d = last.details.unwrap();
        assert_eq!((d.generated_tokens, d.input_length), (Some(17), Some(5)));
        // v1.0.3: no `index`, no `input_length`; a NaN logprob is written as null.
        let old: StreamResponse = serde_json::from_str(
            r#"{"token":{"id":0,"text":"","logprob":null,"special":true},"generated_text":"ab","details":{"finish_reason":"length","generated_tokens":2,"seed":null}}"#,
        )
        .unwrap();
        assert_eq!(old.index, 0);
        assert_eq!(old.details.unwrap().input_length, None);
        let err: StreamResponse = serde_json::from_str(
            r#"{"error":"Request failed during generation: x","error_type":"generation"}"#,
        )
        .unwrap();
        assert_eq!(err.token, None);
        assert_eq!(
            err.error.unwrap().to_string(),
            "Request failed during generation: x"
        );
    }

    #[test]
    fn client_reads_real_tgi_answers() {
        // The study's empty summaries, and an answer with full details.
        let empty: GenerateResponse = serde_json::from_str(r#"{"generated_text":""}"#).unwrap();
        assert_eq!(empty, GenerateResponse::default());
        let full: GenerateResponse = serde_json::from_str(
            r#"{"generated_text":" world","details":{"finish_reason":"length","generated_tokens":2,"seed":null,"prefill":[],"tokens":[{"id":1,"text":" wor","logprob":-1.5,"special":false},{"id":2,"text":"ld","logprob":-0.2,"special":false}],"top_tokens":null}}"#,
        )
        .unwrap();
        let d = full.details.unwrap();
        assert_eq!((d.generated_tokens, d.tokens.len()), (Some(2), 2));
        assert!(d.top_tokens.is_empty(), "`top_tokens: null` reads as none");
        let compat: Vec<GenerateResponse> =
            serde_json::from_str(r#"[{"generated_text":"x"}]"#).unwrap();
        assert_eq!(compat[0].generated_text, "x");
    }

    #[test]
    fn requests_send_only_what_is_set_and_read_back_whole() {
        let req = GenerateRequest {
            inputs: "hi".into(),
            parameters: Parameters {
                generation: GenerationParameters {
                    max_new_tokens: Some(20),
                    stop: vec!["\n".into()],
                    ..GenerationParameters::default()
                },
                details: true,
                ..Parameters::default()
            },
        };
        let text = serde_json::to_string(&req).unwrap();
        assert_eq!(
            text,
            r#"{"inputs":"hi","parameters":{"do_sample":false,"max_new_tokens":20,"stop":["\n"],"details":true}}"#
        );
        assert_eq!(serde_json::from_str::<GenerateRequest>(&text).unwrap(), req);
        // What the server accepts: no `parameters`, unknown fields ignored as TGI does.
        let bare: GenerateRequest =
            serde_json::from_str(r#"{"inputs":"x","parameters":{"best_of":1,"nope":3}}"#).unwrap();
        assert_eq!(bare.parameters.generation.best_of, Some(1));
    }

    /// The anti-drift check: what the server writes, the client reads back unchanged.
    #[test]
    fn server_answers_round_trip_through_the_client() {
        let token = |id, text: &str| Token {
            id,
            text: text.into(),
            logprob: Some(-0.25),
            special: false,
        };
        let answer = GenerateResponse {
            generated_text: "ab".into(),
            details: Some(Details {
                finish_reason: "length".into(),
                generated_tokens: Some(2),
                seed: Some(7),
                prefill: vec![],
                tokens: vec![token(1, "a"), token(2, "b")],
                top_tokens: vec![vec![token(1, "a"), token(3, "c")], vec![token(2, "b")]],
            }),
        };
        let text = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            serde_json::from_str::<GenerateResponse>(&text).unwrap(),
            answer
        );
        let without = GenerateResponse {
            generated_text: "ab".into(),
            details: None,
        };
        assert_eq!(
            serde_json::to_string(&without).unwrap(),
            r#"{"generated_text":"ab"}"#
        );
        for event in [
            StreamResponse {
                index: 1,
                token: Some(token(1, "a")),
                ..StreamResponse::default()
            },
            StreamResponse {
                index: 2,
                token: Some(token(2, "b")),
                top_tokens: vec![token(2, "b"), token(4, "d")],
                generated_text: Some("ab".into()),
                details: Some(StreamDetails {
                    finish_reason: "eos_token".into(),
                    generated_tokens: Some(2),
                    seed: None,
                    input_length: Some(3),
                }),
                error: None,
            },
        ] {
            let text = serde_json::to_string(&event).unwrap();
            assert!(!text.contains("\"error\""), "{text}");
            assert_eq!(
                serde_json::from_str::<StreamResponse>(&text).unwrap(),
                event
            );
        }
        let err = ErrorResponse {
            error: "Model is overloaded".into(),
            error_type: "overloaded".into(),
        };
        let text = serde_json::to_string(&err).unwrap();
        assert_eq!(
            text,
            r#"{"error":"Model is overloaded","error_type":"overloaded"}"#
        );
        let read: StreamResponse = serde_json::from_str(&text).unwrap();
        assert_eq!(read.error, Some(ErrorMessage::Text(err.error)));
    }
}
