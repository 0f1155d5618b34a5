//! Ramps: a rate that changes inside one attack (`--ramp 10..100/30s`), as stages of linearly
//! changing rate, the last stage's end rate held afterwards. Pure: parsing, the cumulative rate
//! Λ(t) (requests due by `t`) and its inverse, which the pacer uses as a time warp so that every
//! arrival process (constant, Poisson, gamma) follows the ramp.

use std::fmt;
use std::time::Duration;

use super::syntax::parse_duration;
use crate::scenario::caret::CaretError;

/// More stages than anyone writes by hand; bounds the per-arrival stage search.
const MAX_STAGES: usize = 1000;

const FORM: &str = "write FROM..TO/DURATION in req/s, e.g. 10..100/30s, or stages separated by commas: 10..100/30s,100..100/1m,100..0/10s";

/// One stage: the rate goes linearly from `from` to `to` req/s over `secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub from: f64,
    pub to: f64,
    pub secs: f64,
}

impl Stage {
    /// Requests due during the whole stage.
    fn area(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.secs
    }

    /// The time into the stage by which `du` requests are due (`du` within the stage's area).
    fn time_of(&self, du: f64) -> f64 {
        if du <= 0.0 {
            return 0.0;
        }
        // Λ(s) = a s + k s² with k = (b - a) / 2T. This form of the quadratic's root has no
        // cancellation and covers k = 0 (s = du / a) and a = 0 (s = sqrt(du / k)) alike.
        let (a, k) = (self.from, (self.to - self.from) / (2.0 * self.secs));
        let disc = (a * a + 4.0 * k * du).max(0.0);
        (2.0 * du / (a + disc.sqrt())).clamp(0.0, self.secs)
    }
}

/// A parsed `--ramp`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ramp {
    stages: Vec<Stage>,
    /// The text as written, for messages.
    spec: String,
}

impl Ramp {
    /// Parses `FROM..TO/DURATION[,FROM..TO/DURATION...]`; rates are requests per second.
    pub fn parse(spec: &str) -> Result<Self, CaretError> {
        let trimmed = spec.trim();
        let lead = spec.len() - spec.trim_start().len();
        let err = |span: (usize, usize), msg: String| {
            CaretError::new("ramp", spec, (span.0 + lead, span.1 + lead), msg).hint(FORM)
        };
        if trimmed.is_empty() {
            return Err(err((0, 0), "empty ramp".into()));
        }
        let mut stages = Vec::new();
        let mut at = 0;
        for part in trimmed.split(',') {
            stages.push(parse_stage(part, at, &err)?);
            at += part.len() + 1;
        }
        if stages.len() > MAX_STAGES {
            return Err(err(
                (0, trimmed.len()),
                format!("more than {MAX_STAGES} stages"),
            ));
        }
        let ramp = Self {
            stages,
            spec: trimmed.to_owned(),
        };
        if ramp.peak() <= 0.0 {
            return Err(err(
                (0, trimmed.len()),
                "the rate never rises above 0 req/s, so nothing would be sent".into(),
            ));
        }
        Ok(ramp)
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The highest rate the ramp reaches, req/s (rates are linear, so a stage end).
    pub fn peak(&self) -> f64 {
        self.stages
            .iter()
            .flat_map(|s| [s.from, s.to])
            .fold(0.0, f64::max)
    }

    /// How long the stages last; the last rate holds after that.
    pub fn length(&self) -> Duration {
        Duration::from_secs_f64(self.stages.iter().map(|s| s.secs).sum())
    }

    /// The rate `t` seconds into the attack.
    pub fn rate_at(&self, t: f64) -> f64 {
        let mut start = 0.0;
        for s in &self.stages {
            if t < start + s.secs {
                return s.from + (s.to - s.from) * ((t - start) / s.secs).max(0.0);
            }
            start += s.secs;
        }
        self.held()
    }

    /// Λ(t): requests due in the first `t` seconds.
    pub fn cumulative(&self, t: f64) -> f64 {
        let (mut start, mut total) = (0.0, 0.0);
        for s in &self.stages {
            if t < start + s.secs {
                let x = (t - start).max(0.0);
                return total + s.from * x + (s.to - s.from) / (2.0 * s.secs) * x * x;
            }
            start += s.secs;
            total += s.area();
        }
        total + (t - start) * self.held()
    }

    /// Λ⁻¹(u): the first time by which `u` requests are due, seconds; `None` when the rate
    /// ends at zero and never gets there.
    pub fn time_of(&self, u: f64) -> Option<f64> {
        let (mut start, mut total) = (0.0, 0.0);
        for s in &self.stages {
            let area = s.area();
            if u <= total + area && area > 0.0 {
                return Some(start + s.time_of(u - total));
            }
            start += s.secs;
            total += area;
        }
        let held = self.held();
        (held > 0.0).then(|| start + (u - total).max(0.0) / held)
    }

    /// The rate after the last stage.
    fn held(&self) -> f64 {
        self.stages.last().map_or(0.0, |s| s.to)
    }
}

impl fmt::Display for Ramp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

/// One `FROM..TO/DURATION`, `at` bytes into the trimmed text.
fn parse_stage(
    part: &str,
    at: usize,
    err: &impl Fn((usize, usize), String) -> CaretError,
) -> Result<Stage, CaretError> {
    let end = at + part.len();
    if part.trim().is_empty() {
        return Err(err((at, end), "empty stage".into()));
    }
    let Some((range, dur)) = part.split_once('/') else {
        return Err(err(
            (end, end),
            format!("stage `{}` has no /DURATION", part.trim()),
        ));
    };
    let Some((from, to)) = range.split_once("..") else {
        return Err(err(
            (at, at + range.len()),
            format!("`{}` is not FROM..TO (hold a rate with R..R)", range.trim()),
        ));
    };
    let from_at = at;
    let to_at = at + from.len() + 2;
    let dur_at = at + range.len() + 1;
    let from = rate(from, (from_at, from_at + from.len()), err)?;
    let to = rate(to, (to_at, to_at + to.len()), err)?;
    let span = (dur_at, end);
    let d = parse_duration(dur).map_err(|_| {
        err(
            span,
            format!(
                "`{}` is not a duration: use a number with a unit, e.g. 30s or 1m30s",
                dur.trim()
            ),
        )
    })?;
    if d.is_zero() {
        return Err(err(span, "a stage must last longer than 0s".into()));
    }
    Ok(Stage {
        from,
        to,
        secs: d.as_secs_f64(),
    })
}

fn rate(
    text: &str,
    span: (usize, usize),
    err: &impl Fn((usize, usize), String) -> CaretError,
) -> Result<f64, CaretError> {
    match text.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(err(
            span,
            format!(
                "`{}` is not a rate: write requests per second, a number 0 or more",
                text.trim()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_and_describe_the_rate() {
        let r = Ramp::parse(" 10..100/30s").unwrap();
        assert_eq!(
            r.stages(),
            [Stage {
                from: 10.0,
                to: 100.0,
                secs: 30.0
            }]
        );
        assert_eq!((r.peak(), r.length()), (100.0, Duration::from_secs(30)));
        assert_eq!(r.rate_at(0.0), 10.0);
        assert_eq!(r.rate_at(15.0), 55.0);
        assert_eq!(r.rate_at(60.0), 100.0);
        // (10 + 100) / 2 * 30 = 1650 by the end of the ramp, then 100 a second.
        assert!((r.cumulative(30.0) - 1650.0).abs() < 1e-9);
        assert!((r.cumulative(40.0) - 2650.0).abs() < 1e-9);
        let r = Ramp::parse("0..50/10s,50..50/1m,50..0/5s").unwrap();
        assert_eq!(r.stages().len(), 3);
        assert_eq!(r.length(), Duration::from_secs(75));
        assert_eq!(r.to_string(), "0..50/10s,50..50/1m,50..0/5s");
    }

    #[test]
    fn the_inverse_undoes_the_cumulative_rate() {
        for spec in [
            "10..100/30s",
            "0..50/10s,50..50/1m,50..0/5s",
            "100..1/2s",
            "5..5/1s",
        ] {
            let r = Ramp::parse(spec).unwrap();
            for i in 0..200 {
                let t = f64::from(i) * 0.37;
                let u = r.cumulative(t);
                let Some(back) = r.time_of(u) else {
                    // Past the end of a ramp down to 0: nothing more is due.
                    assert!(t >= r.length().as_secs_f64(), "{spec} at {t}");
                    continue;
                };
                // Where the rate is 0 (the end of a ramp down) Λ is flat and the first time
                // at that level is earlier; elsewhere the inverse is exact.
                let flat = r.rate_at(t) == 0.0 || t >= r.length().as_secs_f64();
                if !flat {
                    assert!((back - t).abs() < 1e-6, "{spec}: {t} -> {u} -> {back}");
                }
            }
        }
        let down = Ramp::parse("10..0/2s").unwrap();
        assert!((down.time_of(10.0).unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(down.time_of(10.5), None);
    }

    #[test]
    fn errors_point_at_the_bad_part() {
        let cases: &[(&str, &str, usize, usize)] = &[
            // (input, message start, caret column, caret width)
            ("", "empty ramp", 0, 1),
            ("10..100", "stage `10..100` has no /DURATION", 7, 1),
            ("100/30s", "`100` is not FROM..TO", 0, 3),
            ("10..x/30s", "`x` is not a rate", 4, 1),
            ("-5..10/30s", "`-5` is not a rate", 0, 2),
            ("10..100/30", "`30` is not a duration", 8, 2),
            ("10..100/0s", "a stage must last longer than 0s", 8, 2),
            ("10..100/30s,,5..5/1s", "empty stage", 12, 1),
            ("10..100/30s,5..5/soon", "`soon` is not a duration", 17, 4),
            ("0..0/10s", "the rate never rises above 0", 0, 8),
        ];
        for (input, msg, col, width) in cases {
            let e = Ramp::parse(input).unwrap_err();
            assert!(e.message.starts_with(msg), "{input:?}: {e}");
            assert_eq!(
                (e.column(), (e.end - e.start).max(1)),
                (*col, *width),
                "{input:?}: {e}"
            );
            let text = e.to_string();
            assert!(text.starts_with("invalid ramp `"), "{text}");
            assert!(text.contains("e.g. 10..100/30s"), "{text}");
        }
    }
}
