//! Turns validated requests into token streams. The batching POLICY is the [`Scheduler`] trait
//! (plain data, unit-tested without tokio): `continuous` (TGI-like) or `single` (FastAPI-like).
//! The WORKER is one loop on its own OS thread, because candle compute blocks: it takes new
//! requests from a channel, asks the policy which to admit, runs one engine step over every
//! running sequence, samples, and sends each sequence its [`Event`]s.
//!
//! A client that goes away drops its receiver; the worker sees the closed channel before the
//! next step and frees that sequence (its batch slot, token budget and KV cache) at once.
//! Times (queued, started, finished, step durations) are read from the engine's
//! [`Clock`]: the wall clock for a model, virtual time for a `FakeEngine`, which makes the
//! scheduling tests exact.
//! Must not know about HTTP or tensors beyond the engine trait.

pub mod continuous;
pub mod single;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use super::engine::sampler::Sampler;
use super::engine::tokenizer::Detokenizer;
use super::engine::{Clock, Engine, EngineError, KvCache, SeqInput, StepOutput, TextTokenizer};
use super::metrics::Metrics;
use super::validate::ValidRequest;

/// A request waiting for admission, as the policy sees it: only ids and token counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    pub id: u64,
    pub input_tokens: usize,
    pub max_new_tokens: usize,
}

/// A batching policy: which waiting requests join the running batch, and when.
pub trait Scheduler: Send {
    /// Appends a request to the waiting queue (FIFO).
    fn push(&mut self, entry: Waiting);
    /// Moves the requests to start now from waiting to running and returns their ids, in order.
    /// Called between engine steps.
    fn next_batch(&mut self) -> Vec<u64>;
    /// Forgets a request, waiting or running (finished, failed or abandoned).
    fn remove(&mut self, id: u64);
    fn queue_len(&self) -> usize;
    fn running_len(&self) -> usize;
    /// Tokens (prompt + max_new_tokens) reserved by the running batch.
    fn reserved_tokens(&self) -> usize;
}

/// Which policy `--engine` picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerKind {
    Continuous,
    Single,
}

impl SchedulerKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Continuous => "continuous",
            Self::Single => "single",
        }
    }
}

/// Limits of the running batch (continuous only; single runs one request at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_batch_size: usize,
    /// Prompt + max_new_tokens of all running requests.
    pub max_batch_total_tokens: usize,
    /// Prompt tokens admitted in one step (a first request is always admitted whole).
    pub max_batch_prefill_tokens: usize,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Length,
    EosToken,
    StopSequence,
}

impl FinishReason {
    /// TGI's spelling.
    pub fn as_tgi(self) -> &'static str {
        match self {
            Self::Length => "length",
            Self::EosToken => "eos_token",
            Self::StopSequence => "stop_sequence",
        }
    }
}

/// One generated token.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub id: u32,
    /// The token's own text.
    pub text: String,
    /// The text this token completes in the output (streams send this).
    pub delta: String,
    pub logprob: f32,
    pub special: bool,
    /// The request's `top_n_tokens` best alternatives, best first (empty when not asked).
    pub top_tokens: Vec<TopToken>,
}

/// One of a token's best alternatives: TGI's `top_tokens`, OpenAI's `top_logprobs`.
#[derive(Debug, Clone, PartialEq)]
pub struct TopToken {
    pub id: u32,
    pub text: String,
    pub logprob: f32,
    pub special: bool,
}

/// The summary sent with the last token.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub generated_text: String,
    pub finish_reason: FinishReason,
    pub generated_tokens: usize,
    /// The seed used, when sampling.
    pub seed: Option<u64>,
    pub input_length: usize,
    pub queued: Instant,
    pub started: Instant,
    pub finished: Instant,
    /// For requests that do not stream: every token before the last, in order (streaming
    /// requests received them as `Event::Token`s).
    pub earlier_tokens: Vec<Token>,
}

/// What a request's stream carries, in order: zero or more `Token`s (streaming requests only),
/// then `End` (with the last token) or `Error`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Token(Token),
    End(Token, Box<Generation>),
    Error(String),
    /// Refused for lack of capacity (KV cache or device memory): TGI's 503 `overloaded`.
    Overloaded(String),
}

/// The worker is gone (it only stops when the server shuts down).
#[derive(Debug, thiserror::Error)]
#[error("the model worker has stopped")]
pub struct WorkerStopped;

/// The receiving end of one request: from the worker's channel, or from a stream that makes
/// its own events (the mock engine's timers).
pub struct TokenStream {
    source: Source,
}

enum Source {
    Worker(mpsc::UnboundedReceiver<Event>),
    Own(BoxStream<'static, Event>),
}

impl TokenStream {
    /// A stream whose events come from `events` rather than from the worker.
    pub fn from_stream(events: BoxStream<'static, Event>) -> Self {
        Self {
            source: Source::Own(events),
        }
    }

    pub async fn next(&mut self) -> Option<Event> {
        match &mut self.source {
            Source::Worker(rx) => rx.recv().await,
            Source::Own(events) => events.next().await,
        }
    }
}

struct Submit {
    id: u64,
    req: ValidRequest,
    tx: mpsc::UnboundedSender<Event>,
    queued: Instant,
}

/// The cloneable front of the worker: submit a request, get its stream.
#[derive(Clone)]
pub struct SchedulerHandle {
    /// Kept alive with the handles: a dropped pool lets its idle threads exit, which would
    /// quietly leave the loop computing alone.
    _pool: Arc<rayon::ThreadPool>,
    tx: mpsc::UnboundedSender<Submit>,
    next_id: Arc<AtomicU64>,
    /// The engine's clock, so that a request's `queued` is on the same clock as its steps.
    clock: Clock,
}

impl SchedulerHandle {
    /// Starts the worker on a pool of `compute_threads` threads (the loop itself is one of
    /// them). It ends when every handle is dropped and the work is done.
    pub fn start(
        kind: SchedulerKind,
        limits: BatchLimits,
        engine: Box<dyn Engine>,
        tokenizer: Arc<TextTokenizer>,
        metrics: Arc<Metrics>,
        compute_threads: usize,
    ) -> std::io::Result<Self> {
        let kv_budget = limits.max_batch_total_tokens;
        let policy: Box<dyn Scheduler> = match kind {
            SchedulerKind::Continuous => Box::new(continuous::State::new(limits)),
            SchedulerKind::Single => Box::new(single::State::default()),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let clock = engine.clock();
        let worker = Worker {
            kv_budget,
            clock: clock.clone(),
            policy,
            engine,
            tokenizer,
            metrics,
            waiting: HashMap::new(),
            running: Vec::new(),
        };
        // candle's CPU kernels (softmax, layer norm, rope, gemm) call rayon on every op. Run
        // the loop on a thread of our own pool so those calls execute here instead of waking
        // another thread per op, which costs more than the op itself on small models.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(compute_threads)
            .thread_name(move |i| format!("rpload-{}-{i}", kind.name()))
            .build()
            .map_err(std::io::Error::other)?;
        pool.spawn(move || worker.run(rx));
        Ok(Self {
            _pool: Arc::new(pool),
            tx,
            next_id: Arc::new(AtomicU64::new(0)),
            clock,
        })
    }

    pub fn submit(&self, req: ValidRequest) -> Result<TokenStream, WorkerStopped> {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.tx
            .send(Submit {
                id,
                req,
                tx,
                queued: self.clock.now(),
            })
            .map_err(|_| WorkerStopped)?;
        Ok(TokenStream {
            source: Source::Worker(rx),
        })
    }
}

/// A request the worker holds.
struct Seq {
    id: u64,
    req: ValidRequest,
    tx: mpsc::UnboundedSender<Event>,
    queued: Instant,
    started: Instant,
    cache: Option<KvCache>,
    sampler: Sampler,
    detok: Detokenizer,
    /// Prompt then generated ids (the repetition penalty looks at both).
    ids: Vec<u32>,
    /// Ids not yet fed to the model: the prompt before prefill, then the last sampled token.
    fed: usize,
    text: String,
    /// Tokens held back for a request that does not stream.
    held: Vec<Token>,
}

struct Worker {
    /// The tokens the running batch may reserve: the KV cache's capacity as admission sees
    /// it (each request reserves prompt + max_new_tokens, as TGI reserves its blocks).
    kv_budget: usize,
    clock: Clock,
    policy: Box<dyn Scheduler>,
    engine: Box<dyn Engine>,
    tokenizer: Arc<TextTokenizer>,
    metrics: Arc<Metrics>,
    waiting: HashMap<u64, Seq>,
    running: Vec<Seq>,
}

impl Worker {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Submit>) {
        loop {
            if self.waiting.is_empty() && self.running.is_empty() {
                // Idle: the gauges must read 0 while nothing runs, not the last batch's size.
                self.publish_gauges();
                match rx.blocking_recv() {
                    Some(s) => self.accept(s),
                    None => return,
                }
            }
            while let Ok(s) = rx.try_recv() {
                self.accept(s);
            }
            self.drop_abandoned();
            self.admit();
            self.publish_gauges();
            if !self.running.is_empty() {
                self.step();
            }
        }
    }

    fn accept(&mut self, s: Submit) {
        self.policy.push(Waiting {
            id: s.id,
            input_tokens: s.req.input_ids.len(),
            max_new_tokens: s.req.max_new_tokens,
        });
        let seq = Seq {
            id: s.id,
            sampler: Sampler::new(s.req.sampling.clone()),
            ids: s.req.input_ids.clone(),
            fed: 0,
            req: s.req,
            tx: s.tx,
            queued: s.queued,
            started: s.queued,
            cache: None,
            detok: Detokenizer::default(),
            text: String::new(),
            held: Vec::new(),
        };
        self.waiting.insert(s.id, seq);
    }

    /// Frees every sequence whose client has gone: its slot and budget go back to the policy
    /// before admission, so a waiting request can take them in this very step.
    fn drop_abandoned(&mut self) {
        let gone: Vec<u64> = self
            .waiting
            .values()
            .chain(self.running.iter())
            .filter(|s| s.tx.is_closed())
            .map(|s| s.id)
            .collect();
        for id in gone {
            self.policy.remove(id);
            self.waiting.remove(&id);
            self.running.retain(|s| s.id != id);
            self.metrics.request_failure("dropped");
        }
    }

    fn admit(&mut self) {
        let now = self.clock.now();
        for id in self.policy.next_batch() {
            if let Some(mut seq) = self.waiting.remove(&id) {
                let reserve = seq.req.input_ids.len() + seq.req.max_new_tokens;
                match self.engine.new_cache(reserve) {
                    Ok(cache) => seq.cache = Some(cache),
                    Err(err) => {
                        self.policy.remove(id);
                        self.fail(&seq, &err);
                        continue;
                    }
                }
                seq.started = now;
                self.metrics
                    .observe_queue(now.duration_since(seq.queued).as_secs_f64());
                self.running.push(seq);
            }
        }
    }

    /// Ends `seq` with `err`: capacity errors as overloaded (503), the rest as generation
    /// errors (424).
    fn fail(&self, seq: &Seq, err: &EngineError) {
        let msg = err.to_string();
        let (event, label) = match err {
            EngineError::CacheFull(_) | EngineError::OutOfMemory(_) => {
                (Event::Overloaded(msg), "overloaded")
            }
            _ => (Event::Error(msg), "generation"),
        };
        let _ = seq.tx.send(event);
        self.metrics.request_failure(label);
    }

    fn publish_gauges(&self) {
        self.metrics.set_gauges(
            self.policy.queue_len(),
            self.policy.running_len(),
            self.policy.reserved_tokens(),
        );
        let budget = self.kv_budget.max(1) as f64;
        self.metrics
            .set_kv_usage(self.policy.reserved_tokens() as f64 / budget);
    }

    fn step(&mut self) {
        let prefill = self.running.iter().any(|s| s.fed == 0);
        let method = if prefill { "prefill" } else { "decode" };
        let t0 = self.clock.now();
        let greedy: Vec<bool> = self
            .running
            .iter()
            .map(|s| s.req.sampling.is_plain_greedy())
            .collect();
        let result = {
            let mut batch: Vec<SeqInput<'_>> = self
                .running
                .iter_mut()
                .map(|s| SeqInput {
                    tokens: &s.ids[s.fed..],
                    // Unwrap is safe: admission gives every running sequence a cache.
                    cache: s.cache.as_mut().expect("running sequence has a cache"),
                })
                .collect();
            let engine = &mut self.engine;
            // A bug in tensor code must fail the requests in this batch, not the server.
            std::panic::catch_unwind(AssertUnwindSafe(|| engine.step(&mut batch, &greedy)))
                .unwrap_or_else(|_| {
                    Err(EngineError::Config(
                        "internal error in the model step".to_string(),
                    ))
                })
        };
        self.metrics.observe_batch(
            method,
            self.running.len(),
            self.clock.now().duration_since(t0).as_secs_f64(),
        );
        let rows = match result {
            Ok(rows) => rows,
            Err(err) => {
                // The batch's caches are dropped with their sequences, so the memory comes
                // back and later requests run.
                let failed = std::mem::take(&mut self.running);
                for seq in &failed {
                    self.policy.remove(seq.id);
                }
                self.publish_gauges();
                for seq in &failed {
                    self.fail(seq, &err);
                }
                return;
            }
        };
        let mut finished = Vec::new();
        // Last events, sent once the gauges no longer count their sequences: a client that
        // has its answer then scrapes /metrics sees the batch without it.
        let mut ends = Vec::new();
        for (seq, out) in self.running.iter_mut().zip(rows) {
            seq.fed = seq.ids.len();
            let (id, logprob, top) = match out {
                StepOutput::Greedy { id, logprob } => (id, logprob, Vec::new()),
                StepOutput::Logits(mut logits) => {
                    let prompt_len = seq.req.input_ids.len();
                    let pick = seq.sampler.next(&mut logits, &seq.ids, prompt_len);
                    (pick.id, pick.logprob, pick.top)
                }
            };
            seq.ids.push(id);
            let generated = seq.ids.len() - seq.req.input_ids.len();
            let delta = seq.detok.push(&self.tokenizer, id);
            seq.text.push_str(&delta);
            let token = Token {
                id,
                text: self.tokenizer.token_text(id),
                delta,
                logprob,
                special: self.tokenizer.is_special(id),
                top_tokens: top
                    .into_iter()
                    .map(|(id, logprob)| TopToken {
                        id,
                        text: self.tokenizer.token_text(id),
                        logprob,
                        special: self.tokenizer.is_special(id),
                    })
                    .collect(),
            };
            let reason = if !seq.req.ignore_eos && Some(id) == self.tokenizer.eos_token_id() {
                Some(FinishReason::EosToken)
            } else if seq.req.stop.iter().any(|s| seq.text.contains(s.as_str())) {
                Some(FinishReason::StopSequence)
            } else if generated >= seq.req.max_new_tokens {
                Some(FinishReason::Length)
            } else {
                None
            };
            let sent = match reason {
                None if seq.req.stream => seq.tx.send(Event::Token(token)),
                None => {
                    seq.held.push(token);
                    Ok(())
                }
                Some(finish_reason) => {
                    let out = &seq.ids[seq.req.input_ids.len()..];
                    let generated_text = self.tokenizer.decode(out);
                    // The detokenizer holds back a trailing partial character; the last
                    // delta flushes it so streamed deltas add up to `generated_text`.
                    let mut token = token;
                    if let Some(rest) = generated_text.strip_prefix(seq.text.as_str()) {
                        token.delta.push_str(rest);
                    }
                    let generation = Generation {
                        generated_text,
                        finish_reason,
                        generated_tokens: generated,
                        seed: seq.req.sampling.do_sample.then_some(seq.req.sampling.seed),
                        input_length: seq.req.input_ids.len(),
                        queued: seq.queued,
                        started: seq.started,
                        finished: self.clock.now(),
                        earlier_tokens: std::mem::take(&mut seq.held),
                    };
                    finished.push(seq.id);
                    ends.push((seq.tx.clone(), Event::End(token, Box::new(generation))));
                    Ok(())
                }
            };
            if sent.is_err() {
                // The client left mid-step; free it now rather than at the next check.
                finished.push(seq.id);
                self.metrics.request_failure("dropped");
            }
        }
        if !finished.is_empty() {
            self.running.retain(|s| !finished.contains(&s.id));
            for id in finished {
                self.policy.remove(id);
            }
            self.publish_gauges();
        }
        for (tx, end) in ends {
            if tx.send(end).is_err() {
                self.metrics.request_failure("dropped");
            }
        }
    }
}
