//! Conversations (`--turns`): one tick of the schedule starts a session, whose turns run one
//! after another. Each later turn carries the earlier turns and the answers the server really
//! gave, and is due when the previous answer ended plus the think time, so its latency is
//! measured from that moment, not from when the session began. A failed turn ends its
//! session (the next turn would have no answer to carry); the records of the turns sent are
//! all kept, each marked with its session and turn.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::workload_spec::MAX_TURNS;
use super::{Job, Requests, Shared, execute};
use crate::attack::clock::Tick;
use crate::record::Record;

/// Whether this attack's ticks start conversations.
pub(super) fn conversations(shared: &Shared) -> bool {
    matches!(&shared.cfg.requests, Requests::Api { workload, .. } if workload.turns.is_some())
}

/// Runs session `tick.seq` to its last turn, a failure or a stop.
pub(super) async fn run(
    shared: &Arc<Shared>,
    tick: Tick,
    capped: bool,
    records: &mpsc::UnboundedSender<Record>,
) {
    let Requests::Api { api, workload } = &shared.cfg.requests else {
        return;
    };
    let Some(shape) = workload.turns else { return };
    let turns = workload.session_turns(tick.seq).clamp(1, MAX_TURNS);
    let mut history: Vec<(Arc<str>, Arc<str>)> = Vec::new();
    // Tokens the history adds to the next prompt: earlier texts and their answers.
    let mut carried = 0;
    let mut intended = tick.intended;
    // A conversation stays on the target of its first turn, where its history is cached.
    let mut target = None;
    for turn in 1..=turns {
        let seq = tick.seq * u64::from(MAX_TURNS) + u64::from(turn - 1);
        let mut prompt = workload.prompt(seq);
        let own = prompt.tokens.saturating_sub(workload.prefix_tokens());
        prompt.tokens += carried;
        prompt.history = history.clone();
        let lease = match target {
            None => shared.balancer.pick(tick.seq),
            Some(i) => shared.balancer.lease(i),
        };
        target = Some(lease.index);
        let job = Job::api(api, &prompt, lease);
        let (mut record, answer) =
            execute(shared, Tick { seq, intended }, capped && turn == 1, job).await;
        record.session = Some(tick.seq);
        record.turn = Some(turn);
        let tokens_out = record.tokens_out.unwrap_or(0);
        let failed = record.error_kind.is_some();
        if records.send(record).is_err() || failed {
            return;
        }
        let Some(answer) = answer else { return };
        carried += own + tokens_out;
        history.push((prompt.text.clone(), Arc::from(answer)));
        intended = shared.clock.elapsed() + shape.think;
        if turn < turns {
            let wait = intended.saturating_sub(shared.clock.elapsed());
            tokio::select! {
                () = shared.control.stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
