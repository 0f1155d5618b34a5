//! The verdict rule against simulated servers of known capacity (a FIFO worker and a
//! continuous-batching engine) at 0.9x and 1.1x, in 1 s bursts and long steps, with failures,
//! and the client, SLO, stop and outcome rules.

use super::*;
use std::time::Duration;

use crate::analysis::pace::PaceCall;
use crate::analysis::pace::PaceData;
use crate::scenario::slo::Slo;

/// One simulated request: intended send (s), latency (s), success.
type Req = (f64, f64, bool);

/// A tiny deterministic jitter source (no clock, no global state).
struct Lcg(u64);
impl Lcg {
    /// Uniform in [-1, 1).
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// One worker, first come first served, each request `service` s (+/- 0.5% jitter, about
/// what a loopback server shows): the study's FastAPI app. Capacity `1 / service`.
fn fifo(rate: f64, duration: f64, service: f64) -> Vec<Req> {
    let mut jitter = Lcg(7);
    let n = (rate * duration).round().max(1.0) as usize;
    let mut free_at = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            let end = t.max(free_at) + service * (1.0 + 0.005 * jitter.next());
            free_at = end;
            (t, end - t, true)
        })
        .collect()
}

/// Continuous batching: up to `batch` sequences decode together, each needs 20 steps, a
/// step takes 5 ms + 0.5 ms per sequence; waiting requests join between steps (TGI's
/// shape). Capacity `batch / (20 x step(batch))`: 61.5 req/s for a batch of 16.
fn batching(rate: f64, duration: f64, batch: usize) -> Vec<Req> {
    let n = (rate * duration).round().max(1.0) as usize;
    let arrive: Vec<f64> = (0..n).map(|i| i as f64 / rate).collect();
    let mut end = vec![0.0; n];
    let (mut now, mut next) = (0.0f64, 0usize);
    let mut active: Vec<(usize, u32)> = Vec::new();
    while next < n || !active.is_empty() {
        while active.len() < batch && next < n && arrive[next] <= now {
            active.push((next, 20));
            next += 1;
        }
        if active.is_empty() {
            now = arrive[next];
            continue;
        }
        now += 0.005 + 0.0005 * active.len() as f64;
        for a in active.iter_mut() {
            a.1 -= 1;
            if a.1 == 0 {
                end[a.0] = now;
            }
        }
        active.retain(|a| a.1 > 0);
    }
    (0..n)
        .map(|i| (arrive[i], end[i] - arrive[i], true))
        .collect()
}

const BATCH_CAPACITY: f64 = 16.0 / (20.0 * 0.013);

fn figures(offered: f64, reqs: &[Req]) -> StepFigures {
    let mut pace = PaceData::default();
    let mut lat: Vec<f64> = Vec::new();
    for &(t, l, ok) in reqs {
        let ns = |s: f64| (s * 1e9) as u64;
        pace.add(ns(t), ns(t), ns(l), ok);
        if ok {
            lat.push(l);
        }
    }
    lat.sort_by(f64::total_cmp);
    let ok = lat.len() as f64 / reqs.len().max(1) as f64;
    let p50 = lat.get(lat.len() / 2).copied().unwrap_or(0.0) * 1e9;
    StepFigures {
        offered_rps: offered,
        requests: reqs.len() as u64,
        success_ratio: ok,
        pace: pace.estimate(offered, ok, VerdictRules::default().max_slope()),
        send_lag_p99_ns: 200_000.0,
        latency: Pcts {
            p50,
            p95: p50,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn status(offered: f64, reqs: &[Req]) -> (Status, String) {
    let v = judge(&figures(offered, reqs), &VerdictRules::default());
    (v.status(), v.describe())
}

#[test]
fn fifo_at_0_9_and_1_1_of_capacity_in_bursts_and_long_steps() {
    let capacity = 1.0 / 0.3;
    for duration in [1.0, 2.0, 10.0, 60.0] {
        let below = capacity * 0.9;
        let (s, why) = status(below, &fifo(below, duration, 0.3));
        assert_eq!(s, Status::Sustainable, "x0.9 for {duration} s: {why}");
        let above = capacity * 1.1;
        let (s, why) = status(above, &fifo(above, duration, 0.3));
        assert_eq!(s, Status::Unsustainable, "x1.1 for {duration} s: {why}");
        assert!(why.starts_with("fell behind"), "{why}");
    }
}

#[test]
fn the_studys_one_second_bursts_of_one_to_six() {
    // One request at a time in 0.3 s: capacity 3.33 req/s.
    let want = [
        Status::Undetermined,
        Status::Undetermined,
        Status::Sustainable,
        Status::Unsustainable,
        Status::Unsustainable,
        Status::Unsustainable,
    ];
    for (rate, want) in (1..=6).zip(want) {
        let reqs = fifo(rate as f64, 1.0, 0.3);
        let f = figures(rate as f64, &reqs);
        let (s, why) = status(rate as f64, &reqs);
        assert_eq!(s, want, "{rate} req/s: {why}");
        // The served rate is never above what the server can do, nor the arrivals.
        assert!(
            f.pace.served_rps <= capacity_or(rate as f64) + 0.05,
            "{f:?}"
        );
    }
    let (_, why) = status(1.0, &fifo(1.0, 1.0, 0.3));
    assert!(
        why.starts_with("too few requests to judge: 1 succeeded"),
        "{why}"
    );
}

fn capacity_or(rate: f64) -> f64 {
    rate.min(1.0 / 0.3)
}

#[test]
fn batching_at_0_9_and_1_1_of_capacity_in_bursts_and_long_steps() {
    for duration in [1.0, 10.0, 30.0] {
        let below = BATCH_CAPACITY * 0.9;
        let (s, why) = status(below, &batching(below, duration, 16));
        assert_eq!(s, Status::Sustainable, "x0.9 for {duration} s: {why}");
    }
    for duration in [10.0, 30.0] {
        let above = BATCH_CAPACITY * 1.1;
        let (s, why) = status(above, &batching(above, duration, 16));
        assert_eq!(s, Status::Unsustainable, "x1.1 for {duration} s: {why}");
    }
    // A 1 s burst at x1.1 leaves a backlog of about 5 requests (80 ms) behind a 260 ms
    // batch whose latencies move in whole decode steps: never called sustainable, and
    // called unsustainable once the overload is clear of that scatter.
    let above = BATCH_CAPACITY * 1.1;
    let (s, why) = status(above, &batching(above, 1.0, 16));
    assert_ne!(s, Status::Sustainable, "x1.1 burst: {why}");
    let far = BATCH_CAPACITY * 1.3;
    let (s, why) = status(far, &batching(far, 1.0, 16));
    assert_eq!(s, Status::Unsustainable, "x1.3 burst: {why}");
}

#[test]
fn failures_fail_the_step_without_moving_the_trend() {
    // 3% of requests shed with a 0.7 ms 429, below capacity: unsustainable for success,
    // and the pace of the successes is still judged on them alone.
    let mut reqs = fifo(3.0, 10.0, 0.3);
    for (i, r) in reqs.iter_mut().enumerate() {
        if i % 33 == 5 {
            *r = (r.0, 0.0007, false);
        }
    }
    let v = judge(&figures(3.0, &reqs), &VerdictRules::default());
    assert_eq!(v.status(), Status::Unsustainable);
    assert!(matches!(v.failures[..], [Failure::Success { .. }]), "{v:?}");
    // Every request failed: unsustainable, not "too few".
    let all_failed: Vec<Req> = (0..10).map(|i| (i as f64 * 0.1, 0.001, false)).collect();
    let v = judge(&figures(10.0, &all_failed), &VerdictRules::default());
    assert_eq!(v.status(), Status::Unsustainable);
    assert!(
        v.describe().starts_with("success 0.00%"),
        "{}",
        v.describe()
    );
}

#[test]
fn an_overloaded_step_fails_on_its_own_figures() {
    // The first step of a sweep already overloaded: no other step is needed to see it.
    let (s, why) = status(10.0, &fifo(10.0, 10.0, 0.2));
    assert_eq!(s, Status::Unsustainable, "{why}");
    let f = figures(10.0, &fifo(10.0, 10.0, 0.2));
    assert!((f.pace.served_rps - 5.0).abs() < 0.2, "{:?}", f.pace);
}

#[test]
fn a_noisy_trend_near_the_bound_is_undetermined() {
    // 6% latency growth (just past the 5.3% bound) buried in +/- 100 ms of scatter.
    let mut jitter = Lcg(3);
    let reqs: Vec<Req> = (0..20)
        .map(|i| {
            let t = i as f64 * 0.05;
            (t, 0.3 + 0.06 * t + 0.1 * jitter.next(), true)
        })
        .collect();
    let v = judge(&figures(20.0, &reqs), &VerdictRules::default());
    assert_eq!(v.status(), Status::Undetermined, "{v:?}");
    assert!(matches!(v.doubts[..], [Doubt::Noisy { .. }]));
}

#[test]
fn client_rules() {
    let rules = VerdictRules::default();
    let base = figures(30.0, &fifo(30.0, 10.0, 0.01));
    // 30 req/s against a 100 ms target with 5 ms of send lag (a busy core): kept up.
    let mut f = base.clone();
    f.latency.p50 = 100e6;
    f.send_lag_p99_ns = 5e6;
    assert!(judge(&f, &rules).sustainable(), "{:?}", judge(&f, &rules));
    // Twice the allowance: the client fell behind.
    f.send_lag_p99_ns = 20e6;
    let v = judge(&f, &rules);
    assert!(
        matches!(v.failures[..], [Failure::ClientLagged { max_ns, explicit: false, .. }] if max_ns == 10e6)
    );
    // Answers read late (receive lag) fail the client rule on their own.
    let mut late = base.clone();
    (late.recv_lag_p99_ns, late.recv_lag_limit_ns) = (3e6, 2e6);
    assert_eq!(
        judge(&late, &rules).describe(),
        "client fell behind reading: receive-lag p99 3.000ms > 2.000ms"
    );
    late.recv_lag_p99_ns = 1.5e6;
    assert!(judge(&late, &rules).sustainable());
    // An explicit --max-send-lag wins.
    let explicit = VerdictRules {
        max_send_lag: Some(Duration::from_millis(50)),
        ..VerdictRules::default()
    };
    assert!(judge(&f, &explicit).sustainable());
    // Requests held back by the in-flight cap name it.
    let mut f = base.clone();
    f.capped = 12;
    f.max_inflight = Some(2);
    assert_eq!(
        judge(&f, &rules).describe(),
        "client fell behind: 12 requests waited for the in-flight cap (--max-inflight 2)"
    );
    // Sends that left at 80% of the scheduled rate.
    let mut f = base;
    f.pace.sent_rps = Some(24.0);
    assert!(
        judge(&f, &rules)
            .describe()
            .contains("sent 24.00/s of 30.00/s")
    );
}

#[test]
fn slo_clauses_and_reasons_as_data() {
    let rules = VerdictRules {
        slo: Slo::parse("p95<150ms,ttft_p95<500ms").unwrap(),
        ..Default::default()
    };
    let mut f = figures(3.0, &fifo(3.0, 10.0, 0.2));
    f.latency.p95 = 200e6;
    let v = judge(&f, &rules);
    assert_eq!(
        v.describe(),
        "SLO p95<150ms missed: p95 200.0ms; SLO ttft_p95<500ms not measurable: no ttft data from successful requests"
    );
    let reasons = v.reasons();
    assert_eq!(reasons[0].rule, "slo");
    assert_eq!(
        (reasons[0].measured, reasons[0].limit),
        (Some(200.0), Some(150.0))
    );
    f.ttft = Some(Pcts {
        p95: 4e8,
        ..Default::default()
    });
    f.latency.p95 = 1e8;
    assert!(judge(&f, &rules).sustainable());
    let none = StepFigures::default();
    assert_eq!(judge(&none, &rules).failures, [Failure::NoRequests]);
}

#[test]
fn sweep_outcomes() {
    assert_eq!(
        sweep_outcome(Axis::Rate, Some(10.0), 100, 100, None),
        SweepOutcome::Passed
    );
    assert_eq!(
        sweep_outcome(Axis::Rate, Some(10.0), 100, 0, None),
        SweepOutcome::AllFailed
    );
    assert_eq!(
        sweep_outcome(Axis::Rate, None, 0, 0, None),
        SweepOutcome::AllFailed
    );
    assert_eq!(
        sweep_outcome(Axis::Rate, None, 100, 90, None),
        SweepOutcome::NoSustainable
    );
    assert_eq!(
        sweep_outcome(Axis::Rate, Some(10.0), 100, 100, Some(25.0)).to_string(),
        "the highest sustainable rate 10 req/s is below --fail-under 25"
    );
    assert_eq!(
        sweep_outcome(Axis::Rate, Some(25.0), 100, 100, Some(25.0)),
        SweepOutcome::Passed
    );
}

#[test]
fn stop_rule_and_headline() {
    use Status::{Sustainable as S, Undetermined as D, Unsustainable as U};
    assert!(!should_stop(&[S, U], true));
    assert!(should_stop(&[S, U, U], true));
    assert!(!should_stop(&[S, U, U], false));
    assert!(!should_stop(&[U, S, U], true));
    // Undetermined rates neither count nor break a run of unsustainable ones.
    assert!(!should_stop(&[D, D, U], true));
    assert!(should_stop(&[U, D, U], true));
    assert!(!should_stop(&[U, U, D], true));
    assert_eq!(headline(&[(10.0, S), (20.0, S), (30.0, U)]), Some(1));
    assert_eq!(
        headline(&[(10.0, S), (20.0, U), (30.0, S), (40.0, U)]),
        Some(2)
    );
    assert_eq!(headline(&[(10.0, D), (20.0, U)]), None);
    assert_eq!(Status::fold([S, D]), D);
    assert_eq!(Status::fold([S, U, D]), U);
    assert_eq!(Status::fold([S, S]), S);
    // Repeats that cannot tell are decided by their pooled trend; a failure is never undone.
    assert_eq!(fold_repeats(&[S, D, D], PaceCall::KeptPace), S);
    assert_eq!(fold_repeats(&[D, D, D], PaceCall::FellBehind), U);
    assert_eq!(fold_repeats(&[D, D, D], PaceCall::TooFew), D);
    assert_eq!(fold_repeats(&[U, D, S], PaceCall::KeptPace), U);
    assert_eq!(fold_repeats(&[D], PaceCall::KeptPace), D);
}

/// A closed-loop step of `users` with `successes` of `n` requests at `rps`, latency cv 0.05.
fn closed(users: u32, rps: f64, n: u64, successes: u64, below: Option<(u32, f64)>) -> Verdict {
    let level = |users, rps, successes| crate::analysis::scaling::Level {
        users,
        throughput_rps: rps,
        successes,
        latency_cv: 0.05,
    };
    let fig = StepFigures {
        offered_rps: 0.0,
        requests: n,
        success_ratio: successes as f64 / n as f64,
        // The open-loop figures of a closed loop say nothing; the verdict must not read them.
        pace: PaceEstimate {
            call: PaceCall::FellBehind,
            ..Default::default()
        },
        send_lag_p99_ns: 1e12,
        capped: n,
        latency: Pcts {
            p50: 1e8,
            p95: 1e8,
            ..Default::default()
        },
        closed_loop: Some(ClosedLoop {
            here: level(users, rps, successes),
            below: below.map(|(u, r)| level(u, r, 200)),
        }),
        ..Default::default()
    };
    judge(&fig, &VerdictRules::default())
}

#[test]
fn a_closed_loop_is_judged_on_success_slo_and_scaling_only() {
    // The first level has nothing below it: success and the SLO decide.
    assert_eq!(
        closed(1, 10.0, 100, 100, None).status(),
        Status::Sustainable
    );
    // Twice the users, twice the throughput: still scaling.
    assert_eq!(
        closed(4, 40.0, 400, 400, Some((2, 20.0))).status(),
        Status::Sustainable
    );
    // Twice the users, the same throughput: the added users only waited.
    let v = closed(8, 40.5, 400, 400, Some((4, 40.0)));
    assert_eq!(v.status(), Status::Unsustainable);
    assert_eq!(v.reasons()[0].rule, "scaling");
    assert!(
        v.describe().contains("from 4 to 8 users"),
        "{}",
        v.describe()
    );
    // Failures still count.
    let v = closed(2, 20.0, 100, 90, Some((1, 10.0)));
    assert_eq!(v.reasons()[0].rule, "success");
    // Two requests cannot tell anything.
    let v = closed(2, 20.0, 2, 2, Some((1, 10.0)));
    assert_eq!(v.status(), Status::Undetermined);
    assert_eq!(v.reasons()[0].rule, "too_few");
}

#[test]
fn a_concurrency_fail_under_names_users() {
    let o = sweep_outcome(Axis::Concurrency, Some(4.0), 100, 100, Some(8.0));
    assert_eq!(
        o.to_string(),
        "the highest sustainable concurrency 4 users is below --fail-under 8"
    );
}
