//! rpload: open-loop, token-aware load testing and cost benchmarking for LLM endpoints.
//!
//! Two trees share only the wire types (`wire`: TGI and OpenAI bodies and stream events):
//!
//! ```text
//! load side:   scenario -> prompts -> pacer -> attack -> api client -> Outcome -> Record (disk)
//!                                                                         └-> Metrics -> Summary -> cost -> report
//! server side: http (axum) -> validate -> scheduler (continuous | single) -> engine (candle GPT-NeoX)
//! ```
//!
//! `run` dispatches one parsed command line; `main.rs` only prints its error.

pub mod attack;
pub mod cli;
pub mod cost;
pub mod exit;
pub mod metrics;
pub mod pacer;
pub mod prompts;
pub mod record;
pub mod report;
pub mod scenario;
pub mod server;
pub mod sweep;
pub mod wire;

use std::process::ExitCode;

/// Runs one command to completion on a fresh tokio runtime.
pub fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    // The reference server's compute threads are set process-wide before any thread starts:
    // for `serve`, and for a target-less `sweep`, which runs the server in-process.
    let server_cfg = match &cli.command {
        cli::Command::Serve(args) => server::ServerConfig::from_args(args).ok(),
        cli::Command::Sweep(args) if args.target.is_none() => {
            sweep::run::embedded_server_config(args).ok()
        }
        _ => None,
    };
    if let Some(cfg) = server_cfg {
        server::configure_process(&cfg);
    }
    // The attacker runs on one runtime thread beside its pacer thread: a request is a few
    // microseconds of work, and handing it between workers (futex wake-ups, context switches)
    // cost more than it saved; on 2 cores this took the open-loop ceiling from 20k to 30k req/s.
    let mut builder = if matches!(cli.command, cli::Command::Attack(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = builder.enable_all().build()?;
    runtime.block_on(run_async(cli))
}

/// The async body of [`run`], for callers that already own a runtime (tests).
pub async fn run_async(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        cli::Command::Attack(args) => attack::command::command(*args).await,
        cli::Command::Report(args) if args.sweep.is_some() => {
            let dir = args.sweep.as_deref().unwrap_or(std::path::Path::new("."));
            print(sweep::commands::report_sweep_text(dir)?)
        }
        cli::Command::Report(args) => report::command(*args).await,
        cli::Command::Serve(args) => server::run_cli(*args).await.map(|()| ExitCode::SUCCESS),
        cli::Command::Sweep(args) => sweep::run::run_cli(*args).await,
        cli::Command::Cost(args) => print(sweep::commands::cost_text(&args)?),
        cli::Command::Plan(args) => print(sweep::commands::plan_text(&args)?),
    }
}

/// Prints a command's whole text output.
fn print(text: String) -> anyhow::Result<ExitCode> {
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
