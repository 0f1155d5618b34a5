//! Named model shapes served with seeded random weights, because weights cannot be downloaded
//! here. The shapes are the published configs (Pythia-70m, RedPajama-INCITE 3B/7B) plus `tiny`,
//! sized so a 2-core CPU saturates inside the default sweep (see bench/SERVE.md).
//! All presets use the embedded 1024-entry byte-level tokenizer (ids past it decode to nothing).
//! Must not load files.

use super::model::config::{Config, RopeParameters};

/// Names accepted by `--model` besides a folder.
pub const NAMES: &[&str] = &["tiny", "pythia-70m", "redpajama-3b", "redpajama-7b"];

/// The config of preset `name`, or `None` if it is not one.
pub fn config(name: &str) -> Option<Config> {
    let cfg = match name {
        // Narrow and deep: per-token arithmetic is small and per-step work (20 layers of ops)
        // is what batching shares. On a 2-core CPU with a 107-token prompt and 64 new tokens
        // it peaks near 130 req/s continuous and 75 req/s single (bench/SERVE.md), so the
        // default sweep (10..150 req/s) finds both knees inside its range, single's lower.
        // Sized by measurement on a 2-core CPU with the default sweep (10..150 step 15, 10 s
        // steps, the built-in short prompt, 64 new tokens): continuous sustains 10 req/s and
        // serves about 22 at 25; single serves about 7 and sustains no step (p90 at 10 req/s:
        // 0.9 s against 8 s). Its 13M f32 parameters (52 MB) overflow the caches, so a decode
        // step of one sequence is bound by weight reads and batching pays; the earlier 32-wide
        // shape ran so fast that both engines peaked alike near 55 req/s.
        "tiny" => shape(Shape {
            vocab: 1024,
            hidden: 320,
            layers: 10,
            heads: 5,
            intermediate: 1280,
            rotary: 0.25,
            parallel: true,
        }),
        "pythia-70m" => shape(Shape {
            vocab: 50304,
            hidden: 512,
            layers: 6,
            heads: 8,
            intermediate: 2048,
            rotary: 0.25,
            parallel: true,
        }),
        "redpajama-3b" => shape(Shape {
            vocab: 50432,
            hidden: 2560,
            layers: 32,
            heads: 32,
            intermediate: 10240,
            rotary: 1.0,
            parallel: false,
        }),
        "redpajama-7b" => shape(Shape {
            vocab: 50432,
            hidden: 4096,
            layers: 32,
            heads: 32,
            intermediate: 16384,
            rotary: 1.0,
            parallel: false,
        }),
        _ => return None,
    };
    Some(cfg)
}

struct Shape {
    vocab: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    intermediate: usize,
    rotary: f64,
    parallel: bool,
}

fn shape(s: Shape) -> Config {
    Config {
        vocab_size: s.vocab,
        hidden_size: s.hidden,
        num_hidden_layers: s.layers,
        num_attention_heads: s.heads,
        intermediate_size: s.intermediate,
        rotary_pct: Some(s.rotary),
        partial_rotary_factor: None,
        rotary_emb_base: Some(10000.0),
        rope_theta: None,
        rope_parameters: None::<RopeParameters>,
        max_position_embeddings: 2048,
        layer_norm_eps: 1e-5,
        use_parallel_residual: s.parallel,
        hidden_act: "gelu".to_string(),
        tie_word_embeddings: false,
        eos_token_id: Some(serde_json::json!(0)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_preset_is_a_valid_config() {
        for name in super::NAMES {
            let cfg = super::config(name).unwrap();
            cfg.check().unwrap();
        }
        assert!(super::config("nope").is_none());
    }
}
