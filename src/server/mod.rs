//! The embedded reference server (`rpload serve`). Placeholder until the server lands.

use crate::cli::ServeArgs;

/// Runs the server from its command-line flags until Ctrl-C.
pub async fn run_cli(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("serve is not built yet")
}
