//! Tests of [`ServerConfig`]: flags to config, the errors that name them, derived limits.

use super::*;
use clap::Parser;

/// The options as `rpload serve` parses them from its flags.
fn args(extra: &[&str]) -> ServerOptions {
    #[derive(Parser)]
    struct Serve {
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        opts: ServerOptions,
    }
    let mut argv = vec!["serve"];
    argv.extend_from_slice(extra);
    let s = Serve::parse_from(argv);
    ServerOptions {
        model: s.model,
        ..s.opts
    }
}

#[test]
fn defaults_are_the_embedded_server() {
    let cfg = ServerConfig::from_options(&args(&[])).unwrap();
    assert_eq!(cfg, ServerConfig::default());
    assert_eq!(cfg.compute_threads(), 1);
}

#[test]
fn bad_flags_name_the_flag_and_the_fix() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--engine", "fast"],
            "--engine `fast` is unknown: use continuous, single or mock",
        ),
        (
            &["--dtype", "f8"],
            "--dtype `f8` is unknown: use f32, f16 or bf16",
        ),
        (
            &["--device", "tpu"],
            "--device `tpu` is unknown: use cpu, cuda or cuda:N (the GPU's index, from 0)",
        ),
        (
            &["--model", "/no/such/dir"],
            "--model `/no/such/dir` is neither a preset",
        ),
        (
            &["--max-concurrent-requests", "0"],
            "--max-concurrent-requests must be at least 1",
        ),
        (
            &["--max-connections", "0"],
            "--max-connections must be at least 1",
        ),
        (
            &["--header-read-timeout", "0"],
            "--header-read-timeout (0) must be more than 0 and at most 3600 seconds",
        ),
        (
            &["--header-read-timeout", "NaN"],
            "--header-read-timeout (NaN) must be more than 0",
        ),
        (
            &["--max-input-tokens", "10", "--max-total-tokens", "10"],
            "--max-input-tokens (10) must be less than --max-total-tokens (10)",
        ),
        (
            &[
                "--max-total-tokens",
                "100",
                "--max-batch-total-tokens",
                "50",
            ],
            "--max-total-tokens (100) must be <= --max-batch-total-tokens (50)",
        ),
    ];
    for (flags, want) in cases {
        let err = ServerConfig::from_options(&args(flags))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(want), "{flags:?}: {err}");
    }
}

#[test]
fn limits_default_from_the_model_context() {
    let cfg = ServerConfig::default();
    let r = cfg.resolve(2048).unwrap();
    assert_eq!(
        (r.limits.max_input_tokens, r.limits.max_total_tokens),
        (2047, 2048)
    );
    assert_eq!(r.batch.max_batch_total_tokens, 16000);
    let too_long = ServerConfig {
        max_total_tokens: Some(4096),
        ..ServerConfig::default()
    };
    assert_eq!(
        too_long.resolve(2048).err().unwrap().to_string(),
        "--max-total-tokens (4096) exceeds the model's context (2048 positions): lower it"
    );
}

#[test]
fn device_names_a_gpu_by_index() {
    let device =
        |flag: &str| ServerConfig::from_options(&args(&["--device", flag])).map(|c| c.device);
    assert_eq!(device("cpu").unwrap(), DeviceKind::Cpu);
    assert_eq!(device("cuda").unwrap(), DeviceKind::Cuda(0));
    assert_eq!(device("cuda:1").unwrap(), DeviceKind::Cuda(1));
    for bad in ["gpu", "cuda:", "cuda:-1", "cuda:one"] {
        let e = device(bad).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "--device `{bad}` is unknown: use cpu, cuda or cuda:N (the GPU's index, from 0)"
            )
        );
    }
}

#[cfg(not(feature = "cuda"))]
#[tokio::test]
async fn cuda_without_the_feature_says_how_to_rebuild() {
    let cfg = ServerConfig::from_options(&args(&["--device", "cuda"])).unwrap();
    let err = format!("{:#}", build(cfg).await.err().unwrap());
    assert!(
        err.contains("rebuild with `cargo build --release --features cuda`"),
        "{err}"
    );
}
