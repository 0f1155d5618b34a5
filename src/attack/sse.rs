//! Server-sent-event framing shared by the streaming APIs: bytes in (any chunking), complete
//! events out. Knows nothing of the JSON inside `data:`.
//!
//! An event ends at a blank line; `data:` lines join with `\n`; the space after the colon is
//! optional (TGI writes `data:{..}`, OpenAI `data: {..}`); `:` lines are keep-alive comments.

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

/// An event (or one of its lines) longer than the parser's limit: `--max-event-size`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "an event is longer than --max-event-size {limit} bytes; raise it if the server really sends such events"
)]
pub struct EventTooLarge {
    pub limit: usize,
}

/// Incremental parser; feed it chunks as they arrive. Linear in the bytes fed: each byte is
/// scanned once, and only an unfinished line is kept between chunks, bounded by `limit`.
#[derive(Debug)]
pub struct SseParser {
    /// The current line's bytes from earlier chunks (no newline yet).
    partial: Vec<u8>,
    current: Event,
    has_field: bool,
    limit: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl SseParser {
    /// A parser refusing any event (its lines, or its joined data) longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            partial: Vec::new(),
            current: Event::default(),
            has_field: false,
            limit,
        }
    }

    /// Appends a chunk and returns the events it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, EventTooLarge> {
        let mut events = Vec::new();
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = (&rest[..pos], &rest[pos + 1..]);
            rest = tail;
            if self.partial.is_empty() {
                self.line(head, &mut events)?;
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                self.check(line.len())?;
                self.line(&line, &mut events)?;
                line.clear();
                // Keep the allocation for the next long line.
                self.partial = line;
            }
        }
        self.check(self.partial.len() + rest.len())?;
        self.partial.extend_from_slice(rest);
        Ok(events)
    }

    fn check(&self, len: usize) -> Result<(), EventTooLarge> {
        if len > self.limit {
            return Err(EventTooLarge { limit: self.limit });
        }
        Ok(())
    }

    fn line(&mut self, mut line: &[u8], events: &mut Vec<Event>) -> Result<(), EventTooLarge> {
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if line.is_empty() {
            if self.has_field {
                events.push(std::mem::take(&mut self.current));
                self.has_field = false;
            }
            return Ok(());
        }
        self.check(line.len())?;
        self.field(&String::from_utf8_lossy(line));
        self.check(self.current.data.len())
    }

    fn field(&mut self, line: &str) {
        if line.starts_with(':') {
            return;
        }
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match name {
            "data" => {
                if self.has_field && !self.current.data.is_empty() {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_field = true;
            }
            "event" => {
                self.current.event = Some(value.to_owned());
                self.has_field = true;
            }
            _ => {}
        }
    }

    /// True when bytes of an unfinished event are still buffered (a truncated stream).
    pub fn has_partial(&self) -> bool {
        self.has_field || self.partial.iter().any(|b| !b.is_ascii_whitespace())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_events_across_any_chunking() {
        let stream = b"data:{\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":2}\r\n\r\nevent: x\ndata: l1\ndata: l2\n\ndata: [DONE]\n\n";
        let whole = SseParser::default().feed(stream).unwrap();
        assert_eq!(
            whole.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
            vec!["{\"a\":1}", "{\"b\":2}", "l1\nl2", "[DONE]"]
        );
        assert_eq!(whole[2].event.as_deref(), Some("x"));
        // Byte-by-byte feeding yields the same events.
        let mut p = SseParser::default();
        let split: Vec<Event> = stream.iter().flat_map(|b| p.feed(&[*b]).unwrap()).collect();
        assert_eq!(split, whole);
        assert!(!p.has_partial());
    }

    #[test]
    fn reports_a_truncated_event() {
        let mut p = SseParser::default();
        assert!(p.feed(b"data: {\"a\":").unwrap().is_empty());
        assert!(p.has_partial());
    }

    #[test]
    fn refuses_an_event_over_the_limit_in_one_line_or_many() {
        let mut p = SseParser::new(16);
        assert_eq!(p.feed(b"data: 0123456789\n\n").unwrap().len(), 1);
        // A line growing across chunks fails as soon as it passes the limit, without a newline.
        let mut p = SseParser::new(16);
        assert!(p.feed(b"data: 0123456").unwrap().is_empty());
        assert_eq!(p.feed(b"789abcdef"), Err(EventTooLarge { limit: 16 }));
        // Short lines whose joined data is too long.
        let mut p = SseParser::new(16);
        let e = p.feed(b"data: 0123456789\ndata: 0123456789\n");
        assert_eq!(e, Err(EventTooLarge { limit: 16 }));
    }

    #[test]
    fn a_long_line_in_small_chunks_costs_linear_time() {
        // 8 MiB in 1 KiB chunks: a parser that rescans its buffer per chunk does ~32 G byte
        // comparisons here (minutes); a linear one, 8 M (milliseconds).
        let mut p = SseParser::new(16 << 20);
        let chunk = [b'x'; 1024];
        assert!(p.feed(b"data: ").unwrap().is_empty());
        for _ in 0..8 * 1024 {
            assert!(p.feed(&chunk).unwrap().is_empty());
        }
        let events = p.feed(b"\n\n").unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.len(), 8 << 20);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// Any cutting of a stream into chunks yields the events of the whole stream, each with
        /// the data that was written.
        #[test]
        fn any_chunking_yields_the_same_events(
            events in proptest::collection::vec("[a-z{}\":, \\[\\]]{0,40}", 0..8),
            cuts in proptest::collection::vec(0usize..512, 0..16),
            crlf in proptest::bool::ANY,
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let stream: String = events.iter().map(|e| format!("data: {e}{nl}{nl}")).collect();
            let bytes = stream.as_bytes();
            let whole = SseParser::default().feed(bytes).unwrap();
            let data: Vec<&str> = whole.iter().map(|e| e.data.as_str()).collect();
            let written: Vec<&str> = events.iter().map(String::as_str).collect();
            proptest::prop_assert_eq!(data, written);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut p = SseParser::default();
            let mut got = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                got.extend(p.feed(&bytes[at..c]).unwrap());
                at = c;
            }
            proptest::prop_assert_eq!(got, whole);
            proptest::prop_assert!(!p.has_partial());
        }

        /// Arbitrary bytes never panic, and never hold more than the limit.
        #[test]
        fn arbitrary_bytes_are_parsed_or_refused(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            cut in 0usize..600,
        ) {
            let mut p = SseParser::new(64);
            let cut = cut.min(bytes.len());
            for part in [&bytes[..cut], &bytes[cut..]] {
                match p.feed(part) {
                    Ok(events) => {
                        for e in events {
                            proptest::prop_assert!(e.data.len() <= 64);
                        }
                    }
                    Err(e) => {
                        proptest::prop_assert_eq!(e, EventTooLarge { limit: 64 });
                        break;
                    }
                }
            }
        }
    }
}
