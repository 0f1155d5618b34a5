//! FastAPI-style JSON apps, configured rather than coded: a body template with `{{prompt}}`
//! (and optionally `{{max_new_tokens}}`), and JSON pointers to the generated text and, if the
//! app returns one, a token count. The defaults are the study's `POST /predict {"prompt"} ->
//! {"prediction"}`.

use bytes::Bytes;
use serde_json::Value;

use super::{DecodeError, Decoded, FastapiFormat, GenParams, parse_json};

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

pub fn parse(format: &FastapiFormat, body: &[u8]) -> Result<Decoded, DecodeError> {
    let value = parse_json(body)?;
    let text = match value.pointer(&format.text_pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => {
            return Err(DecodeError::Body(format!(
                "no value at {} in the answer",
                format.text_pointer
            )));
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_matches_the_study_app() {
        let f = FastapiFormat::default();
        validate(&f).unwrap();
        let b = body(&f, "say \"hi\"", &GenParams::default());
        assert_eq!(&b[..], br#"{"prompt": "say \"hi\""}"#);
        let d = parse(&f, br#"{"prediction": "hello"}"#).unwrap();
        assert_eq!(d.text, "hello");
        assert!(matches!(
            parse(&f, br#"{"x": 1}"#),
            Err(DecodeError::Body(_))
        ));
    }

    #[test]
    fn custom_template_and_pointers() {
        let f = FastapiFormat {
            body_template: r#"{"input": {"text": "{{prompt}}"}, "n": {{max_new_tokens}}}"#.into(),
            text_pointer: "/out/0/text".into(),
            tokens_pointer: Some("/out/0/tokens".into()),
        };
        validate(&f).unwrap();
        let p = GenParams {
            max_new_tokens: 12,
            ..GenParams::default()
        };
        let v: Value = serde_json::from_slice(&body(&f, "q", &p)).unwrap();
        assert_eq!(v["n"], 12);
        let d = parse(&f, br#"{"out": [{"text": "a b", "tokens": 2}]}"#).unwrap();
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
