//! A sweep against a loopback server of known capacity: it serves `K` requests at once, each
//! for a fixed time `t`, and queues the rest, so it sustains exactly K / t requests per second.
//! The verdicts must land where that capacity says.

mod sweep_common;

use std::time::Duration;

use sweep_common::CapacityServer;

/// Four slots of 100 ms each: capacity 40 req/s.
const SLOTS: usize = 4;
const HOLD: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_land_where_the_capacity_says() {
    let server = CapacityServer::start(SLOTS, HOLD, None).await;
    let addr = server.addr;
    let dir = tempfile::tempdir().unwrap();
    // No send-lag bound is given: the derived one (a tenth of the 100 ms latency) must hold
    // on a shared CI machine.
    let text = format!(
        r#"
name = "capacity 40 req/s"
target = "http://{addr}"
api = "tgi"
max_new_tokens = 1
timeout = "10s"

[sweep]
rps = "10,20,30,60,80,100"
step_duration = "2s"
cooldown = "0s"

[cost]
price_per_hour = 1.624
"#
    );
    let s = sweep_common::drive_scenario(&text, dir.path()).await;
    drop(server);

    let verdicts: Vec<(f64, bool)> = s
        .steps
        .iter()
        .map(|r| (r.target_rps, r.sustainable))
        .collect();
    assert_eq!(
        verdicts,
        [
            (10.0, true),
            (20.0, true),
            (30.0, true),
            (60.0, false),
            (80.0, false)
        ],
        "{:#?}",
        s.steps
            .iter()
            .map(|r| (r.target_rps, r.served_rps, &r.verdict))
            .collect::<Vec<_>>()
    );
    assert!(
        s.stopped_early,
        "two unsustainable rates in a row end the sweep"
    );
    assert_eq!(s.headline.as_ref().unwrap().target_rps, 30.0);
    // Below capacity the served rate is the offered one; above it, well under.
    let served_30 = s.steps[2].served_rps;
    assert!(
        (28.5..33.0).contains(&served_30),
        "served {served_30} at 30 req/s offered"
    );
    let served_60 = s.steps[3].served_rps;
    assert!(
        served_60 < 0.9 * 60.0,
        "served {served_60} at 60 req/s offered"
    );
    assert!(s.steps[0].latency_ms.p50 >= 100.0 && s.steps[0].latency_ms.p50 < 150.0);
    assert!(s.steps.iter().all(|r| r.success_ratio == 1.0));
    // Every record was written with its step, and re-rendering gives the same summary.
    let lines = std::fs::read_to_string(dir.path().join("results.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2 * (10 + 20 + 30 + 60 + 80));
    assert_eq!(rpload::sweep::output::rebuild(dir.path()).unwrap(), s);
}
