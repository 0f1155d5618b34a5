//! Times one engine step for a preset, without HTTP or the scheduler:
//! `step_bench PRESET BATCH [prefill|decode] [f32|f16|bf16]` (CANDLE_ATTN=1 forces the pooled
//! candle attention on CPU f32). Prints wall time per step; run under `perf stat -e task-clock`
//! on a busy machine. `bench/gpu.sh` measures the server itself, through HTTP.
use candle_core::DType;
use rpload::server::engine::{self, DeviceKind, Engine, ModelSpec, SeqInput};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).cloned().unwrap_or("tiny".into());
    let b: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(1);
    let phase = args.get(3).cloned().unwrap_or("decode".into());
    let dtype = match args.get(4).map(String::as_str) {
        Some("f16") => DType::F16,
        Some("bf16") => DType::BF16,
        _ => DType::F32,
    };
    let loaded =
        engine::load(&ModelSpec::Preset { name, seed: 0 }, dtype, DeviceKind::Cpu).unwrap();
    let mut model = loaded.model;
    if std::env::var("CANDLE_ATTN").is_ok() {
        model.set_host_attention(false);
    }
    if !model.uses_host_attention() {
        model.reserve_cache(b, 400).unwrap();
    }
    let prompt: Vec<u32> = (0..107).map(|i| (i * 7 % 1000) as u32).collect();
    let mut caches: Vec<_> = (0..b).map(|_| model.new_cache(300).unwrap()).collect();
    let t0 = Instant::now();
    for c in caches.iter_mut() {
        model
            .step(
                &mut [SeqInput {
                    tokens: &prompt,
                    cache: c,
                }],
                &[true],
            )
            .unwrap();
    }
    if phase == "prefill" {
        println!(
            "prefill {:.3} ms/seq",
            t0.elapsed().as_secs_f64() * 1e3 / b as f64
        );
        return;
    }
    let steps = 64;
    let tok = [5u32];
    let t0 = Instant::now();
    for _ in 0..steps {
        let mut batch: Vec<SeqInput> = caches
            .iter_mut()
            .map(|c| SeqInput {
                tokens: &tok,
                cache: c,
            })
            .collect();
        model.step(&mut batch, &vec![true; b]).unwrap();
    }
    let per = t0.elapsed().as_secs_f64() / steps as f64;
    println!(
        "b={b} decode step {:.3} ms -> {:.0} tok/s",
        per * 1e3,
        b as f64 / per
    );
}
