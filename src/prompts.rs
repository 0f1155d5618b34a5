//! Prompt sets: loaded from JSONL (`{"prompt": "..."}` per line, or a bare JSON string) and drawn
//! deterministically: request `seq` always gets the same prompt for a given seed, whatever the
//! timing, so two runs of one scenario send the same traffic. Knows nothing of any API's body.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

/// The prompt sent when no `--prompts` file is given. Short on purpose: the embedded `tiny`
/// model's sweep is sized with it (a long prefill is compute no engine can batch away on a
/// CPU, and would hide the continuous-versus-single difference the default sweep shows).
/// For the study's ~100-token inputs use `prompts/*.jsonl`.
pub const DEFAULT_PROMPT: &str =
    "Summarize: the bridge on Elm Street closes next week for three weeks of repairs.";

/// What one request says, with its token count (from the tokenizer, else estimated), counted
/// once when it is built.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prompt {
    /// A shared prefix (`--prefix-tokens`): chat APIs send it as the system message, the
    /// others in front of `text`.
    pub system: Option<Arc<str>>,
    /// Earlier turns of a conversation, oldest first: (what the user said, what the server
    /// answered). Only chat APIs carry them.
    pub history: Vec<(Arc<str>, Arc<str>)>,
    pub text: Arc<str>,
    /// Tokens of all of the above.
    pub tokens: u64,
    /// This request's output length when the workload sets one (else `--max-new-tokens`).
    pub output_tokens: Option<u32>,
}

impl Prompt {
    /// A plain prompt of `text`.
    pub fn plain(text: impl Into<Arc<str>>, tokens: u64) -> Self {
        Self {
            text: text.into(),
            tokens,
            ..Self::default()
        }
    }

    /// The whole prompt as one text, for APIs without messages: the prefix, then `text`.
    pub fn flat(&self) -> std::borrow::Cow<'_, str> {
        match &self.system {
            None => std::borrow::Cow::Borrowed(&self.text),
            Some(s) => std::borrow::Cow::Owned(format!("{s}{}", self.text)),
        }
    }
}

/// A non-empty list of prompts and the seed that orders the draw.
#[derive(Debug, Clone)]
pub struct PromptSet {
    prompts: Vec<Prompt>,
    seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("reading prompts file {path}: {cause}; pass a readable JSONL file to --prompts")]
    Io { path: String, cause: String },
    #[error("{path}:{line}: {message}; each line must be {{\"prompt\": \"...\"}} or a JSON string")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    #[error("prompts file {path} has no prompts; add at least one line {{\"prompt\": \"...\"}}")]
    Empty { path: String },
}

impl PromptSet {
    /// Builds a set from texts; `count` gives each one's token count.
    pub fn new(texts: Vec<String>, seed: u64, count: &dyn Fn(&str) -> u64) -> Self {
        let prompts = texts
            .into_iter()
            .map(|t| Prompt::plain(t.as_str(), count(&t)))
            .collect();
        Self { prompts, seed }
    }

    /// A set of prompts built elsewhere (a dataset's rows); `prompts` must not be empty.
    pub fn from_prompts(prompts: Vec<Prompt>, seed: u64) -> Self {
        assert!(!prompts.is_empty(), "a prompt set is never empty");
        Self { prompts, seed }
    }

    /// Loads a JSONL file; blank lines are skipped, every other line must parse.
    pub fn load(path: &Path, seed: u64, count: &dyn Fn(&str) -> u64) -> Result<Self, PromptError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PromptError::Io {
            path: name.clone(),
            cause: crate::errors::io_cause(&e),
        })?;
        let mut texts = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let prompt = prompt_of(line).map_err(|message| PromptError::Line {
                path: name.clone(),
                line: i + 1,
                message,
            })?;
            if prompt.is_empty() {
                return Err(PromptError::Line {
                    path: name,
                    line: i + 1,
                    message: "empty prompt".into(),
                });
            }
            texts.push(prompt);
        }
        if texts.is_empty() {
            return Err(PromptError::Empty { path: name });
        }
        Ok(Self::new(texts, seed, count))
    }

    /// The prompt for request `seq`: a seeded hash, so the draw is uniform, reproducible and
    /// independent of which requests happened to be sent before.
    pub fn pick(&self, seq: u64) -> &Prompt {
        let idx = splitmix64(self.seed ^ splitmix64(seq)) % self.prompts.len() as u64;
        &self.prompts[idx as usize]
    }

    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

/// A line's prompt: a JSON string, or an object's `prompt` string; else what was found.
fn prompt_of(line: &str) -> Result<String, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    match value {
        Value::String(t) => Ok(t),
        Value::Object(mut o) => match o.remove("prompt") {
            Some(Value::String(t)) => Ok(t),
            Some(_) => Err("`prompt` is not a string".into()),
            None => {
                let keys: Vec<&str> = o.keys().map(String::as_str).take(5).collect();
                Err(format!("no `prompt` key (keys: {})", keys.join(", ")))
            }
        },
        _ => Err("a JSON value that is neither a string nor an object".into()),
    }
}

/// A 64-bit mixer (SplitMix64), so seeded draws by index need no generator state.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(t: &str) -> u64 {
        t.len() as u64
    }

    #[test]
    fn loads_objects_and_strings_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        std::fs::write(&path, "{\"prompt\": \"abc\"}\n\n\"de\"\n").unwrap();
        let set = PromptSet::load(&path, 1, &chars).unwrap();
        assert_eq!(set.len(), 2);
        std::fs::write(&path, "{\"prompt\": \"abc\"}\n{\"text\": 1}\n").unwrap();
        let err = PromptSet::load(&path, 1, &chars).unwrap_err().to_string();
        assert!(
            err.contains("p.jsonl:2: no `prompt` key (keys: text)"),
            "{err}"
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            PromptSet::load(&path, 1, &chars),
            Err(PromptError::Empty { .. })
        ));
        let missing = PromptSet::load(&dir.path().join("nope"), 1, &chars).unwrap_err();
        let missing = missing.to_string();
        assert!(missing.contains("--prompts"), "{missing}");
        // The cause is said once, lowercase.
        assert_eq!(missing.matches("no such file").count(), 1, "{missing}");
        assert!(!missing.contains("os error"), "{missing}");
    }

    #[test]
    fn draw_is_deterministic_and_covers_the_set() {
        let texts: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
        let a = PromptSet::new(texts.clone(), 42, &chars);
        let b = PromptSet::new(texts.clone(), 42, &chars);
        let c = PromptSet::new(texts, 43, &chars);
        let draw = |s: &PromptSet| (0..200).map(|i| s.pick(i).text.clone()).collect::<Vec<_>>();
        assert_eq!(draw(&a), draw(&b));
        assert_ne!(draw(&a), draw(&c));
        let mut seen: Vec<_> = draw(&a);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 10);
        assert_eq!(a.pick(3).tokens, 2);
    }
}
