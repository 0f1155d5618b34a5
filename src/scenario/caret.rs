//! Errors that point into a one-line input (a rate plan, an SLO) with a caret under the
//! offending characters, the way compilers do:
//!
//! ```text
//! invalid SLO `p96<2s`: unknown metric `p96`
//!   p96<2s
//!   ^^^
//!   metrics: mean, p50, p90, p95, p99, p999, max, optionally prefixed by ttft_, itl_ or tpot_
//! ```

use std::fmt;

/// A message about `input[start..end]`, with an optional hint line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaretError {
    /// What was being parsed ("SLO", "rate plan").
    pub what: &'static str,
    pub input: String,
    /// Byte range of the offending text (empty range: a point, drawn as one caret).
    pub start: usize,
    pub end: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl CaretError {
    pub fn new(
        what: &'static str,
        input: &str,
        span: (usize, usize),
        message: impl Into<String>,
    ) -> Self {
        // Callers count spans in bytes; one may land inside a multi-byte character (`p95<é`
        // marks one byte of `é`), and slicing there would panic while printing the message.
        let floor = |mut i: usize| {
            i = i.min(input.len());
            while !input.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let ceil = |mut i: usize| {
            i = i.min(input.len());
            while !input.is_char_boundary(i) {
                i += 1;
            }
            i
        };
        let start = floor(span.0);
        Self {
            what,
            input: input.to_string(),
            start,
            end: ceil(span.1).max(start),
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Column (0-based, in chars) where the caret starts; tests check it.
    pub fn column(&self) -> usize {
        self.input[..self.start].chars().count()
    }
}

impl fmt::Display for CaretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.input[self.start..self.end].chars().count().max(1);
        writeln!(
            f,
            "invalid {} `{}`: {}",
            self.what, self.input, self.message
        )?;
        writeln!(f, "  {}", self.input)?;
        write!(f, "  {}{}", " ".repeat(self.column()), "^".repeat(width))?;
        if let Some(h) = &self.hint {
            write!(f, "\n  {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CaretError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_inside_a_character_widens_to_the_character() {
        // Byte 5 is inside `é` (bytes 4..6): the caret covers the whole character.
        let e = CaretError::new("SLO", "p95<é", (4, 5), "bad");
        assert_eq!((e.start, e.end), (4, 6));
        assert!(e.to_string().ends_with("\n      ^"), "{e}");
        let e = CaretError::new("SLO", "é", (1, 1), "bad");
        assert_eq!((e.start, e.end), (0, 2));
    }
}
