//! `rpload serve`: the reference server on the user's address until Ctrl-C.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;

use crate::server::{self, ServerConfig, ServerOptions};

/// Flags of `rpload serve`: the model, the server's options (shared with a target-less
/// sweep), and where to listen.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Model: a preset (tiny, pythia-70m, redpajama-3b, redpajama-7b) with seeded random
    /// weights, or a local HuggingFace folder (config.json, *.safetensors, tokenizer.json)
    /// [default: tiny].
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub options: ServerOptions,
    /// The old spelling of --weights-seed (in a sweep --seed is the prompt draw's).
    #[arg(long, hide = true, conflicts_with = "weights_seed")]
    pub seed: Option<u64>,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

impl ServeArgs {
    /// The server options these flags set, the model and the old `--seed` included.
    pub fn options(&self) -> ServerOptions {
        ServerOptions {
            model: self.model.clone(),
            weights_seed: self.options.weights_seed.or(self.seed),
            ..self.options.clone()
        }
    }

    pub fn config(&self) -> Result<ServerConfig, server::ConfigError> {
        ServerConfig::from_options(&self.options())
    }
}

/// `rpload serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config()?;
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{} (pick another --port)", args.host, args.port))?;
    let addr = listener.local_addr()?;
    eprintln!("rpload serve: loading {}", cfg.describe());
    let router = server::build(cfg).await?;
    eprintln!("rpload serve: listening on http://{addr} (Ctrl-C stops)");
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    server::serve(listener, ctrl_c, router).await?;
    Ok(ExitCode::SUCCESS)
}
