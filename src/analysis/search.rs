//! The search policy of `sweep --search`: which level to probe next, from the verdicts of the
//! levels probed so far. A pure function of that history, so the driver asks it after every
//! step and the summary asks it once more to say how the search ended.
//!
//! From the bounds `A..B`: probe A; while every level probed is sustainable, double the highest
//! (capped at B); once a level fails, bisect between the highest sustainable level below the
//! lowest failing one (`lo`) and that failing one (`hi`) until `(hi - lo) / lo <= precision`
//! (on the concurrency axis also when no whole number lies between them). The answer is `lo`;
//! `--confirm N` runs it N more times first, and a failed confirmation makes it a failing level,
//! so the bisection resumes below it. A level that could not be judged (undetermined) is not
//! sustainable: a search only answers with a level it saw hold. The true capacity C lies in
//! `[lo, hi)` when verdicts are monotone in load, so the answer is within `precision` of it.
//!
//! Steps: about log2(C/A) doublings plus log2((hi-lo)/(lo·p)) halvings; 1..1000 at 5% is at
//! most 11 + 5. `scenarios/README.md` ("Searching") has the reasoning.

use serde::Serialize;

use super::verdict::Status;
use crate::scenario::plan::{Axis, round_sig};
use crate::scenario::search::Search;

/// One level as the search sees it: its repeats folded (`summary::RateRow`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probed {
    pub level: f64,
    pub status: Status,
    /// How many times it ran (1 + confirmations).
    pub runs: u32,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Run this level (a new probe, or a confirmation of the answer).
    Probe {
        level: f64,
        confirmation: bool,
    },
    Done(Outcome),
}

/// How a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// The highest sustainable level, with the failing level above it.
    Found { level: f64, above: f64 },
    /// Even the upper bound held: the capacity is at least `level` (raise B to learn more).
    AtUpperBound { level: f64 },
    /// The lower bound already fails (or could not be judged).
    FailsAtStart { level: f64 },
}

/// The next step of `search` after `history` (levels in any order, each once).
pub fn next(search: &Search, history: &[Probed]) -> Next {
    search.next_probe(history)
}

impl Search {
    fn next_probe(&self, history: &[Probed]) -> Next {
        let Some(first) = history.iter().map(|p| p.level).reduce(f64::min) else {
            return probe(self.lo);
        };
        let failing = history
            .iter()
            .filter(|p| p.status != Status::Sustainable)
            .map(|p| p.level)
            .reduce(f64::min);
        let Some(lo) = history
            .iter()
            .filter(|p| p.status == Status::Sustainable && failing.is_none_or(|f| p.level < f))
            .max_by(|a, b| a.level.total_cmp(&b.level))
        else {
            return Next::Done(Outcome::FailsAtStart { level: first });
        };
        let done = match failing {
            None if lo.level >= self.hi => Outcome::AtUpperBound { level: lo.level },
            None => return probe(self.doubled(lo.level)),
            Some(hi) => match self.midpoint(lo.level, hi) {
                Some(mid) => return probe(mid),
                None => Outcome::Found {
                    level: lo.level,
                    above: hi,
                },
            },
        };
        if lo.runs < 1 + self.confirm {
            return Next::Probe {
                level: lo.level,
                confirmation: true,
            };
        }
        Next::Done(done)
    }

    /// The next doubling, capped at the upper bound.
    fn doubled(&self, lo: f64) -> f64 {
        let up = match self.axis {
            Axis::Rate => round_sig(lo * 2.0, 3),
            Axis::Concurrency => lo * 2.0,
        };
        up.min(self.hi)
    }

    /// The level halfway between `lo` and `hi`, or None once the bracket is narrow enough.
    fn midpoint(&self, lo: f64, hi: f64) -> Option<f64> {
        if (hi - lo) / lo <= self.precision {
            return None;
        }
        let mid = (lo + hi) / 2.0;
        let mid = match self.axis {
            Axis::Concurrency => mid.floor(),
            // Round for readable levels, unless that lands on a bound.
            Axis::Rate => Some(round_sig(mid, 3))
                .filter(|m| *m > lo && *m < hi)
                .unwrap_or(mid),
        };
        (mid > lo && mid < hi).then_some(mid)
    }
}

fn probe(level: f64) -> Next {
    Next::Probe {
        level,
        confirmation: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(lo: f64, hi: f64, precision: f64, confirm: u32) -> Search {
        Search {
            lo,
            hi,
            precision,
            confirm,
            axis: Axis::Rate,
        }
    }

    /// Runs the search against a target whose verdict is `holds(level)`, returning the levels
    /// it probed in order and how it ended.
    fn run(s: &Search, holds: impl Fn(f64, u32) -> bool) -> (Vec<f64>, Outcome) {
        let mut history: Vec<Probed> = Vec::new();
        let mut order = Vec::new();
        for _ in 0..100 {
            match next(s, &history) {
                Next::Done(o) => return (order, o),
                Next::Probe { level, .. } => {
                    order.push(level);
                    let runs = history.iter().filter(|p| p.level == level).count() as u32;
                    let ok = holds(level, runs);
                    match history.iter_mut().find(|p| p.level == level) {
                        Some(p) => {
                            p.runs += 1;
                            if !ok {
                                p.status = Status::Unsustainable;
                            }
                        }
                        None => history.push(Probed {
                            level,
                            status: if ok {
                                Status::Sustainable
                            } else {
                                Status::Unsustainable
                            },
                            runs: 1,
                        }),
                    }
                }
            }
        }
        panic!("the search did not end: {order:?}");
    }

    #[test]
    fn lands_within_precision_of_every_capacity_in_few_steps() {
        let s = search(1.0, 1000.0, 0.05, 0);
        for cap in [1.5, 3.0, 7.7, 40.0, 99.0, 123.4, 512.0, 999.0] {
            let (order, out) = run(&s, |l, _| l <= cap);
            let Outcome::Found { level, above } = out else {
                panic!("{cap}: {out:?}");
            };
            assert!(level <= cap && cap < above, "{cap}: {level}..{above}");
            assert!((above - level) / level <= 0.05, "{cap}: {level}..{above}");
            assert!(order.len() <= 16, "{cap}: {} steps {order:?}", order.len());
        }
    }

    #[test]
    fn a_narrow_range_takes_about_a_dozen_steps() {
        let s = search(5.0, 200.0, 0.05, 0);
        let (order, out) = run(&s, |l, _| l <= 37.0);
        assert!(order.len() <= 12, "{order:?}");
        assert_eq!(&order[..5], [5.0, 10.0, 20.0, 40.0, 30.0]);
        assert!(matches!(out, Outcome::Found { level, .. } if (35.0..=37.0).contains(&level)));
    }

    #[test]
    fn bounds_that_hold_or_fail_say_so() {
        let s = search(10.0, 100.0, 0.05, 0);
        let (order, out) = run(&s, |_, _| true);
        assert_eq!(order, [10.0, 20.0, 40.0, 80.0, 100.0]);
        assert_eq!(out, Outcome::AtUpperBound { level: 100.0 });
        let (order, out) = run(&s, |_, _| false);
        assert_eq!(order, [10.0]);
        assert_eq!(out, Outcome::FailsAtStart { level: 10.0 });
    }

    #[test]
    fn a_failed_confirmation_resumes_the_bisection_below() {
        let s = search(10.0, 100.0, 0.05, 2);
        // 40 holds once, then fails its first confirmation (a noisy level at the edge).
        let (order, out) = run(&s, |l, runs| l < 40.0 || (l == 40.0 && runs == 0));
        assert_eq!(&order[..4], [10.0, 20.0, 40.0, 80.0]);
        let Outcome::Found { level, above } = out else {
            panic!("{out:?}");
        };
        assert!(level < 40.0 && above <= 40.0, "{level}..{above} {order:?}");
        // The answer ran three times; 40 ran until its confirmation failed.
        assert_eq!(order.iter().filter(|&&l| l == level).count(), 3);
    }

    #[test]
    fn users_bisect_to_the_whole_number() {
        let s = Search {
            axis: Axis::Concurrency,
            ..search(1.0, 256.0, 0.05, 0)
        };
        let (order, out) = run(&s, |l, _| l <= 13.0);
        assert_eq!(
            out,
            Outcome::Found {
                level: 13.0,
                above: 14.0
            }
        );
        assert!(order.iter().all(|l| l.fract() == 0.0), "{order:?}");
        assert!(order.len() <= 10, "{order:?}");
    }

    #[test]
    fn an_undetermined_level_is_not_an_answer() {
        let s = search(10.0, 100.0, 0.05, 0);
        let history = [
            Probed {
                level: 10.0,
                status: Status::Sustainable,
                runs: 1,
            },
            Probed {
                level: 20.0,
                status: Status::Undetermined,
                runs: 1,
            },
        ];
        assert_eq!(next(&s, &history), probe(15.0));
    }
}
