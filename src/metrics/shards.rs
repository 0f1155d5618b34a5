//! [`ShardCensus`]: which shards of which schedules a report's files hold, and whether they add
//! up to one run. Files written by `attack --shard I/N` carry `shard`, `shards` and `schedule`;
//! a report over them must not mix runs (different schedules, or shards and unsharded files)
//! nor pass a short run off as complete (a shard missing, say from a pod that died), nor count
//! one shard twice. Pure: the caller feeds it the records it reads.

use std::collections::{BTreeMap, BTreeSet};

/// One file's shard fields, as first seen.
#[derive(Debug, Clone, Default)]
struct FileShards {
    name: String,
    /// Records with no shard fields.
    plain: u64,
    /// (schedule, shards) -> shard indices seen.
    sharded: BTreeMap<(String, u32), BTreeSet<u32>>,
}

/// The shards seen in a report's files, file by file.
#[derive(Debug, Clone, Default)]
pub struct ShardCensus {
    files: Vec<FileShards>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardMergeError {
    #[error(
        "{plain} is from an unsharded run and {sharded} from `attack --shard` (shard {shard} of {shards}, schedule {schedule}); they are different runs: report them separately"
    )]
    Mixed {
        plain: String,
        sharded: String,
        shard: u32,
        shards: u32,
        schedule: String,
    },
    #[error(
        "{a} and {b} are shards of different schedules (schedule {a_id} and {b_id}: rate, arrival, seed, duration, ramp, --start-at or request options differ); pass the shard files of one run"
    )]
    Schedules {
        a: String,
        a_id: String,
        b: String,
        b_id: String,
    },
    #[error(
        "{a} and {b} cut schedule {schedule} into different numbers of shards (shards {a_n} and {b_n}); pass the shard files of one run"
    )]
    Counts {
        a: String,
        a_n: u32,
        b: String,
        b_n: u32,
        schedule: String,
    },
    #[error("shard {shard} of {shards} is in both {a} and {b}; pass each shard's file once")]
    Twice {
        shard: u32,
        shards: u32,
        a: String,
        b: String,
    },
    #[error(
        "{} missing: the report would be of a short run; pass all {shards} shard files, or --allow-missing-shards to report what is there",
        missing_phrase(.missing, *.shards)
    )]
    Missing { missing: Vec<u32>, shards: u32 },
}

/// `shard 2 of 4 is`, `shards 1 and 3 of 4 are`, `shards 0, 1 and 3 of 4 are`.
fn missing_phrase(missing: &[u32], shards: u32) -> String {
    let s: Vec<String> = missing.iter().map(u32::to_string).collect();
    match s.as_slice() {
        [one] => format!("shard {one} of {shards} is"),
        [init @ .., last] => format!("shards {} and {last} of {shards} are", init.join(", ")),
        [] => format!("no shard of {shards} is"),
    }
}

impl ShardCensus {
    /// Starts counting the records of the next file, named `name` in messages.
    pub fn file(&mut self, name: &str) {
        self.files.push(FileShards {
            name: name.to_owned(),
            ..FileShards::default()
        });
    }

    /// Counts one record of the current file.
    pub fn add(&mut self, r: &crate::record::Record) {
        if self.files.is_empty() {
            self.file("-");
        }
        let file = self.files.last_mut().expect("a file");
        match (r.shard, r.shards) {
            (Some(i), Some(n)) => {
                let id = r.schedule.clone().unwrap_or_default();
                file.sharded.entry((id, n)).or_default().insert(i);
            }
            _ => file.plain += 1,
        }
    }

    /// Whether the files make one run: `Ok(None)` for unsharded files or every shard of one
    /// schedule, `Ok(Some(missing))` when `allow_missing` let a short run through (the
    /// caller warns), else what is wrong, naming the files.
    pub fn check(&self, allow_missing: bool) -> Result<Option<Vec<u32>>, ShardMergeError> {
        // Every (file, schedule, shards) group, in the order given.
        let groups: Vec<(&str, &str, u32, &BTreeSet<u32>)> = self
            .files
            .iter()
            .flat_map(|f| {
                f.sharded
                    .iter()
                    .map(move |((id, n), set)| (f.name.as_str(), id.as_str(), *n, set))
            })
            .collect();
        let Some(&(first, first_id, first_n, first_set)) = groups.first() else {
            return Ok(None);
        };
        if let Some(plain) = self.files.iter().find(|f| f.plain > 0) {
            return Err(ShardMergeError::Mixed {
                plain: plain.name.clone(),
                sharded: first.to_owned(),
                shard: *first_set.first().expect("a shard"),
                shards: first_n,
                schedule: first_id.to_owned(),
            });
        }
        for &(name, id, n, _) in &groups[1..] {
            if id != first_id {
                return Err(ShardMergeError::Schedules {
                    a: first.to_owned(),
                    a_id: first_id.to_owned(),
                    b: name.to_owned(),
                    b_id: id.to_owned(),
                });
            }
            if n != first_n {
                return Err(ShardMergeError::Counts {
                    a: first.to_owned(),
                    a_n: first_n,
                    b: name.to_owned(),
                    b_n: n,
                    schedule: id.to_owned(),
                });
            }
        }
        let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
        for &(name, _, n, set) in &groups {
            for &i in set {
                if let Some(a) = seen.insert(i, name) {
                    return Err(ShardMergeError::Twice {
                        shard: i,
                        shards: n,
                        a: a.to_owned(),
                        b: name.to_owned(),
                    });
                }
            }
        }
        let missing: Vec<u32> = (0..first_n).filter(|i| !seen.contains_key(i)).collect();
        if missing.is_empty() {
            Ok(None)
        } else if allow_missing {
            Ok(Some(missing))
        } else {
            Err(ShardMergeError::Missing {
                missing,
                shards: first_n,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    /// A record's (shard, shards, schedule), or `None` for an unsharded one.
    type Fields<'a> = Option<(u32, u32, &'a str)>;

    fn rec(shard: Fields) -> Record {
        let mut r = super::super::tests::rec(0, 0, 10, 200);
        if let Some((i, n, id)) = shard {
            (r.shard, r.shards, r.schedule) = (Some(i), Some(n), Some(id.into()));
        }
        r
    }

    fn census(files: &[(&str, &[Fields])]) -> ShardCensus {
        let mut c = ShardCensus::default();
        for (name, records) in files {
            c.file(name);
            for &r in *records {
                c.add(&rec(r));
            }
        }
        c
    }

    #[test]
    fn unsharded_files_and_complete_shards_pass() {
        assert_eq!(
            census(&[("a", &[None]), ("b", &[None])]).check(false),
            Ok(None)
        );
        let all = census(&[
            ("s0", &[Some((0, 3, "x")), Some((0, 3, "x"))]),
            ("s1", &[Some((1, 3, "x"))]),
            ("s2", &[Some((2, 3, "x"))]),
        ]);
        assert_eq!(all.check(false), Ok(None));
        // Shards concatenated into one file are one run too.
        let cat = census(&[("all", &[Some((1, 2, "x")), Some((0, 2, "x"))])]);
        assert_eq!(cat.check(false), Ok(None));
    }

    #[test]
    fn a_missing_shard_is_named() {
        let c = census(&[
            ("s0", &[Some((0, 4, "x"))]),
            ("s1", &[Some((1, 4, "x"))]),
            ("s3", &[Some((3, 4, "x"))]),
        ]);
        let e = c.check(false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "shard 2 of 4 is missing: the report would be of a short run; pass all 4 shard files, or --allow-missing-shards to report what is there"
        );
        assert_eq!(c.check(true), Ok(Some(vec![2])));
        let c = census(&[("s1", &[Some((1, 4, "x"))])]);
        assert!(
            c.check(false)
                .unwrap_err()
                .to_string()
                .starts_with("shards 0, 2 and 3 of 4 are missing")
        );
    }

    #[test]
    fn files_of_other_runs_are_refused_by_name() {
        let e = census(&[
            ("a.jsonl", &[Some((0, 2, "x"))]),
            ("b.jsonl", &[Some((1, 2, "y"))]),
        ])
        .check(true)
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "a.jsonl and b.jsonl are shards of different schedules (schedule x and y"
            ),
            "{e}"
        );
        let e = census(&[
            ("a.jsonl", &[Some((0, 2, "x"))]),
            ("b.jsonl", &[Some((1, 3, "x"))]),
        ])
        .check(true)
        .unwrap_err()
        .to_string();
        assert!(e.contains("(shards 2 and 3)"), "{e}");
        let e = census(&[("a.jsonl", &[Some((0, 2, "x"))]), ("p.jsonl", &[None])])
            .check(true)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.jsonl is from an unsharded run and a.jsonl from `attack --shard`"),
            "{e}"
        );
        let e = census(&[
            ("a.jsonl", &[Some((0, 2, "x"))]),
            ("copy.jsonl", &[Some((0, 2, "x"))]),
        ])
        .check(true)
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "shard 0 of 2 is in both a.jsonl and copy.jsonl; pass each shard's file once"
        );
    }
}
