//! The attack side of `--shard i/N` and `--start-at T`: checking both flags (against a "now"
//! and a pod index the caller passes in, so this reads no clock and no environment), cutting a
//! checked attack to its shard, and the schedule id every shard's records carry.
//!
//! The schedule id is a short hash of everything that decides which requests are sent when:
//! rate, arrival, seed, duration, ramp, request bounds, start instant and the options that
//! choose each request's content. Not the shard index: the N shards of one run share it, so
//! `rpload report` can tell shards of one schedule from files of different runs.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AttackConfig;
use super::options::AttackOptions;
use crate::pacer::{Shard, ShardError};

/// How far in the past a `--start-at` may be: the time between typing `date` and the pod
/// starting, not a forgotten old instant (those are refused).
pub const START_GRACE: Duration = Duration::from_secs(1);
/// How far ahead a `--start-at` may be: a pod that would sleep longer is a typo's.
pub const START_HORIZON: Duration = Duration::from_secs(7 * 24 * 3600);

const START_HINT: &str =
    "give every shard the same instant a little ahead, e.g. $(date -u -d '+30 sec' +%FT%TZ)";

/// A sharded attack: which shard this process sends, of which schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharding {
    pub shard: Shard,
    /// The schedule id ([`schedule_id`]): the same in every shard of one run.
    pub schedule: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardSetupError {
    #[error(transparent)]
    Shard(#[from] ShardError),
    #[error(
        "--start-at {text:?} is not an RFC 3339 instant ({cause}); write e.g. 2026-12-04T03:00:00Z: {START_HINT}"
    )]
    StartAtSyntax { text: String, cause: String },
    #[error("--start-at {text} is {ago} in the past (the schedule would start late); {START_HINT}")]
    StartAtPast { text: String, ago: String },
    #[error("--start-at {text} is more than 7 days ahead; {START_HINT}")]
    StartAtFar { text: String },
    #[error(
        "--shard {shard}: a closed loop of --max-inflight {users} users cannot be dealt to {count} shards (user u runs in shard u % N); raise --max-inflight to at least {count} or use fewer shards",
        count = .shard.count()
    )]
    FewUsers { shard: Shard, users: usize },
    #[error(
        "--shard {shard}: --max-requests {max} leaves some shards without a request; with {count} shards it must be at least {count}",
        count = .shard.count()
    )]
    FewRequests { shard: Shard, max: u64 },
}

/// `--start-at`: an RFC 3339 instant, at most [`START_GRACE`] before `now` and at most
/// [`START_HORIZON`] after it.
pub fn start_at(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, ShardSetupError> {
    let at = OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|e| {
        ShardSetupError::StartAtSyntax {
            text: text.to_owned(),
            cause: e.to_string(),
        }
    })?;
    let ahead = at - now;
    if ahead < -time::Duration::try_from(START_GRACE).expect("small") {
        let ago = Duration::try_from(-ahead).unwrap_or_default();
        return Err(ShardSetupError::StartAtPast {
            text: text.trim().to_owned(),
            ago: crate::pacer::format_duration(Duration::from_millis(ago.as_millis() as u64)),
        });
    }
    if ahead > time::Duration::try_from(START_HORIZON).expect("small") {
        return Err(ShardSetupError::StartAtFar {
            text: text.trim().to_owned(),
        });
    }
    Ok(at)
}

/// Applies `--shard` and `--start-at` to a checked attack. `job_index` is the pod's
/// `JOB_COMPLETION_INDEX` (for `auto/N`), `now` the wall clock the start is checked against.
pub fn apply(
    cfg: &mut AttackConfig,
    options: &AttackOptions,
    shard: Option<&str>,
    start: Option<&str>,
    job_index: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), ShardSetupError> {
    cfg.start_at = start.map(|t| start_at(t, now)).transpose()?;
    let Some(text) = shard else { return Ok(()) };
    let shard = Shard::parse(text, job_index)?;
    let count = u64::from(shard.count());
    if cfg.rate.is_unlimited() && (cfg.max_inflight as u64) < count {
        return Err(ShardSetupError::FewUsers {
            shard,
            users: cfg.max_inflight,
        });
    }
    if let Some(max) = cfg.max_requests
        && max < count
    {
        return Err(ShardSetupError::FewRequests { shard, max });
    }
    cfg.sharding = Some(Sharding {
        shard,
        schedule: schedule_id(cfg, options),
    });
    Ok(())
}

/// Options that do not change which request is due when: how it is sent and bounded, and the
/// fields [`schedule_id`] takes resolved from the checked attack instead.
const NOT_SCHEDULE: [&str; 17] = [
    "name",
    "headers",
    "header_file",
    "timeout",
    "max_body_size",
    "max_event_size",
    "insecure",
    "no_keepalive",
    "http1",
    "redirects",
    "arrival",
    "burstiness",
    "ramp",
    "max_requests",
    "max_inflight",
    "max_rate",
    "workers",
];

/// The schedule id of a checked attack made from `options`: 16 hex digits of FNV-1a over the
/// schedule as resolved (so `--rate 50` and `--rate 50/1s` agree) and the request options as
/// given. Stable across runs and machines (no per-process hash keys).
pub fn schedule_id(cfg: &AttackConfig, options: &AttackOptions) -> String {
    let mut fields: Vec<(String, String)> = vec![
        (
            "rate".into(),
            format!("{}/{}", cfg.rate.freq, cfg.rate.per.as_nanos()),
        ),
        ("duration".into(), cfg.duration.as_nanos().to_string()),
        ("arrival".into(), format!("{:?}", cfg.arrival)),
        (
            "ramp".into(),
            cfg.ramp.as_ref().map(|r| r.to_string()).unwrap_or_default(),
        ),
        ("max_requests".into(), format!("{:?}", cfg.max_requests)),
        (
            "start_at".into(),
            cfg.start_at
                .map(|t| t.unix_timestamp_nanos().to_string())
                .unwrap_or_default(),
        ),
    ];
    if cfg.rate.is_unlimited() {
        fields.push(("users".into(), cfg.max_inflight.to_string()));
        fields.push(("max_rate".into(), format!("{:?}", cfg.max_rate)));
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(options.redacted()) {
        for (key, value) in map {
            if !NOT_SCHEDULE.contains(&key.as_str()) {
                fields.push((key, value.to_string()));
            }
        }
    }
    fields.sort();
    let text = fields.iter().flat_map(|(key, value)| {
        key.bytes()
            .chain([b'='])
            .chain(value.bytes())
            .chain([b'\n'])
    });
    format!("{:016x}", crate::fnv::fnv1a(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::setup::{self, Schedule};

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2026-12-04T03:00:00Z", &Rfc3339).unwrap()
    }

    fn cfg(options: &AttackOptions, rate: &str) -> AttackConfig {
        setup::config(options, &Schedule::parse(rate, "2s").unwrap()).unwrap()
    }

    fn opts(extra: &[(&str, &str)]) -> AttackOptions {
        let mut o = AttackOptions {
            target: vec!["http://127.0.0.1:9".into()],
            ..Default::default()
        };
        for (k, v) in extra {
            match *k {
                "seed" => o.seed = Some(v.parse().unwrap()),
                "arrival" => o.arrival = Some((*v).into()),
                "prompt" => o.prompt = Some((*v).into()),
                "timeout" => o.timeout = Some((*v).into()),
                "name" => o.name = Some((*v).into()),
                _ => unreachable!(),
            }
        }
        o
    }

    #[test]
    fn start_at_is_refused_when_unparsable_past_or_far() {
        let ok = start_at("2026-12-04T03:00:30Z", now()).unwrap();
        assert_eq!(ok - now(), time::Duration::seconds(30));
        // Within the grace: the time it took to start the pod.
        assert!(start_at("2026-12-04T02:59:59.5Z", now()).is_ok());
        let e = start_at("2026-12-04T02:59:00Z", now())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--start-at 2026-12-04T02:59:00Z is 60s in the past (the schedule would start late); give every shard the same instant a little ahead, e.g. $(date -u -d '+30 sec' +%FT%TZ)"
        );
        let e = start_at("03:00", now()).unwrap_err().to_string();
        assert!(
            e.starts_with("--start-at \"03:00\" is not an RFC 3339 instant"),
            "{e}"
        );
        assert!(e.contains("date -u -d '+30 sec' +%FT%TZ"), "{e}");
        assert!(start_at("2027-01-04T03:00:00Z", now()).is_err());
    }

    #[test]
    fn the_schedule_id_follows_the_schedule_not_the_shard() {
        let base = opts(&[]);
        let id = |o: &AttackOptions, rate: &str| schedule_id(&cfg(o, rate), o);
        let a = id(&base, "50");
        assert_eq!(a.len(), 16);
        assert_eq!(a, id(&base, "50/1s"), "the same rate written two ways");
        // What a request is sent with, not what is sent when, leaves it alone.
        assert_eq!(a, id(&opts(&[("timeout", "5s"), ("name", "x")]), "50"));
        assert_ne!(a, id(&base, "40"));
        assert_ne!(a, id(&opts(&[("seed", "3")]), "50"));
        assert_ne!(a, id(&opts(&[("prompt", "hi")]), "50"));
        assert_ne!(
            id(&opts(&[("arrival", "poisson")]), "50"),
            id(&opts(&[("arrival", "poisson"), ("seed", "1")]), "50")
        );
        // The shard index is not part of it; the start instant is.
        let mut c = cfg(&base, "50");
        apply(&mut c, &base, Some("0/3"), None, None, now()).unwrap();
        let mut d = cfg(&base, "50");
        apply(&mut d, &base, Some("2/3"), None, None, now()).unwrap();
        let (c, d) = (c.sharding.unwrap(), d.sharding.unwrap());
        assert_eq!(c.schedule, d.schedule);
        assert_eq!((c.shard.index(), d.shard.index()), (0, 2));
        let mut e = cfg(&base, "50");
        let t = "2026-12-04T03:00:10Z";
        apply(&mut e, &base, Some("0/3"), Some(t), None, now()).unwrap();
        assert_ne!(e.sharding.unwrap().schedule, c.schedule);
    }

    #[test]
    fn a_shard_needs_a_user_and_a_request_of_its_own() {
        let mut o = opts(&[]);
        o.max_inflight = Some(2);
        o.max_requests = Some(10);
        let mut closed = cfg(&o, "0");
        let e = apply(&mut closed, &o, Some("0/3"), None, None, now()).unwrap_err();
        assert!(
            e.to_string()
                .contains("raise --max-inflight to at least 3 or use fewer shards"),
            "{e}"
        );
        o.max_inflight = None;
        o.max_requests = Some(2);
        let mut open = cfg(&o, "50");
        let e = apply(&mut open, &o, Some("2/3"), None, None, now()).unwrap_err();
        assert!(e.to_string().contains("it must be at least 3"), "{e}");
        let e = apply(&mut open, &o, Some("auto/3"), None, None, now()).unwrap_err();
        assert!(
            e.to_string().contains("JOB_COMPLETION_INDEX is not set"),
            "{e}"
        );
        o.max_requests = None;
        let mut open = cfg(&o, "50");
        apply(&mut open, &o, Some("auto/3"), None, Some("1"), now()).unwrap();
        assert_eq!(open.sharding.unwrap().shard.to_string(), "1/3");
    }
}
