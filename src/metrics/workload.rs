//! What was sent: distributions of the requests' prompt lengths, asked-for output lengths and
//! generated lengths, and the TTFT of each conversation turn (a later turn carries a longer
//! history, so its prefill, and its TTFT, grows). Folded record by record like the rest of
//! [`super::Metrics`], so shards merge exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Dist, Percentiles};
use crate::record::Record;

/// [`Dist`] resolves 1000 units and up: counts are kept in thousandths so that a 3-token
/// prompt is as exact as a 3000-token one.
const SCALE: u64 = 1000;
/// Turns shown one by one; later turns are counted in the last row.
pub const TURN_ROWS: u32 = 16;

#[derive(Clone, Debug, Default)]
pub struct WorkloadMetrics {
    input: Dist,
    requested: Dist,
    output: Dist,
    ttft_by_turn: BTreeMap<u32, Dist>,
}

/// A token-count distribution as a report shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lengths {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// TTFT of successful requests of one turn (`turn` = [`TURN_ROWS`]: that turn and later).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnTtft {
    pub turn: u32,
    pub ttft: Percentiles,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSummary {
    /// Prompt tokens of every request (the server's count where it gave one).
    pub input: Lengths,
    /// The output length each request asked for.
    pub requested: Lengths,
    /// Tokens generated, successful requests.
    pub output: Lengths,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<TurnTtft>,
}

impl WorkloadMetrics {
    pub fn add(&mut self, r: &Record) {
        if let Some(n) = r.tokens_in {
            self.input.record(n.saturating_mul(SCALE));
        }
        if let Some(n) = r.tokens_out_requested {
            self.requested.record(n.saturating_mul(SCALE));
        }
        if r.is_success() {
            if let Some(n) = r.tokens_out {
                self.output.record(n.saturating_mul(SCALE));
            }
            if let (Some(turn), Some(t)) = (r.turn, r.ttft_ns) {
                self.ttft_by_turn
                    .entry(turn.clamp(1, TURN_ROWS))
                    .or_default()
                    .record(t);
            }
        }
    }

    /// None when no record said what it asked for (plain HTTP, or files older than the field).
    pub fn summary(&self) -> Option<WorkloadSummary> {
        if self.requested.count() == 0 && self.input.count() == 0 {
            return None;
        }
        Some(WorkloadSummary {
            input: lengths(&self.input),
            requested: lengths(&self.requested),
            output: lengths(&self.output),
            turns: self
                .ttft_by_turn
                .iter()
                .map(|(&turn, d)| TurnTtft {
                    turn,
                    ttft: d.percentiles(),
                })
                .collect(),
        })
    }
}

fn lengths(d: &Dist) -> Lengths {
    let p = d.percentiles();
    let n = |v: u64| v.saturating_add(SCALE / 2) / SCALE;
    Lengths {
        count: p.count,
        min: n(p.min),
        mean: if p.count == 0 {
            0.0
        } else {
            p.total as f64 / p.count as f64 / SCALE as f64
        },
        p50: n(p.p50),
        p90: n(p.p90),
        p99: n(p.p99),
        max: n(p.max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn rec(tokens_in: u64, asked: u64, out: u64, turn: Option<u32>, ttft_ms: u64) -> Record {
        let mut r = crate::metrics::tests::rec(0, 0, 10, 200);
        r.tokens_in = Some(tokens_in);
        r.tokens_out_requested = Some(asked);
        r.tokens_out = Some(out);
        r.turn = turn;
        r.ttft_ns = Some(ttft_ms * 1_000_000);
        r
    }

    #[test]
    fn lengths_are_exact_for_small_counts_and_turns_are_split() {
        let mut m = Metrics::default();
        for (i, turn) in [(3, 1), (5, 1), (7, 2), (9, 20)] {
            m.add(&rec(i, 2 * i, i, Some(turn), i));
        }
        let w = m.summary().workload.unwrap();
        assert_eq!((w.input.min, w.input.max, w.input.count), (3, 9, 4));
        assert!((w.input.mean - 6.0).abs() < 1e-9);
        assert_eq!((w.requested.min, w.requested.max), (6, 18));
        assert_eq!(
            w.turns.iter().map(|t| t.turn).collect::<Vec<_>>(),
            [1, 2, TURN_ROWS]
        );
        assert_eq!(w.turns[0].ttft.count, 2);
        assert_eq!(w.turns[1].ttft.max, 7_000_000);
    }
}
