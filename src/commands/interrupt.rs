//! Ctrl-C for every command that sends load: one path from the signal to the attacker's
//! [`Control`], the same for `attack` and every phase of a `sweep`.
//!
//! The first signal stops scheduling; requests in flight may finish until the drain limit
//! (the request timeout), after which they are aborted. A second signal aborts at once. An
//! aborted request still becomes a record (`error_kind: cancelled`), so no request that was sent
//! is missing from the results file: the process never exits from here, it lets the attacker
//! write what it has and the command return [`crate::exit::Interrupted`] (status 130).

use std::time::Duration;

use crate::attack::Control;

/// Listens for Ctrl-C until the returned guard is dropped (the command ended).
pub fn install(control: &Control, drain: Duration) -> Guard {
    let control = control.clone();
    let task = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!(
            "rpload: stopping; in-flight requests get up to {} to finish (Ctrl-C again to abort them; they are recorded as cancelled)",
            crate::pacer::format_duration(drain)
        );
        control.stop.cancel();
        tokio::select! {
            () = tokio::time::sleep(drain) => {}
            r = tokio::signal::ctrl_c() => if r.is_ok() {
                eprintln!("rpload: aborting in-flight requests");
            },
        }
        control.abort.cancel();
    });
    Guard(task)
}

/// Stops listening when dropped, so a later command in the same process (tests) is not stopped
/// by a signal meant for this one.
pub struct Guard(tokio::task::JoinHandle<()>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.abort();
    }
}
