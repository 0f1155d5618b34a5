//! Positions in TOML errors: every file rpload reads (scenarios, pricing catalogs) reports a
//! mistake as `line L, column C` of the text the user wrote, not as a byte offset.

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// Where an error points, as (line, column); (1, 1) when the parser gave no span.
pub fn position(e: &toml::de::Error, text: &str) -> (usize, usize) {
    e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1))
}

/// The error's first line: toml repeats the offending source below it, which our own
/// `file:line:column` prefix already points at.
pub fn message(e: &toml::de::Error) -> String {
    e.message().lines().next().unwrap_or("").trim().to_string()
}

/// A toml error as `line L, column C: message` (for files whose errors carry no path prefix).
pub fn describe(e: &toml::de::Error, text: &str) -> String {
    match e.span() {
        Some(_) => {
            let (l, c) = position(e, text);
            format!("line {l}, column {c}: {}", message(e))
        }
        None => message(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_from_one() {
        assert_eq!(line_col("a = 1\nbé = x\n", 0), (1, 1));
        assert_eq!(line_col("a = 1\nbé = x\n", 6), (2, 1));
        // Columns count characters, not bytes: `é` is two bytes.
        assert_eq!(line_col("a = 1\nbé = x\n", 10), (2, 4));
        let text = "a = 1\nb = \n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        assert!(
            describe(&e, text).starts_with("line 2, column "),
            "{}",
            describe(&e, text)
        );
    }
}
