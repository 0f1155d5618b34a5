//! `Record::check`: the invariants every record the attacker can write holds, so a reader can
//! refuse a line no real request produced (a corrupt, hand-edited or foreign file) instead of
//! folding it into the figures. Pure: the attacker may run it on what it is about to write.
//!
//! Only what is impossible is refused. A server that states more tokens than its response
//! could hold is a server bug worth recording as measured, not a broken record, so token
//! counts are left to the attacker.

use super::Record;

/// The longest latency a record may claim: 1e15 ns, about 11.6 days.
///
/// Latency counts from the intended send time, so a real one is at most the attack's length
/// plus its `--timeout` (a request due at the start that was never answered). Load tests run
/// for minutes or hours; the bound is set far past that so that even a week-long soak reads,
/// yet four orders of magnitude below `u64::MAX` ns (584 years), where the values a broken
/// file carries sit (`u64::MAX`, a negative number wrapped, a timestamp pasted into the wrong
/// field). Percentiles clamp at one hour anyway (`metrics::dist`); what the bound protects is
/// the sums, means and end times that would otherwise be dominated by one such line.
pub const MAX_LATENCY_NS: u64 = 1_000_000_000_000_000;

/// Why a record cannot describe a real request. Each variant names the field at fault
/// (`field`); the message says what must hold and how to get past it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(
        "latency: {latency} ns is over the {max} ns (about 11.6 days) no real request takes; the line is corrupt or hand-edited: fix the value or delete the line",
        max = MAX_LATENCY_NS
    )]
    Latency { latency: u64 },
    #[error(
        "ttft_ns: the first token at {ttft} ns came after the request ended ({latency} ns latency); both count from the intended send time, so ttft_ns must be at most latency: fix the values or delete the line"
    )]
    TtftAfterEnd { ttft: u64, latency: u64 },
    #[error(
        "sent_ns: sent at {sent} ns, before its intended time {intended} ns; a request never leaves before it is due, so sent_ns must be at least intended_ns: fix the values or delete the line"
    )]
    SentBeforeIntended { sent: u64, intended: u64 },
    #[error(
        "sent_ns: a send lag of {lag} ns is longer than the {latency} ns latency, so the request would have ended before it was sent; sent_ns - intended_ns must be at most latency: fix the values or delete the line"
    )]
    SentAfterEnd { lag: u64, latency: u64 },
    #[error(
        "itl_ns: the gaps between tokens add up to {sum} ns, more than the {latency} ns latency they happened within; fix the values or delete the line"
    )]
    ItlBeyondLatency { sum: u128, latency: u64 },
    #[error(
        "shard: shard {shard:?} of shards {shards:?} names no shard; `attack --shard I/N` writes both, with I below N and N at least 1: fix the values or delete the line"
    )]
    Shard {
        shard: Option<u32>,
        shards: Option<u32>,
    },
}

impl RecordError {
    /// The record field that is at fault, as spelled in the file.
    pub fn field(&self) -> &'static str {
        match self {
            RecordError::Latency { .. } => "latency",
            RecordError::TtftAfterEnd { .. } => "ttft_ns",
            RecordError::SentBeforeIntended { .. } | RecordError::SentAfterEnd { .. } => "sent_ns",
            RecordError::ItlBeyondLatency { .. } => "itl_ns",
            RecordError::Shard { .. } => "shard",
        }
    }
}

impl Record {
    /// Refuses a record that no request can have produced. Every bound allows equality: on a
    /// paused test clock a request can be sent, answered and timed in the same nanosecond.
    pub fn check(&self) -> Result<(), RecordError> {
        let latency = self.latency;
        if latency > MAX_LATENCY_NS {
            return Err(RecordError::Latency { latency });
        }
        if let Some(ttft) = self.ttft_ns
            && ttft > latency
        {
            return Err(RecordError::TtftAfterEnd { ttft, latency });
        }
        if self.sent_ns < self.intended_ns {
            return Err(RecordError::SentBeforeIntended {
                sent: self.sent_ns,
                intended: self.intended_ns,
            });
        }
        let lag = self.sent_ns - self.intended_ns;
        if lag > latency {
            return Err(RecordError::SentAfterEnd { lag, latency });
        }
        // Gaps are between token events, which all fall between the send and the end. The sum
        // is not compared with `latency - ttft`: TGI's first *counted* token may come after
        // earlier (special) token events, so the gaps can start before the TTFT instant.
        let sum: u128 = self.itl_ns.iter().map(|&g| u128::from(g)).sum();
        if sum > u128::from(latency) {
            return Err(RecordError::ItlBeyondLatency { sum, latency });
        }
        // A shard is I of N with I < N, or the record is of an unsharded run (neither).
        let (shard, shards) = (self.shard, self.shards);
        match (shard, shards) {
            (None, None) => {}
            (Some(i), Some(n)) if i < n => {}
            _ => return Err(RecordError::Shard { shard, shards }),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn a_real_record_passes_and_equality_is_allowed() {
        let rec = sample();
        assert_eq!(rec.check(), Ok(()));
        let mut edge = sample();
        edge.latency = MAX_LATENCY_NS;
        edge.ttft_ns = Some(MAX_LATENCY_NS);
        edge.sent_ns = edge.intended_ns;
        edge.itl_ns = vec![MAX_LATENCY_NS / 2, MAX_LATENCY_NS / 2];
        assert_eq!(edge.check(), Ok(()));
        let mut instant = sample();
        (instant.latency, instant.ttft_ns, instant.itl_ns) = (0, Some(0), vec![0, 0]);
        instant.sent_ns = instant.intended_ns;
        assert_eq!(instant.check(), Ok(()));
    }

    #[test]
    fn a_shard_outside_its_count_is_refused() {
        let mut rec = sample();
        (rec.shard, rec.shards) = (Some(2), Some(3));
        assert_eq!(rec.check(), Ok(()));
        for (shard, shards) in [
            (Some(3), Some(3)),
            (Some(0), Some(0)),
            (Some(1), None),
            (None, Some(2)),
        ] {
            (rec.shard, rec.shards) = (shard, shards);
            let err = rec.check().unwrap_err();
            assert_eq!(err, RecordError::Shard { shard, shards });
            assert_eq!(err.field(), "shard");
        }
    }

    #[test]
    fn latency_past_the_bound_is_refused() {
        let mut rec = sample();
        rec.latency = u64::MAX;
        rec.ttft_ns = None;
        let err = rec.check().unwrap_err();
        assert_eq!(err, RecordError::Latency { latency: u64::MAX });
        assert_eq!(err.field(), "latency");
        let msg = err.to_string();
        assert!(
            msg.starts_with("latency: 18446744073709551615 ns is over the 1000000000000000 ns"),
            "{msg}"
        );
        rec.latency = MAX_LATENCY_NS + 1;
        assert!(matches!(rec.check(), Err(RecordError::Latency { .. })));
    }

    #[test]
    fn ttft_after_the_end_is_refused() {
        let mut rec = sample();
        rec.ttft_ns = Some(rec.latency + 1);
        let err = rec.check().unwrap_err();
        assert_eq!(
            err,
            RecordError::TtftAfterEnd {
                ttft: 2_000_001,
                latency: 2_000_000
            }
        );
        assert_eq!(err.field(), "ttft_ns");
        assert!(err.to_string().contains("ttft_ns must be at most latency"));
    }

    #[test]
    fn sent_before_intended_is_refused() {
        let mut rec = sample();
        rec.sent_ns = rec.intended_ns - 1;
        let err = rec.check().unwrap_err();
        assert_eq!(
            err,
            RecordError::SentBeforeIntended {
                sent: 999,
                intended: 1_000
            }
        );
        assert_eq!(err.field(), "sent_ns");
        assert!(
            err.to_string()
                .starts_with("sent_ns: sent at 999 ns, before")
        );
    }

    #[test]
    fn a_send_lag_longer_than_the_latency_is_refused() {
        let mut rec = sample();
        rec.sent_ns = rec.intended_ns + rec.latency + 1;
        let err = rec.check().unwrap_err();
        assert_eq!(
            err,
            RecordError::SentAfterEnd {
                lag: 2_000_001,
                latency: 2_000_000
            }
        );
        assert_eq!(err.field(), "sent_ns");
    }

    #[test]
    fn token_gaps_longer_than_the_request_are_refused() {
        let mut rec = sample();
        rec.itl_ns = vec![1_000_000, 1_000_001];
        assert_eq!(
            rec.check(),
            Err(RecordError::ItlBeyondLatency {
                sum: 2_000_001,
                latency: 2_000_000
            })
        );
        // Gaps whose u64 sum would wrap to a small number are still caught.
        rec.itl_ns = vec![u64::MAX, u64::MAX, 4];
        let err = rec.check().unwrap_err();
        assert_eq!(
            err,
            RecordError::ItlBeyondLatency {
                sum: 2 * u128::from(u64::MAX) + 4,
                latency: 2_000_000
            }
        );
        assert_eq!(err.field(), "itl_ns");
    }
}
