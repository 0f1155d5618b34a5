//! [`AttackRunner`]: the attacker behind a sweep. The scenario's attack options are checked
//! once by `attack::setup` (so a bad API, prompt file or header fails before the first request),
//! then the attack runs once per step at the step's rate (or as a closed loop of its users) for
//! the step's duration, on one connection pool for the whole sweep, so warm-ups open the
//! connections the steps use. In a sweep run in shards (`sweep --shard`) every attack is this
//! process's shard of the step, starting at the instant the driver's timeline gives it.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::run::{StepRunner, StepSpec};
use crate::attack::options::AttackOptions;
use crate::attack::setup::{self, Schedule};
use crate::attack::shard::{Sharding, schedule_id};
use crate::attack::{AttackConfig, Control, Sink};
use crate::pacer::{Pacer, Shard};
use crate::record::Record;
use crate::scenario::Scenario;
use crate::scenario::plan::Axis;

pub struct AttackRunner {
    base: AttackConfig,
    /// Where the next measured step starts in the workload's pool.
    next_offset: u64,
    /// One per attacker worker, kept across steps (see `new`).
    clients: Vec<reqwest::Client>,
    control: Control,
    /// Whether `--model auto` has been asked yet (once, before the first warm-up or step).
    models_resolved: bool,
    /// `sweep --shard`: this process's shard of every step.
    shard: Option<Shard>,
    /// The options each step's schedule id is made from (in shards).
    options: AttackOptions,
}

impl AttackRunner {
    /// Builds the attack on `target` (None: the options' own `--target` or `--targets`);
    /// paths resolve next to `scenario_file` when they do not exist from the working directory.
    pub fn new(sc: &Scenario, target: Option<&str>, scenario_file: Option<&Path>) -> Result<Self> {
        let mut options = sc.file.attack.with_paths_beside(scenario_file);
        if let Some(t) = target {
            options.target = vec![t.to_string()];
        }
        options.api = Some(sc.api.clone());
        options.name = Some(sc.name.clone());
        if options.ramp.is_some() {
            return Err(setup::SetupError::RampInSweep.into());
        }
        // Every step's rate is within what one attacker can schedule, checked before the first.
        if let Some(&top) = sc.plan.rates().iter().find(|&&r| r > setup::MAX_RATE) {
            anyhow::bail!(
                "--rps: {top} req/s is above the {} req/s one attacker process can schedule (a tick per microsecond); lower the plan's top rate",
                setup::MAX_RATE
            );
        }
        if options.trace.is_some() {
            anyhow::bail!(
                "--trace replays its own times; a sweep sets a rate per step: replay it with rpload attack --trace FILE"
            );
        }
        // Synthetic prompts are built for every request the steps may send together, so
        // later steps go on through the pool instead of repeating the first step's prompts.
        // A closed loop's count is unknown before it runs: its pool is the attacker's
        // closed-loop default, which the steps walk through and wrap around.
        let secs = sc.step_duration.as_secs_f64();
        let volume: f64 = match sc.axis {
            Axis::Rate => sc.steps().iter().map(|s| (s.rps * secs).ceil()).sum(),
            Axis::Concurrency => Schedule::step(0.0, Duration::ZERO).expected(None) as f64,
        };
        // Checked as the steps will run: an open loop, or a closed one (where --max-rate, a cap
        // on the users' combined rate, applies).
        let probe_rate = match sc.axis {
            Axis::Rate => 1.0,
            Axis::Concurrency => 0.0,
        };
        let mut schedule = Schedule::step(probe_rate, sc.step_duration);
        schedule.volume = Some(volume as u64);
        let base = setup::config(&options, &schedule)?;
        // One client per worker, kept for the whole sweep: the warm-up opens the connections
        // every step's workers then reuse.
        let clients = (0..base.workers)
            .map(|_| crate::attack::client(&base.client))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            base,
            next_offset: 0,
            clients,
            control: Control::default(),
            models_resolved: false,
            shard: None,
            options,
        })
    }

    /// Runs this process's `shard` of every step (`sweep --shard`).
    pub fn sharded(mut self, shard: Shard) -> Self {
        self.shard = Some(shard);
        self
    }

    /// Runs every step and warm-up under `control`, so one interrupt stops whichever phase
    /// is running (the driver's `stop` is `control.stop`).
    pub fn with_control(mut self, control: Control) -> Self {
        self.control = control;
        self
    }

    /// The checked attack every step starts from.
    pub fn base(&self) -> &AttackConfig {
        &self.base
    }
}

/// Adapts the driver's record callback to the attacker's sink.
struct FnSink<'a>(&'a mut dyn FnMut(Record));

impl Sink for FnSink<'_> {
    fn record(&mut self, record: Record) -> std::io::Result<()> {
        (self.0)(record);
        Ok(())
    }
}

impl StepRunner for AttackRunner {
    async fn run_step(&mut self, spec: &StepSpec, sink: &mut dyn FnMut(Record)) -> Result<()> {
        if !self.models_resolved {
            crate::attack::models::resolve(&mut self.base, &self.clients[0]).await?;
            self.models_resolved = true;
        }
        let mut cfg = self.base.clone();
        // A closed loop is the attacker's zero rate with one in-flight slot per user.
        let schedule = Schedule::step(spec.rps, spec.duration);
        cfg.rate = schedule.rate;
        if let Some(users) = spec.concurrency {
            cfg.max_inflight = users as usize;
        }
        cfg.duration = schedule.duration;
        cfg.step = spec.step;
        cfg.start_at = spec.start_at;
        if let Some(shard) = self.shard {
            // Each step is a schedule of its own (rate, start): its own id in the records.
            let schedule = schedule_id(&cfg, &self.options);
            cfg.sharding = Some(Sharding { shard, schedule });
        }
        // Every shard moves through the workload's pool by the whole step's requests, so
        // request k of a step is the same prompt in every shard (a closed loop's count is its
        // own: its users' requests are not a schedule).
        let whole = match (&self.shard, cfg.rate.is_unlimited()) {
            (Some(_), false) => Some(
                std::iter::from_fn({
                    let mut p = Pacer::new(cfg.rate, cfg.arrival, cfg.duration, cfg.max_requests);
                    move || p.next_tick()
                })
                .count() as u64,
            ),
            _ => None,
        };
        let measured = spec.step.is_some();
        if measured && let crate::attack::Requests::Api { workload, .. } = &mut cfg.requests {
            workload.offset = self.next_offset;
        }
        let mut sent = 0u64;
        let mut counting = |r: Record| {
            sent += 1;
            sink(r)
        };
        crate::attack::run_with_clients(
            cfg,
            &self.clients,
            self.control.clone(),
            &mut FnSink(&mut counting),
        )
        .await?;
        if measured {
            self.next_offset += whole.unwrap_or(sent);
        }
        Ok(())
    }
}
