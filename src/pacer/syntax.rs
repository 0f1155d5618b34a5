//! The syntax users type for a schedule: rates (`50`, `50/s`, `1/5s`, as Vegeta writes them)
//! and durations (`10s`, `1m30s`, as Go writes them), and how durations are printed back.

use std::fmt;
use std::time::Duration;

/// A request rate: `freq` hits every `per`. `freq == 0` means no schedule (closed loop).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub freq: f64,
    pub per: Duration,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        if self.per.is_zero() {
            0.0
        } else {
            self.freq / self.per.as_secs_f64()
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.freq == 0.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.freq, format_duration(self.per))
    }
}

/// Bad rate or duration text; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "invalid rate {0:?}: write requests per period, e.g. `50`, `50/s`, `50/1s` or `1/5s` (0 means as fast as the in-flight cap allows)"
    )]
    Rate(String),
    #[error(
        "invalid duration {0:?}: use a number with a unit, e.g. `500ms`, `10s`, `1m30s`, `2h` (0 means no limit)"
    )]
    Duration(String),
}

/// Parses Vegeta's rate syntax. A bare unit after `/` means one of it (`50/s` = `50/1s`).
/// Unlike Vegeta, the frequency may be fractional (`2.5/s`).
pub fn parse_rate(text: &str) -> Result<Rate, ParseError> {
    let bad = || ParseError::Rate(text.to_owned());
    let t = text.trim();
    let (freq, per) = match t.split_once('/') {
        Some((f, p)) => (f.trim(), p.trim()),
        None => (t, "1s"),
    };
    let freq: f64 = freq.parse().map_err(|_| bad())?;
    if !freq.is_finite() || freq < 0.0 {
        return Err(bad());
    }
    // `is_alphabetic`, not the ASCII test: `50/µs` must mean one microsecond like `50/us`.
    let per = if per.chars().next().is_some_and(char::is_alphabetic) {
        parse_duration(&format!("1{per}")).map_err(|_| bad())?
    } else {
        parse_duration(per).map_err(|_| bad())?
    };
    if per.is_zero() {
        return Err(bad());
    }
    Ok(Rate { freq, per })
}

/// Parses Go-style durations: a sequence of `<number><unit>` with units ns, us (µs), ms, s, m, h.
/// A bare `0` is allowed.
pub fn parse_duration(text: &str) -> Result<Duration, ParseError> {
    let bad = || ParseError::Duration(text.to_owned());
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Renders a duration compactly (`1.5s`, `250ms`, `80us`), for reports and messages.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        "0s".to_owned()
    } else if ns.is_multiple_of(1_000_000_000) {
        format!("{}s", ns / 1_000_000_000)
    } else if ns >= 1_000_000_000 {
        format!("{}s", trim_float(d.as_secs_f64()))
    } else if ns >= 1_000_000 {
        format!("{}ms", trim_float(ns as f64 / 1e6))
    } else if ns >= 1_000 {
        format!("{}us", trim_float(ns as f64 / 1e3))
    } else {
        format!("{ns}ns")
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn rates_parse_like_vegeta() {
        let cases: &[(&str, f64, Duration)] = &[
            ("50", 50.0, Duration::from_secs(1)),
            ("50/s", 50.0, Duration::from_secs(1)),
            ("50/1s", 50.0, Duration::from_secs(1)),
            ("1/5s", 1.0, Duration::from_secs(5)),
            ("100/ms", 100.0, ms(1)),
            ("2.5/s", 2.5, Duration::from_secs(1)),
            ("0", 0.0, Duration::from_secs(1)),
            ("10/1m", 10.0, Duration::from_secs(60)),
        ];
        for (text, freq, per) in cases {
            let r = parse_rate(text).unwrap();
            assert_eq!((r.freq, r.per), (*freq, *per), "{text}");
        }
        assert!((parse_rate("1/5s").unwrap().per_second() - 0.2).abs() < 1e-12);
        for bad in ["", "x", "-5", "5/", "5/0s", "5/xs", "nan"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} should be rejected");
        }
        let msg = parse_rate("fast").unwrap_err().to_string();
        assert!(msg.contains("`1/5s`"), "{msg}");
    }

    #[test]
    fn durations_parse_like_go() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("10s", Duration::from_secs(10)),
            ("1m30s", Duration::from_secs(90)),
            ("500ms", ms(500)),
            ("1.5s", ms(1500)),
            ("2h", Duration::from_secs(7200)),
            ("250us", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text).unwrap(), *want, "{text}");
        }
        for bad in ["", "10", "s", "10x", "1..5s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(format_duration(ms(1500)), "1.5s");
        assert_eq!(format_duration(ms(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
    }
}

/// Property tests: the rate and duration syntax never panics, and what `format_duration` and
/// `Rate`'s `Display` write (in messages, reports and scenario files) parses back.
#[cfg(test)]
mod props {
    use super::*;
    use crate::pacer::{Arrival, Pacer};
    use proptest::prelude::*;

    const UNITS: [(&str, u64); 7] = [
        ("ns", 1),
        ("us", 1_000),
        ("µs", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
    ];

    /// Up to a century: past about 2^53 ns of whole seconds an f64 no longer holds every
    /// second, and no attack is that long.
    fn durations() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0u64..1_000_000_000).prop_map(Duration::from_nanos),
            (0u64..3_153_600_000).prop_map(Duration::from_secs),
            (0u64..3_153_600_000_000_000_000).prop_map(Duration::from_nanos),
        ]
    }

    /// What `format_duration` may lose: nothing below 1 ms (ns and us print every digit),
    /// half a microsecond in the ms range, half a millisecond past a second.
    fn rounding_ns(d: Duration) -> u128 {
        match d.as_nanos() {
            ns if ns < 1_000_000 => 0,
            ns if ns < 1_000_000_000 => 500,
            ns if ns.is_multiple_of(1_000_000_000) => 0,
            _ => 500_000,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parsers_never_panic(text in any::<String>()) {
            let _ = parse_duration(&text);
            let _ = parse_rate(&text);
        }

        #[test]
        fn parsers_never_panic_on_near_misses(text in "[0-9.nsuµmh/ ]{0,16}") {
            let _ = parse_duration(&text);
            let _ = parse_rate(&text);
        }

        #[test]
        fn formatted_durations_parse_back(d in durations()) {
            let text = format_duration(d);
            let back = parse_duration(&text).unwrap();
            // One ns beyond the display's rounding for the trip through f64 seconds.
            prop_assert!(
                back.as_nanos().abs_diff(d.as_nanos()) <= rounding_ns(d) + 1,
                "{d:?} -> {text} -> {back:?}"
            );
            prop_assert_eq!(format_duration(back), text);
        }

        #[test]
        fn sums_of_units_parse_exactly(parts in proptest::collection::vec((0u64..10_000, 0..UNITS.len()), 1..5)) {
            let text: String = parts.iter().map(|&(n, u)| format!("{n}{}", UNITS[u].0)).collect();
            let want: u64 = parts.iter().map(|&(n, u)| n * UNITS[u].1).sum();
            let got = parse_duration(&text).unwrap().as_nanos();
            // Through f64 seconds, which hold about 15 significant digits: a nanosecond below
            // 11 days, a few past that (4661h5028us is 2 ns out).
            let slack = 1 + u128::from(want) / 1_000_000_000_000_000;
            prop_assert!(got.abs_diff(u128::from(want)) <= slack, "{text}: {got} vs {want}");
        }

        #[test]
        fn displayed_rates_parse_back(freq in 0.0f64..1e6, per in durations()) {
            prop_assume!(!per.is_zero());
            let rate = Rate { freq, per };
            let back = parse_rate(&rate.to_string()).unwrap();
            prop_assert_eq!(back.freq, freq);
            prop_assert_eq!(back.per, parse_duration(&format_duration(per)).unwrap());
        }

        #[test]
        fn a_bare_unit_means_one_of_it(freq in 1u32..100_000, unit in 0..UNITS.len()) {
            let (name, ns) = UNITS[unit];
            let rate = parse_rate(&format!("{freq}/{name}")).unwrap();
            prop_assert_eq!(rate.per, Duration::from_nanos(ns));
            prop_assert_eq!(rate.freq, f64::from(freq));
        }

        #[test]
        fn a_constant_schedule_is_ordered_and_bounded(freq in 1u32..2_000, ms in 1u64..2_000) {
            let duration = Duration::from_millis(ms);
            let rate = Rate { freq: f64::from(freq), per: Duration::from_secs(1) };
            let mut p = Pacer::new(rate, Arrival::Constant, duration, None);
            let dues: Vec<Duration> = std::iter::from_fn(|| p.next_due()).collect();
            prop_assert!(dues.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(dues.iter().all(|&d| d < duration));
            // Hits are due at n / freq seconds, so ceil(duration * freq) of them fit.
            let want = (u64::from(freq) * ms).div_ceil(1000);
            prop_assert!(dues.len() as u64 == want || dues.len() as u64 + 1 == want, "{} vs {want}", dues.len());
        }
    }
}
