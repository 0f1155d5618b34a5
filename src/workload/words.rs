//! [`Words`]: builds prompt text of an exact token count. With a tokenizer, the words are the
//! vocabulary's own whole-word tokens (" the", " river"...) that decode and re-encode to
//! exactly one token, so `n` of them are `n` tokens; every built text is encoded once more to
//! prove it, and mended word by word if a tokenizer merges across words. Without one, the
//! words are four characters with their space, which the attacker's estimate (a token per 4
//! characters) counts as one each: exact for the estimate, approximate for any real server.
//!
//! Words are drawn at random from a seeded generator, so every prompt differs from the others
//! (a prefix cache cannot serve one from another) while one seed gives the same texts.

use std::sync::Arc;

use rand::Rng;
use rand::seq::IndexedRandom;
use tokenizers::Tokenizer;

/// Whole-word tokens fewer than this make texts too repetitive to be honest load.
const MIN_WORDS: usize = 64;
/// Mending rounds before a length is declared unreachable.
const MEND_ROUNDS: usize = 8;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WordsError {
    #[error(
        "--tokenizer has only {found} whole-word tokens (a space and 2-12 letters that re-encode to one token); synthetic prompts need {MIN_WORDS}: pass the target model's tokenizer.json, or use --prompts/--dataset"
    )]
    Vocabulary { found: usize },
    #[error(
        "--tokenizer cannot make a prompt of exactly {want} tokens from whole words (got {got}); choose another length or pass --prompts/--dataset"
    )]
    Unreachable { want: u32, got: u64 },
}

/// The vocabulary texts are made of, and the tokenizer that proves their length.
#[derive(Clone)]
pub struct Words {
    words: Arc<[Arc<str>]>,
    tokenizer: Option<Arc<Tokenizer>>,
}

impl std::fmt::Debug for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Words")
            .field("words", &self.words.len())
            .field("exact", &self.tokenizer.is_some())
            .finish()
    }
}

impl Words {
    /// Words of `tokenizer`'s vocabulary, or the built-in four-character words without one.
    pub fn new(tokenizer: Option<Arc<Tokenizer>>) -> Result<Self, WordsError> {
        let words: Vec<Arc<str>> = match &tokenizer {
            Some(t) => vocabulary_words(t),
            None => builtin_words(),
        };
        if words.len() < MIN_WORDS {
            return Err(WordsError::Vocabulary { found: words.len() });
        }
        Ok(Self {
            words: words.into(),
            tokenizer,
        })
    }

    /// Whether lengths are the tokenizer's (else the attacker's estimate).
    pub fn exact(&self) -> bool {
        self.tokenizer.is_some()
    }

    /// `n` words, each one token of the vocabulary: a text of `n` tokens wherever the
    /// tokenizer does not merge across words (the rule [`Words::text`] checks).
    pub fn pick(&self, n: u32, rng: &mut impl Rng) -> Vec<Arc<str>> {
        (0..n)
            .map(|_| self.words.choose(rng).expect("checked non-empty").clone())
            .collect()
    }

    /// A text of exactly `n` tokens (as counted by the tokenizer, or estimated without one).
    pub fn text(&self, n: u32, rng: &mut impl Rng) -> Result<String, WordsError> {
        let mut picked: Vec<&Arc<str>> = (0..n)
            .map(|_| self.words.choose(rng).expect("checked non-empty"))
            .collect();
        let Some(tok) = &self.tokenizer else {
            return Ok(join(&picked));
        };
        let mut got = 0;
        for _ in 0..MEND_ROUNDS {
            let text = join(&picked);
            got = count(tok, &text);
            match got.cmp(&u64::from(n)) {
                std::cmp::Ordering::Equal => return Ok(text),
                // Merges across words made fewer tokens: add words to make up the difference.
                std::cmp::Ordering::Less => {
                    for _ in got..u64::from(n) {
                        picked.push(self.words.choose(rng).expect("non-empty"));
                    }
                }
                std::cmp::Ordering::Greater => {
                    let drop = (got - u64::from(n)) as usize;
                    picked.truncate(picked.len().saturating_sub(drop));
                }
            }
        }
        Err(WordsError::Unreachable { want: n, got })
    }
}

fn join(words: &[&Arc<str>]) -> String {
    let mut s = String::with_capacity(words.iter().map(|w| w.len()).sum());
    for w in words {
        s.push_str(w);
    }
    s
}

fn count(tok: &Tokenizer, text: &str) -> u64 {
    // Offsets are not needed to count, and skipping them is the faster path.
    tok.encode_fast(text, false).map_or(0, |e| e.len() as u64)
}

/// Tokens that decode to a space and 2..=12 lowercase letters and encode back to themselves
/// alone, in id order (the vocabulary map's order is not stable between loads).
fn vocabulary_words(tok: &Tokenizer) -> Vec<Arc<str>> {
    let mut ids: Vec<u32> = tok.get_vocab(false).into_values().collect();
    ids.sort_unstable();
    ids.into_iter()
        .filter_map(|id| {
            let text = tok.decode(&[id], false).ok()?;
            let word = text.strip_prefix(' ')?;
            let letters = word.len();
            if !(2..=12).contains(&letters) || !word.bytes().all(|b| b.is_ascii_lowercase()) {
                return None;
            }
            let enc = tok.encode(text.as_str(), false).ok()?;
            (enc.get_ids() == [id]).then(|| Arc::from(text))
        })
        .collect()
}

/// " bal", " dek", ...: consonant-vowel-consonant syllables, four characters with the space.
fn builtin_words() -> Vec<Arc<str>> {
    const C: &[u8] = b"bdfgklmnprstvz";
    const V: &[u8] = b"aeiou";
    let mut out = Vec::new();
    for &a in C {
        for &b in V {
            for &c in C {
                out.push(Arc::from(format!(
                    " {}{}{}",
                    a as char, b as char, c as char
                )));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn fixture() -> Arc<Tokenizer> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gpt_neox_parallel/tokenizer.json"
        );
        Arc::new(Tokenizer::from_file(path).unwrap())
    }

    #[test]
    fn tokenizer_texts_have_exactly_the_asked_length_and_differ() {
        let tok = fixture();
        let words = Words::new(Some(tok.clone())).unwrap();
        assert!(words.exact());
        let mut rng = StdRng::seed_from_u64(9);
        let mut seen = std::collections::HashSet::new();
        for n in [1, 2, 17, 200, 1000] {
            let text = words.text(n, &mut rng).unwrap();
            assert_eq!(count(&tok, &text), u64::from(n), "{text:?}");
            assert!(seen.insert(text));
        }
        let a = words.text(50, &mut StdRng::seed_from_u64(1)).unwrap();
        assert_eq!(a, words.text(50, &mut StdRng::seed_from_u64(1)).unwrap());
        assert_ne!(a, words.text(50, &mut StdRng::seed_from_u64(2)).unwrap());
    }

    #[test]
    fn without_a_tokenizer_the_estimate_is_exact() {
        let words = Words::new(None).unwrap();
        assert!(!words.exact());
        let text = words.text(123, &mut StdRng::seed_from_u64(0)).unwrap();
        assert_eq!(crate::tokens::estimate_tokens(&text), 123);
    }
}
