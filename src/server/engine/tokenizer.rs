//! Text <-> token ids: a thin wrapper over HuggingFace `tokenizers`, plus the incremental
//! detokenizer that turns a growing list of generated ids into text deltas for streaming.
//!
//! Owns: loading `tokenizer.json` (from a model folder, or the byte-level BPE embedded for the
//! presets), encoding prompts, decoding, and the EOS id. Must not touch tensors or HTTP.

use std::path::Path;

use super::error::EngineError;

/// The byte-level BPE (1024 entries, `<|endoftext|>` = 0) the presets use, so that `rpload serve`
/// needs no file. `scripts/make_gpt_neox_fixture.py` trains it; the parity fixtures share it.
const TINY_TOKENIZER_JSON: &str = include_str!("tiny_tokenizer.json");

/// A loaded tokenizer and the ids the engine needs to know about.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    /// Generation ends when this id is sampled (unless the request ignores EOS).
    eos_token_id: Option<u32>,
    /// Ids of special added tokens, collected once: `tokenizers` rebuilds its map per call.
    special: std::collections::HashSet<u32>,
    /// The longest vocabulary entry in UTF-8 bytes; see [`TextTokenizer::max_token_bytes`].
    max_token_bytes: usize,
}

impl TextTokenizer {
    /// The embedded preset tokenizer.
    pub fn embedded() -> Result<Self, EngineError> {
        let inner = tokenizers::Tokenizer::from_bytes(TINY_TOKENIZER_JSON.as_bytes())
            .map_err(|e| EngineError::Tokenizer(format!("embedded tokenizer: {e}")))?;
        Ok(Self::with_eos(inner, Some(0)))
    }

    /// `tokenizer.json` from a model folder; `eos_token_id` comes from the model's config.
    pub fn from_file(path: &Path, eos_token_id: Option<u32>) -> Result<Self, EngineError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| {
            EngineError::Tokenizer(format!(
                "reading {}: {e} (a model folder needs a HuggingFace tokenizer.json)",
                path.display()
            ))
        })?;
        Ok(Self::with_eos(inner, eos_token_id))
    }

    fn with_eos(inner: tokenizers::Tokenizer, eos_token_id: Option<u32>) -> Self {
        // Fall back to the GPT-NeoX convention when the config does not say.
        let eos_token_id = eos_token_id.or_else(|| inner.token_to_id("<|endoftext|>"));
        let special = inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| id)
            .chain(eos_token_id)
            .collect();
        let max_token_bytes = inner
            .get_vocab(true)
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(1)
            .max(1);
        Self {
            inner,
            eos_token_id,
            special,
            max_token_bytes,
        }
    }

    /// The most prompt bytes one token can stand for, as an upper bound: a byte-level BPE entry
    /// spells each byte it covers with one character of one or two UTF-8 bytes, so its own
    /// length is never below the input it covers. A prompt longer than this times N bytes has
    /// more than N tokens, which lets validation refuse it before tokenizing.
    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token_id
    }

    /// Prompt text to ids, without special tokens added (GPT-NeoX adds none).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    /// Ids to text; ids the tokenizer does not know (padded embedding rows) decode to nothing.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, true).unwrap_or_default()
    }

    /// The token's own text (for `details.tokens[].text`), special tokens included.
    pub fn token_text(&self, id: u32) -> String {
        self.inner.decode(&[id], false).unwrap_or_default()
    }

    pub fn is_special(&self, id: u32) -> bool {
        self.special.contains(&id)
    }
}

/// Streams text out of a growing id list. Decoding ids one at a time breaks multi-byte
/// characters and merges (byte-level BPE), so like TGI we decode a small window twice and emit
/// the difference once it no longer ends in a half character.
#[derive(Debug, Default, Clone)]
pub struct Detokenizer {
    ids: Vec<u32>,
    /// Start of the window decoded as context for the next delta.
    prefix_offset: usize,
    /// Ids before this have been emitted as text.
    read_offset: usize,
}

impl Detokenizer {
    /// Adds one id and returns the text it completes (often empty inside a multi-byte char).
    pub fn push(&mut self, tok: &TextTokenizer, id: u32) -> String {
        self.ids.push(id);
        let prefix = tok.decode(&self.ids[self.prefix_offset..self.read_offset]);
        let full = tok.decode(&self.ids[self.prefix_offset..]);
        if full.len() > prefix.len() && !full.ends_with('\u{FFFD}') && full.starts_with(&prefix) {
            let delta = full[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            delta
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_round_trips_and_knows_eos() {
        let tok = TextTokenizer::embedded().unwrap();
        assert_eq!(tok.eos_token_id(), Some(0));
        let text = "Hello world, the server answers: héllo ✓";
        let ids = tok.encode(text).unwrap();
        assert!(!ids.is_empty());
        assert_eq!(tok.decode(&ids), text);
        assert!(tok.is_special(0));
        // The embedded vocabulary's longest entry (a run of spaces, two bytes a character).
        assert_eq!(tok.max_token_bytes(), 72);
        let spaces = " ".repeat(360);
        let n = tok.encode(&spaces).unwrap().len();
        assert!(spaces.len() <= n * tok.max_token_bytes(), "{n} tokens");
    }

    #[test]
    fn detokenizer_concatenates_to_the_full_decode() {
        let tok = TextTokenizer::embedded().unwrap();
        let text = "naïve café ✓ streaming text";
        let ids = tok.encode(text).unwrap();
        let mut d = Detokenizer::default();
        let streamed: String = ids.iter().map(|&id| d.push(&tok, id)).collect();
        assert_eq!(streamed, text);
    }
}
