//! Shards of one schedule (`attack --shard i/N`): which ticks, users and request indices are
//! shard i's. Pure: tick `k` of the whole schedule is shard `k % N`'s, so the N shards together
//! send exactly the one-process schedule, each tick at the time it has there, and everything a
//! request carries (dealt by its global index) is the same too. Closed-loop users are dealt
//! the same way: user `u` is shard `u % N`'s.
//!
//! The pod's index (`--shard auto/N`, from a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`)
//! is passed in by the caller, so parsing reads no environment.

use std::fmt;

/// One shard of a schedule: `index` of `count`, from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// The environment variable a Kubernetes Indexed Job sets in each pod (0..completions).
pub const JOB_INDEX_VAR: &str = "JOB_COMPLETION_INDEX";

/// More shards than any cluster runs pods of one job; a larger N is a typo.
pub const MAX_SHARDS: u32 = 100_000;

const FORM: &str = "write --shard I/N with 0 <= I < N (e.g. 0/4 .. 3/4), or --shard auto/N in a Kubernetes Indexed Job";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard {0:?} is not I/N; {FORM}")]
    Syntax(String),
    #[error("--shard {text:?}: N must be between 1 and {MAX_SHARDS}; {FORM}")]
    Count { text: String },
    #[error(
        "--shard {index}/{count}: the index must be below {count} (shards are numbered from 0: 0/{count} .. {last}/{count})",
        last = .count - 1
    )]
    Index { index: u64, count: u32 },
    #[error(
        "--shard auto/{count}: {JOB_INDEX_VAR} is not set; Kubernetes sets it in each pod of an Indexed Job (completionMode: Indexed); elsewhere pass --shard I/{count}"
    )]
    AutoUnset { count: u32 },
    #[error(
        "--shard auto/{count}: {JOB_INDEX_VAR}={value:?} is not a shard index below {count}; set the Job's completions to {count} (or pass --shard I/{count})"
    )]
    AutoBad { count: u32, value: String },
}

impl Shard {
    /// The whole schedule: one process sends every tick.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Option<Self> {
        (count >= 1 && index < count).then_some(Self { index, count })
    }

    /// `I/N`, or `auto/N` with `job_index` (the pod's `JOB_COMPLETION_INDEX`, if set).
    pub fn parse(text: &str, job_index: Option<&str>) -> Result<Self, ShardError> {
        let t = text.trim();
        let (i, n) = t
            .split_once('/')
            .ok_or_else(|| ShardError::Syntax(text.to_owned()))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| ShardError::Syntax(text.to_owned()))?;
        if !(1..=MAX_SHARDS).contains(&count) {
            return Err(ShardError::Count {
                text: text.to_owned(),
            });
        }
        let index: u64 = if i.trim() == "auto" {
            let value = job_index.ok_or(ShardError::AutoUnset { count })?;
            let bad = || ShardError::AutoBad {
                count,
                value: value.to_owned(),
            };
            let index: u64 = value.trim().parse().map_err(|_| bad())?;
            if index >= u64::from(count) {
                return Err(bad());
            }
            index
        } else {
            i.trim()
                .parse()
                .map_err(|_| ShardError::Syntax(text.to_owned()))?
        };
        u32::try_from(index)
            .ok()
            .and_then(|i| Self::new(i, count))
            .ok_or(ShardError::Index { index, count })
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Whether tick (or request, or user) `k` of the whole schedule is this shard's.
    pub fn owns(&self, k: u64) -> bool {
        k % u64::from(self.count) == u64::from(self.index)
    }

    /// The global index of this shard's `j`-th own index (`j` from 0).
    pub fn global(&self, j: u64) -> u64 {
        j.saturating_mul(u64::from(self.count))
            .saturating_add(u64::from(self.index))
    }

    /// How many of the indices `0..total` are this shard's.
    pub fn share_of(&self, total: u64) -> u64 {
        let (i, n) = (u64::from(self.index), u64::from(self.count));
        if total <= i {
            0
        } else {
            (total - i).div_ceil(n)
        }
    }

    /// Part `part` of this shard, for cutting it again in one process (`--workers`): the
    /// indices `k` with `k % (N * W) == i + N * w`. Each is this shard's (`k % N == i`), and
    /// the W parts together hold all of them, once each.
    pub fn part(&self, part: Shard) -> Shard {
        Shard {
            index: self.index + self.count * part.index,
            count: self.count * part.count,
        }
    }

    /// A closed loop of `users` users (with an optional cap on their combined rate) cut to this
    /// shard: its users, and its part of the cap in proportion to them, so the shards together
    /// send at most the whole cap.
    pub fn closed_loop(&self, users: usize, max_rate: Option<f64>) -> (usize, Option<f64>) {
        let mine = self.share_of(users as u64) as usize;
        let rate = max_rate.map(|r| r * mine as f64 / users.max(1) as f64);
        (mine, rate)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_i_of_n_and_auto() {
        assert_eq!(Shard::parse("0/4", None), Ok(Shard::new(0, 4).unwrap()));
        assert_eq!(Shard::parse(" 3/4 ", None).unwrap().to_string(), "3/4");
        assert_eq!(Shard::parse("0/1", None), Ok(Shard::WHOLE));
        assert_eq!(Shard::parse("auto/3", Some("2")).unwrap().index(), 2);
        let e = Shard::parse("4/4", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--shard 4/4: the index must be below 4 (shards are numbered from 0: 0/4 .. 3/4)"
        );
        assert!(matches!(
            Shard::parse("5/4", None),
            Err(ShardError::Index { index: 5, .. })
        ));
        for bad in ["", "1", "a/4", "1/b", "-1/4", "1/4/5"] {
            assert!(
                matches!(Shard::parse(bad, None), Err(ShardError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Shard::parse("0/0", None),
            Err(ShardError::Count { .. })
        ));
        let e = Shard::parse("auto/4", None).unwrap_err().to_string();
        assert!(e.contains("JOB_COMPLETION_INDEX is not set"), "{e}");
        assert!(e.ends_with("pass --shard I/4"), "{e}");
        for v in ["4", "x", "-1", ""] {
            let e = Shard::parse("auto/4", Some(v)).unwrap_err();
            assert!(matches!(e, ShardError::AutoBad { .. }), "{v}: {e}");
        }
    }

    #[test]
    fn indices_are_dealt_round_robin() {
        let s = Shard::new(1, 3).unwrap();
        let own: Vec<u64> = (0..10).filter(|&k| s.owns(k)).collect();
        assert_eq!(own, [1, 4, 7]);
        assert_eq!((0..3).map(|j| s.global(j)).collect::<Vec<_>>(), own);
        for total in 0..20 {
            let sum: u64 = (0..3)
                .map(|i| Shard::new(i, 3).unwrap().share_of(total))
                .sum();
            assert_eq!(sum, total);
            assert_eq!(
                s.share_of(total),
                (0..total).filter(|&k| s.owns(k)).count() as u64
            );
        }
    }

    #[test]
    fn the_parts_of_a_shard_are_the_shard() {
        for (i, n) in [(0, 1), (1, 3), (2, 3)] {
            let shard = Shard::new(i, n).unwrap();
            for w in 1..5 {
                let mut seen: Vec<u64> = (0..w)
                    .flat_map(|p| {
                        let part = shard.part(Shard::new(p, w).unwrap());
                        (0..200).filter(move |&k| part.owns(k))
                    })
                    .collect();
                seen.sort_unstable();
                let own: Vec<u64> = (0..200).filter(|&k| shard.owns(k)).collect();
                assert_eq!(seen, own, "shard {shard} in {w} parts");
            }
        }
    }

    #[test]
    fn a_closed_loop_is_dealt_by_user() {
        // 10 users over 4 shards: 3, 3, 2, 2, and the cap in proportion.
        let parts: Vec<(usize, Option<f64>)> = (0..4)
            .map(|i| Shard::new(i, 4).unwrap().closed_loop(10, Some(100.0)))
            .collect();
        assert_eq!(
            parts,
            [
                (3, Some(30.0)),
                (3, Some(30.0)),
                (2, Some(20.0)),
                (2, Some(20.0))
            ]
        );
        assert_eq!(Shard::WHOLE.closed_loop(10, None), (10, None));
    }
}
