//! Service-level objectives: `p95<2s,ttft_p95<500ms` parsed into clauses a step must meet.
//!
//! A clause is `[family_]stat OP value unit`: family `latency` (the default; end-to-end from
//! the intended send time), `ttft`, `itl`, `tpot` or `service` (from the actual send); stat
//! `mean, p50, p90, p95, p99, p999, max`; OP `<` or `<=`; unit `us, ms, s, m`. Pure: parsing
//! and checking against numbers handed in. Parse errors point at the character.

use std::fmt;

use serde::{Serialize, Serializer};

use super::caret::CaretError;

/// Which timing distribution a clause is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Latency,
    Service,
    Ttft,
    Itl,
    Tpot,
}

impl Family {
    pub const ALL: [Family; 5] = [
        Family::Latency,
        Family::Service,
        Family::Ttft,
        Family::Itl,
        Family::Tpot,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            Family::Latency => "",
            Family::Service => "service_",
            Family::Ttft => "ttft_",
            Family::Itl => "itl_",
            Family::Tpot => "tpot_",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Latency => "latency",
            Family::Service => "service",
            Family::Ttft => "ttft",
            Family::Itl => "itl",
            Family::Tpot => "tpot",
        }
    }
}

/// Which statistic of the distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stat {
    Mean,
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
}

impl Stat {
    pub const ALL: [Stat; 7] = [
        Stat::Mean,
        Stat::P50,
        Stat::P90,
        Stat::P95,
        Stat::P99,
        Stat::P999,
        Stat::Max,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stat::Mean => "mean",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::P999 => "p999",
            Stat::Max => "max",
        }
    }
}

/// One objective: `family stat < limit` (or `<=`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clause {
    pub family: Family,
    pub stat: Stat,
    pub inclusive: bool,
    pub limit_ns: f64,
}

impl Clause {
    /// Whether `measured_ns` meets the clause.
    pub fn holds(&self, measured_ns: f64) -> bool {
        if self.inclusive {
            measured_ns <= self.limit_ns
        } else {
            measured_ns < self.limit_ns
        }
    }

    /// `ttft_p95` etc.
    pub fn metric(&self) -> String {
        format!("{}{}", self.family.prefix(), self.stat.name())
    }
}

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.inclusive { "<=" } else { "<" };
        write!(f, "{}{op}{}", self.metric(), fmt_duration_ns(self.limit_ns))
    }
}

/// All clauses of an SLO; empty means "no latency objective".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Slo {
    pub clauses: Vec<Clause>,
}

impl Serialize for Slo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.clauses.iter().map(|c| c.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

const METRIC_HINT: &str = "metrics: mean, p50, p90, p95, p99, p999, max, optionally prefixed by ttft_, itl_, tpot_ or service_";

impl Slo {
    /// Parses `p95<2s,ttft_p95<500ms`; an empty string is the empty SLO.
    pub fn parse(input: &str) -> Result<Self, CaretError> {
        let mut clauses = Vec::new();
        if input.trim().is_empty() {
            return Ok(Self { clauses });
        }
        let mut at = 0;
        for part in input.split(',') {
            clauses.push(parse_clause(input, at, part)?);
            at += part.len() + 1;
        }
        Ok(Self { clauses })
    }

    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }
}

fn parse_clause(input: &str, at: usize, part: &str) -> Result<Clause, CaretError> {
    let err =
        |s: usize, e: usize, msg: String| CaretError::new("SLO", input, (at + s, at + e), msg);
    let lead = part.len() - part.trim_start().len();
    let body = part.trim();
    if body.is_empty() {
        return Err(err(lead, lead, "empty clause".into())
            .hint("clauses look like p95<2s; separate them with commas"));
    }
    let op_at = body.find(['<', '>', '=']).ok_or_else(|| {
        err(
            lead,
            lead + body.len(),
            format!("`{body}` has no comparison"),
        )
        .hint("write a limit like p95<2s or ttft_p99<=500ms")
    })?;
    let metric = body[..op_at].trim_end();
    if metric.is_empty() {
        return Err(err(
            lead + op_at,
            lead + op_at,
            "a metric is missing before the comparison".into(),
        )
        .hint(METRIC_HINT));
    }
    let (family, stat_name) = match metric.split_once('_') {
        Some((fam, stat)) => {
            let family = match fam {
                "latency" => Family::Latency,
                "service" => Family::Service,
                "ttft" => Family::Ttft,
                "itl" => Family::Itl,
                "tpot" => Family::Tpot,
                _ => {
                    return Err(err(
                        lead,
                        lead + fam.len(),
                        format!("unknown metric family `{fam}`"),
                    )
                    .hint(METRIC_HINT));
                }
            };
            (family, (stat, lead + fam.len() + 1))
        }
        None => (Family::Latency, (metric, lead)),
    };
    let stat = Stat::ALL
        .into_iter()
        .find(|s| s.name() == stat_name.0)
        .ok_or_else(|| {
            err(
                stat_name.1,
                stat_name.1 + stat_name.0.len(),
                format!("unknown statistic `{}`", stat_name.0),
            )
            .hint(METRIC_HINT)
        })?;
    let rest = &body[op_at..];
    let (inclusive, op_len) = if rest.starts_with("<=") {
        (true, 2)
    } else if rest.starts_with('<') {
        (false, 1)
    } else {
        let len = rest
            .chars()
            .take_while(|c| matches!(c, '<' | '>' | '='))
            .count();
        return Err(err(
            lead + op_at,
            lead + op_at + len,
            "objectives are upper limits: use < or <=".into(),
        ));
    };
    let value_at = lead + op_at + op_len;
    let value = &body[op_at + op_len..];
    let value_lead = value.len() - value.trim_start().len();
    let value = value.trim();
    let value_at = value_at + value_lead;
    if value.is_empty() {
        return Err(err(
            value_at,
            value_at,
            "a limit is missing after the comparison".into(),
        )
        .hint("e.g. 2s or 500ms"));
    }
    let num_len = value
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map(|(i, _)| i)
        .unwrap_or(value.len());
    let number: f64 = value[..num_len].parse().map_err(|_| {
        err(
            value_at,
            value_at + num_len.max(1),
            format!("`{value}` does not start with a number"),
        )
    })?;
    let unit = value[num_len..].trim();
    let unit_at =
        value_at + num_len + (value[num_len..].len() - value[num_len..].trim_start().len());
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "" => {
            return Err(err(unit_at, unit_at, format!("`{value}` needs a unit"))
                .hint("units: us, ms, s, m"));
        }
        _ => {
            return Err(err(
                unit_at,
                unit_at + unit.len(),
                format!("unknown unit `{unit}`"),
            )
            .hint("units: us, ms, s, m"));
        }
    };
    if number <= 0.0 {
        return Err(err(
            value_at,
            value_at + num_len,
            "the limit must be above zero".into(),
        ));
    }
    Ok(Clause {
        family,
        stat,
        inclusive,
        limit_ns: number * scale,
    })
}

/// `2s`, `500ms`, `750us` (shortest exact unit).
pub fn fmt_duration_ns(ns: f64) -> String {
    for (unit, scale) in [("m", 60e9), ("s", 1e9), ("ms", 1e6), ("us", 1e3)] {
        let v = ns / scale;
        if v >= 1.0 && (v * 1000.0).fract() == 0.0 {
            let s = format!("{v}");
            return format!("{}{unit}", s.strip_suffix(".0").unwrap_or(&s));
        }
    }
    format!("{ns}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_design_example() {
        let slo = Slo::parse("p95<2s,ttft_p95<500ms").unwrap();
        assert_eq!(slo.clauses.len(), 2);
        assert_eq!(
            slo.clauses[0],
            Clause {
                family: Family::Latency,
                stat: Stat::P95,
                inclusive: false,
                limit_ns: 2e9
            }
        );
        assert_eq!(slo.clauses[1].family, Family::Ttft);
        assert_eq!(slo.clauses[1].limit_ns, 5e8);
        assert_eq!(slo.to_string(), "p95<2s,ttft_p95<500ms");
        let slo = Slo::parse(" latency_p99 <= 1.5s , itl_p50<40ms,tpot_mean<25ms").unwrap();
        assert!(slo.clauses[0].inclusive);
        assert_eq!(slo.to_string(), "p99<=1.5s,itl_p50<40ms,tpot_mean<25ms");
        assert!(Slo::parse("").unwrap().is_empty());
    }

    #[test]
    fn holds() {
        let c = Slo::parse("p95<2s").unwrap().clauses[0];
        assert!(c.holds(1.999e9) && !c.holds(2e9));
        let c = Slo::parse("p95<=2s").unwrap().clauses[0];
        assert!(c.holds(2e9));
    }

    fn caret(input: &str) -> (usize, usize, String) {
        let e = Slo::parse(input).unwrap_err();
        (e.column(), e.end - e.start, e.to_string())
    }

    #[test]
    fn errors_point_at_the_character() {
        let (col, width, msg) = caret("p95<2s,ttft_p96<500ms");
        assert_eq!((col, width), (12, 3), "{msg}");
        assert!(msg.contains("unknown statistic `p96`"), "{msg}");
        assert!(
            msg.contains("\n  p95<2s,ttft_p96<500ms\n              ^^^"),
            "{msg}"
        );
        let (col, _, msg) = caret("p95<2x");
        assert_eq!(col, 5, "{msg}");
        assert!(msg.contains("unknown unit `x`"));
        let (col, _, msg) = caret("p95<2");
        assert_eq!(col, 5, "{msg}");
        assert!(msg.contains("needs a unit"));
        let (col, _, msg) = caret("p95>2s");
        assert_eq!(col, 3, "{msg}");
        let (col, _, msg) = caret("ttfb_p95<2s");
        assert_eq!(col, 0, "{msg}");
        assert!(msg.contains("unknown metric family"));
        let (col, _, msg) = caret("p95<2s,");
        assert_eq!(col, 7, "{msg}");
        let (col, _, msg) = caret("p95");
        assert_eq!(col, 0, "{msg}");
        assert!(msg.contains("no comparison"));
        let (col, _, _) = caret("p95<abc");
        assert_eq!(col, 4);
    }

    #[test]
    fn durations_format_shortest() {
        assert_eq!(fmt_duration_ns(2e9), "2s");
        assert_eq!(fmt_duration_ns(5e8), "500ms");
        assert_eq!(fmt_duration_ns(1.5e9), "1.5s");
        assert_eq!(fmt_duration_ns(750e3), "750us");
    }
}
