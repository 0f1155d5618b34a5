//! One flat `Record` per request: the on-disk contract of `attack -o results.jsonl`.
//!
//! Keys and units follow Vegeta's JSON encoding (`attack, seq, code, timestamp, latency, bytes_out,
//! bytes_in, error, method, url`) so its users can read our files, plus the token-level fields of
//! design.md section 3. Records are written as each request ends; this module only encodes and
//! decodes them and never aggregates.

use std::fmt;
use std::io::Write;

use serde::{Deserialize, Serialize};

mod check;
mod read;

pub use check::{MAX_LATENCY_NS, RecordError};
pub use read::{ReadError, RecordReader, open};

/// What went wrong with one request. Reports aggregate by kind, never by message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The connection could not be opened (refused, unreachable, DNS, TLS handshake).
    Connect,
    /// The whole exchange did not finish within `--timeout`.
    Timeout,
    /// The connection broke while sending or reading (reset, closed early).
    Reset,
    /// HTTP 429: the server shed load.
    #[serde(rename = "status_429")]
    Status429,
    /// Any other 4xx status.
    #[serde(rename = "status_4xx")]
    Status4xx,
    /// A 5xx status.
    #[serde(rename = "status_5xx")]
    Status5xx,
    /// A 2xx whose body does not parse for its API (non-JSON, missing field).
    Body,
    /// A streaming response that was truncated, malformed or carried an error event.
    Stream,
    /// The request was still running when the attack was interrupted.
    Cancelled,
    /// Anything else (request could not be built, unexpected status class).
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Reset,
        ErrorKind::Status429,
        ErrorKind::Status4xx,
        ErrorKind::Status5xx,
        ErrorKind::Body,
        ErrorKind::Stream,
        ErrorKind::Cancelled,
        ErrorKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Status429 => "status_429",
            ErrorKind::Status4xx => "status_4xx",
            ErrorKind::Status5xx => "status_5xx",
            ErrorKind::Body => "body",
            ErrorKind::Stream => "stream",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Other => "other",
        }
    }

    /// The kind a non-success HTTP status maps to.
    pub fn from_status(code: u16) -> ErrorKind {
        match code {
            429 => ErrorKind::Status429,
            400..=499 => ErrorKind::Status4xx,
            500..=599 => ErrorKind::Status5xx,
            _ => ErrorKind::Other,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a record's `tokens_out` (and `tokens_in`) came from, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokensSource {
    /// The server said (TGI details, one stream event per token, OpenAI `usage`).
    Server,
    /// Counted with `--tokenizer` on the generated text (or the prompt).
    Tokenizer,
    /// Estimated from the text length (about 4 characters a token); flagged in reports.
    Estimate,
}

/// The keys every record carries, in Vegeta's order (its JSON encoding, without `body` and
/// `headers`, which rpload does not keep).
pub const VEGETA_KEYS: [&str; 10] = [
    "attack",
    "seq",
    "code",
    "timestamp",
    "latency",
    "bytes_out",
    "bytes_in",
    "error",
    "method",
    "url",
];

/// One request's outcome as written to disk (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Attack name (`--name`), empty when unnamed.
    #[serde(default)]
    pub attack: String,
    /// Position in the schedule, from 0.
    pub seq: u64,
    /// HTTP status; 0 when no response arrived (connect error, timeout before headers).
    pub code: u16,
    /// Wall-clock time the request was *intended* to leave (RFC 3339, ns precision).
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: time::OffsetDateTime,
    /// `end - intended`, ns: coordinated-omission free.
    pub latency: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// Error message, empty on success (Vegeta keeps the key).
    #[serde(default)]
    pub error: String,
    pub method: String,
    pub url: String,
    /// Intended send time, ns from the attack start.
    pub intended_ns: u64,
    /// Actual send time, ns from the attack start (`sent_ns - intended_ns` is the send lag).
    pub sent_ns: u64,
    /// First token event, ns after the intended time (streaming APIs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ns: Option<u64>,
    /// Gaps between consecutive token events, ns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub itl_ns: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_in: Option<u64>,
    /// Where `tokens_in` came from: the server's prompt count, else the prompt counted with
    /// `--tokenizer`, else estimated. Absent in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_in_source: Option<TokensSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_out: Option<u64>,
    /// The output length asked for (`max_new_tokens` / `max_tokens`): beside `tokens_out` it
    /// shows whether the server stopped early (real TGI treats it as a cap only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_out_requested: Option<u64>,
    /// Where `tokens_out` came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_source: Option<TokensSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// True when the in-flight cap made this request wait for a free slot.
    #[serde(default, skip_serializing_if = "is_false")]
    pub capped: bool,
    /// Sweep step index, when written by `sweep`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// Conversation (`--turns`): the session this request belongs to, numbered from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u64>,
    /// Conversation: this request's turn in its session, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    /// `attack --shard I/N`: this record's shard I (from 0). Absent in unsharded runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// `attack --shard I/N`: the number of shards N the schedule was cut into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    /// `attack --shard`: the schedule id, a hash of what decides which request is due when
    /// (the same in every shard of one run), so `report` can refuse files of other runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The largest delay, over the answer's chunks, between the bytes arriving and the
    /// attacker reading them (ns): how far its receive loop fell behind. Token times and the end
    /// are stamped at arrival, so this is not in them; a large value says the client was
    /// overloaded. Absent when nothing waited, and in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv_lag_ns: Option<u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Record {
    /// Success as Vegeta counts it (2xx/3xx) and as our parsers judged the body.
    pub fn is_success(&self) -> bool {
        self.error_kind.is_none() && (200..400).contains(&self.code)
    }

    /// Wall-clock intended time in ns since the Unix epoch.
    pub fn timestamp_ns(&self) -> i128 {
        self.timestamp.unix_timestamp_nanos()
    }

    /// Send lag: how late the request left compared with its schedule.
    pub fn send_lag_ns(&self) -> u64 {
        self.sent_ns.saturating_sub(self.intended_ns)
    }

    /// Time per output token after the first: `(end - first_token) / (tokens_out - 1)`.
    pub fn tpot_ns(&self) -> Option<u64> {
        let ttft = self.ttft_ns?;
        let tokens = self.tokens_out?;
        if tokens < 2 {
            return None;
        }
        Some(self.latency.saturating_sub(ttft) / (tokens - 1))
    }
}

/// Appends records as JSON lines. The caller decides when to flush (see `attack::writer`).
pub struct RecordWriter<W: Write> {
    out: W,
    line: Vec<u8>,
}

impl<W: Write> RecordWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            line: Vec::with_capacity(512),
        }
    }

    pub fn write(&mut self, record: &Record) -> std::io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record).map_err(std::io::Error::other)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Record {
        Record {
            attack: "a".into(),
            seq: 7,
            code: 200,
            timestamp: time::OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789)
                .unwrap(),
            latency: 2_000_000,
            bytes_out: 30,
            bytes_in: 200,
            error: String::new(),
            method: "POST".into(),
            url: "http://127.0.0.1:1/generate".into(),
            intended_ns: 1_000,
            sent_ns: 1_500,
            ttft_ns: Some(500_000),
            itl_ns: vec![100_000, 200_000],
            tokens_in: Some(12),
            tokens_in_source: Some(TokensSource::Estimate),
            tokens_out: Some(3),
            tokens_source: Some(TokensSource::Server),
            error_kind: None,
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
    fn round_trips_and_keeps_vegeta_keys() {
        let rec = sample();
        let mut w = RecordWriter::new(Vec::new());
        w.write(&rec).unwrap();
        let text = String::from_utf8(w.into_inner()).unwrap();
        assert!(text.ends_with('\n'));
        let value: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        let ours = [
            "intended_ns",
            "sent_ns",
            "ttft_ns",
            "itl_ns",
            "tokens_in",
            "tokens_in_source",
            "tokens_out",
            "tokens_source",
        ];
        for key in VEGETA_KEYS.iter().chain(&ours) {
            assert!(value.get(key).is_some(), "missing key {key}");
        }
        assert_eq!(value["timestamp"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(value["tokens_source"], "server");
        assert_eq!(value["tokens_in_source"], "estimate");
        assert!(value.get("capped").is_none());
        let back: Record = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn shard_fields_are_written_only_by_sharded_runs() {
        let plain = serde_json::to_value(sample()).unwrap();
        for key in ["shard", "shards", "schedule"] {
            assert!(plain.get(key).is_none(), "{key} in an unsharded record");
        }
        let rec = Record {
            shard: Some(1),
            shards: Some(3),
            schedule: Some("0123456789abcdef".into()),
            ..sample()
        };
        let value = serde_json::to_value(&rec).unwrap();
        assert_eq!(
            (&value["shard"], &value["shards"], &value["schedule"]),
            (&1.into(), &3.into(), &"0123456789abcdef".into())
        );
        let back: Record = serde_json::from_value(value).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn records_without_an_input_source_still_read() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value.as_object_mut().unwrap().remove("tokens_in_source");
        let old: Record = serde_json::from_value(value).unwrap();
        assert_eq!(old.tokens_in_source, None);
        assert_eq!(old.tokens_in, Some(12));
    }

    #[test]
    fn derived_fields() {
        let rec = sample();
        assert_eq!(rec.send_lag_ns(), 500);
        assert_eq!(rec.tpot_ns(), Some((2_000_000 - 500_000) / 2));
        assert!(rec.is_success());
        let mut failed = rec.clone();
        failed.code = 429;
        failed.error_kind = Some(ErrorKind::Status429);
        assert!(!failed.is_success());
        assert_eq!(
            serde_json::to_value(ErrorKind::Status5xx).unwrap(),
            "status_5xx"
        );
        assert_eq!(ErrorKind::from_status(503), ErrorKind::Status5xx);
    }
}
