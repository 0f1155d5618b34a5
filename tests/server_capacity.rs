//! Capacity faults on the candle attention path (the CUDA path; here on CPU in f16): a request
//! the KV cache pool cannot take is refused as overloaded (TGI's 503 `overloaded`) while the
//! others finish, and the server goes on serving. The pool is given fewer slots than the
//! scheduler's batch limit on purpose, which is what an out-of-memory admission looks like to
//! the scheduler.

use std::sync::Arc;

use candle_core::DType;
use rpload::server::engine::sampler::SamplingParams;
use rpload::server::engine::{self, DeviceKind, ModelSpec};
use rpload::server::metrics::Metrics;
use rpload::server::scheduler::{BatchLimits, Event, SchedulerHandle, SchedulerKind};
use rpload::server::validate::ValidRequest;

fn request(tokens: usize) -> ValidRequest {
    ValidRequest {
        input_ids: vec![5, 6, 7, 8],
        max_new_tokens: tokens,
        stop: Vec::new(),
        ignore_eos: true,
        sampling: SamplingParams::default(),
        stream: false,
    }
}

async fn outcome(mut s: rpload::server::scheduler::TokenStream) -> Event {
    loop {
        match s.next().await.expect("the worker answers every request") {
            Event::Token(_) => continue,
            other => return other,
        }
    }
}

#[tokio::test]
async fn a_request_without_a_cache_slot_is_refused_as_overloaded_and_the_rest_run() {
    let spec = ModelSpec::Preset {
        name: "tiny".into(),
        seed: 0,
    };
    let loaded = engine::load(&spec, DType::F16, DeviceKind::Cpu).unwrap();
    let mut model = loaded.model;
    assert!(!model.uses_host_attention(), "f16 takes the pooled path");
    model.reserve_cache(1, 64).unwrap();
    let limits = BatchLimits {
        max_batch_size: 2,
        max_batch_total_tokens: 10_000,
        max_batch_prefill_tokens: 4096,
    };
    let sched = SchedulerHandle::start(
        SchedulerKind::Continuous,
        limits,
        Box::new(model),
        loaded.tokenizer,
        Arc::new(Metrics::new(63, 64)),
        1,
    )
    .unwrap();
    let a = sched.submit(request(8)).unwrap();
    let b = sched.submit(request(8)).unwrap();
    let (a, b) = (outcome(a).await, outcome(b).await);
    let ended = [&a, &b]
        .iter()
        .filter(|e| matches!(e, Event::End(_, g) if g.generated_tokens == 8))
        .count();
    let refused: Vec<&String> = [&a, &b]
        .into_iter()
        .filter_map(|e| match e {
            Event::Overloaded(msg) => Some(msg),
            _ => None,
        })
        .collect();
    // Both may run one after the other if the first ended before the second was admitted;
    // when they were admitted together, exactly one is refused with the pool's reason.
    assert_eq!(ended + refused.len(), 2, "{a:?} / {b:?}");
    assert!(ended >= 1);
    for msg in &refused {
        assert!(msg.contains("cache slots are in use"), "{msg}");
        assert!(msg.contains("--max-batch-size"), "{msg}");
    }
    // The server lives on: the slot came back and a new request runs to the end.
    let c = outcome(sched.submit(request(3)).unwrap()).await;
    assert!(
        matches!(c, Event::End(_, ref g) if g.generated_tokens == 3),
        "{c:?}"
    );

    // A reservation longer than a slot is refused with the limit, not failed.
    let d = outcome(sched.submit(request(100)).unwrap()).await;
    match d {
        Event::Overloaded(msg) => {
            assert!(
                msg.contains("104 cache tokens") && msg.contains("at most 64"),
                "{msg}"
            )
        }
        other => panic!("expected overloaded, got {other:?}"),
    }
}
