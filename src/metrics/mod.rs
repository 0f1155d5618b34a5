//! Aggregation of records into HDR histograms and counters (`Metrics`), and the `Summary` that
//! every report renders. `add` folds one record and is the only way in: a report over several
//! files adds every record of every file to one `Metrics`, so shards of one attack summarise
//! exactly as one, by the same code path as a single file (`shards` checks that they are the
//! shards of one run). Memory is bounded: a fixed set of
//! histograms, and at most
//! `MAX_DISTINCT_ERRORS` error strings. No I/O, no clock, no formatting.
//!
//! Definitions follow design.md section 2 and Vegeta's `lib/metrics.go`: rate over intended send
//! times, throughput of successes over the window from the first intended send to the last end,
//! latencies over all requests (failures included), percentiles from HDR histograms (1 us to 1 h,
//! 3 significant digits) rather than Vegeta's t-digest. Beside Vegeta's figures it keeps the
//! latency and service time of successful requests alone (a 0.7 ms 429 must not pull a p50
//! down), and TTFT, ITL and TPOT of successful requests only.

mod dist;
pub mod shards;
mod summary;
pub mod workload;

pub use dist::{Dist, Percentiles};
pub use summary::{Bytes, Summary, Tokens};

use std::collections::BTreeMap;

use crate::record::{ErrorKind, Record, TokensSource};

/// Distinct error messages kept; later new messages are counted under their kind only.
pub const MAX_DISTINCT_ERRORS: usize = 64;
/// The send lag every client may have, however slow its schedule: 1 ms (design.md section 2).
pub const SEND_LAG_FLOOR_NS: u64 = 1_000_000;
/// Share of the median latency the client's own send lag may add at p99.
pub const SEND_LAG_SHARE_OF_LATENCY: f64 = 0.1;

/// The send-lag p99 a client may have and still count as keeping up with a schedule of
/// `rate_rps` against a target whose successful requests take `latency_p50_ns`: at most one
/// inter-arrival gap (so requests still leave in their slots and the server sees the offered
/// arrival process) and at most a tenth of the median latency (so what is measured is the
/// target, not the client), but never less than the 1 ms floor. `scenarios/README.md` has the
/// reasoning. An unknown rate or latency (0) leaves that bound out.
pub fn send_lag_allowance_ns(rate_rps: f64, latency_p50_ns: u64) -> u64 {
    let gap = if rate_rps > 0.0 && rate_rps.is_finite() {
        (1e9 / rate_rps) as u64
    } else {
        u64::MAX
    };
    let share = if latency_p50_ns > 0 {
        (latency_p50_ns as f64 * SEND_LAG_SHARE_OF_LATENCY) as u64
    } else {
        u64::MAX
    };
    let bound = gap.min(share);
    if bound == u64::MAX {
        SEND_LAG_FLOOR_NS
    } else {
        bound.max(SEND_LAG_FLOOR_NS)
    }
}

/// The receive-lag p99 a client may have and still count as having read the answers when they
/// arrived: a tenth of the finest timing it could blur (the median gap between tokens when the
/// answers stream, else the median latency), never less than the 1 ms floor. Arrivals are
/// stamped at the wake-up rather than the read, so the lag is not in the figures themselves;
/// but a loop this far behind also delays the connection tasks that raise those wake-ups, which
/// no stamp can see. `scenarios/README.md` has the reasoning. 0 (unknown) leaves a bound out.
pub fn recv_lag_allowance_ns(latency_p50_ns: u64, itl_p50_ns: u64) -> u64 {
    let finest = [latency_p50_ns, itl_p50_ns]
        .into_iter()
        .filter(|&v| v > 0)
        .min();
    finest.map_or(SEND_LAG_FLOOR_NS, |v| {
        ((v as f64 * SEND_LAG_SHARE_OF_LATENCY) as u64).max(SEND_LAG_FLOOR_NS)
    })
}

/// Running aggregate of records. `add` is the only way in.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub requests: u64,
    pub successes: u64,
    pub latency: Dist,
    /// Latency of successful requests only.
    pub latency_ok: Dist,
    /// `end - sent` of successful requests (latency less the client's send lag).
    pub service_ok: Dist,
    pub ttft: Dist,
    pub itl: Dist,
    pub tpot: Dist,
    pub send_lag: Dist,
    /// Each request's receive lag (0 when nothing waited or the file predates it).
    pub recv_lag: Dist,
    bytes_in: u64,
    bytes_out: u64,
    /// Wall-clock ns since the epoch: first and last intended send, last end.
    earliest: Option<i128>,
    latest: Option<i128>,
    end: Option<i128>,
    pub status_codes: BTreeMap<u16, u64>,
    pub error_kinds: BTreeMap<ErrorKind, u64>,
    errors: BTreeMap<String, u64>,
    pub capped: u64,
    tokens_in: u64,
    tokens_out_ok: u64,
    tokens_out_all: u64,
    tokens_by_source: BTreeMap<TokensSource, u64>,
    tokens_in_by_source: BTreeMap<TokensSource, u64>,
    workload: workload::WorkloadMetrics,
}

impl Metrics {
    pub fn add(&mut self, r: &Record) {
        self.requests = self.requests.saturating_add(1);
        let ok = r.is_success();
        if ok {
            self.successes = self.successes.saturating_add(1);
        }
        self.latency.record(r.latency);
        self.send_lag.record(r.send_lag_ns());
        self.recv_lag.record(r.recv_lag_ns.unwrap_or(0));
        if ok {
            self.latency_ok.record(r.latency);
            self.service_ok
                .record(r.latency.saturating_sub(r.send_lag_ns()));
            if let Some(t) = r.ttft_ns {
                self.ttft.record(t);
            }
            for &gap in &r.itl_ns {
                self.itl.record(gap);
            }
            if let Some(t) = r.tpot_ns() {
                self.tpot.record(t);
            }
        }
        self.bytes_in = self.bytes_in.saturating_add(r.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(r.bytes_out);
        let ts = r.timestamp_ns();
        let end = ts + i128::from(r.latency);
        self.earliest = Some(self.earliest.map_or(ts, |e| e.min(ts)));
        self.latest = Some(self.latest.map_or(ts, |l| l.max(ts)));
        self.end = Some(self.end.map_or(end, |e| e.max(end)));
        bump(self.status_codes.entry(r.code).or_default(), 1);
        if let Some(kind) = r.error_kind {
            bump(self.error_kinds.entry(kind).or_default(), 1);
        }
        if !r.error.is_empty() {
            self.note_error(&r.error, 1);
        }
        if r.capped {
            self.capped = self.capped.saturating_add(1);
        }
        if ok {
            bump(&mut self.tokens_in, r.tokens_in.unwrap_or(0));
            bump(&mut self.tokens_out_ok, r.tokens_out.unwrap_or(0));
        }
        bump(&mut self.tokens_out_all, r.tokens_out.unwrap_or(0));
        if let Some(source) = r.tokens_source {
            bump(self.tokens_by_source.entry(source).or_default(), 1);
        }
        if let Some(source) = r.tokens_in_source {
            bump(self.tokens_in_by_source.entry(source).or_default(), 1);
        }
        self.workload.add(r);
    }

    fn note_error(&mut self, message: &str, count: u64) {
        if let Some(n) = self.errors.get_mut(message) {
            bump(n, count);
        } else if self.errors.len() < MAX_DISTINCT_ERRORS {
            self.errors.insert(message.to_owned(), count);
        }
    }

    /// Output tokens of successful requests so far (cheap; for progress lines).
    pub fn summary_tokens_out(&self) -> u64 {
        self.tokens_out_ok
    }

    pub fn summary(&self) -> Summary {
        let earliest = self.earliest.unwrap_or(0);
        let latest = self.latest.unwrap_or(earliest);
        let end = self.end.unwrap_or(latest);
        let duration = ns_span(earliest, latest);
        let wait = ns_span(latest, end);
        let window = duration.saturating_add(wait);
        // As Vegeta: with a zero-length window the rates are left as raw counts.
        let per_s = |n: u64, ns: u64| {
            if ns == 0 {
                n as f64
            } else {
                n as f64 / (ns as f64 / 1e9)
            }
        };
        let success = if self.requests == 0 {
            0.0
        } else {
            self.successes as f64 / self.requests as f64
        };
        let send_lag = self.send_lag.percentiles();
        let latencies_ok = self.latency_ok.percentiles();
        let rate = per_s(self.requests, duration);
        let send_lag_allowance = send_lag_allowance_ns(rate, latencies_ok.p50);
        let itl = self.itl.percentiles();
        let recv_lag = self.recv_lag.percentiles();
        let recv_lag_allowance = recv_lag_allowance_ns(latencies_ok.p50, itl.p50);
        Summary {
            requests: self.requests,
            rate,
            throughput: per_s(self.successes, window),
            success,
            duration,
            wait,
            earliest: rfc3339(earliest),
            latest: rfc3339(latest),
            end: rfc3339(end),
            latencies: self.latency.percentiles(),
            latencies_ok,
            service_ok: self.service_ok.percentiles(),
            ttft: self.ttft.percentiles(),
            itl,
            tpot: self.tpot.percentiles(),
            send_lag,
            recv_lag,
            bytes_in: Bytes::new(self.bytes_in, self.requests),
            bytes_out: Bytes::new(self.bytes_out, self.requests),
            status_codes: self
                .status_codes
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            error_kinds: self
                .error_kinds
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), *v))
                .collect(),
            errors: self.errors.keys().cloned().collect(),
            tokens: Tokens {
                input_total: self.tokens_in,
                output_total: self.tokens_out_ok,
                output_per_second: per_s(self.tokens_out_ok, window),
                total_per_second: per_s(self.tokens_in.saturating_add(self.tokens_out_ok), window),
                output_all_requests: self.tokens_out_all,
                sources: source_counts(&self.tokens_by_source),
                input_sources: source_counts(&self.tokens_in_by_source),
            },
            capped: self.capped,
            send_lag_allowance,
            recv_lag_allowance,
            client_kept_up: self.capped == 0
                && send_lag.p99 <= send_lag_allowance
                && recv_lag.p99 <= recv_lag_allowance,
            workload: self.workload.summary(),
        }
    }
}

/// Adds to a counter, stopping at `u64::MAX`: a pinned total is visibly absurd, while a
/// wrapped one (2 x u64::MAX + 4 = 2) would pass for a real figure.
fn bump(total: &mut u64, n: u64) {
    *total = total.saturating_add(n);
}

/// `to - from` in ns, 0 when `to` is earlier, `u64::MAX` when wider than u64 holds (records
/// centuries apart): an `as` cast would keep the low bits and report a random span.
fn ns_span(from: i128, to: i128) -> u64 {
    u64::try_from((to - from).max(0)).unwrap_or(u64::MAX)
}

fn source_counts(by_source: &BTreeMap<TokensSource, u64>) -> BTreeMap<String, u64> {
    by_source
        .iter()
        .map(|(k, v)| (source_name(*k).to_owned(), *v))
        .collect()
}

fn source_name(s: TokensSource) -> &'static str {
    match s {
        TokensSource::Server => "server",
        TokensSource::Tokenizer => "tokenizer",
        TokensSource::Estimate => "estimate",
    }
}

fn rfc3339(ns: i128) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ns)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ErrorKind, Record, TokensSource};

    pub(super) fn rec(seq: u64, intended_ms: u64, latency_ms: u64, code: u16) -> Record {
        Record {
            attack: String::new(),
            seq,
            code,
            timestamp: time::OffsetDateTime::from_unix_timestamp_nanos(
                1_700_000_000_000_000_000 + i128::from(intended_ms) * 1_000_000,
            )
            .unwrap(),
            latency: latency_ms * 1_000_000,
            bytes_out: 10,
            bytes_in: 100,
            error: if code == 200 {
                String::new()
            } else {
                format!("{code} status")
            },
            method: "POST".into(),
            url: "http://127.0.0.1/".into(),
            intended_ns: intended_ms * 1_000_000,
            sent_ns: intended_ms * 1_000_000 + 2_000,
            ttft_ns: Some(latency_ms * 500_000),
            itl_ns: vec![1_000_000; 3],
            tokens_in: Some(5),
            tokens_in_source: Some(TokensSource::Estimate),
            tokens_out: Some(4),
            tokens_source: Some(TokensSource::Server),
            error_kind: (code != 200).then(|| ErrorKind::from_status(code)),
            capped: false,
            step: None,
            tokens_out_requested: None,
            session: None,
            turn: None,
            shard: None,
            shards: None,
            schedule: None,
            recv_lag_ns: None,
        }
    }

    #[test]
    fn vegeta_rate_and_throughput() {
        let mut m = Metrics::default();
        // 11 requests intended 100 ms apart over 1 s; the last ends at 1.05 s.
        for i in 0..11 {
            m.add(&rec(i, i * 100, 50, if i == 3 { 500 } else { 200 }));
        }
        let s = m.summary();
        assert_eq!(s.requests, 11);
        assert_eq!(s.duration, 1_000_000_000);
        assert_eq!(s.wait, 50_000_000);
        assert!((s.rate - 11.0).abs() < 1e-9);
        assert!((s.throughput - 10.0 / 1.05).abs() < 1e-9);
        assert!((s.success - 10.0 / 11.0).abs() < 1e-12);
        assert_eq!(s.status_codes["500"], 1);
        assert_eq!(s.error_kinds["status_5xx"], 1);
        assert_eq!(s.errors, vec!["500 status".to_string()]);
        assert_eq!(s.tokens.output_total, 40);
        assert_eq!(s.tokens.input_total, 50);
        assert_eq!(s.tokens.output_all_requests, 44);
        assert_eq!(s.tokens.sources["server"], 11);
        assert_eq!(s.tokens.input_sources["estimate"], 11);
        assert!((s.tokens.output_per_second - 40.0 / 1.05).abs() < 1e-9);
        assert_eq!(s.latencies.min, 50_000_000);
        assert_eq!(s.latencies.max, 50_000_000);
        // Token timings count successful requests only (the 500 is left out).
        assert_eq!(s.itl.count, 30);
        assert_eq!(s.tpot.p50, 25_000_000 / 3);
        assert_eq!(s.send_lag.max, 2_000);
        assert!(s.client_kept_up);
    }

    #[test]
    fn percentiles_are_within_hdr_precision() {
        let mut m = Metrics::default();
        for i in 1..=1000u64 {
            m.add(&rec(i, i, i, 200));
        }
        let l = m.summary().latencies;
        let close = |got: u64, want_ms: u64| {
            let want = want_ms as f64 * 1e6;
            ((got as f64 - want) / want).abs() < 2e-3
        };
        assert!(close(l.p50, 500), "{}", l.p50);
        assert!(close(l.p90, 900), "{}", l.p90);
        assert!(close(l.p99, 990), "{}", l.p99);
        assert_eq!(l.max, 1_000_000_000);
        assert_eq!(l.min, 1_000_000);
        assert_eq!(l.mean, 500_500_000);
    }

    #[test]
    fn client_not_kept_up_when_lagging_or_capped() {
        let mut m = Metrics::default();
        let mut r = rec(0, 0, 10, 200);
        r.sent_ns = r.intended_ns + 5_000_000;
        m.add(&r);
        assert!(!m.summary().client_kept_up);
        let mut m = Metrics::default();
        let mut r = rec(0, 0, 10, 200);
        r.capped = true;
        m.add(&r);
        let s = m.summary();
        assert_eq!(s.capped, 1);
        assert!(!s.client_kept_up);
    }

    #[test]
    fn success_only_latency_leaves_fast_failures_out() {
        let mut m = Metrics::default();
        // Ten 400 ms successes and ten 1 ms 429s: Vegeta's p50 mixes them, ours does not.
        for i in 0..20 {
            let fail = i % 2 == 1;
            let mut r = rec(
                i,
                i * 10,
                if fail { 1 } else { 400 },
                if fail { 429 } else { 200 },
            );
            r.sent_ns = r.intended_ns + 3_000_000;
            m.add(&r);
        }
        let s = m.summary();
        assert_eq!(s.latencies.min, 1_000_000);
        assert_eq!(s.latencies_ok.count, 10);
        assert_eq!(s.latencies_ok.min, 400_000_000);
        assert_eq!(s.latencies_ok.p50, 400_000_000);
        // Service time is latency less the 3 ms send lag.
        assert_eq!(s.service_ok.p50, 397_000_000);
    }

    #[test]
    fn send_lag_allowance_follows_the_schedule() {
        // 30 req/s against a 100 ms target: a tenth of the latency (10 ms) binds.
        assert_eq!(send_lag_allowance_ns(30.0, 100_000_000), 10_000_000);
        // 200 req/s against a 1 s target: one 5 ms gap binds.
        assert_eq!(send_lag_allowance_ns(200.0, 1_000_000_000), 5_000_000);
        // A fast target at a high rate: the 1 ms floor.
        assert_eq!(send_lag_allowance_ns(5000.0, 2_000_000), 1_000_000);
        // Nothing known: the floor.
        assert_eq!(send_lag_allowance_ns(0.0, 0), 1_000_000);
    }

    #[test]
    fn recv_lag_allowance_follows_the_finest_timing() {
        // Streamed, 20 ms between tokens: a tenth of the ITL, not of the 2 s latency.
        assert_eq!(recv_lag_allowance_ns(2_000_000_000, 20_000_000), 2_000_000);
        // Whole answers of 300 ms: a tenth of the latency.
        assert_eq!(recv_lag_allowance_ns(300_000_000, 0), 30_000_000);
        // Tokens 2 ms apart, or nothing known: the 1 ms floor.
        assert_eq!(recv_lag_allowance_ns(500_000_000, 2_000_000), 1_000_000);
        assert_eq!(recv_lag_allowance_ns(0, 0), 1_000_000);
    }

    #[test]
    fn receive_lag_beyond_its_allowance_means_the_client_did_not_keep_up() {
        let summary = |lag_ns: u64| {
            let mut m = Metrics::default();
            for i in 0..100u64 {
                let mut r = rec(i, i * 10, 100, 200);
                r.itl_ns = vec![20_000_000; 4];
                r.recv_lag_ns = Some(if i < 5 { lag_ns } else { 30_000 });
                m.add(&r);
            }
            m.summary()
        };
        // 5% of requests read 1.5 ms late: p99 1.5 ms, within the 2 ms a 20 ms ITL allows.
        let fine = summary(1_500_000);
        assert_eq!(fine.recv_lag_allowance, 2_000_000);
        assert!(fine.client_kept_up, "{:?}", fine.recv_lag);
        let late = summary(8_000_000);
        assert!(late.recv_lag.p99 > 7_900_000);
        assert!(!late.client_kept_up);
    }

    #[test]
    fn buckets_are_half_open() {
        let mut d = Dist::default();
        for ms in [1u64, 2, 3, 10, 20] {
            d.record(ms * 1_000_000);
        }
        let counts = d.bucket_counts(&[0, 2_000_000, 10_000_000]);
        assert_eq!(counts, vec![1, 2, 2]);
    }

    #[test]
    fn sums_saturate_instead_of_wrapping() {
        let mut m = Metrics::default();
        for big in [u64::MAX, u64::MAX, 4] {
            let mut r = rec(0, 0, 10, 200);
            (r.bytes_in, r.bytes_out) = (big, big);
            (r.tokens_in, r.tokens_out) = (Some(big), Some(big));
            m.add(&r);
        }
        let s = m.summary();
        assert_eq!(s.requests, 3);
        assert_eq!(s.bytes_in.total, u64::MAX);
        assert_eq!(s.bytes_out.total, u64::MAX);
        assert_eq!(s.tokens.input_total, u64::MAX);
        assert_eq!(s.tokens.output_total, u64::MAX);
        assert_eq!(s.tokens.output_all_requests, u64::MAX);
        // Input + output is pinned too, not wrapped to u64::MAX - 1.
        let window_s = s.wait as f64 / 1e9;
        assert_eq!(s.tokens.total_per_second, u64::MAX as f64 / window_s);
        let mut n = u64::MAX - 1;
        bump(&mut n, 5);
        assert_eq!(n, u64::MAX);
    }

    #[test]
    fn a_span_wider_than_u64_is_pinned_not_truncated() {
        let mut m = Metrics::default();
        for year in [1, 9999] {
            let mut r = rec(0, 0, 10, 200);
            r.timestamp = time::Date::from_calendar_date(year, time::Month::January, 1)
                .unwrap()
                .midnight()
                .assume_utc();
            m.add(&r);
        }
        let s = m.summary();
        assert_eq!(s.duration, u64::MAX);
        assert_eq!(s.wait, 10_000_000);
        assert_eq!(ns_span(5, 3), 0);
        assert_eq!(ns_span(3, 5), 2);
    }

    #[test]
    fn empty_summary_is_zero() {
        let s = Metrics::default().summary();
        assert_eq!(s.requests, 0);
        assert_eq!(s.latencies, Percentiles::default());
        assert!(s.client_kept_up);
    }
}
