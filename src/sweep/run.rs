//! The sweep driver: an unmeasured warm-up at the first level, then steps, each an optional
//! cool-down and warm-up and one measured attack through a [`StepRunner`], every record handed
//! to the [`RunSink`] with its `step`, and a verdict. A grid sweep runs each level of its plan
//! (a rate, or a number of closed-loop users) and each repeat until the stop rule says enough;
//! a search (`--search`) asks `analysis::search` for each next level from the verdicts so far.
//! After every step the sink rebuilds what derives from the records, so an interrupted or
//! crashed sweep keeps everything measured. The `stop` token (Ctrl-C, through
//! `commands::interrupt`) is heard in every phase: the runner shares it, so a step or warm-up
//! stops scheduling and drains, and a cool-down ends at once.
//!
//! The driver owns the order of events and the clock (cool-down sleeps); where records go is
//! the sink's ([`super::output::RunFolder`] writes the run folder), what the user sees is the
//! [`Observer`]'s (`commands::sweep` draws progress bars), and every decision is
//! `analysis`'s pure functions.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use crate::analysis::search::{self, Next, Probed};
use crate::analysis::summary::{StepData, StepRow, SweepSummary};
use crate::analysis::verdict::{self, Status};
use crate::cost::Price;
use crate::exit::{Interrupted, RunFailed};
use crate::record::Record;
use crate::scenario::search::Search;
use crate::scenario::{PlannedStep, Scenario, ScenarioFile};
use crate::sweep::timeline::Timeline;

/// One attack the driver asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    /// Step index (`step` of its records); None for a warm-up, whose records are dropped.
    pub step: Option<u32>,
    /// The offered rate (0 on the concurrency axis).
    pub rps: f64,
    /// Users of a closed loop; None: open loop at `rps`.
    pub concurrency: Option<u32>,
    pub duration: Duration,
    /// A sweep run in shards: the wall-clock instant this attack starts (`timeline`).
    pub start_at: Option<time::OffsetDateTime>,
}

impl StepSpec {
    /// A measured step (`step`) or a warm-up (None) at the load `p` plans.
    fn of(p: &PlannedStep, step: Option<u32>, duration: Duration) -> Self {
        Self {
            step,
            rps: p.rps,
            concurrency: p.concurrency,
            duration,
            start_at: None,
        }
    }

    fn starting(mut self, at: Option<time::OffsetDateTime>) -> Self {
        self.start_at = at;
        self
    }
}

/// Runs one attack at a constant offered rate, or a closed loop of a number of users, and
/// hands every record to `sink` as it ends.
/// A failed request is a record with an error, never an `Err`; `Err` means the step could not
/// run at all (bad configuration, the client could not start).
pub trait StepRunner {
    fn run_step(
        &mut self,
        spec: &StepSpec,
        sink: &mut dyn FnMut(Record),
    ) -> impl Future<Output = Result<()>>;
}

/// Where a sweep's records go and what is derived from them.
pub trait RunSink {
    /// Before the first request: the scenario as run (price frozen in).
    fn begin(&mut self, as_run: &ScenarioFile) -> Result<()>;
    /// A search planned its next probe: the scenario as run, with its probes so far.
    fn replan(&mut self, as_run: &ScenarioFile) -> Result<()>;
    /// One measured record, with its `step` set. An error here stops the sweep.
    fn record(&mut self, record: &Record) -> std::io::Result<()>;
    /// After a step (and once at the end): everything derived from the records so far.
    fn rebuild(&mut self) -> Result<SweepSummary>;
    /// Where the measured data is, for the messages of a sweep that stopped.
    fn location(&self) -> String;
}

/// What happens as a sweep runs, for whoever shows it. Every method defaults to nothing.
pub trait Observer {
    /// Before the sweep's first step, at that step's load.
    fn warming_up(&mut self, _first: &PlannedStep, _duration: Duration) {}
    /// `steps`: how many the plan has (None: a search, which decides as it goes).
    fn step_started(&mut self, _step: &PlannedStep, _steps: Option<usize>, _duration: Duration) {}
    /// A measured record, and the step's data so far (for live figures).
    fn record(&mut self, _record: &Record, _so_far: &StepData) {}
    /// The step's row as the final report will show it (None: no request ended).
    fn step_ended(&mut self, _so_far: &StepData, _row: Option<&StepRow>) {}
    fn stopped_early(&mut self) {}
    fn finished(&mut self) {}
}

/// An observer that shows nothing (tests, `--quiet` has its own).
pub struct Silent;

impl Observer for Silent {}

/// What a sweep runs and at what price.
pub struct DriveConfig<'a> {
    pub scenario: &'a Scenario,
    pub price: Option<Price>,
    /// Cancelled by an interrupt; the runner holds the same token (its attack's `Control`).
    pub stop: CancellationToken,
    /// A sweep run in shards (`sweep --shard`): every phase starts at its planned instant,
    /// cool-downs are part of the plan, and every step runs (verdicts are the merge's).
    pub timeline: Option<Timeline>,
}

/// Runs the sweep and returns its summary (also rebuilt by `sink`).
pub async fn drive<R: StepRunner>(
    cfg: &DriveConfig<'_>,
    runner: &mut R,
    sink: &mut dyn RunSink,
    observer: &mut dyn Observer,
) -> Result<SweepSummary> {
    let sc = cfg.scenario;
    sink.begin(&as_run(sc, cfg.price.as_ref()))?;
    let mut d = Driver {
        cfg,
        runner,
        sink,
        observer,
        written: 0,
        ran: 0,
    };
    let first = match &sc.search {
        Some(s) => Some(PlannedStep::first(s)),
        None => sc.steps().first().copied(),
    };
    let mut failure = None;
    if let (false, Some(first)) = (sc.initial_warmup.is_zero(), first) {
        d.observer.warming_up(&first, sc.initial_warmup);
        let at = cfg.timeline.as_ref().and_then(|t| t.initial_warmup);
        let spec = StepSpec::of(&first, None, sc.initial_warmup).starting(at);
        if let Err(e) = warm_up(d.runner, &spec, &cfg.stop).await {
            failure = Some(e.context("warm-up before the first step"));
        }
    }
    if failure.is_none() {
        failure = match &sc.search {
            Some(search) => d.search(search).await.err(),
            None => d.grid().await.err(),
        };
    }
    d.observer.finished();
    let summary = d.sink.rebuild()?;
    let written = d.written;
    match failure {
        Some(e) if e.downcast_ref::<Interrupted>().is_some() => Err(e.context(format!(
            "sweep interrupted; {written} measured records, one per request sent, are in {}",
            d.sink.location()
        ))),
        Some(e) => Err(e.context(RunFailed(format!(
            "sweep stopped; what was measured is in {}",
            d.sink.location()
        )))),
        None => Ok(summary),
    }
}

/// The driver's state over one sweep.
struct Driver<'d, 'a, R> {
    cfg: &'d DriveConfig<'a>,
    runner: &'d mut R,
    sink: &'d mut dyn RunSink,
    observer: &'d mut dyn Observer,
    /// Measured records written.
    written: u64,
    /// Measured steps run (the first has no cool-down before it).
    ran: usize,
}

impl<R: StepRunner> Driver<'_, '_, R> {
    /// Every level of the plan, each repeat, until the stop rule says enough.
    async fn grid(&mut self) -> Result<()> {
        let sc = self.cfg.scenario;
        let planned = sc.steps();
        let mut rate_status: Vec<Status> = Vec::new();
        for ri in 0..sc.levels().len() {
            // The level's status as the summary folds it (repeats pooled when they cannot tell).
            let mut status = Status::Undetermined;
            for p in planned.iter().filter(|p| p.rate_index == ri) {
                let so_far = self.step(p, Some(planned.len())).await?;
                if let Some(rate) = so_far.rates.iter().find(|r| r.rate_index == ri) {
                    status = rate.status;
                }
            }
            rate_status.push(status);
            // Shards cannot stop early: each sees a share of the load, and they must agree.
            let sharded = self.cfg.timeline.is_some();
            if !sharded && verdict::should_stop(&rate_status, sc.early_stop) {
                self.observer.stopped_early();
                break;
            }
        }
        Ok(())
    }

    /// Probes chosen by `analysis::search` from the verdicts so far, each written into the
    /// scenario as run before it starts (so the run folder always rebuilds).
    async fn search(&mut self, search: &Search) -> Result<()> {
        let mut sc = self.cfg.scenario.clone();
        let mut history: Vec<Probed> = Vec::new();
        while let Next::Probe { level, .. } = search::next(search, &history) {
            sc.probes.push(level);
            sc.file.sweep.probes = Some(sc.probes.clone());
            self.sink.replan(&as_run(&sc, self.cfg.price.as_ref()))?;
            let p = *sc.steps().last().expect("a probe was just planned");
            let so_far = self.step(&p, None).await?;
            history = so_far
                .rates
                .iter()
                .map(|r| Probed {
                    level: r.level(),
                    status: r.status,
                    runs: r.repeats,
                })
                .collect();
        }
        Ok(())
    }

    /// One measured step (after its cool-down and warm-up): every record to the sink, the
    /// derived files rebuilt. `steps`: how many the plan has (None: a search).
    async fn step(&mut self, p: &PlannedStep, steps: Option<usize>) -> Result<SweepSummary> {
        let (sc, stop) = (self.cfg.scenario, &self.cfg.stop);
        let starts = self.cfg.timeline.as_ref().map(|t| {
            t.step(p.step)
                .expect("a sharded sweep's timeline has every step of its plan")
        });
        // In shards the cool-down is in the timeline: the next start waits it out.
        if self.ran > 0 && !sc.cooldown.is_zero() && starts.is_none() {
            tokio::select! {
                () = tokio::time::sleep(sc.cooldown) => {}
                () = stop.cancelled() => {
                    return Err(anyhow::Error::new(Interrupted).context("during a cool-down"));
                }
            }
        }
        self.ran += 1;
        if !sc.warmup.is_zero() {
            let spec = StepSpec::of(p, None, sc.warmup).starting(starts.and_then(|s| s.warmup));
            warm_up(self.runner, &spec, stop)
                .await
                .map_err(|e| e.context(format!("warm-up before step {}", p.step)))?;
        }
        self.observer.step_started(p, steps, sc.step_duration);
        let mut data = StepData::new(&sc.rules.slo);
        let mut write_err: Option<std::io::Error> = None;
        let spec = StepSpec::of(p, Some(p.step), sc.step_duration).starting(starts.map(|s| s.step));
        let result = {
            let (sink, observer, written) =
                (&mut *self.sink, &mut *self.observer, &mut self.written);
            let mut on_record = |mut r: Record| {
                r.step = Some(p.step);
                if write_err.is_none() {
                    match sink.record(&r) {
                        Ok(()) => *written += 1,
                        Err(e) => write_err = Some(e),
                    }
                }
                data.add(&r);
                observer.record(&r, &data);
            };
            // An interrupt stops the step's schedule inside the runner, which then hands
            // over every request it sent (finished, or cancelled when aborted).
            match self.runner.run_step(&spec, &mut on_record).await {
                Ok(()) if stop.is_cancelled() => Err(anyhow::Error::new(Interrupted)),
                r => r,
            }
        };
        if let Some(e) = write_err {
            self.observer.step_ended(&data, None);
            return Err(anyhow::Error::new(e).context(format!(
                "writing the records of step {} to {}",
                p.step,
                self.sink.location()
            )));
        }
        // Keep everything measured on disk even if a later step dies; the row is the one
        // the final report will show (a step is judged on its own requests).
        let so_far = self.sink.rebuild()?;
        self.observer
            .step_ended(&data, so_far.steps.iter().find(|r| r.step == p.step));
        result.map_err(|e| {
            let load = sc.axis.fmt_level(p.level());
            e.context(format!("step {} at {load}", p.step))
        })?;
        Ok(so_far)
    }
}

/// The scenario as run: the embedded server's address is not kept (it changes every run), the
/// price is frozen in, so `report --sweep` needs no catalog, and credentials are redacted (run
/// folders get committed; a re-run names the header to pass again).
fn as_run(sc: &Scenario, price: Option<&Price>) -> ScenarioFile {
    let mut as_run = sc.file.clone();
    as_run.attack = as_run.attack.redacted();
    as_run.sweep.server_metrics = as_run.sweep.server_metrics.map(|u| crate::redact::url(&u));
    if sc.target.is_empty() {
        as_run.attack.target = Vec::new();
    }
    if let Some(p) = price {
        as_run.cost.instance = Some(match &p.region {
            Some(r) => format!("{}@{r}", p.instance),
            None => p.instance.clone(),
        });
        as_run.cost.price_per_hour = Some(p.usd_per_hour);
        as_run.cost.pricing.clear();
    }
    as_run
}

/// Unmeasured traffic as `spec` says (its records are dropped); an interrupt ends it.
async fn warm_up<R: StepRunner>(
    runner: &mut R,
    spec: &StepSpec,
    stop: &CancellationToken,
) -> Result<()> {
    let mut discard = |_r: Record| {};
    // The runner shares the token: it stops scheduling and drains, as in a step.
    match runner.run_step(spec, &mut discard).await {
        Ok(()) if stop.is_cancelled() => Err(anyhow::Error::new(Interrupted)),
        r => r,
    }
}
