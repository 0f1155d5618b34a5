//! Request traces: a JSONL file of timestamped requests, one object per line, as the public
//! Mooncake traces write them: `timestamp` (ms from the trace's start), `input_length` and
//! `output_length` (tokens) and optional `hash_ids`, the ids of the prompt's blocks of
//! `--trace-block-tokens` tokens. Requests that name the same block id share that block's
//! text, so they share a prefix exactly where the traced requests did, and a prefix cache
//! sees the reuse the trace recorded.
//!
//! Only the rows the attack will send are kept (the caller passes the bound), sorted by time.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    /// When the request is due, from the trace's first request.
    pub at: Duration,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub hash_ids: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TraceError {
    #[error("reading --trace {path}: {cause}; pass a readable JSONL file")]
    Io { path: String, cause: String },
    #[error(
        "--trace {path}:{line}: {message}; each line is {{\"timestamp\": MS, \"input_length\": N, \"output_length\": N, \"hash_ids\": [..]}}"
    )]
    Row {
        path: String,
        line: u64,
        message: String,
    },
    #[error(
        "--trace {path} has no requests; add lines with timestamp, input_length and output_length"
    )]
    Empty { path: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

/// The trace's requests due within `within` of its start (after the replay speed is
/// applied by the caller, so `within` is in trace time), at most `max_rows` of them.
pub fn load(
    path: &Path,
    within: Option<Duration>,
    max_rows: usize,
) -> Result<Vec<TraceRow>, TraceError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| TraceError::Io {
        path: name.clone(),
        cause: crate::errors::io_cause(&e),
    })?;
    let mut rows = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let bad = |message: String| TraceError::Row {
            path: name.clone(),
            line: i as u64 + 1,
            message,
        };
        let line = line.map_err(|e| bad(crate::errors::io_cause(&e)))?;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        if !(l.timestamp.is_finite() && l.timestamp >= 0.0) {
            return Err(bad(format!(
                "timestamp {} is not a time in ms at least 0",
                l.timestamp
            )));
        }
        if l.input_length == 0 || l.output_length == 0 {
            return Err(bad(
                "input_length and output_length must be at least 1".into()
            ));
        }
        rows.push(TraceRow {
            at: Duration::from_secs_f64(l.timestamp / 1000.0),
            input_tokens: l.input_length,
            output_tokens: l.output_length,
            hash_ids: l.hash_ids,
        });
    }
    if rows.is_empty() {
        return Err(TraceError::Empty { path: name });
    }
    // Traces are written in time order; a merged one may not be, and the pacer needs it.
    rows.sort_by_key(|r| r.at);
    let start = rows[0].at;
    for r in &mut rows {
        r.at -= start;
    }
    if let Some(w) = within {
        rows.retain(|r| r.at < w);
    }
    rows.truncate(max_rows);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_sorted_from_the_first_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        std::fs::write(
            &p,
            "{\"timestamp\": 1500, \"input_length\": 10, \"output_length\": 2, \"hash_ids\": [1]}\n\
             {\"timestamp\": 1000, \"input_length\": 600, \"output_length\": 3, \"hash_ids\": [1, 2]}\n\n\
             {\"timestamp\": 9000, \"input_length\": 5, \"output_length\": 1}\n",
        )
        .unwrap();
        let rows = load(&p, None, 10).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.at.as_millis()).collect::<Vec<_>>(),
            [0, 500, 8000]
        );
        assert_eq!(rows[0].hash_ids, [1, 2]);
        assert_eq!(load(&p, Some(Duration::from_secs(1)), 10).unwrap().len(), 2);
        assert_eq!(load(&p, None, 1).unwrap().len(), 1);
    }

    #[test]
    fn bad_lines_name_the_line_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        std::fs::write(&p, "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1}\n{\"timestamp\": 5, \"input_len\": 3}\n").unwrap();
        let e = load(&p, None, 10).unwrap_err().to_string();
        assert!(e.contains("t.jsonl:2: unknown field `input_len`"), "{e}");
        std::fs::write(&p, "\n").unwrap();
        assert!(
            load(&p, None, 10)
                .unwrap_err()
                .to_string()
                .contains("has no requests")
        );
    }
}
