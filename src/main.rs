//! The `rpload` binary: parse the command line, hand it to the library, report errors.
//! All logic lives in `rpload::run` so that tests drive every command in-process; the exit
//! status of an error is `rpload::exit::code`'s.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = rpload::commands::Cli::parse();
    match rpload::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rpload: {err:#}");
            std::process::ExitCode::from(rpload::exit::code(&err))
        }
    }
}
