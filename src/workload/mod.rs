//! [`Workload`]: what each request of an attack carries, decided before the schedule starts
//! so that building a request never delays its send. The sources, by precedence (documented
//! in prompts/README.md): a trace (`--trace`), a dataset (`--dataset`), synthetic text of drawn
//! token lengths (`--input-tokens`), a prompts file (`--prompts`), one prompt (`--prompt`).
//! On top of any source: a drawn output length per request (`--output-tokens`, over the data's
//! own), and one of K shared prefixes (`--prefix-tokens`/`--prefix-count`).
//!
//! Every draw is seeded and indexed by the request's number, so one seed gives the same
//! requests whatever the timing. Synthetic text is a pool built up front (one entry per
//! request the run may send, up to [`MAX_POOL`]): requests beyond it reuse entries in order.

pub mod dataset;
pub mod lengths;
pub mod trace;
pub mod words;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

pub use lengths::{Lengths, LengthsError};

use crate::prompts::{Prompt, PromptSet, splitmix64};
use crate::tokens::TokenCounter;
use words::Words;

/// `want` synthetic prompts (fewer once they hold [`MAX_POOL_BYTES`]), built on every core:
/// with a tokenizer each text is encoded to prove its length, about 4,000 prompts of 200
/// tokens a second on one core. Prompt `i` comes from its own generator, seeded by the seed and
/// `i`, so the pool is the same whatever the number of threads.
fn synthetic_pool(
    words: &Words,
    lengths: &Lengths,
    seed: u64,
    want: usize,
) -> Result<Vec<Prompt>, words::WordsError> {
    use rayon::prelude::*;
    // Chunks bound what is built past the byte cap to one chunk.
    const CHUNK: usize = 4096;
    let mut pool = Vec::with_capacity(want.min(CHUNK * 4));
    let mut bytes = 0;
    let mut start = 0;
    while start < want && bytes < MAX_POOL_BYTES {
        let end = (start + CHUNK).min(want);
        let chunk = (start..end)
            .into_par_iter()
            .map(|i| {
                let mut rng =
                    StdRng::seed_from_u64(splitmix64(seed ^ SALT_TEXT ^ splitmix64(i as u64)));
                let n = lengths.draw(&mut rng);
                Ok(Prompt::plain(words.text(n, &mut rng)?, u64::from(n)))
            })
            .collect::<Result<Vec<Prompt>, words::WordsError>>()?;
        for p in chunk {
            if bytes >= MAX_POOL_BYTES {
                break;
            }
            bytes += p.text.len();
            pool.push(p);
        }
        start = end;
    }
    Ok(pool)
}

/// Distinct synthetic prompts built for one run at most; with [`MAX_POOL_BYTES`] it bounds
/// the memory and start-up time a long run's pool costs.
pub const MAX_POOL: usize = 100_000;
pub const MAX_POOL_BYTES: usize = 256 << 20;

/// Salts that keep the draws of one seed independent of each other.
const SALT_TEXT: u64 = 0x7465_7874;
const SALT_OUTPUT: u64 = 0x6f75_7470;
const SALT_PREFIX: u64 = 0x7072_6566;
const SALT_TURNS: u64 = 0x7475_726e;

/// Where the requests' text comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Fixed texts (`--prompt`, `--prompts`, the default prompt), drawn by seed.
    Texts(Vec<String>),
    /// A `--prompts` JSONL file, drawn by seed.
    PromptsFile(PathBuf),
    Dataset {
        path: PathBuf,
        spec: dataset::DatasetSpec,
    },
    /// Synthetic text of drawn token counts.
    Synthetic(Lengths),
    /// A trace's requests, in its order and at its times (`speed` times faster).
    Trace {
        path: PathBuf,
        block_tokens: u32,
        speed: f64,
    },
}

/// Conversations: `turns` requests per session, `think` apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Turns {
    pub turns: Lengths,
    pub think: Duration,
}

/// Everything a workload is built from (checked by `attack::setup`).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    pub source: Source,
    pub output: Option<Lengths>,
    /// `(tokens, count)`: K shared prefixes of N tokens.
    pub prefix: Option<(u32, u32)>,
    pub turns: Option<Turns>,
    pub seed: u64,
    /// Requests the run may send (synthetic pools are built this large, up to [`MAX_POOL`]);
    /// for a trace, how much of it the attack lasts (trace time) and how many rows to keep.
    pub expected: u64,
    pub within: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Prompts(#[from] crate::prompts::PromptError),
    #[error(transparent)]
    Dataset(#[from] dataset::DatasetError),
    #[error(transparent)]
    Trace(#[from] trace::TraceError),
    #[error(transparent)]
    Words(#[from] words::WordsError),
    #[error(
        "--trace needs {mib} MiB of prompt text for the requests this attack sends (the limit is {limit} MiB); shorten it with --duration or --max-requests"
    )]
    TraceTooLarge { mib: usize, limit: usize },
}

#[derive(Debug, Clone)]
enum Draw {
    Set(PromptSet),
    /// Request `seq` gets entry `seq % len`: every request differs while the pool lasts.
    Pool(Arc<[Prompt]>),
}

/// The built workload: [`Workload::prompt`] gives request `seq` its prompt.
#[derive(Debug, Clone)]
pub struct Workload {
    draw: Draw,
    prefixes: Arc<[Arc<str>]>,
    prefix_tokens: u64,
    output: Option<Lengths>,
    pub turns: Option<Turns>,
    seed: u64,
    /// Added to `seq` before drawing: a sweep's later steps go on through the pool instead of
    /// repeating the first step's requests.
    pub offset: u64,
    /// Whether token counts are estimates (no tokenizer, or a dataset's answers counted by
    /// estimate).
    pub approximate: bool,
    /// A trace's send times (already divided by the replay speed), request by request.
    pub times: Option<Arc<[Duration]>>,
    /// Rows a dataset had that could not be used or kept.
    notes: Vec<String>,
    /// Whether the text was generated here (its lengths are ours to state).
    generated: bool,
}

impl Workload {
    pub fn build(spec: &WorkloadSpec, counter: &TokenCounter) -> Result<Self, WorkloadError> {
        let approximate = counter.tokenizer().is_none();
        let words = || Words::new(counter.tokenizer().cloned().map(Arc::new));
        let mut notes = Vec::new();
        let mut times = None;
        let draw = match &spec.source {
            Source::Texts(texts) => Draw::Set(PromptSet::new(texts.clone(), spec.seed, &|t| {
                counter.count(t)
            })),
            Source::PromptsFile(path) => {
                Draw::Set(PromptSet::load(path, spec.seed, &|t| counter.count(t))?)
            }
            Source::Dataset { path, spec: ds } => {
                let data = dataset::load(path, ds, counter)?;
                if data.skipped > 0 {
                    notes.push(format!(
                        "{} dataset rows skipped (no usable prompt)",
                        data.skipped
                    ));
                }
                if data.unkept > 0 {
                    notes.push(format!(
                        "{} rows kept of {}: the rest are past the {}-row or {} MiB bound",
                        data.rows.len(),
                        data.rows.len() as u64 + data.unkept,
                        dataset::MAX_ROWS,
                        dataset::MAX_TEXT_BYTES >> 20
                    ));
                }
                let prompts = data
                    .rows
                    .into_iter()
                    .map(|r| Prompt {
                        tokens: counter.count(&r.prompt),
                        text: r.prompt.into(),
                        output_tokens: r.output_tokens,
                        ..Prompt::default()
                    })
                    .collect();
                Draw::Set(PromptSet::from_prompts(prompts, spec.seed))
            }
            Source::Synthetic(lengths) => {
                let words = words()?;
                let want = (spec.expected.max(1) as usize).min(MAX_POOL);
                Draw::Pool(synthetic_pool(&words, lengths, spec.seed, want)?.into())
            }
            Source::Trace {
                path,
                block_tokens,
                speed,
            } => {
                let within = spec.within.map(|w| w.mul_f64(*speed));
                let rows = trace::load(path, within, (spec.expected as usize).clamp(1, MAX_POOL))?;
                let words = words()?;
                let prompts = trace_prompts(&rows, *block_tokens, &words, spec.seed, counter)?;
                times = Some(rows.iter().map(|r| r.at.div_f64(*speed)).collect());
                Draw::Pool(prompts.into())
            }
        };
        let (prefixes, prefix_tokens) = match spec.prefix {
            Some((tokens, count)) => {
                let words = words()?;
                let mut rng = StdRng::seed_from_u64(splitmix64(spec.seed ^ SALT_PREFIX));
                let texts = (0..count)
                    .map(|_| words.text(tokens, &mut rng).map(Arc::from))
                    .collect::<Result<Vec<Arc<str>>, _>>()?;
                (texts.into(), u64::from(tokens))
            }
            None => (Arc::from(Vec::new()), 0),
        };
        Ok(Self {
            draw,
            prefixes,
            prefix_tokens,
            output: spec.output,
            turns: spec.turns,
            seed: spec.seed,
            offset: 0,
            approximate,
            times,
            notes,
            generated: matches!(
                spec.source,
                Source::Synthetic(_) | Source::Trace { .. } | Source::Dataset { .. }
            ) || spec.prefix.is_some(),
        })
    }

    /// The prompt of request `seq` (for a conversation: of its turn's own text).
    pub fn prompt(&self, seq: u64) -> Prompt {
        let i = seq.wrapping_add(self.offset);
        let mut p = match &self.draw {
            Draw::Set(set) => set.pick(i).clone(),
            Draw::Pool(pool) => pool[(i % pool.len() as u64) as usize].clone(),
        };
        if !self.prefixes.is_empty() {
            let k =
                splitmix64(self.seed ^ SALT_PREFIX ^ splitmix64(i)) % self.prefixes.len() as u64;
            p.system = Some(self.prefixes[k as usize].clone());
            p.tokens += self.prefix_tokens;
        }
        if let Some(out) = &self.output {
            let mut rng =
                StdRng::seed_from_u64(splitmix64(self.seed ^ SALT_OUTPUT ^ splitmix64(i)));
            p.output_tokens = Some(out.draw(&mut rng));
        }
        p
    }

    /// Tokens of the shared prefix each prompt carries (0 without one).
    pub fn prefix_tokens(&self) -> u64 {
        self.prefix_tokens
    }

    /// Turns of session `session`.
    pub fn session_turns(&self, session: u64) -> u32 {
        let Some(t) = &self.turns else { return 1 };
        let mut rng =
            StdRng::seed_from_u64(splitmix64(self.seed ^ SALT_TURNS ^ splitmix64(session)));
        t.turns.draw(&mut rng)
    }

    /// What a user should know before the attack starts: rows skipped or not kept, and
    /// whether the lengths asked for are estimates.
    pub fn notes(&self) -> Vec<String> {
        let mut out = self.notes.clone();
        if self.approximate && (self.generated || self.output.is_some()) {
            out.push(
                "token lengths are estimates (4 characters a token): pass --tokenizer with the model's tokenizer.json for exact counts"
                    .into(),
            );
        }
        out
    }

    /// Distinct prompts the workload draws from.
    pub fn len(&self) -> usize {
        match &self.draw {
            Draw::Set(s) => s.len(),
            Draw::Pool(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A trace's prompts: one text per block id (so equal ids are equal text), each request the
/// concatenation of its blocks cut to its `input_length`; rows without ids get fresh text.
fn trace_prompts(
    rows: &[trace::TraceRow],
    block_tokens: u32,
    words: &Words,
    seed: u64,
    counter: &TokenCounter,
) -> Result<Vec<Prompt>, WorkloadError> {
    let mut blocks: std::collections::HashMap<u64, Vec<Arc<str>>> = Default::default();
    let mut rng = StdRng::seed_from_u64(splitmix64(seed ^ SALT_TEXT));
    let mut out = Vec::with_capacity(rows.len());
    let mut bytes = 0usize;
    for row in rows {
        let mut parts: Vec<Arc<str>> = Vec::with_capacity(row.input_tokens as usize);
        let mut left = row.input_tokens as usize;
        for id in &row.hash_ids {
            if left == 0 {
                break;
            }
            let block = blocks.entry(*id).or_insert_with(|| {
                let mut r = StdRng::seed_from_u64(splitmix64(seed ^ splitmix64(*id)));
                words.pick(block_tokens, &mut r)
            });
            let take = left.min(block.len());
            parts.extend(block[..take].iter().cloned());
            left -= take;
        }
        parts.extend(words.pick(left as u32, &mut rng));
        let text: String = parts.iter().map(|w| &**w).collect();
        bytes += text.len();
        if bytes > MAX_POOL_BYTES {
            return Err(WorkloadError::TraceTooLarge {
                mib: bytes >> 20,
                limit: MAX_POOL_BYTES >> 20,
            });
        }
        out.push(Prompt {
            tokens: counter.count(&text),
            text: text.into(),
            output_tokens: Some(row.output_tokens),
            ..Prompt::default()
        });
    }
    Ok(out)
}
