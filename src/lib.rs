//! rpload: open-loop, token-aware load testing and cost benchmarking for LLM endpoints.
//!
//! Two trees share only the wire types:
//!
//! ```text
//! load side:   scenario -> prompts -> pacer -> attack -> api client -> Outcome -> Record (disk)
//!                                                                         └-> Metrics -> Summary -> cost -> report
//! server side: http (axum) -> validate -> scheduler (continuous | single) -> engine (candle GPT-NeoX)
//! ```
//!
//! `run` dispatches one parsed command line; `main.rs` only prints its error.

pub mod cli;
pub mod server;

use std::process::ExitCode;

/// Runs one command to completion on a fresh multi-threaded tokio runtime.
pub fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    // Before any thread exists: the server's compute thread count is process-wide.
    // The allow: on this branch `serve` is the only command; the others arrive with the merge.
    #[allow(irrefutable_let_patterns)]
    if let cli::Command::Serve(args) = &cli.command {
        if let Ok(cfg) = server::ServerConfig::from_args(args) {
            server::configure_process(&cfg);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(cli))
}

/// The async body of [`run`], for callers that already own a runtime (tests).
pub async fn run_async(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        cli::Command::Serve(args) => server::run_cli(args).await.map(|()| ExitCode::SUCCESS),
    }
}
