//! rpload: open-loop, token-aware load testing and cost benchmarking for LLM endpoints.
//!
//! Layers, each importing only the ones below it (no module imports one above, no two import
//! each other):
//!
//! ```text
//! commands    the command line: flags of each subcommand, printing, exit status
//! sweep       the driver (clock, order of events) -> a RunSink (the run folder) and an Observer;
//!             scrape: the server's /metrics beside each step
//! report      renderers: Vegeta's text/json/hist/hdrplot; a sweep's csv, markdown, png, table;
//!             two sweeps compared
//! analysis    pure judging: pace, closed-loop scaling, goodput, verdict, search, per-step and
//!             per-rate summary, headline, two sweeps compared (the regression rule); server
//!             (the server's own figures, from its Prometheus scrapes)
//! scenario    what the user writes: the file, rate or concurrency plans, SLOs, verdict rules
//! attack      options -> setup -> clock (pacer waits) -> api clients -> Record (one per request)
//! server      http (axum) -> validate -> scheduler (continuous | single) -> engine (candle)
//! cost        prices, the study's cost formulas, capacity plans
//! wire        serde types of TGI's and OpenAI's bodies and stream events: the attacker
//!             writes and reads them, the server reads and writes them
//! workload    what each request carries: synthetic token-exact text, datasets, traces,
//!             shared prefixes, conversation turns (built before the schedule starts)
//! base        metrics, record, prompts, tokens, pacer (pure schedule), exit, overlay, toml_error,
//!             size (byte sizes), redact (secrets kept off disk), errors (message text)
//! ```
//!
//! `attack` and `server` share only `wire` and never import each other. [`run`] builds
//! the runtime for one parsed command line; `main.rs` only parses and prints its error.

pub mod analysis;
pub mod attack;
pub mod commands;
pub mod cost;
pub mod errors;
pub mod exit;
pub mod fnv;
pub mod metrics;
pub mod overlay;
pub mod pacer;
pub mod prompts;
pub mod record;
pub mod redact;
pub mod report;
pub mod scenario;
pub mod server;
pub mod size;
pub mod sweep;
pub mod tokens;
pub mod toml_error;
pub mod wire;
pub mod workload;

use std::process::ExitCode;

/// Runs one command to completion on a fresh tokio runtime.
pub fn run(cli: commands::Cli) -> anyhow::Result<ExitCode> {
    // The reference server's compute threads are set process-wide before any thread starts:
    // for `serve`, and for a target-less `sweep`, which runs the server in-process.
    if let Some(cfg) = cli.command.server() {
        server::configure_process(&cfg);
    }
    // The attacker's own runtime is one thread (its results sink, and the only driver with
    // --workers 1); more workers get runtime threads of their own (attack/workers.rs). A
    // request is a few microseconds of work, and a work-stealing runtime handing it between
    // threads (futex wake-ups, context switches) cost more than it saved; on 2 cores one
    // thread took the open-loop ceiling from 20k to 30k req/s.
    let mut builder = if matches!(cli.command, commands::Command::Attack(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = builder.enable_all().build()?;
    runtime.block_on(run_async(cli))
}

/// The async body of [`run`], for callers that already own a runtime (tests).
pub async fn run_async(cli: commands::Cli) -> anyhow::Result<ExitCode> {
    commands::run(cli).await
}
