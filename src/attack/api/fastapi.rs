//! FastAPI-style JSON apps, configured rather than coded: a body template with `{{prompt}}`
//! (and optionally `{{max_new_tokens}}`), JSON pointers to the generated text and, if the app
//! returns one, a token count, and whether the answer echoes the prompt (`StripPrompt`). The
//! defaults are the study's `POST /predict {"prompt"} -> {"prediction"}`, whose answer is the
//! prompt followed by the continuation.

use std::str::FromStr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{DecodeError, Decoded, FastapiFormat, GenParams, parse_json};

/// What to do with an answer that starts with the prompt (`--strip-prompt`). Apps built on
/// `pipeline("text-generation")` or `generate` return prompt + continuation; counting that
/// echo as output counts the input twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StripPrompt {
    /// Remove the prompt when the answer starts with it; otherwise keep the answer whole.
    #[default]
    Auto,
    /// The answer must start with the prompt; one that does not is a `body` error.
    Always,
    /// Count the whole answer, echo included.
    Never,
}

impl StripPrompt {
    pub const NAMES: &'static str = "auto, always, never";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--strip-prompt {0:?} is not known; use auto (remove the prompt when the answer echoes it), always (require the echo) or never (count the whole answer)"
)]
pub struct UnknownStripPrompt(pub String);

impl FromStr for StripPrompt {
    type Err = UnknownStripPrompt;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => Err(UnknownStripPrompt(other.to_owned())),
        }
    }
}

/// Problems with the configured format, caught before any request is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error(
        "--body-template has no {{{{prompt}}}} placeholder; write it where the prompt goes, e.g. '{{\"prompt\": \"{{{{prompt}}}}\"}}'"
    )]
    NoPrompt,
    #[error(
        "--body-template is not valid JSON once filled in ({0}); put {{{{prompt}}}} inside a JSON string"
    )]
    NotJson(String),
    #[error("{flag} {pointer:?} is not a JSON pointer; pointers start with '/', e.g. /prediction")]
    Pointer { flag: &'static str, pointer: String },
}

/// Checks the template and pointers with a sample prompt that needs escaping.
pub fn validate(format: &FastapiFormat) -> Result<(), FormatError> {
    if !format.body_template.contains("{{prompt}}") {
        return Err(FormatError::NoPrompt);
    }
    let sample = fill(&format.body_template, "a \"quoted\"\nline", 16);
    serde_json::from_str::<Value>(&sample).map_err(|e| FormatError::NotJson(e.to_string()))?;
    for (flag, pointer) in [
        ("--text-pointer", Some(&format.text_pointer)),
        ("--tokens-pointer", format.tokens_pointer.as_ref()),
    ] {
        if let Some(p) = pointer
            && !p.is_empty()
            && !p.starts_with('/')
        {
            return Err(FormatError::Pointer {
                flag,
                pointer: p.clone(),
            });
        }
    }
    Ok(())
}

/// Substitutes the placeholders; the prompt is JSON-escaped (the template puts it in a string).
fn fill(template: &str, prompt: &str, max_new_tokens: u32) -> String {
    let escaped = serde_json::to_string(prompt).expect("string");
    template
        .replace("{{prompt}}", &escaped[1..escaped.len() - 1])
        .replace("{{max_new_tokens}}", &max_new_tokens.to_string())
}

pub fn body(format: &FastapiFormat, prompt: &str, p: &GenParams) -> Bytes {
    Bytes::from(fill(&format.body_template, prompt, p.max_new_tokens))
}

/// Decodes the answer to `prompt`; the text kept is the continuation under `strip_prompt`.
pub fn parse(format: &FastapiFormat, prompt: &str, body: &[u8]) -> Result<Decoded, DecodeError> {
    let value: Value = parse_json(body)?;
    let text = match value.pointer(&format.text_pointer) {
        Some(Value::String(s)) => s.clone(),
        // A number, null or object where the text should be is not a generation; counting
        // its JSON as output would call a broken app a success.
        Some(other) => {
            return Err(DecodeError::Body(format!(
                "the value at {} is {}, not the generated text (a string); point --text-pointer at the text",
                format.text_pointer,
                json_kind(other)
            )));
        }
        None => {
            return Err(DecodeError::Body(format!(
                "no value at {} in the answer",
                format.text_pointer
            )));
        }
    };
    let text = continuation(format.strip_prompt, prompt, text)?;
    let tokens_out = format
        .tokens_pointer
        .as_ref()
        .and_then(|p| value.pointer(p))
        .and_then(Value::as_u64);
    Ok(Decoded {
        text,
        tokens_out,
        ..Decoded::default()
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The answer without the echoed prompt, as `mode` says.
fn continuation(mode: StripPrompt, prompt: &str, text: String) -> Result<String, DecodeError> {
    if mode == StripPrompt::Never {
        return Ok(text);
    }
    match text.strip_prefix(prompt) {
        Some(rest) => Ok(rest.to_owned()),
        None if mode == StripPrompt::Auto => Ok(text),
        None => Err(DecodeError::Body(
            "the answer does not start with the prompt, and --strip-prompt always requires it; \
             pass --strip-prompt auto (strip it only when echoed) or never (count the whole answer)"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(mode: StripPrompt) -> FastapiFormat {
        FastapiFormat {
            strip_prompt: mode,
            ..FastapiFormat::default()
        }
    }

    #[test]
    fn default_matches_the_study_app() {
        let f = FastapiFormat::default();
        validate(&f).unwrap();
        let p = GenParams {
            max_new_tokens: 50,
            ..GenParams::default()
        };
        let b = body(&f, "say \"hi\"", &p);
        assert_eq!(&b[..], br#"{"prompt": "say \"hi\"", "max_new_tokens": 50}"#);
        let d = parse(&f, "q", br#"{"prediction": "hello"}"#).unwrap();
        assert_eq!(d.text, "hello");
        assert!(matches!(
            parse(&f, "q", br#"{"x": 1}"#),
            Err(DecodeError::Body(_))
        ));
        // Something other than text where the text should be is a broken answer.
        for bad in [&br#"{"prediction": null}"#[..], br#"{"prediction": 7}"#] {
            let Err(DecodeError::Body(msg)) = parse(&f, "q", bad) else {
                panic!("a non-string prediction must be a body error")
            };
            assert!(msg.contains("--text-pointer"), "{msg}");
        }
    }

    #[test]
    fn auto_strips_an_echoed_prompt_and_keeps_other_answers() {
        let f = strip(StripPrompt::Auto);
        let echoed = br#"{"prediction": "Summarize: x. The bridge closes."}"#;
        assert_eq!(
            parse(&f, "Summarize: x.", echoed).unwrap().text,
            " The bridge closes."
        );
        let bare = br#"{"prediction": "The bridge closes."}"#;
        assert_eq!(
            parse(&f, "Summarize: x.", bare).unwrap().text,
            "The bridge closes."
        );
    }

    #[test]
    fn always_requires_the_echo() {
        let f = strip(StripPrompt::Always);
        let echoed = br#"{"prediction": "abc def"}"#;
        assert_eq!(parse(&f, "abc", echoed).unwrap().text, " def");
        let Err(DecodeError::Body(msg)) = parse(&f, "xyz", echoed) else {
            panic!("an answer without the prompt must be a body error")
        };
        assert!(msg.contains("--strip-prompt always"), "{msg}");
        assert!(msg.contains("--strip-prompt auto"), "{msg}");
        assert!(msg.contains("never"), "{msg}");
    }

    #[test]
    fn never_counts_the_whole_answer() {
        let f = strip(StripPrompt::Never);
        let echoed = br#"{"prediction": "abc def"}"#;
        assert_eq!(parse(&f, "abc", echoed).unwrap().text, "abc def");
    }

    #[test]
    fn strip_prompt_names_parse() {
        for name in StripPrompt::NAMES.split(", ") {
            let mode: StripPrompt = name.parse().unwrap();
            assert_eq!(serde_json::to_value(mode).unwrap(), name);
        }
        let err = "yes".parse::<StripPrompt>().unwrap_err().to_string();
        assert!(
            err.starts_with("--strip-prompt \"yes\" is not known"),
            "{err}"
        );
    }

    #[test]
    fn custom_template_and_pointers() {
        let f = FastapiFormat {
            body_template: r#"{"input": {"text": "{{prompt}}"}, "n": {{max_new_tokens}}}"#.into(),
            text_pointer: "/out/0/text".into(),
            tokens_pointer: Some("/out/0/tokens".into()),
            strip_prompt: StripPrompt::Auto,
        };
        validate(&f).unwrap();
        let p = GenParams {
            max_new_tokens: 12,
            ..GenParams::default()
        };
        let v: Value = serde_json::from_slice(&body(&f, "q", &p)).unwrap();
        assert_eq!(v["n"], 12);
        let d = parse(&f, "q", br#"{"out": [{"text": "a b", "tokens": 2}]}"#).unwrap();
        assert_eq!(d.tokens_out, Some(2));
    }

    #[test]
    fn bad_templates_are_named() {
        let mut f = FastapiFormat {
            body_template: r#"{"prompt": "x"}"#.into(),
            ..FastapiFormat::default()
        };
        assert_eq!(validate(&f), Err(FormatError::NoPrompt));
        f.body_template = r#"{"prompt": {{prompt}}}"#.into();
        assert!(matches!(validate(&f), Err(FormatError::NotJson(_))));
        f = FastapiFormat {
            text_pointer: "prediction".into(),
            ..FastapiFormat::default()
        };
        let err = validate(&f).unwrap_err().to_string();
        assert!(err.starts_with("--text-pointer \"prediction\""), "{err}");
    }
}
