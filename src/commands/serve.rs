//! `rpload serve`: the reference server on the user's address until Ctrl-C, with its API key
//! and the warning for an open address without one.

use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;

use crate::server::{self, ApiKey, ServerConfig, ServerOptions};

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
    /// Require `Authorization: Bearer KEY` on every route but /health and /metrics (401
    /// otherwise). Prefer the environment variable: a flag shows in the process list.
    #[arg(
        long,
        env = "RPLOAD_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<ApiKey>,
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
        Ok(ServerConfig {
            api_key: self.api_key.clone(),
            ..ServerConfig::from_options(&self.options())?
        })
    }
}

/// The warning for a server that anyone who can reach `ip` may use: `None` on loopback or with
/// an API key.
pub fn exposure_warning(ip: IpAddr, has_key: bool) -> Option<String> {
    (!ip.is_loopback() && !has_key).then(|| {
        format!(
            "rpload serve: warning: listening on {ip}, which is not loopback, with no API key: anyone who can reach it may generate; set RPLOAD_API_KEY (or --api-key) or bind --host 127.0.0.1"
        )
    })
}

/// `rpload serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config()?;
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{} (pick another --port)", args.host, args.port))?;
    let addr = listener.local_addr()?;
    if let Some(warning) = exposure_warning(addr.ip(), cfg.api_key.is_some()) {
        eprintln!("{warning}");
    }
    let verb = if cfg.mock.is_some() {
        "starting"
    } else {
        "loading"
    };
    eprintln!("rpload serve: {verb} {}", cfg.describe());
    let app = server::build(cfg).await?;
    eprintln!("rpload serve: listening on http://{addr} (Ctrl-C stops)");
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    server::serve(listener, ctrl_c, app).await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_only_for_an_open_address_without_a_key() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let warning = exposure_warning(any, false).unwrap();
        assert!(warning.contains("listening on 0.0.0.0, which is not loopback, with no API key"));
        assert_eq!(exposure_warning(any, true), None);
        assert_eq!(exposure_warning("127.0.0.1".parse().unwrap(), false), None);
        assert_eq!(exposure_warning("::1".parse().unwrap(), false), None);
    }

    #[test]
    fn api_key_reaches_the_config_and_never_its_debug() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let cli = Cli::parse_from(["serve", "--api-key", "k3y"]);
        let cfg = cli.serve.config().unwrap();
        assert_eq!(cfg.api_key, Some(ApiKey::new("k3y")));
        assert!(!format!("{cfg:?}").contains("k3y"));
    }
}
