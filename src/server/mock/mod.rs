//! `--engine mock`: a server with no model behind it, for measuring the client. Each request
//! gets a [`timing::Plan`] (when each token is due) and, under `--mock-concurrency`, a start time
//! from [`timing::Slots`]; its token stream then sleeps until each due time with
//! `tokio::time::sleep_until` against the request's own start, so a late wake-up delays one
//! token and never the ones after it. No thread, queue or task of its own: the stream is
//! polled by the connection that sends it, so the cost per token is one timer and one write.
//!
//! Tokens are one fixed word ([`WORD`], one token of the embedded tokenizer); answers always
//! run to their length (no EOS, stop sequences never match): `finish_reason` is `length` and
//! the token counts are the request's `max_new_tokens` (or `--tokens`). Prompts are still
//! validated and counted by the embedded tokenizer, as on the real engines.
//! Must not know HTTP: it answers with the scheduler's [`Event`]s.

pub mod config;
pub mod timing;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

pub use config::{MockConfig, MockFlagError};
use timing::{Plan, Slots, Timing};

use super::engine::TextTokenizer;
use super::metrics::Metrics;
use super::scheduler::{Event, FinishReason, Generation, Token, TokenStream};
use super::validate::ValidRequest;

/// The text of every generated token: a common word that is one token in the embedded
/// tokenizer and in the usual BPE vocabularies, so a client that re-tokenizes the answer
/// counts what the server reports.
pub const WORD: &str = " the";
/// The log-probability every mock token is reported with.
const LOGPROB: f32 = -1.0;

/// The mock's shared state: the timing, the slots, the request counter and the gauges.
pub struct MockEngine {
    timing: Timing,
    slots: Option<Mutex<Slots>>,
    /// Times in [`timing`] are durations since this instant.
    epoch: Instant,
    next_index: AtomicU64,
    token_id: u32,
    occupancy: Arc<Occupancy>,
}

impl MockEngine {
    pub fn new(cfg: MockConfig, tokenizer: &TextTokenizer, metrics: Arc<Metrics>) -> Self {
        let token_id = tokenizer
            .encode(WORD)
            .ok()
            .and_then(|ids| ids.first().copied())
            .unwrap_or(0);
        Self {
            timing: cfg.timing,
            slots: cfg.concurrency.map(|n| Mutex::new(Slots::new(n))),
            epoch: Instant::now(),
            next_index: AtomicU64::new(0),
            token_id,
            occupancy: Arc::new(Occupancy {
                metrics,
                waiting: AtomicUsize::new(0),
                running: AtomicUsize::new(0),
                reserved: AtomicUsize::new(0),
            }),
        }
    }

    /// The answer length of a request that does not give one.
    pub fn default_tokens(&self) -> usize {
        self.timing.tokens
    }

    /// Plans `req`, which arrived at `arrived` (when its validation began), and returns its
    /// stream; nothing runs until the stream is polled.
    pub fn submit(&self, req: ValidRequest, arrived: Instant) -> TokenStream {
        let index = self.next_index.fetch_add(1, Ordering::Relaxed);
        let plan = self.timing.plan(index, req.max_new_tokens);
        let arrival = arrived.saturating_duration_since(self.epoch);
        let start = match &self.slots {
            Some(slots) => lock(slots).book(arrival, plan.service()),
            None => arrival,
        };
        let started = self.epoch + start;
        let queued = start > arrival;
        let reserve = req.input_ids.len() + req.max_new_tokens;
        self.occupancy
            .metrics
            .observe_queue(start.saturating_sub(arrival).as_secs_f64());
        let hold = Hold::new(self.occupancy.clone(), queued, reserve);
        let run = Run {
            plan,
            next: 0,
            hold,
            token: Token {
                id: self.token_id,
                text: WORD.to_string(),
                delta: WORD.to_string(),
                logprob: LOGPROB,
                special: false,
                // No model, no distribution: the mock lists no alternatives.
                top_tokens: Vec::new(),
            },
            stream: req.stream,
            seed: req.sampling.do_sample.then_some(req.sampling.seed),
            input_length: req.input_ids.len(),
            queued_at: arrived,
            started,
            lateness: Duration::ZERO,
        };
        TokenStream::from_stream(futures::stream::unfold(run, Run::step).boxed())
    }
}

/// One request's stream state.
struct Run {
    plan: Plan,
    /// The next token to send.
    next: usize,
    hold: Hold,
    token: Token,
    stream: bool,
    seed: Option<u64>,
    input_length: usize,
    queued_at: Instant,
    started: Instant,
    /// Summed lateness of the tokens sent so far (woken after their due time).
    lateness: Duration,
}

impl Run {
    /// Waits for the next token's due time and returns its event; `None` after the last.
    async fn step(mut self) -> Option<(Event, Self)> {
        let n = self.plan.tokens();
        if self.next >= n {
            return None;
        }
        if self.hold.queued {
            tokio::time::sleep_until(self.started.into()).await;
            self.hold.start();
        }
        // A request that does not stream gets everything at its last token's time.
        let k = if self.stream { self.next } else { n - 1 };
        let due = self.started + self.plan.due(k);
        tokio::time::sleep_until(due.into()).await;
        let late = Instant::now().saturating_duration_since(due);
        if self.next == 0 {
            self.hold.occupancy.metrics.observe_mock_first_token(late);
        }
        self.lateness += late;
        self.next = k + 1;
        if self.next < n {
            return Some((Event::Token(self.token.clone()), self));
        }
        self.hold
            .occupancy
            .metrics
            .observe_mock_lateness(self.lateness / (if self.stream { n as u32 } else { 1 }));
        self.hold.finish();
        let earlier = if self.stream { 0 } else { n - 1 };
        let generation = Generation {
            generated_text: WORD.repeat(n),
            finish_reason: FinishReason::Length,
            generated_tokens: n,
            seed: self.seed,
            input_length: self.input_length,
            queued: self.queued_at,
            started: self.started,
            finished: Instant::now(),
            earlier_tokens: vec![self.token.clone(); earlier],
        };
        Some((Event::End(self.token.clone(), Box::new(generation)), self))
    }
}

/// Requests waiting and running, for the gauges TGI exports.
struct Occupancy {
    metrics: Arc<Metrics>,
    waiting: AtomicUsize,
    running: AtomicUsize,
    /// Prompt + max_new_tokens of the running requests.
    reserved: AtomicUsize,
}

impl Occupancy {
    fn publish(&self) {
        self.metrics.set_gauges(
            self.waiting.load(Ordering::Relaxed),
            self.running.load(Ordering::Relaxed),
            self.reserved.load(Ordering::Relaxed),
        );
    }
}

/// One request's place in [`Occupancy`]: waiting, then running, until it ends or its client
/// leaves (the stream is dropped), when the counts come back down.
struct Hold {
    occupancy: Arc<Occupancy>,
    queued: bool,
    reserve: usize,
    done: bool,
}

impl Hold {
    fn new(occupancy: Arc<Occupancy>, queued: bool, reserve: usize) -> Self {
        if queued {
            occupancy.waiting.fetch_add(1, Ordering::Relaxed);
        } else {
            occupancy.running.fetch_add(1, Ordering::Relaxed);
            occupancy.reserved.fetch_add(reserve, Ordering::Relaxed);
        }
        occupancy.publish();
        Self {
            occupancy,
            queued,
            reserve,
            done: false,
        }
    }

    fn start(&mut self) {
        let o = &self.occupancy;
        o.waiting.fetch_sub(1, Ordering::Relaxed);
        o.running.fetch_add(1, Ordering::Relaxed);
        o.reserved.fetch_add(self.reserve, Ordering::Relaxed);
        self.queued = false;
        o.publish();
    }

    /// Leaves the counts before the last event goes out, so a client that has its answer and
    /// then scrapes /metrics no longer sees itself (as with the real worker).
    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.leave();
        }
    }

    fn leave(&self) {
        let o = &self.occupancy;
        if self.queued {
            o.waiting.fetch_sub(1, Ordering::Relaxed);
        } else {
            o.running.fetch_sub(1, Ordering::Relaxed);
            o.reserved.fetch_sub(self.reserve, Ordering::Relaxed);
        }
        o.publish();
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.done {
            self.leave();
            self.occupancy.metrics.request_failure("dropped");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Booking never panics midway; a poisoned lock still holds consistent slots.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
