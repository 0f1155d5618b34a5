//! [`FakeEngine`]: an [`Engine`] that runs no model, for exact tests of scheduling policy (and a
//! mock engine wherever a real one would cost too much). A step takes scripted [`StepCosts`] of
//! virtual time on a [`VirtualClock`] that the scheduler reads too, so queue and inference
//! times are sums of those costs, not of the machine's load; tokens are a function of the
//! position alone. A [`StepGate`] lets a test hold steps and release them one by one, so
//! "request B arrives while A is generating" is an order of events rather than a race, and a
//! [`StepLog`] records which sequences shared each step.
//! Must not sleep, touch tensors beyond its empty caches, or know about scheduling policy.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use super::clock::{Clock, VirtualClock};
use super::error::EngineError;
use super::kv_cache::KvCache;
use super::step::{Engine, SeqInput, StepOutput};

/// Generated ids cycle through `FIRST_TOKEN..FIRST_TOKEN + TOKEN_CYCLE`: ordinary entries of
/// the embedded tokenizer (id 0 is its EOS), so text and EOS handling stay those of a model.
const FIRST_TOKEN: u32 = 100;
const TOKEN_CYCLE: u32 = 100;
/// The log-probability every fake token is reported with.
const LOGPROB: f32 = -1.0;

/// Virtual time of one step: `per_step + per_prefill_token x prompt tokens fed + per_decode_seq
/// x sequences decoding`, the shape of a memory-bound decode and a compute-bound prefill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepCosts {
    pub per_step: Duration,
    pub per_prefill_token: Duration,
    pub per_decode_seq: Duration,
}

impl StepCosts {
    /// What a step with `fed[i]` tokens fed to sequence `i` costs (one token: a decode).
    pub fn of(&self, fed: &[usize]) -> Duration {
        let decoding = fed.iter().filter(|&&t| t == 1).count() as u32;
        let prefill: usize = fed.iter().filter(|&&t| t > 1).sum();
        self.per_step + self.per_prefill_token * prefill as u32 + self.per_decode_seq * decoding
    }
}

/// One step the fake ran, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// Tokens fed per sequence, in batch order (1: decode, more: prefill).
    pub fed: Vec<usize>,
    /// Virtual time when the step ended.
    pub ended: Duration,
}

/// The shared record of every step; clones see the same steps.
#[derive(Debug, Clone, Default)]
pub struct StepLog(Arc<Mutex<Vec<StepRecord>>>);

impl StepLog {
    /// The steps so far.
    pub fn steps(&self) -> Vec<StepRecord> {
        lock(&self.0).clone()
    }

    fn push(&self, record: StepRecord) {
        lock(&self.0).push(record);
    }
}

/// Holds steps until a test lets them run. Open by default (steps never wait); clones share it.
#[derive(Debug, Clone)]
pub struct StepGate {
    inner: Arc<GateInner>,
    /// Steps run so far while one waits at the gate, else `None`: the async side of the gate.
    blocked: watch::Receiver<Option<usize>>,
}

#[derive(Debug)]
struct GateInner {
    state: Mutex<GateState>,
    wake: Condvar,
    blocked: watch::Sender<Option<usize>>,
}

#[derive(Debug)]
struct GateState {
    /// Steps that may still start; `None`: any number.
    permits: Option<usize>,
    passed: usize,
}

impl StepGate {
    fn with_permits(permits: Option<usize>) -> Self {
        let (tx, rx) = watch::channel(None);
        Self {
            inner: Arc::new(GateInner {
                state: Mutex::new(GateState { permits, passed: 0 }),
                wake: Condvar::new(),
                blocked: tx,
            }),
            blocked: rx,
        }
    }

    /// Lets `n` more steps start.
    pub fn allow(&self, n: usize) {
        let mut s = lock(&self.inner.state);
        if let Some(p) = &mut s.permits {
            *p += n;
        }
        self.inner.wake.notify_all();
    }

    /// Lets every step start from now on.
    pub fn open(&self) {
        lock(&self.inner.state).permits = None;
        self.inner.wake.notify_all();
    }

    /// Waits until a step is held at the gate; returns how many steps ran before it. The
    /// worker is then inside the engine, past its check for new requests and closed streams.
    pub async fn held(&self) -> usize {
        let mut rx = self.blocked.clone();
        let held = rx.wait_for(Option::is_some).await;
        // Unwrap is safe: the sender lives in `inner`, which `self` keeps alive.
        held.expect("the gate outlives its receiver")
            .unwrap_or_default()
    }

    /// Called at the start of each step: waits for a permit and takes it.
    fn pass(&self) {
        let mut s = lock(&self.inner.state);
        while s.permits == Some(0) {
            self.inner.blocked.send_replace(Some(s.passed));
            s = self.inner.wake.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        self.inner.blocked.send_replace(None);
        if let Some(p) = &mut s.permits {
            *p -= 1;
        }
        s.passed += 1;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock has failed already; its data is still fine.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An engine with scripted step times and deterministic tokens; see the module header.
#[derive(Debug)]
pub struct FakeEngine {
    costs: StepCosts,
    clock: VirtualClock,
    gate: StepGate,
    log: StepLog,
    max_positions: usize,
}

impl FakeEngine {
    /// A fake whose steps cost `costs`, with an open gate and a context of 2048 positions
    /// (the presets').
    pub fn new(costs: StepCosts) -> Self {
        Self {
            costs,
            clock: VirtualClock::new(),
            gate: StepGate::with_permits(None),
            log: StepLog::default(),
            max_positions: 2048,
        }
    }

    /// The same fake with its gate shut: no step starts until [`StepGate::allow`] or
    /// [`StepGate::open`].
    pub fn held(mut self) -> Self {
        self.gate = StepGate::with_permits(Some(0));
        self
    }

    /// Positions a sequence may reach (the server derives its token limits from it).
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    pub fn virtual_clock(&self) -> VirtualClock {
        self.clock.clone()
    }

    pub fn gate(&self) -> StepGate {
        self.gate.clone()
    }

    pub fn log(&self) -> StepLog {
        self.log.clone()
    }

    /// The id generated after `position` tokens.
    pub fn token_at(position: usize) -> u32 {
        FIRST_TOKEN + (position as u32 % TOKEN_CYCLE)
    }
}

impl Engine for FakeEngine {
    fn step(
        &mut self,
        batch: &mut [SeqInput<'_>],
        _greedy: &[bool],
    ) -> Result<Vec<StepOutput>, EngineError> {
        self.gate.pass();
        let fed: Vec<usize> = batch.iter().map(|s| s.tokens.len()).collect();
        let out = batch
            .iter_mut()
            .map(|seq| {
                seq.cache.commit(seq.tokens.len());
                // Greedy or not, the fake picks: sampling is the model's business.
                StepOutput::Greedy {
                    id: Self::token_at(seq.cache.len()),
                    logprob: LOGPROB,
                }
            })
            .collect();
        self.clock.advance(self.costs.of(&fed));
        self.log.push(StepRecord {
            fed,
            ended: self.clock.elapsed(),
        });
        Ok(out)
    }

    fn new_cache(&mut self, reserve: usize) -> Result<KvCache, EngineError> {
        // A cache of no layers: it only counts positions.
        Ok(KvCache::host(0, reserve))
    }

    fn clock(&self) -> Clock {
        Clock::Virtual(self.clock.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_step_costs_its_script_and_tokens_follow_the_position() {
        let costs = StepCosts {
            per_step: ms(1),
            per_prefill_token: ms(2),
            per_decode_seq: ms(3),
        };
        let mut fake = FakeEngine::new(costs);
        let clock = fake.virtual_clock();
        let (mut a, mut b) = (fake.new_cache(8).unwrap(), fake.new_cache(8).unwrap());
        a.commit(4);
        let out = fake
            .step(
                &mut [
                    SeqInput {
                        tokens: &[7],
                        cache: &mut a,
                    },
                    SeqInput {
                        tokens: &[1, 2, 3],
                        cache: &mut b,
                    },
                ],
                &[true, false],
            )
            .unwrap();
        assert_eq!(clock.elapsed(), ms(1 + 2 * 3 + 3));
        assert_eq!((a.len(), b.len()), (5, 3));
        assert_eq!(
            out,
            vec![
                StepOutput::Greedy {
                    id: FakeEngine::token_at(5),
                    logprob: LOGPROB
                },
                StepOutput::Greedy {
                    id: FakeEngine::token_at(3),
                    logprob: LOGPROB
                },
            ]
        );
        assert_eq!(
            fake.log().steps(),
            vec![StepRecord {
                fed: vec![1, 3],
                ended: ms(10)
            }]
        );
    }

    #[tokio::test]
    async fn a_held_gate_lets_through_only_the_steps_allowed() {
        let mut fake = FakeEngine::new(StepCosts::default()).held();
        let gate = fake.gate();
        let log = fake.log();
        let worker = std::thread::spawn(move || {
            let mut c = fake.new_cache(4).unwrap();
            for _ in 0..3 {
                let batch = &mut [SeqInput {
                    tokens: &[1],
                    cache: &mut c,
                }];
                fake.step(batch, &[true]).unwrap();
            }
        });
        assert_eq!(gate.held().await, 0);
        gate.allow(1);
        // The second step waits: one step ran, and nothing else moves until the next permit.
        while gate.held().await != 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(log.steps().len(), 1);
        gate.open();
        worker.join().unwrap();
        assert_eq!(log.steps().len(), 3);
    }
}
