//! Goodput: each request judged on its own against every SLO clause, as vLLM's `--goodput`
//! and DistServe's SLO attainment count it. A clause names a statistic of a distribution
//! (`ttft_p95<500ms`); judged per request it keeps the limit and drops the statistic: *this*
//! request's TTFT is under 500 ms. A request is good when it succeeded and meets every clause;
//! with no SLO every success is good.
//!
//! The per-request value of each family: `latency` from the intended send to the end,
//! `service` from the actual send, `ttft` the first token, `tpot` the request's mean gap after
//! its first token, `itl` its largest gap (a request meets `itl_p99<50ms` when none of its
//! tokens came later than 50 ms after the one before). A success without a first token cannot
//! show it met a TTFT clause and counts as a miss; one with a single token has no gaps, so the
//! ITL and TPOT clauses cannot fail on it. Pure: records in, counts out.

use crate::record::Record;
use crate::scenario::slo::{Clause, Family, Slo};

/// The per-request counts of one step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attainment {
    clauses: Vec<Clause>,
    /// Every request sent (failures count as misses).
    pub requests: u64,
    /// Successful requests meeting every clause.
    pub good: u64,
    /// Input + output tokens of the good requests.
    pub good_tokens: u64,
}

impl Attainment {
    /// Counts for requests judged against `slo`.
    pub fn new(slo: &Slo) -> Self {
        Self {
            clauses: slo.clauses.clone(),
            ..Self::default()
        }
    }

    /// Judges one request.
    pub fn add(&mut self, r: &Record) {
        self.requests = self.requests.saturating_add(1);
        if meets(&self.clauses, r) {
            self.good = self.good.saturating_add(1);
            let tokens = r
                .tokens_in
                .unwrap_or(0)
                .saturating_add(r.tokens_out.unwrap_or(0));
            self.good_tokens = self.good_tokens.saturating_add(tokens);
        }
    }

    /// The share of requests sent that were good (None: none sent).
    pub fn ratio(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.good as f64 / self.requests as f64)
    }
}

/// Whether `r` succeeded and meets every clause on its own timings.
pub fn meets(clauses: &[Clause], r: &Record) -> bool {
    r.is_success()
        && clauses.iter().all(|c| match value_ns(c.family, r) {
            Value::Measured(ns) => c.holds(ns as f64),
            Value::Vacuous => true,
            Value::Missing => false,
        })
}

/// One request's figure for a family.
enum Value {
    Measured(u64),
    /// Nothing the clause could fail on (no gaps between tokens).
    Vacuous,
    /// A figure the request should have and has not.
    Missing,
}

fn value_ns(family: Family, r: &Record) -> Value {
    let or = |v: Option<u64>, absent: Value| v.map_or(absent, Value::Measured);
    match family {
        Family::Latency => Value::Measured(r.latency),
        Family::Service => Value::Measured(r.latency.saturating_sub(r.send_lag_ns())),
        Family::Ttft => or(r.ttft_ns, Value::Missing),
        Family::Itl => or(r.itl_ns.iter().copied().max(), Value::Vacuous),
        Family::Tpot => or(r.tpot_ns(), Value::Vacuous),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ErrorKind;

    fn rec(latency_ms: u64, ttft_ms: Option<u64>, itl_ms: &[u64]) -> Record {
        Record {
            attack: String::new(),
            seq: 0,
            code: 200,
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
            latency: latency_ms * 1_000_000,
            bytes_out: 0,
            bytes_in: 0,
            error: String::new(),
            method: "POST".into(),
            url: "http://127.0.0.1:9/generate".into(),
            intended_ns: 0,
            sent_ns: 0,
            ttft_ns: ttft_ms.map(|t| t * 1_000_000),
            itl_ns: itl_ms.iter().map(|g| g * 1_000_000).collect(),
            tokens_in: Some(10),
            tokens_in_source: None,
            tokens_out: Some(1 + itl_ms.len() as u64),
            tokens_out_requested: None,
            tokens_source: None,
            error_kind: None,
            capped: false,
            step: None,
            session: None,
            turn: None,
            shard: None,
            shards: None,
            schedule: None,
            recv_lag_ns: None,
        }
    }

    fn slo(text: &str) -> Slo {
        Slo::parse(text).unwrap()
    }

    #[test]
    fn each_clause_keeps_its_limit_and_drops_its_statistic() {
        let s = slo("p95<100ms,ttft_p50<=20ms");
        assert!(meets(&s.clauses, &rec(99, Some(20), &[5])));
        // p95 and p50 do not matter: this request's own figures are over.
        assert!(!meets(&s.clauses, &rec(100, Some(20), &[5])));
        assert!(!meets(&s.clauses, &rec(50, Some(21), &[5])));
    }

    #[test]
    fn itl_is_the_largest_gap_and_tpot_the_mean_one() {
        let itl = slo("itl_p99<50ms");
        assert!(meets(&itl.clauses, &rec(200, Some(10), &[10, 49, 20])));
        assert!(!meets(&itl.clauses, &rec(200, Some(10), &[10, 50, 20])));
        // TPOT: (110 - 10) / 2 = 50 ms per token after the first.
        let tpot = slo("tpot_mean<50ms");
        assert!(!meets(&tpot.clauses, &rec(110, Some(10), &[40, 60])));
        assert!(meets(&tpot.clauses, &rec(108, Some(10), &[40, 58])));
    }

    #[test]
    fn missing_first_token_misses_and_a_single_token_cannot_fail_a_gap() {
        let s = slo("ttft_p95<1s,itl_max<1ms,tpot_p50<1ms");
        assert!(!meets(&s.clauses, &rec(10, None, &[])));
        assert!(meets(&s.clauses, &rec(10, Some(5), &[])));
    }

    #[test]
    fn failures_are_misses_and_counts_add_up() {
        let mut a = Attainment::new(&slo("p90<100ms"));
        assert_eq!(a.ratio(), None);
        a.add(&rec(50, None, &[1, 1]));
        a.add(&rec(150, None, &[]));
        a.add(&Record {
            code: 500,
            error_kind: Some(ErrorKind::Status5xx),
            ..rec(1, None, &[])
        });
        a.add(&rec(10, None, &[]));
        assert_eq!((a.requests, a.good), (4, 2));
        assert_eq!(a.ratio(), Some(0.5));
        // 10 in + 3 out, and 10 in + 1 out.
        assert_eq!(a.good_tokens, 24);
    }

    #[test]
    fn with_no_slo_every_success_is_good() {
        let mut a = Attainment::new(&Slo::default());
        a.add(&rec(90_000, None, &[]));
        a.add(&Record {
            code: 0,
            error_kind: Some(ErrorKind::Timeout),
            ..rec(1, None, &[])
        });
        assert_eq!((a.good, a.requests), (1, 2));
    }
}
