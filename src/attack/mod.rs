//! The open-loop attacker. A pacer (on the clock of `clock`) hands intended send times to the
//! runtime; every tick becomes one request task, sent at its time whatever earlier requests are
//! doing. An in-flight cap (`max_inflight`) makes later ticks wait; their wait shows as send lag
//! and in latency, which is measured from the intended time, and every tick that came due while
//! the dispatcher waited for a slot is flagged `capped`. Nothing is dropped or re-timed. Each finished request becomes a `Record` handed to
//! the caller's sink on the caller's task, in completion order.
//!
//! With a zero rate the attacker is a closed loop of `max_inflight` users (optionally limited
//! by `max_rate` through `governor`); then intended time equals send time.
//!
//! A sharded attack (`--shard i/N`, `shard`) runs the same loops on its part of the schedule:
//! the pacer's ticks `k % N == i`, or the closed loop's users `u % N == i`, every request keeping
//! its index in the whole schedule. With `--start-at` it waits for that instant first, and
//! every record's wall time counts from it, so the shards' files line up.
//!
//! `--workers N` runs N such drivers in one process, each on a thread of its own (`workers`),
//! on parts of this process's shard, into one sink.
//!
//! This module measures; it computes no statistics (see `metrics`). One request's HTTP exchange
//! is `exchange`'s; what responses may hold in memory, `budget`'s.

pub mod api;
mod arrival;
pub mod balance;
pub mod budget;
pub mod clock;
mod exchange;
mod http_client;
pub mod models;
pub mod options;
mod session;
pub mod setup;
pub mod shard;
pub mod sse;
pub mod warm;
mod workers;
pub mod workload_spec;

pub use http_client::{ClientOptions, client};

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::pacer::{Arrival, Pacer, Ramp, Rate, Shard};
use crate::record::{ErrorKind, Record, TokensSource};
use crate::workload::Workload;
use api::{Api, RequestSpec, TokenCounter};
use clock::{Clock, ClockKind, Tick};
use exchange::{Exchange, Failure};

/// What each request is: LLM requests built from prompts, or fixed HTTP targets round-robined.
#[derive(Debug, Clone)]
pub enum Requests {
    Api { api: Box<Api>, workload: Workload },
    Targets(Vec<RequestSpec>),
}

impl Requests {
    /// How many targets requests are spread over: the `--target`s of an LLM attack, or the
    /// requests of a plain HTTP one (one per `--target`, or a targets file's lines).
    pub fn endpoints(&self) -> usize {
        match self {
            Requests::Api { api, .. } => api.targets.len(),
            Requests::Targets(targets) => targets.len(),
        }
    }
}

/// A fully checked attack. Build it with `scenario`/CLI code; nothing here validates input.
#[derive(Debug, Clone)]
pub struct AttackConfig {
    pub requests: Requests,
    /// Zero frequency means a closed loop of `max_inflight` users.
    pub rate: Rate,
    pub arrival: Arrival,
    /// `--ramp`: when set the pacer follows it (and `rate` holds its peak, for checks).
    pub ramp: Option<Ramp>,
    /// Scheduling stops after this long (zero: until `max_requests` or cancellation).
    pub duration: Duration,
    pub max_requests: Option<u64>,
    pub max_inflight: usize,
    /// Closed loop only: a cap on the users' combined request rate.
    pub max_rate: Option<f64>,
    /// Whole exchange, from send to the last body byte.
    pub timeout: Duration,
    pub client: ClientOptions,
    /// Counts tokens the server did not count.
    pub counter: TokenCounter,
    /// Written into each record's `attack` field.
    pub name: String,
    /// Written into each record's `step` field (sweeps).
    pub step: Option<u32>,
    /// `Thread` in production; tests choose `Tokio` to run on paused time.
    pub clock: ClockKind,
    pub limits: Limits,
    /// `--shard`: this process sends one shard of the schedule (`None`: all of it).
    pub sharding: Option<shard::Sharding>,
    /// `--start-at`: the wall-clock instant the schedule starts (`None`: at once).
    pub start_at: Option<time::OffsetDateTime>,
    /// `--workers`: in-process parts of this process's schedule, each on a runtime thread of
    /// its own with its own pacer and connection pool (1: all on the caller's runtime).
    pub workers: usize,
    /// `--balance`: how requests are spread over several targets.
    pub balance: balance::Balance,
}

impl AttackConfig {
    /// The part of the schedule this process sends.
    pub fn shard(&self) -> Shard {
        self.sharding.as_ref().map_or(Shard::WHOLE, |s| s.shard)
    }
}

/// Bounds on what responses may make the attacker hold (see `budget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `--max-body-size`: bytes kept per response.
    pub max_body: usize,
    /// `--max-event-size`: bytes per server-sent event.
    pub max_event: usize,
    /// Bytes kept by all responses in flight together.
    pub in_flight: usize,
}

impl Limits {
    /// The bounds for `--max-body-size` and `--max-event-size`; responses in flight share
    /// twice the per-body bound, so two of the largest bodies still fit at once.
    pub fn new(max_body: usize, max_event: usize) -> Self {
        Self {
            max_body,
            max_event,
            in_flight: max_body.saturating_mul(2),
        }
    }
}

/// Counters the attacker keeps while running (for progress lines).
#[derive(Debug, Default)]
pub struct Progress {
    pub sent: AtomicU64,
    pub done: AtomicU64,
    pub inflight: AtomicU64,
}

/// What the attack did beyond its records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttackStats {
    pub scheduled: u64,
    pub completed: u64,
    /// True when cancellation cut the schedule short.
    pub interrupted: bool,
}

/// Stop signals: `stop` ends scheduling (in-flight requests finish, bounded by the timeout);
/// `abort` also cancels in-flight requests, which are recorded as `cancelled`.
#[derive(Debug, Clone, Default)]
pub struct Control {
    pub stop: CancellationToken,
    pub abort: CancellationToken,
    pub progress: Arc<Progress>,
}

struct Shared {
    cfg: Arc<AttackConfig>,
    client: reqwest::Client,
    clock: Clock,
    start_wall: time::OffsetDateTime,
    control: Control,
    budget: Arc<budget::Budget>,
    /// The ticks or users this driver runs: its worker's part of the process's shard.
    own: Shard,
    /// The in-flight cap, one for all of the process's workers.
    inflight: Arc<Semaphore>,
    /// Which target each request goes to; one for all of the process's workers.
    balancer: Arc<balance::Balancer>,
}

/// Where records go as requests end (a results file, a sweep's metrics, a test's vector).
pub trait Sink {
    fn record(&mut self, record: Record) -> std::io::Result<()>;
    /// Called when no further record is waiting: the moment to flush buffered output, so a
    /// crash loses nothing that finished while writes stay batched under load.
    fn idle(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink for Vec<Record> {
    fn record(&mut self, record: Record) -> std::io::Result<()> {
        self.push(record);
        Ok(())
    }
}

/// Runs one attack to completion, handing each record to `sink` as its request ends.
/// A sink error (say, a full disk) stops scheduling and is returned once in-flight requests end.
pub async fn run(
    cfg: AttackConfig,
    control: Control,
    sink: &mut dyn Sink,
) -> anyhow::Result<AttackStats> {
    run_with_clients(cfg, &[], control, sink).await
}

/// [`run`] on clients the caller keeps, one per worker, so their connection pools outlive the
/// attack: a sweep's warm-up opens the connections its steps then use. Workers beyond
/// `clients` get new ones.
pub async fn run_with_clients(
    cfg: AttackConfig,
    clients: &[reqwest::Client],
    control: Control,
    sink: &mut dyn Sink,
) -> anyhow::Result<AttackStats> {
    let count = workers::count(&cfg);
    let cfg = Arc::new(cfg);
    // A pool of its own per worker: a connection is then only ever polled by one thread.
    let mut clients: Vec<reqwest::Client> = clients.iter().take(count).cloned().collect();
    while clients.len() < count {
        clients.push(self::client(&cfg.client)?);
    }
    // Connections open before the clock starts, on the runtimes that will use them.
    let runtimes = workers::runtimes(count)?;
    let budget = warm::budget(&cfg);
    let runtimes = workers::warm(runtimes, &clients, &cfg, budget).await?;
    if let Some(at) = cfg.start_at
        && !clock::wait_until(at, &control.stop).await
    {
        return Ok(AttackStats {
            interrupted: true,
            ..AttackStats::default()
        });
    }
    let clock = Clock::start(cfg.clock);
    let budget = budget::Budget::new(cfg.limits.max_body, cfg.limits.in_flight);
    let inflight = Arc::new(Semaphore::new(cfg.max_inflight));
    let balancer = balance::Balancer::new(cfg.balance, cfg.requests.endpoints());
    // Every shard counts from the agreed instant (its own clock starts within a thread
    // wake-up of it), so their records' wall times line up.
    let start_wall = cfg.start_at.unwrap_or_else(time::OffsetDateTime::now_utc);
    let parts: Vec<Arc<Shared>> = clients
        .into_iter()
        .enumerate()
        .map(|(w, client)| {
            let part = Shard::new(w as u32, count as u32).expect("w < count");
            Arc::new(Shared {
                own: cfg.shard().part(part),
                cfg: cfg.clone(),
                client,
                clock,
                start_wall,
                control: control.clone(),
                budget: budget.clone(),
                inflight: inflight.clone(),
                balancer: balancer.clone(),
            })
        })
        .collect();
    let (rec_tx, mut rec_rx) = mpsc::unbounded_channel::<Record>();
    let driver = workers::start(parts, runtimes, rec_tx)?;
    let mut completed = 0;
    let mut sink_error = None;
    while let Some(record) = rec_rx.recv().await {
        completed += 1;
        if sink_error.is_some() {
            continue;
        }
        let mut result = sink.record(record);
        if result.is_ok() && rec_rx.is_empty() {
            result = sink.idle();
        }
        if let Err(e) = result {
            control.stop.cancel();
            sink_error = Some(e);
        }
    }
    let scheduled = driver.join().await?;
    if let Some(e) = sink_error {
        return Err(anyhow::Error::new(e).context("writing results"));
    }
    Ok(AttackStats {
        scheduled,
        completed,
        interrupted: control.stop.is_cancelled(),
    })
}

/// One driver: the open loop's pacer and dispatcher, or the closed loop's users.
async fn drive(shared: Arc<Shared>, records: mpsc::UnboundedSender<Record>) -> u64 {
    if shared.cfg.rate.is_unlimited() {
        closed_loop(shared, records).await
    } else {
        open_loop(shared, records).await
    }
}

/// The pacer plus a dispatcher that turns ticks into request tasks.
async fn open_loop(shared: Arc<Shared>, records: mpsc::UnboundedSender<Record>) -> u64 {
    let cfg = &shared.cfg;
    let trace = match &cfg.requests {
        Requests::Api { workload, .. } => workload.times.clone(),
        Requests::Targets(_) => None,
    };
    let pacer = match (&cfg.ramp, trace) {
        // A trace's times are already divided by its replay speed.
        (_, Some(times)) => Pacer::replay(times.to_vec(), 1.0, cfg.duration, cfg.max_requests),
        (Some(ramp), None) => {
            Pacer::ramped(ramp.clone(), cfg.arrival, cfg.duration, cfg.max_requests)
        }
        (None, None) => Pacer::new(cfg.rate, cfg.arrival, cfg.duration, cfg.max_requests),
    }
    .sharded(shared.own);
    let (tick_tx, mut tick_rx) = mpsc::unbounded_channel::<Tick>();
    let pacer = clock::spawn_pacer(shared.clock, pacer, tick_tx);
    let inflight = shared.inflight.clone();
    let mut scheduled = 0;
    // When the dispatcher last stopped waiting for a slot: a tick due before then queued
    // behind the cap even if a slot was free by the time it was handed over.
    let mut held_until = Duration::ZERO;
    loop {
        let tick = tokio::select! {
            biased;
            () = shared.control.stop.cancelled() => break,
            t = tick_rx.recv() => match t { Some(t) => t, None => break },
        };
        scheduled += 1;
        let (permit, capped) = match inflight.clone().try_acquire_owned() {
            Ok(p) => (p, tick.intended < held_until),
            Err(_) => {
                let p = tokio::select! {
                    () = shared.control.stop.cancelled() => break,
                    p = inflight.clone().acquire_owned() => p.expect("semaphore never closes"),
                };
                held_until = shared.clock.elapsed();
                (p, true)
            }
        };
        let shared = shared.clone();
        let records = records.clone();
        tokio::spawn(async move {
            if session::conversations(&shared) {
                session::run(&shared, tick, capped, &records).await;
            } else {
                let (record, _) = execute(&shared, tick, capped, Job::nth(&shared, tick.seq)).await;
                let _ = records.send(record);
            }
            drop(permit);
        });
    }
    pacer.stop().await;
    scheduled
}

/// `max_inflight` users each sending back-to-back until the duration, count or a stop. A
/// shard runs its users (`u % N == i`), its part of `--max-rate` and of `--max-requests`, and
/// numbers its requests `j * N + i`, so the shards' numbers never collide and together run
/// from 0 like one process's.
async fn closed_loop(shared: Arc<Shared>, records: mpsc::UnboundedSender<Record>) -> u64 {
    let cfg = &shared.cfg;
    let shard = shared.own;
    let (own_users, max_rate) = shard.closed_loop(cfg.max_inflight, cfg.max_rate);
    let quota = cfg.max_requests.map(|m| shard.share_of(m));
    let seq = Arc::new(AtomicU64::new(0));
    let limiter = max_rate.and_then(|r| {
        let per_s = NonZeroU32::new(r.round().max(1.0) as u32)?;
        Some(Arc::new(governor::RateLimiter::direct(
            governor::Quota::per_second(per_s).allow_burst(NonZeroU32::MIN),
        )))
    });
    let mut users = tokio::task::JoinSet::new();
    for _ in 0..own_users {
        let (shared, records, seq, limiter) = (
            shared.clone(),
            records.clone(),
            seq.clone(),
            limiter.clone(),
        );
        users.spawn(async move {
            loop {
                if let Some(l) = &limiter {
                    tokio::select! {
                        () = shared.control.stop.cancelled() => return,
                        () = l.until_ready() => {}
                    }
                }
                let intended = shared.clock.elapsed();
                let cfg = &shared.cfg;
                if shared.control.stop.is_cancelled()
                    || (!cfg.duration.is_zero() && intended >= cfg.duration)
                {
                    return;
                }
                let j = seq.fetch_add(1, Ordering::Relaxed);
                if quota.is_some_and(|m| j >= m) {
                    return;
                }
                let n = shard.global(j);
                let tick = Tick { seq: n, intended };
                if session::conversations(&shared) {
                    session::run(&shared, tick, false, &records).await;
                    if records.is_closed() {
                        return;
                    }
                } else {
                    let (record, _) = execute(&shared, tick, false, Job::nth(&shared, n)).await;
                    if records.send(record).is_err() {
                        return;
                    }
                }
            }
        });
    }
    while users.join_next().await.is_some() {}
    seq.load(Ordering::Relaxed).min(quota.unwrap_or(u64::MAX))
}

/// One request to send and what its record says of it before it is sent.
struct Job {
    spec: RequestSpec,
    decoder: Box<dyn api::Decoder>,
    /// Prompt tokens as the workload counted them (LLM APIs only).
    prompt_tokens: Option<u64>,
    /// The output length asked for (LLM APIs only).
    requested: Option<u64>,
    /// Its target's count of requests in flight, held until the request ends.
    _lease: balance::Lease,
}

impl Job {
    fn api(api: &Api, prompt: &crate::prompts::Prompt, lease: balance::Lease) -> Self {
        Self {
            spec: api.request(prompt, lease.index),
            decoder: api.decoder(prompt),
            prompt_tokens: Some(prompt.tokens),
            requested: Some(u64::from(
                prompt.output_tokens.unwrap_or(api.params.max_new_tokens),
            )),
            _lease: lease,
        }
    }

    /// Request `seq` of a one-request-per-tick attack.
    fn nth(shared: &Shared, seq: u64) -> Self {
        let lease = shared.balancer.pick(seq);
        match &shared.cfg.requests {
            Requests::Api { api, workload } => Self::api(api, &workload.prompt(seq), lease),
            // Round-robin by the request's index (unless --balance says otherwise), so a
            // shard sends the targets the whole schedule sends at its indices.
            Requests::Targets(targets) => Self {
                spec: targets[lease.index].clone(),
                decoder: Box::new(api::http::Discard),
                prompt_tokens: None,
                requested: None,
                _lease: lease,
            },
        }
    }
}

/// Sends one request and turns whatever happened into a record; also gives back the answer's
/// text when it decoded (a conversation's next turn carries it).
async fn execute(shared: &Shared, tick: Tick, capped: bool, job: Job) -> (Record, Option<String>) {
    let cfg = &shared.cfg;
    let progress = &shared.control.progress;
    let Job {
        spec,
        decoder,
        prompt_tokens,
        requested,
        _lease,
    } = job;
    let mut record = Record {
        attack: cfg.name.clone(),
        seq: tick.seq,
        code: 0,
        timestamp: shared.start_wall + tick.intended,
        latency: 0,
        bytes_out: spec.body.len() as u64,
        bytes_in: 0,
        error: String::new(),
        method: spec.method.to_string(),
        url: spec.shown_url.to_string(),
        intended_ns: nanos(tick.intended),
        sent_ns: 0,
        ttft_ns: None,
        itl_ns: Vec::new(),
        tokens_in: None,
        tokens_in_source: None,
        tokens_out: None,
        tokens_source: None,
        error_kind: None,
        capped,
        step: cfg.step,
        tokens_out_requested: requested,
        session: None,
        turn: None,
        shard: cfg.sharding.as_ref().map(|s| s.shard.index()),
        shards: cfg.sharding.as_ref().map(|s| s.shard.count()),
        schedule: cfg.sharding.as_ref().map(|s| s.schedule.clone()),
        recv_lag_ns: None,
    };
    progress.sent.fetch_add(1, Ordering::Relaxed);
    progress.inflight.fetch_add(1, Ordering::Relaxed);
    let sent = shared.clock.elapsed();
    record.sent_ns = nanos(sent);
    let mut exchange = Exchange::default();
    let mut answer = None;
    let result = tokio::select! {
        biased;
        () = shared.control.abort.cancelled() => Err(Failure::new(ErrorKind::Cancelled, "attack interrupted".into())),
        r = tokio::time::timeout(cfg.timeout, exchange.run(shared, spec, decoder)) => match r {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                ErrorKind::Timeout,
                format!("timeout after {}", crate::pacer::format_duration(cfg.timeout)),
            )),
        },
    };
    // A read answer ends where its last bytes arrived; a timeout or an abort ends now.
    let end = exchange.ended_at.unwrap_or_else(|| shared.clock.elapsed());
    progress.inflight.fetch_sub(1, Ordering::Relaxed);
    progress.done.fetch_add(1, Ordering::Relaxed);
    record.latency = nanos(end.saturating_sub(tick.intended));
    record.code = exchange.code;
    record.bytes_in = exchange.bytes_in;
    record.recv_lag_ns = (exchange.recv_lag > Duration::ZERO).then(|| nanos(exchange.recv_lag));
    if let Some(url) = exchange.final_url {
        record.url = url;
    }
    match result {
        Ok(decoded) => {
            if let Some(first) = decoded.first_token {
                record.ttft_ns = Some(nanos(first.saturating_sub(tick.intended)));
            }
            record.itl_ns = decoded
                .token_times
                .windows(2)
                .map(|w| nanos(w[1].saturating_sub(w[0])))
                .collect();
            if matches!(cfg.requests, Requests::Api { .. }) {
                // A server's count is trusted only if the bytes could hold it (every token is
                // at least a byte on the wire); otherwise the record says it is our count.
                let (tokens, source) = match decoded.tokens_out {
                    Some(n) if n <= record.bytes_in => (n, TokensSource::Server),
                    _ => (cfg.counter.count(&decoded.text), cfg.counter.source()),
                };
                record.tokens_out = Some(tokens);
                record.tokens_source = Some(source);
                // Prompt tokens: the request's bytes, plus what a chat template may add (a
                // default system prompt is at most a few thousand tokens).
                (record.tokens_in, record.tokens_in_source) = match decoded.tokens_in {
                    Some(n) if n <= record.bytes_out.saturating_add(4096) => {
                        (Some(n), Some(TokensSource::Server))
                    }
                    _ => (prompt_tokens, Some(cfg.counter.source())),
                };
                answer = Some(decoded.text);
            }
        }
        Err(failure) => {
            record.error_kind = Some(failure.kind);
            record.error = crate::redact::text(&failure.message);
            if matches!(cfg.requests, Requests::Api { .. }) {
                record.tokens_in = prompt_tokens;
                record.tokens_in_source = Some(cfg.counter.source());
            }
        }
    }
    (record, answer)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
