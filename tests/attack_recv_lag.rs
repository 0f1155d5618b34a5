//! The receive side of "the client kept up": against a streaming fake server on a runtime of
//! its own, an attacker whose runtime is free reads every event within a millisecond of its
//! wake-up, and one whose runtime is held up (a task that blocks it 15 ms at a time, as an
//! overloaded receive loop would) records the lag per request, and its summary says the
//! client did not keep up, against the derived 1 ms allowance.

mod common;

use std::time::Duration;

use common::{Behaviour, attack, spawn, url};
use rpload::metrics::Metrics;

/// The fake server on its own thread and runtime, so holding up the test's runtime does not
/// hold up the server.
fn server_elsewhere(b: Behaviour) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            tx.send(spawn(b).await).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

async fn run(target: &str) -> rpload::metrics::Summary {
    let argv = [
        "--api",
        "tgi-stream",
        "--target",
        target,
        "--rate",
        "20/s",
        "--duration",
        "2s",
        "--workers",
        "1",
    ];
    let records = attack(&argv).await;
    assert!(records.len() >= 38, "{} requests", records.len());
    assert!(records.iter().all(|r| r.error.is_empty()), "all succeed");
    let mut m = Metrics::default();
    records.iter().for_each(|r| m.add(r));
    m.summary()
}

// The default flavour: one runtime thread, which the attack (one worker) shares with the hog.
#[tokio::test]
async fn a_held_up_receive_loop_is_flagged_and_a_free_one_is_not() {
    let addr = server_elsewhere(Behaviour {
        ttft: Duration::from_millis(10),
        itl: Duration::from_millis(10),
        tokens: 5,
        ..Behaviour::default()
    });
    let target = url(addr);

    let free = run(&target).await;
    // A tenth of the ITL (10-12 ms: the fake's timer rounds to whole milliseconds).
    assert!(
        (1_000_000..1_300_000).contains(&free.recv_lag_allowance),
        "{}",
        free.recv_lag_allowance
    );
    // Slack for a loaded CI box: a free loop reads within tens of microseconds here.
    assert!(
        free.recv_lag.p99 < 5_000_000,
        "recv lag p99 {} ns on a free runtime",
        free.recv_lag.p99
    );

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hog = tokio::spawn({
        let stop = stop.clone();
        async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(15));
                tokio::task::yield_now().await;
            }
        }
    });
    let held = run(&target).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    hog.await.unwrap();
    assert!(
        held.recv_lag.p99 > 5_000_000,
        "recv lag p99 {} ns with the runtime held up 15 ms at a time",
        held.recv_lag.p99
    );
    assert!(
        !held.client_kept_up,
        "the summary says the client fell behind"
    );
    assert!(held.recv_lag.p99 > held.recv_lag_allowance);
}
