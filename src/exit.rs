//! Exit statuses, one table for every command (README "Exit codes"): 0 the run passed, 1 the
//! target failed the test, 2 bad input, 3 the run itself failed, 130 interrupted. Commands
//! return 0 or 1 as an `ExitCode`; errors carry their class as a marker in the error chain,
//! and `main` maps the chain to a status with [`code`].

use std::process::ExitCode;

/// The run passed.
pub const PASSED: u8 = 0;
/// The target failed the test: no sustainable step, every request failed, below
/// `--fail-under`, or an error ratio above `--fail-on-errors`.
pub const FAILED: u8 = 1;
/// Bad input: a flag, scenario, file or target refused before any request.
pub const BAD_INPUT: u8 = 2;
/// The run itself failed after it started (I/O: writing results, the client could not run).
pub const RUN_FAILED: u8 = 3;
/// Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
pub const INTERRUPTED: u8 = 130;

/// Marks an error as a Ctrl-C.
#[derive(Debug, thiserror::Error)]
#[error("interrupted (Ctrl-C)")]
pub struct Interrupted;

/// Marks an error as the run failing after it started; the text says what was kept.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RunFailed(pub String);

/// The status for an error: [`INTERRUPTED`], [`RUN_FAILED`] or [`BAD_INPUT`].
pub fn code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<Interrupted>().is_some() {
        INTERRUPTED
    } else if err.downcast_ref::<RunFailed>().is_some() {
        RUN_FAILED
    } else {
        BAD_INPUT
    }
}

/// [`FAILED`] when `failed`, else [`PASSED`].
pub fn status(failed: bool) -> ExitCode {
    ExitCode::from(if failed { FAILED } else { PASSED })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn markers_survive_context() {
        let e = anyhow::Error::new(Interrupted)
            .context("step 3")
            .context("sweep");
        assert_eq!(code(&e), INTERRUPTED);
        let e = anyhow::anyhow!("disk full").context(RunFailed("kept in dir".into()));
        assert_eq!(code(&e.context("outer")), RUN_FAILED);
        let e: anyhow::Result<()> = Err(std::io::Error::other("no such file")).context("--prompts");
        assert_eq!(code(&e.unwrap_err()), BAD_INPUT);
    }
}
