//! Rate plans: which offered rates (requests per second) a sweep visits, in order.
//!
//! Three spellings: a range `A..B` with a step (`--rps 10..150 --step 15`, both ends included
//! when the step lands on B), a list `10,20,40`, and log-spaced `log:A..B:N` (N rates from A to
//! B, rounded to 3 significant digits). Pure parsing; errors point at the character.

use std::fmt;

use super::caret::CaretError;

/// The most rates one plan may visit.
const MAX_STEPS: usize = 10_000;

/// What a plan's levels are: offered rates (open loop, `--rps`) or numbers of users (closed
/// loop, `--concurrency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    #[default]
    Rate,
    Concurrency,
}

impl Axis {
    /// A level with its unit: `40 req/s`, `8 users`.
    pub fn fmt_level(self, level: f64) -> String {
        match self {
            Axis::Rate => format!("{} req/s", fmt_rate(level)),
            Axis::Concurrency if level == 1.0 => "1 user".into(),
            Axis::Concurrency => format!("{} users", fmt_rate(level)),
        }
    }

    /// The charts' x-axis title: `offered rate (requests/s)`, `concurrency (users)`.
    pub fn title(self) -> &'static str {
        match self {
            Axis::Rate => "offered rate (requests/s)",
            Axis::Concurrency => "concurrency (users)",
        }
    }
}

/// The offered rates of a sweep, ascending for ranges and log plans, as given for lists.
#[derive(Debug, Clone, PartialEq)]
pub struct RatePlan {
    rates: Vec<f64>,
    /// The text it was parsed from (with the step folded in), for reports.
    spec: String,
}

impl RatePlan {
    /// Parses `spec` with the optional `--step` for ranges.
    pub fn parse(spec: &str, step: Option<f64>) -> Result<Self, CaretError> {
        let trimmed = spec.trim();
        let lead = spec.len() - spec.trim_start().len();
        let err = |span: (usize, usize), msg: String| {
            CaretError::new("rate plan", spec, (span.0 + lead, span.1 + lead), msg)
        };
        if trimmed.is_empty() {
            return Err(err((0, 0), "empty rate plan".into())
                .hint("write a range 10..150 with --step 15, a list 10,20,40, or log:1..1000:12"));
        }
        let rates = if let Some(rest) = trimmed.strip_prefix("log:") {
            let off = 4;
            let (range, count) = rest.rsplit_once(':').ok_or_else(|| {
                err(
                    (trimmed.len(), trimmed.len()),
                    "a log plan needs a count".into(),
                )
                .hint("write log:A..B:N, e.g. log:1..1000:12")
            })?;
            let count_at = off + range.len() + 1;
            let n: usize = count.trim().parse().map_err(|_| {
                err(
                    (count_at, trimmed.len()),
                    format!("`{count}` is not a whole number of steps"),
                )
            })?;
            if n < 2 {
                return Err(err(
                    (count_at, trimmed.len()),
                    format!("a log plan needs at least 2 steps, got {n}"),
                ));
            }
            // The same cap as ranges: `log:1..2:99999999999` would otherwise allocate its
            // steps before anything could refuse them.
            if n > MAX_STEPS {
                return Err(err(
                    (count_at, trimmed.len()),
                    format!("a log plan of {n} steps is over the {MAX_STEPS} a sweep may have"),
                )
                .hint("use fewer steps"));
            }
            let (a, b) = parse_range(range, off, &err)?;
            (0..n)
                .map(|i| {
                    let x = a * (b / a).powf(i as f64 / (n - 1) as f64);
                    round_sig(x, 3)
                })
                .collect()
        } else if trimmed.contains("..") {
            let (a, b) = parse_range(trimmed, 0, &err)?;
            let step = match step {
                None => {
                    return Err(err((0, trimmed.len()), "a range needs a step".into())
                        .hint(format!("add --step (e.g. --step {})", nice_step(a, b))));
                }
                Some(s) if !(s.is_finite() && s > 0.0) => {
                    return Err(err(
                        (0, trimmed.len()),
                        format!("step must be positive, got {s}"),
                    )
                    .hint("use --step 1 or larger"));
                }
                Some(s) => s,
            };
            let mut rates = Vec::new();
            let mut i = 0u32;
            loop {
                // Multiply rather than accumulate so 0.1-steps do not drift.
                let x = a + step * f64::from(i);
                if x > b * (1.0 + 1e-9) {
                    break;
                }
                rates.push(round_sig(x, 9));
                i += 1;
                if rates.len() > MAX_STEPS {
                    return Err(
                        err((0, trimmed.len()), format!("more than {MAX_STEPS} steps"))
                            .hint("use a larger --step"),
                    );
                }
            }
            rates
        } else {
            let mut rates = Vec::new();
            let mut at = 0;
            for part in trimmed.split(',') {
                let span = (at, at + part.len());
                rates.push(parse_rate(part, span, &err)?);
                at += part.len() + 1;
            }
            rates
        };
        let spec = match step {
            Some(s) if trimmed.contains("..") && !trimmed.starts_with("log:") => {
                format!("{trimmed} step {s}")
            }
            _ => trimmed.to_string(),
        };
        Ok(Self { rates, spec })
    }

    /// A plan of the given rates (all positive).
    pub fn from_rates(rates: &[f64]) -> Result<Self, CaretError> {
        let spec = rates
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(",");
        Self::parse(&spec, None)
    }

    /// A log plan of users: its levels rounded to whole numbers, repeats dropped
    /// (`log:1..100:5` is 1, 3, 10, 32, 100). Other plans are kept as written, so a
    /// fractional user in a list stays an error.
    pub fn whole_log_levels(mut self) -> Self {
        if self.spec.starts_with("log:") {
            self.rates = self.rates.iter().map(|r| r.round().max(1.0)).collect();
            self.rates.dedup();
        }
        self
    }

    /// The bounds `A..B` of a search (`sweep --search`): a range without a step, A below B.
    pub fn parse_bounds(spec: &str) -> Result<(f64, f64), CaretError> {
        let trimmed = spec.trim();
        let lead = spec.len() - spec.trim_start().len();
        let err = |span: (usize, usize), msg: String| {
            CaretError::new("search bounds", spec, (span.0 + lead, span.1 + lead), msg)
        };
        if trimmed.starts_with("log:") || !trimmed.contains("..") {
            return Err(
                err((0, trimmed.len()), "a search needs a range A..B".into())
                    .hint("write the lowest and highest level to search, e.g. 5..200"),
            );
        }
        let (a, b) = parse_range(trimmed, 0, &err)?;
        if a >= b {
            return Err(err(
                (0, trimmed.len()),
                format!(
                    "nothing to bisect between {} and {}",
                    fmt_rate(a),
                    fmt_rate(b)
                ),
            )
            .hint(format!(
                "give an upper bound above {}, e.g. {}..{}",
                fmt_rate(a),
                fmt_rate(a),
                fmt_rate(a * 20.0)
            )));
        }
        Ok((a, b))
    }

    /// A search's plan: its bounds (what `rates` reports: the lowest and highest level it may
    /// probe), described as `search 5..200 within 5%`.
    pub fn search(lo: f64, hi: f64, precision: f64) -> Self {
        Self {
            rates: vec![lo, hi],
            spec: format!(
                "search {}..{} within {}%",
                fmt_rate(lo),
                fmt_rate(hi),
                fmt_rate(round_sig(precision * 100.0, 6))
            ),
        }
    }

    pub fn rates(&self) -> &[f64] {
        &self.rates
    }

    pub fn spec(&self) -> &str {
        &self.spec
    }
}

impl fmt::Display for RatePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

fn parse_range(
    text: &str,
    off: usize,
    err: &impl Fn((usize, usize), String) -> CaretError,
) -> Result<(f64, f64), CaretError> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| err((off, off + text.len()), "expected a range A..B".into()))?;
    if a.trim().is_empty() || b.trim().is_empty() {
        let at = if a.trim().is_empty() {
            off
        } else {
            off + a.len() + 2
        };
        return Err(err((at, at), "empty range: both ends are needed".into())
            .hint("write A..B, e.g. 10..150"));
    }
    let lo = parse_rate(a, (off, off + a.len()), err)?;
    let b_at = off + a.len() + 2;
    let hi = parse_rate(b, (b_at, b_at + b.len()), err)?;
    if hi < lo {
        return Err(err(
            (off, off + text.len()),
            format!("reversed range: {lo} is above {hi}"),
        )
        .hint(format!("write {}..{}", fmt_rate(hi), fmt_rate(lo))));
    }
    Ok((lo, hi))
}

fn parse_rate(
    text: &str,
    span: (usize, usize),
    err: &impl Fn((usize, usize), String) -> CaretError,
) -> Result<f64, CaretError> {
    let t = text.trim();
    let lead = text.len() - text.trim_start().len();
    let span = (span.0 + lead, span.0 + lead + t.len());
    match t.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(x) => Err(err(
            span,
            format!("rates must be positive requests per second, got {x}"),
        )),
        Err(_) if t.is_empty() => Err(err(span, "empty rate".into())),
        Err(_) => Err(err(span, format!("`{t}` is not a number"))),
    }
}

/// A round step giving about ten steps between a and b.
fn nice_step(a: f64, b: f64) -> String {
    let raw = ((b - a) / 10.0).max(1.0);
    fmt_rate(round_sig(raw, 1))
}

/// Rounds to `sig` significant digits.
pub fn round_sig(x: f64, sig: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let mag = x.abs().log10().floor() as i32;
    let scale = 10f64.powi(sig - 1 - mag);
    (x * scale).round() / scale
}

/// Shortest text for a rate: `10`, `2.5`, `0.125`.
pub fn fmt_rate(x: f64) -> String {
    let s = format!("{x}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(spec: &str, step: Option<f64>) -> Vec<f64> {
        RatePlan::parse(spec, step).unwrap().rates().to_vec()
    }

    #[test]
    fn ranges_lists_and_logs() {
        assert_eq!(
            rates("10..150", Some(15.0)),
            [
                10.0, 25.0, 40.0, 55.0, 70.0, 85.0, 100.0, 115.0, 130.0, 145.0
            ]
        );
        assert_eq!(rates("5..135", Some(10.0)).len(), 14);
        assert_eq!(rates("0.1..0.5", Some(0.1)), [0.1, 0.2, 0.3, 0.4, 0.5]);
        assert_eq!(rates("10..10", Some(5.0)), [10.0]);
        assert_eq!(rates("10, 20,40", None), [10.0, 20.0, 40.0]);
        let log = rates("log:1..1000:12", None);
        assert_eq!(log.len(), 12);
        assert_eq!((log[0], log[11]), (1.0, 1000.0));
        assert_eq!(log[1], 1.87);
        assert_eq!(rates("log:1..100:3", None), [1.0, 10.0, 100.0]);
        let users = RatePlan::parse("log:1..100:5", None)
            .unwrap()
            .whole_log_levels();
        assert_eq!(users.rates(), [1.0, 3.0, 10.0, 32.0, 100.0]);
        let dense = RatePlan::parse("log:1..4:6", None)
            .unwrap()
            .whole_log_levels();
        assert_eq!(dense.rates(), [1.0, 2.0, 3.0, 4.0]);
        let list = RatePlan::parse("1.5,2", None).unwrap().whole_log_levels();
        assert_eq!(list.rates(), [1.5, 2.0]);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = RatePlan::parse("150..10", Some(15.0)).unwrap_err();
        assert!(e.message.starts_with("reversed range"), "{e}");
        assert!(e.to_string().contains("write 10..150"), "{e}");
        let e = RatePlan::parse("10..", Some(15.0)).unwrap_err();
        assert!(e.message.starts_with("empty range"), "{e}");
        assert_eq!(e.column(), 4);
        let e = RatePlan::parse("10..150", Some(0.0)).unwrap_err();
        assert!(e.message.contains("step must be positive"), "{e}");
        let e = RatePlan::parse("10..150", None).unwrap_err();
        assert!(e.message.contains("needs a step"), "{e}");
        let e = RatePlan::parse("10,abc,30", None).unwrap_err();
        assert_eq!((e.column(), e.end - e.start), (3, 3));
        assert!(e.to_string().ends_with("     ^^^"), "{e}");
        let e = RatePlan::parse("10,0", None).unwrap_err();
        assert!(e.message.contains("positive"), "{e}");
        let e = RatePlan::parse("log:1..1000:1", None).unwrap_err();
        assert!(e.message.contains("at least 2"), "{e}");
        let e = RatePlan::parse("log:1..2:99999999999", None).unwrap_err();
        assert!(e.message.contains("over the 10000"), "{e}");
        let e = RatePlan::parse("log:100..10:5", None).unwrap_err();
        assert!(e.message.starts_with("reversed"), "{e}");
        assert!(RatePlan::parse("  ", None).is_err());
    }
}
