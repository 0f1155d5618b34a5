//! [`TokenCounter`]: counts the tokens of text, with a HuggingFace `tokenizer.json` when one
//! is given, else with an estimate. The attacker counts what servers did not report; the
//! workload builder counts (and makes exact) the prompts it generates.

use std::fmt;
use std::sync::Arc;

/// Counts tokens of text the server did not count: with a HuggingFace `tokenizer.json` when
/// given, else an estimate of one token per 4 characters (flagged `estimate` on records).
#[derive(Clone, Default)]
pub struct TokenCounter {
    tokenizer: Option<Arc<tokenizers::Tokenizer>>,
}

impl fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCounter")
            .field("tokenizer", &self.tokenizer.is_some())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("loading --tokenizer {path}: {message}; pass a HuggingFace tokenizer.json file")]
pub struct TokenizerError {
    pub path: String,
    pub message: String,
}

impl TokenCounter {
    pub fn from_file(path: &std::path::Path) -> Result<Self, TokenizerError> {
        let tokenizer = tokenizers::Tokenizer::from_file(path).map_err(|e| TokenizerError {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Self {
            tokenizer: Some(Arc::new(tokenizer)),
        })
    }

    pub fn source(&self) -> crate::record::TokensSource {
        if self.tokenizer.is_some() {
            crate::record::TokensSource::Tokenizer
        } else {
            crate::record::TokensSource::Estimate
        }
    }

    /// The tokenizer, when counts are exact.
    pub fn tokenizer(&self) -> Option<&tokenizers::Tokenizer> {
        self.tokenizer.as_deref()
    }

    pub fn count(&self, text: &str) -> u64 {
        if let Some(tok) = &self.tokenizer
            && let Ok(enc) = tok.encode(text, false)
        {
            return enc.len() as u64;
        }
        estimate_tokens(text)
    }
}

/// About 4 characters per token for English BPE vocabularies; 0 for empty text.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_is_a_quarter_of_the_characters() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
    }
}
