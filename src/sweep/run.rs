//! The sweep driver: an unmeasured warm-up at the first level, then for each level of the plan
//! (a rate, or a number of closed-loop users) and each repeat an optional unmeasured warm-up, one measured step through a [`StepRunner`],
//! every record handed to the [`RunSink`] with its `step`, a verdict, a cool-down, and the stop
//! rule. After every step the sink rebuilds what derives from the records, so an interrupted or
//! crashed sweep keeps everything measured. The `stop` token (Ctrl-C, through
//! `commands::interrupt`) is heard in every phase: the runner shares it, so a step or warm-up
//! stops scheduling and drains, and a cool-down ends at once.
//!
//! The driver owns the order of events and the clock (cool-down sleeps); where records go is
//! the sink's ([`super::output::RunFolder`] writes the run folder), what the user sees is the
//! [`Observer`]'s (`commands::sweep` draws progress bars), and every decision is
//! `analysis::verdict`'s pure functions.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use crate::analysis::summary::{StepData, StepRow, SweepSummary};
use crate::analysis::verdict::{self, Status};
use crate::cost::Price;
use crate::exit::{Interrupted, RunFailed};
use crate::record::Record;
use crate::scenario::{PlannedStep, Scenario, ScenarioFile};

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
}

impl StepSpec {
    /// A measured step (`step`) or a warm-up (None) at the load `p` plans.
    fn of(p: &PlannedStep, step: Option<u32>, duration: Duration) -> Self {
        Self {
            step,
            rps: p.rps,
            concurrency: p.concurrency,
            duration,
        }
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
    fn step_started(&mut self, _step: &PlannedStep, _steps: usize, _duration: Duration) {}
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
}

/// Runs the sweep and returns its summary (also rebuilt by `sink`).
pub async fn drive<R: StepRunner>(
    cfg: &DriveConfig<'_>,
    runner: &mut R,
    sink: &mut dyn RunSink,
    observer: &mut dyn Observer,
) -> Result<SweepSummary> {
    let sc = cfg.scenario;
    sink.begin(&as_run(cfg))?;
    let planned = sc.steps();
    let mut rate_status: Vec<Status> = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    let mut written = 0u64;
    if let (false, Some(first)) = (sc.initial_warmup.is_zero(), planned.first()) {
        observer.warming_up(first, sc.initial_warmup);
        let spec = StepSpec::of(first, None, sc.initial_warmup);
        if let Err(e) = warm_up(runner, &spec, &cfg.stop).await {
            failure = Some(e.context("warm-up before the first step"));
        }
    }
    'rates: for ri in 0..sc.plan.rates().len() {
        if failure.is_some() {
            break;
        }
        // The rate's status as the summary folds it (repeats pooled when they cannot tell).
        let mut status = Status::Undetermined;
        for p in planned.iter().filter(|p| p.rate_index == ri) {
            if !sc.warmup.is_zero()
                && let Err(e) = warm_up(runner, &StepSpec::of(p, None, sc.warmup), &cfg.stop).await
            {
                failure = Some(e.context(format!("warm-up before step {}", p.step)));
                break 'rates;
            }
            observer.step_started(p, planned.len(), sc.step_duration);
            let mut data = StepData::default();
            let mut write_err: Option<std::io::Error> = None;
            let spec = StepSpec::of(p, Some(p.step), sc.step_duration);
            let result = {
                let mut on_record = |mut r: Record| {
                    r.step = Some(p.step);
                    if write_err.is_none() {
                        match sink.record(&r) {
                            Ok(()) => written += 1,
                            Err(e) => write_err = Some(e),
                        }
                    }
                    data.add(&r);
                    observer.record(&r, &data);
                };
                // An interrupt stops the step's schedule inside the runner, which then hands
                // over every request it sent (finished, or cancelled when aborted).
                match runner.run_step(&spec, &mut on_record).await {
                    Ok(()) if cfg.stop.is_cancelled() => Err(anyhow::Error::new(Interrupted)),
                    r => r,
                }
            };
            if let Some(e) = write_err {
                failure = Some(anyhow::Error::new(e).context(format!(
                    "writing the records of step {} to {}",
                    p.step,
                    sink.location()
                )));
                observer.step_ended(&data, None);
                break 'rates;
            }
            // Keep everything measured on disk even if a later step dies; the row is the one
            // the final report will show (a step is judged on its own requests).
            let so_far = sink.rebuild()?;
            if let Some(rate) = so_far.rates.iter().find(|r| r.rate_index == ri) {
                status = rate.status;
            }
            observer.step_ended(&data, so_far.steps.iter().find(|r| r.step == p.step));
            if let Err(e) = result {
                let load = sc.axis.fmt_level(p.level());
                failure = Some(e.context(format!("step {} at {load}", p.step)));
                break 'rates;
            }
            let last = p.step as usize + 1 == planned.len();
            if !last && !sc.cooldown.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(sc.cooldown) => {}
                    () = cfg.stop.cancelled() => {
                        failure = Some(anyhow::Error::new(Interrupted).context("during a cool-down"));
                        break 'rates;
                    }
                }
            }
        }
        rate_status.push(status);
        if verdict::should_stop(&rate_status, sc.early_stop) {
            observer.stopped_early();
            break;
        }
    }
    observer.finished();
    let summary = sink.rebuild()?;
    match failure {
        Some(e) if e.downcast_ref::<Interrupted>().is_some() => Err(e.context(format!(
            "sweep interrupted; {written} measured records, one per request sent, are in {}",
            sink.location()
        ))),
        Some(e) => Err(e.context(RunFailed(format!(
            "sweep stopped; what was measured is in {}",
            sink.location()
        )))),
        None => Ok(summary),
    }
}

/// The scenario as run: the embedded server's address is not kept (it changes every run), the
/// price is frozen in, so `report --sweep` needs no catalog, and credentials are redacted (run
/// folders get committed; a re-run names the header to pass again).
fn as_run(cfg: &DriveConfig<'_>) -> ScenarioFile {
    let sc = cfg.scenario;
    let mut as_run = sc.file.clone();
    as_run.attack = as_run.attack.redacted();
    as_run.sweep.server_metrics = as_run.sweep.server_metrics.map(|u| crate::redact::url(&u));
    if sc.target.is_none() {
        as_run.attack.target = None;
    }
    if let Some(p) = &cfg.price {
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
