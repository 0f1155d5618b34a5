//! GPT-NeoX parity: the fixtures made by `scripts/make_gpt_neox_fixture.py` with HuggingFace
//! transformers load through the real folder path and must give the same logits (1e-4, f32) and
//! the same 16-token greedy continuation. A copy whose fused QKV is re-laid as contiguous thirds
//! must NOT match: it proves the check can tell the two layouts apart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use rpload::server::engine::{self, DeviceKind, EngineError, GptNeox, ModelSpec, SeqInput};

#[derive(serde::Deserialize)]
struct Expected {
    input_ids: Vec<u32>,
    prompt_logits: Vec<f32>,
    greedy_tokens: Vec<u32>,
    last_step_logits: Vec<f32>,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected(dir: &Path) -> Expected {
    serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Prefill then greedy decode through the KV cache: (prompt logits, tokens, last-step logits).
fn run(dir: &Path, exp: &Expected) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
    run_with(dir, exp, true)
}

/// `host_attention`: the f32 CPU kernel (true) or candle ops (false, the f16/bf16/CUDA path).
fn run_with(dir: &Path, exp: &Expected, host_attention: bool) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
    let loaded = engine::load(
        &ModelSpec::Folder(dir.to_path_buf()),
        DType::F32,
        DeviceKind::Cpu,
    )
    .expect("fixture loads");
    let mut model = loaded.model;
    model.set_host_attention(host_attention);
    assert_eq!(
        loaded
            .tokenizer
            .encode(
                "The quick brown fox jumps over the lazy dog, and the server answers every request."
            )
            .unwrap(),
        exp.input_ids
    );
    let mut cache = model.new_cache(64).unwrap();
    let mut feed = exp.input_ids.clone();
    let (mut first, mut last, mut tokens) = (None, Vec::new(), Vec::new());
    for _ in 0..exp.greedy_tokens.len() {
        let mut batch = [SeqInput {
            tokens: &feed,
            cache: &mut cache,
        }];
        let logits = model.logits(&mut batch).unwrap().remove(0);
        let next = logits
            .iter()
            .enumerate()
            .fold(0, |best, (i, &v)| if v > logits[best] { i } else { best })
            as u32;
        first.get_or_insert_with(|| logits.clone());
        last = logits;
        tokens.push(next);
        feed = vec![next];
    }
    (first.unwrap(), tokens, last)
}

fn check_fixture(name: &str) {
    for host_attention in [true, false] {
        check_fixture_with(name, host_attention);
    }
}

fn check_fixture_with(name: &str, host_attention: bool) {
    let dir = fixture(name);
    let exp = expected(&dir);
    let (prompt, tokens, last) = run_with(&dir, &exp, host_attention);
    let name = format!("{name} (host attention: {host_attention})");
    let d = max_diff(&prompt, &exp.prompt_logits);
    assert!(d < 1e-4, "{name}: prompt logits differ by {d}");
    assert_eq!(tokens, exp.greedy_tokens, "{name}: greedy continuation");
    let d = max_diff(&last, &exp.last_step_logits);
    assert!(
        d < 1e-4,
        "{name}: last-step logits (through the KV cache) differ by {d}"
    );
}

#[test]
fn parallel_residual_partial_rotary_matches_transformers() {
    check_fixture("gpt_neox_parallel");
}

#[test]
fn sequential_residual_full_rotary_sharded_matches_transformers() {
    check_fixture("gpt_neox_sequential");
}

/// Rewrites every fused QKV from HF's per-head `[q,k,v]` rows into contiguous thirds
/// (`[q_all; k_all; v_all]`), i.e. a checkpoint laid out the way a wrong loader would assume.
fn relayout_as_thirds(src: &Path, dst: &Path, heads: usize) {
    let tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut out: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in tensors {
        let t = if name.contains("query_key_value") {
            let dims = t.dims().to_vec();
            let hd = dims[0] / (3 * heads);
            let rest: usize = dims[1..].iter().product();
            t.reshape((heads, 3, hd, rest))
                .unwrap()
                .transpose(0, 1)
                .unwrap()
                .contiguous()
                .unwrap()
                .reshape(dims)
                .unwrap()
        } else {
            t
        };
        out.insert(name, t);
    }
    candle_core::safetensors::save(&out, dst.join("model.safetensors")).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
}

#[test]
fn qkv_laid_out_as_contiguous_thirds_fails_the_check() {
    let src = fixture("gpt_neox_parallel");
    let exp = expected(&src);
    let tmp = tempfile::tempdir().unwrap();
    relayout_as_thirds(&src, tmp.path(), 2);
    let (prompt, tokens, _) = run(tmp.path(), &exp);
    let d = max_diff(&prompt, &exp.prompt_logits);
    assert!(d > 1e-2, "a wrong QKV layout must not match (max diff {d})");
    assert_ne!(tokens, exp.greedy_tokens);
}

#[test]
fn misshaped_and_missing_tensors_are_named_with_both_shapes() {
    let src = fixture("gpt_neox_parallel");
    let tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let name = "gpt_neox.layers.1.mlp.dense_h_to_4h.weight";
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let mut bad = tensors.clone();
    bad.insert(
        name.to_string(),
        Tensor::zeros((64, 32), DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&bad, tmp.path().join("model.safetensors")).unwrap();
    let spec = ModelSpec::Folder(tmp.path().to_path_buf());
    let err = engine::load(&spec, DType::F32, DeviceKind::Cpu)
        .err()
        .expect("misshaped fails");
    assert!(matches!(err, EngineError::ShapeMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(name) && msg.contains("[64, 32]") && msg.contains("[128, 32]"),
        "{msg}"
    );

    let mut missing = tensors;
    missing.remove(name);
    candle_core::safetensors::save(&missing, tmp.path().join("model.safetensors")).unwrap();
    let err = engine::load(&spec, DType::F32, DeviceKind::Cpu)
        .err()
        .expect("missing fails");
    assert!(matches!(err, EngineError::MissingTensor { .. }), "{err}");
    assert!(err.to_string().contains(name), "{err}");
}

#[test]
fn batched_sequences_match_running_alone() {
    for host_attention in [true, false] {
        batched_sequences_match_running_alone_with(host_attention);
    }
}

fn batched_sequences_match_running_alone_with(host_attention: bool) {
    // Two sequences of different lengths in one step give the same logits as each alone:
    // the ragged batch must not leak attention across sequences.
    let dir = fixture("gpt_neox_sequential");
    let exp = expected(&dir);
    let loaded = engine::load(&ModelSpec::Folder(dir), DType::F32, DeviceKind::Cpu).unwrap();
    let mut model = loaded.model;
    model.set_host_attention(host_attention);
    let a = &exp.input_ids[..];
    let b = &exp.input_ids[5..17];
    let alone = |model: &mut GptNeox, ids: &[u32]| {
        let mut c = model.new_cache(2).unwrap(); // small: exercises host cache growth
        model
            .logits(&mut [SeqInput {
                tokens: ids,
                cache: &mut c,
            }])
            .unwrap()
            .remove(0)
    };
    let (la, lb) = (alone(&mut model, a), alone(&mut model, b));
    let (mut ca, mut cb) = (model.new_cache(8).unwrap(), model.new_cache(8).unwrap());
    let both = model
        .logits(&mut [
            SeqInput {
                tokens: a,
                cache: &mut ca,
            },
            SeqInput {
                tokens: b,
                cache: &mut cb,
            },
        ])
        .unwrap();
    assert!(max_diff(&both[0], &la) < 1e-4);
    assert!(max_diff(&both[1], &lb) < 1e-4);
    // And a decode step for both at different positions.
    let next = model
        .logits(&mut [
            SeqInput {
                tokens: &[5],
                cache: &mut ca,
            },
            SeqInput {
                tokens: &[7],
                cache: &mut cb,
            },
        ])
        .unwrap();
    let mut a2 = a.to_vec();
    a2.push(5);
    let mut b2 = b.to_vec();
    b2.push(7);
    assert!(max_diff(&next[0], &alone(&mut model, &a2)) < 1e-4);
    assert!(max_diff(&next[1], &alone(&mut model, &b2)) < 1e-4);
}

#[test]
fn decode_from_device_inputs_matches_the_planned_step() {
    // The CUDA-graph body (every input a device tensor, the batch padded to a bucket of 4
    // slots and 64 keys) must give the logits of the ordinary decode step, with full rotary
    // (scale folded into q's tables) and partial rotary (scale applied apart).
    for name in ["gpt_neox_sequential", "gpt_neox_parallel"] {
        decode_from_device_matches(name);
    }
}

fn decode_from_device_matches(name: &str) {
    let dir = fixture(name);
    let exp = expected(&dir);
    let loaded = engine::load(&ModelSpec::Folder(dir), DType::F32, DeviceKind::Cpu).unwrap();
    let mut model = loaded.model;
    model.set_host_attention(false);
    model.reserve_cache(4, 128).unwrap();
    let (a, b) = (&exp.input_ids[..], &exp.input_ids[3..11]);
    let (mut ca, mut cb) = (model.new_cache(64).unwrap(), model.new_cache(64).unwrap());
    model
        .logits(&mut [
            SeqInput {
                tokens: a,
                cache: &mut ca,
            },
            SeqInput {
                tokens: b,
                cache: &mut cb,
            },
        ])
        .unwrap();
    let (pa, pb) = (ca.len() as u32, cb.len() as u32);
    assert_eq!((ca.slot(), cb.slot()), (Some(0), Some(1)));
    // Rows: token, position, cache row to write, keys visible; slots 2 and 3 are padding.
    let input: Vec<u32> = [
        [5, 7, 0, 0],
        [pa, pb, 0, 0],
        [pa, pb, 127, 127],
        [pa + 1, pb + 1, 1, 1],
    ]
    .concat();
    let input = Tensor::from_vec(input, (4, 4), &Device::Cpu).unwrap();
    let arange = Tensor::arange(0u32, 64, &Device::Cpu).unwrap();
    let graph = model
        .decode_from_device(&input, &arange)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let step = model
        .logits(&mut [
            SeqInput {
                tokens: &[7],
                cache: &mut cb,
            },
            SeqInput {
                tokens: &[5],
                cache: &mut ca,
            },
        ])
        .unwrap();
    assert!(max_diff(&graph[0], &step[1]) < 1e-4, "{name}");
    assert!(max_diff(&graph[1], &step[0]) < 1e-4, "{name}");
}
