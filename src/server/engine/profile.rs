//! Opt-in time per phase of the forward pass (`RPLOAD_PROFILE=N`: print every N steps to
//! stderr). Each lap synchronises the device first, so a phase's figure is its launch cost plus
//! its GPU time; the synchronisations slow the step, so profile runs are for finding where the
//! time goes, never for the figures a benchmark reports.
//! Must not change what the model computes.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use candle_core::Device;

#[derive(Debug)]
pub struct Profile {
    every: u64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    last: Instant,
    steps: u64,
    phases: BTreeMap<&'static str, (Duration, u64)>,
}

impl Profile {
    /// From `RPLOAD_PROFILE`; `None` when unset, empty or 0.
    pub fn from_env() -> Option<Self> {
        let every: u64 = std::env::var("RPLOAD_PROFILE").ok()?.parse().ok()?;
        (every > 0).then(|| Self {
            every,
            state: Mutex::new(State {
                last: Instant::now(),
                steps: 0,
                phases: BTreeMap::new(),
            }),
        })
    }

    /// Starts a step's clock.
    pub fn start(&self, device: &Device) {
        let _ = device.synchronize();
        if let Ok(mut s) = self.state.lock() {
            s.last = Instant::now();
        }
    }

    /// Charges the time since the last lap to `phase`.
    pub fn lap(&self, device: &Device, phase: &'static str) {
        let _ = device.synchronize();
        let now = Instant::now();
        if let Ok(mut s) = self.state.lock() {
            let spent = now - s.last;
            let e = s.phases.entry(phase).or_default();
            e.0 += spent;
            e.1 += 1;
            s.last = now;
        }
    }

    /// Counts a finished step; prints and resets the table every `every` steps.
    pub fn end_step(&self, rows: usize) {
        let Ok(mut s) = self.state.lock() else { return };
        s.steps += 1;
        if s.steps < self.every {
            return;
        }
        let total: Duration = s.phases.values().map(|p| p.0).sum();
        let mut out = format!(
            "rpload profile: {} steps (last with {rows} rows), {:.3} ms/step\n",
            s.steps,
            total.as_secs_f64() * 1e3 / s.steps as f64
        );
        for (name, (d, n)) in &s.phases {
            out.push_str(&format!(
                "  {name:<14} {:>8.3} ms/step {:>5.1}%  {:>7.1} us/call\n",
                d.as_secs_f64() * 1e3 / s.steps as f64,
                d.as_secs_f64() / total.as_secs_f64().max(1e-12) * 100.0,
                d.as_secs_f64() * 1e6 / (*n).max(1) as f64
            ));
        }
        eprint!("{out}");
        s.steps = 0;
        s.phases.clear();
    }
}

/// A [`Profile`] (or none) bound to the device its laps synchronise, handed down the forward
/// pass so that code below the model can charge its phases.
#[derive(Clone, Copy)]
pub struct Laps<'a> {
    profile: Option<&'a Profile>,
    device: &'a Device,
}

impl<'a> Laps<'a> {
    pub fn new(profile: Option<&'a Profile>, device: &'a Device) -> Self {
        Self { profile, device }
    }

    /// Charges the time since the last lap to `phase` when profiling.
    pub fn lap(&self, phase: &'static str) {
        if let Some(p) = self.profile {
            p.lap(self.device, phase);
        }
    }
}
