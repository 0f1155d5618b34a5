//! Reading results files (`RecordReader`, `open`): one record per JSON line, every error naming
//! `file:line`, every record passed through `Record::check`. `report`, `report --sweep` and
//! sweep rebuilds all read through here, so they accept and refuse the same files.
//!
//! Lines are read as bytes and decoded one at a time, so a stray non-UTF-8 byte is reported at
//! its line rather than as an I/O error for the whole file. The one damage tolerated is the
//! one a crash leaves: an attack killed mid-write ends its file with a partial line and no
//! newline. That line is skipped with a warning; the same damage anywhere else is an error,
//! since records after it mean the file was not simply cut off.

use std::io::BufRead;
use std::path::Path;

use super::{Record, RecordError};

/// Errors reading a results file; each names the file and, past opening it, the line.
/// The cause is a plain field (`cause`), not a `source`: each message states it once already,
/// and `{:#}` would print a source a second time.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error(
        "{path}:{line}: not UTF-8 text ({cause}); results files are UTF-8 JSON lines as written by `rpload attack`: repair or delete the line"
    )]
    Utf8 {
        path: String,
        line: usize,
        cause: std::str::Utf8Error,
    },
    #[error(
        "{path}:{line}: not a result record ({cause}); results files hold one JSON object per line as written by `rpload attack`"
    )]
    Parse {
        path: String,
        line: usize,
        cause: serde_json::Error,
    },
    /// The line parses but describes no possible request (`Record::check`).
    #[error("{path}:{line}: {cause}")]
    Invalid {
        path: String,
        line: usize,
        cause: RecordError,
    },
}

/// Streams records from JSON lines, skipping blank lines and a torn last line (with a warning
/// on stderr); errors name `path:line`.
pub struct RecordReader<R: BufRead> {
    input: R,
    path: String,
    line_no: usize,
    buf: Vec<u8>,
    torn: Option<usize>,
}

impl<R: BufRead> RecordReader<R> {
    pub fn new(input: R, path: impl Into<String>) -> Self {
        Self {
            input,
            path: path.into(),
            line_no: 0,
            buf: Vec::with_capacity(1024),
            torn: None,
        }
    }

    /// The line number of a torn last line that was skipped, once the reader has reached it.
    pub fn torn_line(&self) -> Option<usize> {
        self.torn
    }

    fn skip_torn(&mut self) {
        self.torn = Some(self.line_no);
        eprintln!(
            "warning: {}:{}: skipped the last line: it is cut short (no newline, incomplete JSON), as an attack that crashed or was killed while writing leaves it; every line before it was read",
            self.path, self.line_no
        );
    }
}

impl<R: BufRead> Iterator for RecordReader<R> {
    type Item = Result<Record, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line_no += 1;
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(cause) => {
                    return Some(Err(ReadError::Io {
                        path: self.path.clone(),
                        cause,
                    }));
                }
            }
            // Only a line that ends the file without a newline can be one cut by a crash.
            let unterminated = self.buf.last() != Some(&b'\n');
            let text = match std::str::from_utf8(&self.buf) {
                Ok(text) => text,
                // A cut inside a multi-byte character leaves an incomplete sequence at the very
                // end (`error_len` None); a bad byte with text after it is damage, not a cut.
                Err(e) if unterminated && e.error_len().is_none() => {
                    self.skip_torn();
                    return None;
                }
                Err(cause) => {
                    return Some(Err(ReadError::Utf8 {
                        path: self.path.clone(),
                        line: self.line_no,
                        cause,
                    }));
                }
            };
            let line = text.trim();
            if line.is_empty() {
                continue;
            }
            let record: Record = match serde_json::from_str(line) {
                Ok(record) => record,
                // A prefix of a JSON object always fails as "EOF while parsing"; any other
                // failure (a wrong key, a bad value) is not explained by the file being cut.
                Err(e) if unterminated && e.is_eof() => {
                    self.skip_torn();
                    return None;
                }
                Err(cause) => {
                    return Some(Err(ReadError::Parse {
                        path: self.path.clone(),
                        line: self.line_no,
                        cause,
                    }));
                }
            };
            return Some(
                record
                    .check()
                    .map(|()| record)
                    .map_err(|cause| ReadError::Invalid {
                        path: self.path.clone(),
                        line: self.line_no,
                        cause,
                    }),
            );
        }
    }
}

/// Opens a results file for reading; `-` reads stdin.
pub fn open(path: &Path) -> Result<RecordReader<Box<dyn BufRead>>, ReadError> {
    let name = path.display().to_string();
    let input: Box<dyn BufRead> = if name == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(path).map_err(|cause| ReadError::Io {
            path: name.clone(),
            cause,
        })?;
        Box::new(std::io::BufReader::with_capacity(1 << 16, file))
    };
    Ok(RecordReader::new(input, name))
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    fn line() -> String {
        serde_json::to_string(&sample()).unwrap()
    }

    fn read_all(bytes: &[u8]) -> (Vec<Result<Record, String>>, Option<usize>) {
        let mut reader = RecordReader::new(bytes, "r.jsonl");
        let got = reader
            .by_ref()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect();
        (got, reader.torn_line())
    }

    #[test]
    fn reader_names_file_and_line() {
        let text = format!("{}\n\n{{not json}}\n", line());
        let (got, torn) = read_all(text.as_bytes());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], Ok(sample()));
        let err = got[1].as_ref().unwrap_err();
        assert!(err.starts_with("r.jsonl:3: not a result record"), "{err}");
        assert_eq!(torn, None);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_remembered() {
        let full = line();
        for cut in [1, full.len() / 2, full.len() - 1] {
            let text = format!("{full}\n{full}\n{}", &full[..cut]);
            let (got, torn) = read_all(text.as_bytes());
            assert_eq!(got, vec![Ok(sample()), Ok(sample())], "cut at {cut}");
            assert_eq!(torn, Some(3), "cut at {cut}");
        }
    }

    #[test]
    fn a_cut_inside_a_multibyte_character_is_torn_too() {
        let mut rec = sample();
        rec.error = "café".into();
        let full = serde_json::to_string(&rec).unwrap();
        let cut = full.find('é').unwrap() + 1;
        let mut bytes = format!("{}\n", line()).into_bytes();
        bytes.extend_from_slice(&full.as_bytes()[..cut]);
        let (got, torn) = read_all(&bytes);
        assert_eq!(got, vec![Ok(sample())]);
        assert_eq!(torn, Some(2));
    }

    #[test]
    fn a_complete_last_line_without_newline_is_read() {
        let (got, torn) = read_all(format!("{}\n{}", line(), line()).as_bytes());
        assert_eq!(got, vec![Ok(sample()), Ok(sample())]);
        assert_eq!(torn, None);
    }

    #[test]
    fn a_torn_line_in_the_middle_is_an_error() {
        let full = line();
        let text = format!("{full}\n{}\n{full}\n", &full[..full.len() / 2]);
        let (got, torn) = read_all(text.as_bytes());
        assert_eq!(got[0], Ok(sample()));
        let err = got[1].as_ref().unwrap_err();
        assert!(err.starts_with("r.jsonl:2: not a result record"), "{err}");
        assert_eq!(torn, None);
    }

    #[test]
    fn an_unterminated_last_line_that_is_not_a_cut_is_an_error() {
        // Complete JSON with the wrong shape: no prefix of a record looks like this.
        let (got, torn) = read_all(format!("{}\n{{\"seq\": 1}}", line()).as_bytes());
        let err = got[1].as_ref().unwrap_err();
        assert!(err.starts_with("r.jsonl:2: not a result record"), "{err}");
        assert_eq!(torn, None);
    }

    #[test]
    fn a_non_utf8_byte_names_its_line() {
        let mut bytes = format!("{}\n", line()).into_bytes();
        let mut bad = line().into_bytes();
        bad[10] = 0xff;
        bytes.extend_from_slice(&bad);
        bytes.push(b'\n');
        let (got, _) = read_all(&bytes);
        let err = got[1].as_ref().unwrap_err();
        assert!(
            err.starts_with(
                "r.jsonl:2: not UTF-8 text (invalid utf-8 sequence of 1 bytes from index 10)"
            ),
            "{err}"
        );
        // On an unterminated last line too: a bad byte followed by more text is no cut.
        bytes.pop();
        let (got, torn) = read_all(&bytes);
        assert!(
            got[1]
                .as_ref()
                .unwrap_err()
                .starts_with("r.jsonl:2: not UTF-8")
        );
        assert_eq!(torn, None);
    }

    #[test]
    fn an_impossible_record_names_file_line_and_field() {
        let mut rec = sample();
        rec.ttft_ns = Some(rec.latency * 2);
        let text = format!("{}\n{}\n", line(), serde_json::to_string(&rec).unwrap());
        let (got, _) = read_all(text.as_bytes());
        let err = got[1].as_ref().unwrap_err();
        assert!(
            err.starts_with("r.jsonl:2: ttft_ns: the first token"),
            "{err}"
        );
    }

    #[test]
    fn blank_lines_are_skipped_silently() {
        let text = format!("\n{}\n  \n{}\n   ", line(), line());
        let (got, torn) = read_all(text.as_bytes());
        assert_eq!(got, vec![Ok(sample()), Ok(sample())]);
        assert_eq!(torn, None);
    }

    #[test]
    fn open_reads_a_real_file_with_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crashed.jsonl");
        let full = line();
        std::fs::write(&path, format!("{full}\n{}", &full[..40])).unwrap();
        let mut reader = open(&path).unwrap();
        assert_eq!(reader.next().unwrap().unwrap(), sample());
        assert!(reader.next().is_none());
        assert_eq!(reader.torn_line(), Some(2));
        let missing = open(&dir.path().join("nope.jsonl"))
            .err()
            .unwrap()
            .to_string();
        assert!(missing.starts_with("reading "), "{missing}");
    }
}

/// Property tests: any record `check` accepts survives writing and reading unchanged, any
/// bytes at all read without a panic, and a file cut at any byte (the crash model) reads
/// exactly the records whose lines were complete.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::super::{ErrorKind, MAX_LATENCY_NS, RecordWriter, TokensSource};
    use super::*;

    /// Years 1 to 9999: what RFC 3339's four-digit year can write.
    const FIRST_NS: i128 = -62_135_596_800_000_000_000;
    const LAST_NS: i128 = 253_402_300_799_999_999_999;

    fn sources() -> impl Strategy<Value = Option<TokensSource>> {
        proptest::option::of(proptest::sample::select(vec![
            TokensSource::Server,
            TokensSource::Tokenizer,
            TokensSource::Estimate,
        ]))
    }

    prop_compose! {
        fn timings()(latency in 0..=MAX_LATENCY_NS, intended in any::<u64>())(
            latency in Just(latency),
            intended in Just(intended),
            lag in 0..=latency.min(u64::MAX - intended),
            ttft in proptest::option::of(0..=latency),
            itl in proptest::collection::vec(0..=latency / 8, 0..8),
        ) -> (u64, u64, u64, Option<u64>, Vec<u64>) {
            (latency, intended, intended + lag, ttft, itl)
        }
    }

    prop_compose! {
        fn records()(
            (latency, intended_ns, sent_ns, ttft_ns, itl_ns) in timings(),
            (attack, error, method, url) in (any::<String>(), any::<String>(), "[A-Z]{1,7}", any::<String>()),
            (seq, code, ts) in (any::<u64>(), any::<u16>(), FIRST_NS..=LAST_NS),
            (bytes_out, bytes_in, tokens_in, tokens_out) in (any::<u64>(), any::<u64>(), any::<Option<u64>>(), any::<Option<u64>>()),
            (tokens_in_source, tokens_source) in (sources(), sources()),
            error_kind in proptest::option::of(proptest::sample::select(ErrorKind::ALL.to_vec())),
            (capped, step) in (any::<bool>(), any::<Option<u32>>()),
            (tokens_out_requested, session, turn) in (any::<Option<u64>>(), any::<Option<u64>>(), any::<Option<u32>>()),
            sharded in proptest::option::of((1u32..64, any::<u32>(), "[0-9a-f]{16}")),
        ) -> Record {
            let (shard, shards, schedule) = match sharded {
                Some((n, i, id)) => (Some(i % n), Some(n), Some(id)),
                None => (None, None, None),
            };
            Record {
                attack, seq, code,
                timestamp: time::OffsetDateTime::from_unix_timestamp_nanos(ts).unwrap(),
                latency, bytes_out, bytes_in, error, method, url, intended_ns, sent_ns, ttft_ns,
                itl_ns, tokens_in, tokens_in_source, tokens_out, tokens_source, error_kind,
                capped, step, tokens_out_requested, session, turn, shard, shards, schedule,
                recv_lag_ns: None,
            }
        }
    }

    fn encode(records: &[Record]) -> Vec<u8> {
        let mut w = RecordWriter::new(Vec::new());
        for r in records {
            w.write(r).unwrap();
        }
        w.into_inner()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn written_records_read_back_equal(records in proptest::collection::vec(records(), 0..5)) {
            for r in &records {
                prop_assert_eq!(r.check(), Ok(()));
            }
            let bytes = encode(&records);
            let back: Vec<Record> = RecordReader::new(&bytes[..], "p.jsonl")
                .collect::<Result<_, _>>()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, records);
        }

        #[test]
        fn any_bytes_read_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            for item in RecordReader::new(&bytes[..], "p.jsonl") {
                if let Err(e) = item {
                    prop_assert!(e.to_string().starts_with("p.jsonl:"), "{e}");
                }
            }
        }

        #[test]
        fn a_damaged_line_reads_without_panic(
            record in records(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = encode(&[record]);
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = RecordReader::new(&bytes[..], "p.jsonl").count();
        }

        #[test]
        fn a_file_cut_anywhere_keeps_its_complete_lines(
            records in proptest::collection::vec(records(), 1..4),
            at in any::<prop::sample::Index>(),
        ) {
            let bytes = encode(&records);
            let cut = at.index(bytes.len() + 1);
            let mut reader = RecordReader::new(&bytes[..cut], "p.jsonl");
            let got: Vec<Record> = reader
                .by_ref()
                .collect::<Result<_, _>>()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let whole = bytes[..cut].iter().filter(|&&b| b == b'\n').count();
            // A cut just before a newline leaves that line complete, only unterminated.
            let last_complete = cut < bytes.len() && bytes[cut] == b'\n';
            let want = whole + usize::from(last_complete);
            prop_assert_eq!(&got[..], &records[..want]);
            let torn = cut > 0 && bytes[cut - 1] != b'\n' && !last_complete;
            prop_assert_eq!(reader.torn_line(), torn.then_some(whole + 1));
        }
    }
}
