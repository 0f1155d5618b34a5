//! When each phase of a sweep run in shards starts, fixed up front from `--start-at`.
//!
//! N pods run the same sweep, each its shard of every step. They cannot wait for each other
//! (there is no channel between them), so every pod computes the same timeline from the same
//! instant and sleeps until each phase's start: the initial warm-up, then per step its
//! cool-down, warm-up and measured step. An attack phase of duration d may run for d plus the
//! request timeout (its last request can take that long) plus a little slack before the next
//! phase starts, so every phase is given exactly that: a step never starts while another pod
//! is still draining the one before. Pure: instants in, instants out.

use std::time::Duration;

use time::OffsetDateTime;

/// Slack after each attack phase beyond `duration + timeout`: a late final send, the records
/// being written, a pod's clock a few milliseconds off.
pub const SLACK: Duration = Duration::from_secs(1);

/// The phase lengths a timeline is made of (the scenario's, and the attack's timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    pub initial_warmup: Duration,
    pub warmup: Duration,
    pub cooldown: Duration,
    pub step: Duration,
    pub timeout: Duration,
}

/// The start of every phase of one sharded sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// The initial warm-up's start (None: `--initial-warmup 0s`).
    pub initial_warmup: Option<OffsetDateTime>,
    /// Per step, in plan order: its warm-up's start (None: no warm-up) and its own.
    pub steps: Vec<StepStarts>,
    /// When the last step's last request must have ended.
    pub end: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepStarts {
    pub warmup: Option<OffsetDateTime>,
    pub step: OffsetDateTime,
}

impl Timeline {
    /// The timeline of `steps` measured steps starting at `start`.
    pub fn plan(start: OffsetDateTime, p: &Phases, steps: usize) -> Self {
        let span = |d: Duration| d + p.timeout + SLACK;
        let mut at = start;
        let initial_warmup = (!p.initial_warmup.is_zero()).then(|| {
            let begins = at;
            at += span(p.initial_warmup);
            begins
        });
        let mut out = Vec::with_capacity(steps);
        for k in 0..steps {
            if k > 0 {
                at += p.cooldown;
            }
            let warmup = (!p.warmup.is_zero()).then(|| {
                let begins = at;
                at += span(p.warmup);
                begins
            });
            out.push(StepStarts { warmup, step: at });
            at += span(p.step);
        }
        Self {
            initial_warmup,
            steps: out,
            end: at,
        }
    }

    /// The starts of step `index` (plan order), if the plan has it.
    pub fn step(&self, index: u32) -> Option<StepStarts> {
        self.steps.get(index as usize).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn every_phase_gets_its_duration_the_timeout_and_the_slack() {
        let p = Phases {
            initial_warmup: secs(5),
            warmup: secs(2),
            cooldown: secs(3),
            step: secs(10),
            timeout: secs(30),
        };
        let t = Timeline::plan(t0(), &p, 3);
        assert_eq!(t.initial_warmup, Some(t0()));
        // 5 + 30 + 1 for the initial warm-up; step 0 has no cool-down before it.
        let s0 = t.steps[0];
        assert_eq!(s0.warmup, Some(t0() + secs(36)));
        assert_eq!(s0.step, t0() + secs(36 + 33));
        // Step 1: step 0's 41 s, a 3 s cool-down, a 33 s warm-up.
        let s1 = t.step(1).unwrap();
        assert_eq!(s1.warmup, Some(s0.step + secs(41 + 3)));
        assert_eq!(s1.step, s0.step + secs(41 + 3 + 33));
        assert_eq!(t.end, t.steps[2].step + secs(41));
        assert_eq!(t.step(3), None);
    }

    #[test]
    fn phases_of_zero_length_take_no_time() {
        let p = Phases {
            initial_warmup: Duration::ZERO,
            warmup: Duration::ZERO,
            cooldown: Duration::ZERO,
            step: secs(1),
            timeout: secs(2),
        };
        let t = Timeline::plan(t0(), &p, 2);
        assert_eq!(t.initial_warmup, None);
        assert_eq!(
            t.steps[0],
            StepStarts {
                warmup: None,
                step: t0()
            }
        );
        // A 1 s burst still leaves its requests their whole timeout.
        assert_eq!(t.steps[1].step, t0() + secs(4));
    }
}
