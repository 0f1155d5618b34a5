//! OpenAI's `POST /v1/completions` and `/v1/chat/completions` as vLLM and TGI serve them: the
//! requests, the whole answers, the stream chunks, `usage` and the stream's error chunk.
//!
//! Answers are one generic [`Completion`] over the choice type (text, chat message, chat
//! delta). Clients read them leniently: vLLM omits `system_fingerprint`, OpenAI writes it
//! `null`; chunks carry `usage: null` until the closing usage chunk (`choices: []`); a chat
//! delta may lack `content` (the last one is `{}`) and `message.content` may be `null`.

use serde::{Deserialize, Serialize};

use super::{ErrorMessage, is_false, null_as_default};

/// A string or a list of them (`prompt`, `stop`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// Sampling fields common to both routes, including vLLM's extensions (`top_k`,
/// `repetition_penalty`, `ignore_eos`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sampling {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<OneOrMany>,
    #[serde(skip_serializing_if = "is_false")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repetition_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "is_false")]
    pub ignore_eos: bool,
    /// vLLM's extension: end-of-sequence is not honoured before this many tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    pub prompt: OneOrMany,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// How many best alternatives each token reports beside its own log-probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    #[serde(flatten)]
    pub sampling: Sampling,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Report each token's log-probability (`choices[].logprobs.content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// With `logprobs`: how many best alternatives each token reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    #[serde(flatten)]
    pub sampling: Sampling,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
}

/// A message's content: a string, or typed parts of which this server takes only `text`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A whole answer or a stream chunk: `object` tells which (`text_completion`,
/// `chat.completion`, `chat.completion.chunk`); `C` is the choice type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion<C> {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub system_fingerprint: Option<String>,
    #[serde(default = "Vec::new")]
    pub choices: Vec<C>,
    /// On whole answers; on chunks `null` except the closing usage chunk.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Read, never written: a server sends an error mid-stream as [`StreamError`] in place of
    /// a chunk, and clients read both shapes as this type.
    #[serde(default, skip_serializing)]
    pub error: Option<ErrorMessage>,
}

/// What a choice says the model wrote. `None` only when the field is missing altogether, so
/// a client can tell an answer of the wrong shape from an empty one.
pub trait Choice {
    /// Where the text sits, for messages naming what is missing.
    const TEXT_PATH: &'static str;
    fn text(&self) -> Option<&str>;
}

/// `/v1/completions`' choice, whole or streamed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextChoice {
    #[serde(default)]
    pub index: usize,
    #[serde(default, deserialize_with = "null_as_default")]
    pub text: Option<String>,
    #[serde(default)]
    pub logprobs: Option<serde_json::Value>,
    /// `null` on chunks before the last.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

impl Choice for TextChoice {
    const TEXT_PATH: &'static str = "choices.0.text";
    fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }
}

/// `/v1/chat/completions`' whole choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    #[serde(default)]
    pub index: usize,
    #[serde(default)]
    pub message: Message,
    #[serde(default)]
    pub logprobs: Option<serde_json::Value>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

impl Choice for ChatChoice {
    const TEXT_PATH: &'static str = "choices.0.message.content";
    fn text(&self) -> Option<&str> {
        self.message.content.as_deref()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub role: String,
    /// `null` stays `None`: an answer without text (tool calls only, a broken server) is no
    /// generation for a load test, whatever its `usage` says.
    #[serde(default)]
    pub content: Option<String>,
}

/// `/v1/chat/completions`' streamed choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: usize,
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub logprobs: Option<serde_json::Value>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

impl Choice for ChunkChoice {
    const TEXT_PATH: &'static str = "choices.0.delta.content";
    fn text(&self) -> Option<&str> {
        self.delta.content.as_deref()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
}

/// `/v1/completions`' `logprobs` (OpenAI's legacy shape): per token its text, log-probability,
/// best alternatives by text, and character offset in the generated text. Servers write it into
/// [`TextChoice::logprobs`]; clients read that as plain JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<f32>,
    pub top_logprobs: Vec<std::collections::BTreeMap<String, f32>>,
    pub text_offset: Vec<usize>,
}

/// `/v1/chat/completions`' `logprobs`: one entry per generated token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatLogprobs {
    pub content: Vec<ChatLogprob>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

/// Token counts. Optional so a client counts the text itself when a server leaves one out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

impl Usage {
    pub fn new(prompt: usize, completion: usize) -> Self {
        Self {
            prompt_tokens: Some(prompt as u64),
            completion_tokens: Some(completion as u64),
            total_tokens: Some((prompt + completion) as u64),
        }
    }
}

/// The chunk a server sends in place of a token when generation fails mid-stream (TGI's
/// OpenAI routes: `data: {"error": {"message", "http_status_code"}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamError {
    pub error: ErrorDetail,
}

/// Fields in the order the server has always written them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub http_status_code: u16,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: for<'de> Deserialize<'de>>(s: &str) -> T {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn client_reads_real_vllm_answers() {
        let c: Completion<TextChoice> = read(
            r#"{"id":"cmpl-1","object":"text_completion","created":1718000000,"model":"m","choices":[{"index":0,"text":" there","logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_logprobs":null}],"usage":{"prompt_tokens":3,"total_tokens":5,"completion_tokens":2,"prompt_tokens_details":null}}"#,
        );
        assert_eq!(c.choices[0].text(), Some(" there"));
        assert_eq!(c.system_fingerprint, None);
        let u = c.usage.unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (Some(3), Some(2)));
        // Chat: `content` null beside tool calls is no text; OpenAI's null fingerprint.
        let chat: Completion<ChatChoice> = read(
            r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","system_fingerprint":null,"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}"#,
        );
        assert_eq!(chat.choices[0].text(), None);
        assert_eq!(chat.usage, None);
        // A chat answer read as completions has no `text`: the wrong shape, not empty text.
        let wrong: Completion<TextChoice> =
            read(r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"x"}}]}"#);
        assert_eq!(wrong.choices[0].text(), None);
    }

    #[test]
    fn client_reads_real_vllm_stream_chunks() {
        // vLLM chat: a role-only first delta, content deltas, an empty last delta, usage.
        let chunks = [
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length","stop_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":4,"total_tokens":5,"completion_tokens":1}}"#,
        ];
        let read_all: Vec<Completion<ChunkChoice>> = chunks.iter().map(|c| read(c)).collect();
        let texts: Vec<Option<&str>> = read_all
            .iter()
            .map(|c| c.choices.first().and_then(Choice::text))
            .collect();
        assert_eq!(texts, [Some(""), Some("Hi"), None, None]);
        assert_eq!(
            read_all[3].usage.as_ref().unwrap().completion_tokens,
            Some(1)
        );
        // TGI's completions chunk: `finish_reason` "" until the last.
        let tgi: Completion<TextChoice> = read(
            r#"{"object":"text_completion","id":"","created":1,"choices":[{"index":0,"text":"a","logprobs":null,"finish_reason":""}],"model":"m","system_fingerprint":"3.3.7-native"}"#,
        );
        assert_eq!(tgi.choices[0].text(), Some("a"));
        let err: Completion<ChunkChoice> =
            read(r#"{"error":{"message":"bad input","type":"BadRequestError","code":400}}"#);
        assert_eq!(err.error.unwrap().to_string(), "bad input");
    }

    #[test]
    fn requests_send_only_what_is_set_and_read_back_whole() {
        let req = ChatRequest {
            messages: vec![ChatMessage {
                role: "user".into(),
                content: Some(Content::Text("hi".into())),
            }],
            logprobs: None,
            top_logprobs: None,
            sampling: Sampling {
                model: Some("m".into()),
                max_tokens: Some(8),
                stream: true,
                stream_options: Some(StreamOptions {
                    include_usage: true,
                }),
                ..Sampling::default()
            },
        };
        let text = serde_json::to_string(&req).unwrap();
        assert_eq!(
            text,
            r#"{"messages":[{"role":"user","content":"hi"}],"model":"m","max_tokens":8,"stream":true,"stream_options":{"include_usage":true}}"#
        );
        assert_eq!(read::<ChatRequest>(&text), req);
        let parts: ChatRequest =
            read(r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}"#);
        assert!(matches!(&parts.messages[0].content, Some(Content::Parts(p)) if p.len() == 1));
    }

    /// The anti-drift check: what the server writes, the client reads back unchanged.
    #[test]
    fn server_answers_round_trip_through_the_client() {
        fn round_trip<C>(answer: Completion<C>)
        where
            C: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
        {
            let text = serde_json::to_string(&answer).unwrap();
            assert!(!text.contains("\"error\""), "{text}");
            assert_eq!(read::<Completion<C>>(&text), answer);
        }
        fn head<C>(object: &str, choices: Vec<C>, usage: Option<Usage>) -> Completion<C> {
            Completion {
                id: "cmpl-1".into(),
                object: object.into(),
                created: 1,
                model: "m".into(),
                system_fingerprint: Some("rpload-0.1.0-native".into()),
                choices,
                usage,
                error: None,
            }
        }
        round_trip(head(
            "text_completion",
            vec![TextChoice {
                index: 0,
                text: Some("ab".into()),
                logprobs: None,
                finish_reason: Some("length".into()),
            }],
            Some(Usage::new(3, 2)),
        ));
        round_trip(head(
            "chat.completion",
            vec![ChatChoice {
                message: Message {
                    role: "assistant".into(),
                    content: Some("ab".into()),
                },
                finish_reason: Some("stop".into()),
                ..ChatChoice::default()
            }],
            Some(Usage::new(3, 2)),
        ));
        round_trip(head(
            "chat.completion.chunk",
            vec![ChunkChoice {
                delta: Delta {
                    role: Some("assistant".into()),
                    content: Some("a".into()),
                },
                ..ChunkChoice::default()
            }],
            None,
        ));
        round_trip::<ChunkChoice>(head(
            "chat.completion.chunk",
            vec![],
            Some(Usage::new(3, 2)),
        ));
        let err = StreamError {
            error: ErrorDetail {
                http_status_code: 424,
                message: "Request failed during generation: x".into(),
            },
        };
        let text = serde_json::to_string(&err).unwrap();
        assert_eq!(
            text,
            r#"{"error":{"http_status_code":424,"message":"Request failed during generation: x"}}"#
        );
        let chunk: Completion<TextChoice> = read(&text);
        assert_eq!(
            chunk.error.map(|e| e.to_string()).as_deref(),
            Some("Request failed during generation: x")
        );
    }
}
