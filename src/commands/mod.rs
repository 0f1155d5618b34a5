//! The command line: one file per subcommand, each owning its flags (clap derive; the doc
//! comments are the `--help` text), turning them into the library's option structs, calling
//! the library, and printing. The only layer that knows clap's command types or writes to the
//! terminal; everything below takes option structs and returns values.
//!
//! The option structs shared between commands are flattened in, not repeated:
//! [`crate::attack::options::AttackOptions`] (attack, sweep, scenario files),
//! [`crate::server::ServerOptions`] (serve, a target-less sweep, `[serve]`), and the
//! scenario's [`crate::scenario::SweepSection`] and [`crate::scenario::CostSection`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod attack;
pub mod compare;
pub mod cost;
pub mod interrupt;
pub mod plan;
pub mod report;
pub mod serve;
pub mod sweep;
pub mod sweep_bars;
pub mod sweep_shards;

pub use attack::AttackArgs;
pub use compare::CompareArgs;
pub use cost::CostArgs;
pub use plan::PlanArgs;
pub use report::ReportArgs;
pub use serve::ServeArgs;
pub use sweep::SweepArgs;

/// Open-loop, token-aware load testing and cost benchmarking for LLM endpoints.
#[derive(Debug, Parser)]
// A flag given twice takes its last value, as in most tools: a scenario wrapper script or a
// shell alias can set a default that the user's own flag then replaces.
#[command(name = "rpload", version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send requests at a fixed rate (open loop) and write one JSON record per request.
    Attack(Box<AttackArgs>),
    /// Summarise result files (merged exactly) as text, JSON, a histogram or an HDR plot.
    Report(Box<ReportArgs>),
    /// Run the embedded reference server: GPT-NeoX on candle behind TGI, OpenAI and FastAPI routes.
    Serve(Box<ServeArgs>),
    /// Attack at each rate of a plan, judge every step, and write reports/<run-id>/
    /// (steps.csv, summary.json, results.jsonl, report.md, charts).
    Sweep(Box<SweepArgs>),
    /// Cost per 1K tokens and per 1K requests for a rate on an instance (the study's formula).
    Cost(CostArgs),
    /// Instances and monthly cost to serve a target load, from measured sweeps (cheapest first).
    Plan(PlanArgs),
    /// Two sweep runs side by side (headline, latency and cost at the levels both measured,
    /// an overlay chart); exit status 1 when NEW regresses beyond --tolerance.
    Compare(Box<CompareArgs>),
}

impl Command {
    /// The reference server this command runs in-process, if any: `serve`, and a sweep
    /// with no target.
    pub fn server(&self) -> Option<crate::server::ServerConfig> {
        match self {
            Command::Serve(args) => args.config().ok(),
            Command::Sweep(args) => args.embedded_server().ok().flatten(),
            _ => None,
        }
    }
}

/// Runs one parsed command line to completion.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Attack(args) => attack::run(*args).await,
        Command::Report(args) => report::run(*args).await,
        Command::Serve(args) => serve::run(*args).await,
        Command::Sweep(args) => sweep::run(*args).await,
        Command::Cost(args) => print(cost::text(&args)?),
        Command::Plan(args) => print(plan::text(&args)?),
        Command::Compare(args) => compare::run(&args),
    }
}

/// Prints a command's whole text output.
fn print(text: String) -> anyhow::Result<ExitCode> {
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag of every subcommand says what it does in `--help`.
    #[test]
    fn every_flag_has_help_text() {
        let cli = super::Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                if help.trim().is_empty() && !arg.is_hide_set() {
                    missing.push(format!("{} --{}", sub.get_name(), arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "flags without help: {missing:?}");
    }
}
