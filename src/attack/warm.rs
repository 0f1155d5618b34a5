//! Opening connections before the schedule starts, so an attack's first requests do not each
//! pay a connect (and a TLS handshake) that later ones skip: without it the first second of a
//! fast open-loop run is a herd of connects, all measured as latency and send lag.
//!
//! How many, per target and worker ([`connections`], pure): a closed loop's users each keep
//! one busy, so one per user. An open loop at `r` requests per second needs a new connection
//! whenever a request finds every open one busy; while one connection opens and answers (the
//! time `t` of the first warm-up request, measured), `r x t` more requests arrive and would
//! each open their own, so `ceil(r x t) + 1` are opened. Either is capped by the requests the
//! worker may have in flight, the requests it will send, and [`MAX_WARM`]; `--no-keepalive`
//! opens none (nothing would be reused). The count depends only on the schedule and the
//! measured time, never on earlier runs.
//!
//! `--no-warm-pool` turns it off. The warm-up requests are `HEAD`s to each target's URL: not part of the schedule, not
//! recorded, their answers ignored (a 404 or 405 leaves the connection open as well as a 200).
//! A target that does not answer costs at most [`BUDGET`]; its requests then fail or connect
//! as they would have.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::ClockKind;
use super::{AttackConfig, Requests};
use crate::pacer::Shard;

/// The most connections opened ahead per target and worker: far over what loopback or LAN
/// rates need (`r x t` stays in the tens), under any descriptor limit.
pub const MAX_WARM: usize = 256;
/// The longest the warm-up may take before the schedule starts anyway.
pub const BUDGET: Duration = Duration::from_secs(2);

/// What [`connections`] needs of one worker's part of the schedule, per target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Need {
    /// Requests per second this part sends to one target (open loop).
    pub rate: f64,
    /// Users of this part per target (closed loop).
    pub users: Option<usize>,
    /// Requests this part may have in flight.
    pub cap: usize,
    /// Requests this part will send per target, when bounded.
    pub quota: Option<u64>,
    pub keepalive: bool,
}

impl Need {
    /// `part` of `cfg`'s schedule, spread over its targets.
    pub fn of(cfg: &AttackConfig, part: Shard) -> Self {
        let targets = targets(&cfg.requests).len().max(1);
        let peak = cfg
            .ramp
            .as_ref()
            .map_or(cfg.rate.per_second(), |r| r.peak());
        let share = f64::from(part.count()) * targets as f64;
        Need {
            rate: peak / share,
            users: cfg
                .rate
                .is_unlimited()
                .then(|| part.closed_loop(cfg.max_inflight, None).0.div_ceil(targets)),
            cap: part.share_of(cfg.max_inflight as u64) as usize,
            quota: cfg
                .max_requests
                .map(|m| part.share_of(m).div_ceil(targets as u64)),
            keepalive: cfg.client.keepalive,
        }
    }
}

/// Connections to open to one target, the first of them having taken `probe`.
pub fn connections(need: &Need, probe: Duration) -> usize {
    if !need.keepalive {
        return 0;
    }
    let wanted = match need.users {
        Some(users) => users,
        None => (need.rate * probe.as_secs_f64()).ceil() as usize + 1,
    };
    let quota = need.quota.map_or(usize::MAX, |q| q as usize);
    wanted.min(need.cap).min(quota).min(MAX_WARM)
}

/// One URL per distinct origin among the attack's targets (a pool is per origin).
fn targets(requests: &Requests) -> Vec<Arc<str>> {
    let urls: Vec<Arc<str>> = match requests {
        Requests::Api { api, .. } => api.targets.iter().map(|t| t.url.clone()).collect(),
        Requests::Targets(specs) => specs.iter().map(|s| s.url.clone()).collect(),
    };
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for url in urls {
        let origin = reqwest::Url::parse(&url).map(|u| u.origin());
        if let Ok(origin) = origin
            && !seen.contains(&origin)
        {
            seen.push(origin);
            out.push(url);
        }
    }
    out
}

/// How long the warm-up may take: [`BUDGET`], less when `--start-at` comes sooner (the
/// shards must start together), none on tokio's paused clock (tests of exact timings).
pub fn budget(cfg: &AttackConfig) -> Duration {
    if cfg.clock == ClockKind::Tokio {
        return Duration::ZERO;
    }
    let until_start = cfg.start_at.map(|at| {
        let left = at - time::OffsetDateTime::now_utc() - time::Duration::milliseconds(50);
        Duration::try_from(left).unwrap_or_default()
    });
    until_start.map_or(BUDGET, |d| d.min(BUDGET))
}

/// Opens `part`'s connections to every target on `client`, within `budget`; returns how many
/// warm-up requests were answered. Runs on the runtime that will send the part's requests,
/// so the connections' tasks live there.
pub async fn open(
    client: &reqwest::Client,
    cfg: &AttackConfig,
    part: Shard,
    budget: Duration,
) -> usize {
    let need = Need::of(cfg, part);
    if !cfg.client.warm || !need.keepalive || budget.is_zero() {
        return 0;
    }
    let head = |url: Arc<str>| {
        let req = client.head(&*url).send();
        async move { req.await.is_ok() }
    };
    let per_target = targets(&cfg.requests).into_iter().map(|url| async move {
        let start = Instant::now();
        let first = head(url.clone()).await;
        let probe = start.elapsed();
        let n = connections(&need, probe);
        // The first connection is idle now: `n` at once keep it busy and open `n - 1` more.
        let rest = futures::future::join_all((0..n).map(|_| head(url.clone()))).await;
        // A request answered on a connection that came free first leaves its own connect
        // going on in the background, to join the pool when done: one more connect time
        // lets those land before the clock starts.
        tokio::time::sleep(probe).await;
        usize::from(first) + rest.into_iter().filter(|ok| *ok).count()
    });
    let all = futures::future::join_all(per_target);
    (tokio::time::timeout(budget, all).await).map_or(0, |counts| counts.into_iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(rate: f64, users: Option<usize>) -> Need {
        Need {
            rate,
            users,
            cap: 10_000,
            quota: None,
            keepalive: true,
        }
    }

    #[test]
    fn an_open_loop_opens_what_arrives_while_one_connects() {
        let ms = Duration::from_millis;
        // 20k req/s, 0.2 ms to open and answer on loopback: 4 arrive meanwhile.
        assert_eq!(
            connections(&need(20_000.0, None), Duration::from_micros(200)),
            5
        );
        // 50 req/s over a 300 ms TLS round trip: 15 meanwhile.
        assert_eq!(connections(&need(50.0, None), ms(300)), 16);
        // A slow rate needs only the one.
        assert_eq!(connections(&need(1.0, None), ms(5)), 2);
        assert_eq!(connections(&need(1e9, None), ms(100)), MAX_WARM);
    }

    #[test]
    fn a_closed_loop_opens_one_per_user_within_the_bounds() {
        assert_eq!(connections(&need(0.0, Some(64)), Duration::ZERO), 64);
        let capped = Need {
            cap: 8,
            ..need(0.0, Some(64))
        };
        assert_eq!(connections(&capped, Duration::ZERO), 8);
        let few = Need {
            quota: Some(3),
            ..need(0.0, Some(64))
        };
        assert_eq!(connections(&few, Duration::ZERO), 3);
        let off = Need {
            keepalive: false,
            ..need(0.0, Some(64))
        };
        assert_eq!(connections(&off, Duration::ZERO), 0);
    }
}
