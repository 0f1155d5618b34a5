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

/// Incremental parser; feed it chunks as they arrive.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    current: Event,
    has_field: bool,
}

impl SseParser {
    /// Appends a chunk and returns the events it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if line.is_empty() {
                if self.has_field {
                    events.push(std::mem::take(&mut self.current));
                    self.has_field = false;
                }
            } else {
                let text = String::from_utf8_lossy(line).into_owned();
                self.field(&text);
            }
            start = end + 1;
        }
        self.buf.drain(..start);
        events
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
        self.has_field || self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_events_across_any_chunking() {
        let stream = b"data:{\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":2}\r\n\r\nevent: x\ndata: l1\ndata: l2\n\ndata: [DONE]\n\n";
        let whole = SseParser::default().feed(stream);
        assert_eq!(
            whole.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
            vec!["{\"a\":1}", "{\"b\":2}", "l1\nl2", "[DONE]"]
        );
        assert_eq!(whole[2].event.as_deref(), Some("x"));
        // Byte-by-byte feeding yields the same events.
        let mut p = SseParser::default();
        let split: Vec<Event> = stream.iter().flat_map(|b| p.feed(&[*b])).collect();
        assert_eq!(split, whole);
        assert!(!p.has_partial());
    }

    #[test]
    fn reports_a_truncated_event() {
        let mut p = SseParser::default();
        assert!(p.feed(b"data: {\"a\":").is_empty());
        assert!(p.has_partial());
    }
}
