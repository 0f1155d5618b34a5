//! The JSON bodies and stream events of TGI and OpenAI-style servers, as serde types that both
//! trees use: `server` deserializes requests and serializes answers with them, `attack`
//! serializes requests and parses answers with them, so the two cannot drift apart.
//!
//! One reading serves both sides because the server accepts what it accepts today (unknown
//! fields ignored, as TGI and vLLM do) and the client must take what real servers send: fields
//! the client reads are optional or defaulted, and `null` is accepted wherever a real server
//! writes it. Only serde and `serde_json` here: this module must not import `attack` or
//! `server`, which both import it.

pub mod openai;
pub mod tgi;

use std::fmt;

use serde::{Deserialize, Deserializer};

/// The `error` of an error event or body as clients read it: TGI writes a string
/// (`{"error": "...", "error_type": ...}`), OpenAI-style servers an object with `message`.
/// Anything else is kept whole, so the record still shows what the server said.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ErrorMessage {
    Text(String),
    Detail { message: String },
    Other(serde_json::Value),
}

impl fmt::Display for ErrorMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(message) | Self::Detail { message } => f.write_str(message),
            Self::Other(value) => write!(f, "{value}"),
        }
    }
}

/// For `Option` fields where `null` means "present and empty" (vLLM writes `"content": null`
/// beside tool calls) and only a missing field is `None`, so a client can still tell an
/// answer of the wrong shape from an empty one. Use with `#[serde(default)]`.
fn null_as_default<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(|v| Some(v.unwrap_or_default()))
}

/// For fields that a server may write as `null` where it means empty (TGI's
/// `"top_tokens": null`). Use with `#[serde(default)]`.
fn null_as_empty<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// For `skip_serializing_if`: flags that are off by default need not be sent.
fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_read_every_shape_servers_send() {
        let read = |s: &str| serde_json::from_str::<ErrorMessage>(s).unwrap().to_string();
        assert_eq!(read(r#""boom""#), "boom");
        assert_eq!(
            read(r#"{"message":"bad","type":"BadRequestError","code":400}"#),
            "bad"
        );
        assert_eq!(read(r#"{"code":7}"#), r#"{"code":7}"#);
    }
}
