//! `rpload compare`'s output: a [`Comparison`] as Markdown (`compare.md`) or aligned text, and
//! the overlay chart `compare-latency.png` (p95 latency of both runs against the level, each
//! headline ringed), drawn with the sweep charts' toolkit (`chart`). Formats only; the
//! matching and the regression rule are `analysis::compare`'s.

use std::fmt::Write;
use std::path::Path;

use plotters::style::RGBColor;

use super::chart::{self, COLORS, MARKER, Panel, Series, StatusKey, Stroke, XUnit, YUnit};
use crate::analysis::compare::{Comparison, Delta, Figure, MatchedLevel, Regression};
use crate::analysis::summary::SweepSummary;
use crate::analysis::verdict::Status;
use crate::cost::fmt_sig;
use crate::report::markdown::fmt_latency_ms;
use crate::report::png::{ChartError, SIZE};
use crate::scenario::plan::{Axis, fmt_rate};

/// The overlay chart's file name in `--out`.
pub const CHART_PNG: &str = "compare-latency.png";
/// The Markdown report's file name in `--out`.
pub const COMPARE_MD: &str = "compare.md";
/// BASE's and NEW's line colours (the first two of the sweep charts' palette).
pub const BASE_COLOR: RGBColor = COLORS[0];
pub const NEW_COLOR: RGBColor = COLORS[1];

/// The two runs compared, with the paths the user gave (as reports name them).
pub struct Runs<'a> {
    pub base: &'a SweepSummary,
    pub new: &'a SweepSummary,
    pub base_path: &'a str,
    pub new_path: &'a str,
}

/// `+12.5%` (None: BASE was 0).
fn pct(d: &Delta) -> String {
    d.change()
        .map_or_else(|| "n/a".into(), |c| format!("{:+.1}%", c * 100.0))
}

fn usd(x: f64) -> String {
    format!("{} USD", fmt_sig(x, 3))
}

/// `BASE -> NEW (+x%)` with each side formatted by `f`.
fn arrow(d: &Delta, f: impl Fn(f64) -> String) -> String {
    format!("{} -> {} ({})", f(d.base), f(d.new), pct(d))
}

/// What the headline is called on each axis.
fn headline_name(axis: Axis) -> &'static str {
    match axis {
        Axis::Rate => "highest sustainable rate",
        Axis::Concurrency => "highest sustainable concurrency",
    }
}

/// One regression as a sentence: `p95 latency at 40 req/s: 120.0 ms -> 260.0 ms (+116.7%),
/// over the 10% tolerance`.
pub fn regression_line(c: &Comparison, r: &Regression) -> String {
    let level = |l: f64| c.axis.fmt_level(l);
    let what = match r.figure {
        Figure::Headline => format!(
            "{}: {}",
            headline_name(c.axis),
            arrow(&r.delta, |l| c.axis.fmt_level(l))
        ),
        Figure::HeadlineLost => format!(
            "{}: {} -> none (no level of NEW was sustainable)",
            headline_name(c.axis),
            level(r.delta.base)
        ),
        Figure::HeadlineCost => format!(
            "cost per 1K tokens at the headline: {}",
            arrow(&r.delta, usd)
        ),
        Figure::P95At(l) => format!(
            "p95 latency at {}: {}",
            level(l),
            arrow(&r.delta, fmt_latency_ms)
        ),
        Figure::CostAt(l) => format!(
            "cost per 1K tokens at {}: {}",
            level(l),
            arrow(&r.delta, usd)
        ),
    };
    format!("{what}, over the {} tolerance", c.tolerance)
}

/// A table rendered as Markdown or as aligned text.
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str]) -> Self {
        Self {
            head: head.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    fn markdown(&self, o: &mut String) {
        let _ = writeln!(o, "| {} |", self.head.join(" | "));
        // The first column names the row; figures align right.
        let rule: Vec<&str> = (0..self.head.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(o, "|{}|", rule.join("|"));
        for r in &self.rows {
            let _ = writeln!(o, "| {} |", r.join(" | "));
        }
        o.push('\n');
    }

    fn text(&self, o: &mut String) {
        let widths: Vec<usize> = (0..self.head.len())
            .map(|i| {
                std::iter::once(&self.head)
                    .chain(&self.rows)
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in std::iter::once(&self.head).chain(&self.rows) {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i == 0 {
                        format!("{c:<w$}")
                    } else {
                        format!("{c:>w$}")
                    }
                })
                .collect();
            let _ = writeln!(o, "  {}", cells.join("  ").trim_end());
        }
        o.push('\n');
    }
}

/// Markdown or text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Markdown,
    Text,
}

/// Writes headings and tables in one style.
struct Doc {
    style: Style,
    o: String,
}

impl Doc {
    fn heading(&mut self, text: &str) {
        match self.style {
            Style::Markdown => {
                let _ = writeln!(self.o, "## {text}\n");
            }
            Style::Text => {
                let _ = writeln!(self.o, "{text}:");
            }
        }
    }

    fn para(&mut self, text: &str) {
        let _ = writeln!(self.o, "{text}\n");
    }

    fn bullet(&mut self, text: &str) {
        let _ = writeln!(self.o, "- {text}");
    }

    fn table(&mut self, t: &Table) {
        match self.style {
            Style::Markdown => t.markdown(&mut self.o),
            Style::Text => t.text(&mut self.o),
        }
    }
}

/// `name` at `target`, plan, price: what a run was.
fn describe_run(s: &SweepSummary) -> String {
    let price = s
        .price
        .as_ref()
        .map_or_else(|| "no price".into(), |p| p.to_string());
    format!(
        "\"{}\" against {}, plan {} ({} per step), {price}",
        s.name,
        s.target,
        if s.plan.is_empty() { "-" } else { &s.plan },
        fmt_step(s.step_duration_s),
    )
}

fn fmt_step(seconds: f64) -> String {
    format!("{}s", fmt_rate(seconds))
}

/// The whole report; `chart` is the overlay's file name when one was written beside it.
pub fn render(c: &Comparison, runs: &Runs<'_>, style: Style, chart: Option<&str>) -> String {
    let mut d = Doc {
        style,
        o: String::new(),
    };
    let code = |p: &str| match style {
        Style::Markdown => format!("`{p}`"),
        Style::Text => p.to_string(),
    };
    match style {
        Style::Markdown => {
            let _ = writeln!(d.o, "# rpload compare: BASE vs NEW\n");
            let _ = writeln!(
                d.o,
                "- BASE {}: {}",
                code(runs.base_path),
                describe_run(runs.base)
            );
            let _ = writeln!(
                d.o,
                "- NEW {}: {}\n",
                code(runs.new_path),
                describe_run(runs.new)
            );
        }
        Style::Text => {
            let _ = writeln!(d.o, "BASE {}: {}", runs.base_path, describe_run(runs.base));
            let _ = writeln!(d.o, "NEW  {}: {}\n", runs.new_path, describe_run(runs.new));
        }
    }

    // The verdict first: it sets the exit status.
    if c.regressed() {
        let n = c.regressions.len();
        d.para(&format!(
            "**NEW regressed** on {n} figure{} beyond the {} tolerance (exit status 1):",
            if n == 1 { "" } else { "s" },
            c.tolerance
        ));
        for r in &c.regressions {
            d.bullet(&regression_line(c, r));
        }
        d.o.push('\n');
    } else {
        d.para(&format!(
            "**No regression** beyond the {} tolerance (headline level, p95 latency at every matched level, cost per 1K tokens).",
            c.tolerance
        ));
    }
    if style == Style::Text {
        d.o = d.o.replace("**", "");
    }

    headline_section(&mut d, c);
    latency_section(&mut d, c);
    cost_section(&mut d, c);

    let only = |levels: &[f64]| {
        levels
            .iter()
            .map(|l| c.axis.fmt_level(*l))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !c.base_only.is_empty() || !c.new_only.is_empty() {
        let mut parts = Vec::new();
        if !c.base_only.is_empty() {
            parts.push(format!("only BASE measured {}", only(&c.base_only)));
        }
        if !c.new_only.is_empty() {
            parts.push(format!("only NEW measured {}", only(&c.new_only)));
        }
        d.para(&format!("Not compared: {}.", parts.join("; ")));
    }
    if let Some(file) = chart {
        d.heading("Chart");
        match style {
            Style::Markdown => d.para(&format!(
                "![p95 latency of BASE and NEW vs {}]({file})",
                level_word(c.axis)
            )),
            Style::Text => d.para(&format!("  {file}")),
        }
    }
    d.o.trim_end().to_string() + "\n"
}

fn level_word(axis: Axis) -> &'static str {
    match axis {
        Axis::Rate => "offered rate",
        Axis::Concurrency => "concurrency",
    }
}

fn headline_section(d: &mut Doc, c: &Comparison) {
    let h = &c.headline;
    d.heading("Headline");
    let Some(level) = h.level else {
        let side = |x: Option<f64>| x.map_or_else(|| "none".into(), |l| c.axis.fmt_level(l));
        d.para(&format!(
            "{}: BASE {}, NEW {} (the other figures need a headline in both).",
            headline_name(c.axis),
            side(h.base),
            side(h.new)
        ));
        return;
    };
    let mut t = Table::new(&["", "BASE", "NEW", "change"]);
    let mut row = |name: &str, dl: Delta, f: &dyn Fn(f64) -> String| {
        t.rows
            .push(vec![name.to_string(), f(dl.base), f(dl.new), pct(&dl)]);
    };
    row(headline_name(c.axis), level, &|l| c.axis.fmt_level(l));
    let served = match c.axis {
        Axis::Rate => "served rate",
        Axis::Concurrency => "throughput",
    };
    if let Some(x) = h.served_rps {
        row(served, x, &|v| format!("{v:.2} req/s"));
    }
    if let Some(x) = h.p50_ms {
        row("p50 latency", x, &fmt_latency_ms);
    }
    if let Some(x) = h.p95_ms {
        row("p95 latency", x, &fmt_latency_ms);
    }
    if let Some(x) = h.usd_per_1k_tokens {
        row("cost per 1K tokens", x, &usd);
    }
    d.table(&t);
}

fn latency_section(d: &mut Doc, c: &Comparison) {
    d.heading("Latency at matched levels (successful requests, BASE -> NEW)");
    let ttft = c.matched.iter().any(|m| m.ttft_p95_ms.is_some());
    let mut head = vec![
        level_head(c.axis),
        "verdict BASE / NEW",
        "p50",
        "p95",
        "p99",
    ];
    if ttft {
        head.push("TTFT p95");
    }
    let mut t = Table::new(&head);
    for m in &c.matched {
        let mut r = vec![
            fmt_rate(m.level),
            format!("{} / {}", m.base_status.as_str(), m.new_status.as_str()),
            arrow(&m.p50_ms, fmt_latency_ms),
            arrow(&m.p95_ms, fmt_latency_ms),
            arrow(&m.p99_ms, fmt_latency_ms),
        ];
        if ttft {
            r.push(
                m.ttft_p95_ms
                    .map_or_else(|| "-".into(), |x| arrow(&x, fmt_latency_ms)),
            );
        }
        t.rows.push(r);
    }
    d.table(&t);
}

fn cost_section(d: &mut Doc, c: &Comparison) {
    let priced: Vec<(&MatchedLevel, Delta)> = c
        .matched
        .iter()
        .filter_map(|m| Some((m, m.usd_per_1k_tokens?)))
        .collect();
    // The headline's cost is in the headline table.
    if priced.is_empty() {
        return;
    }
    d.heading("Cost per 1K tokens (input + output, at the served rate)");
    let mut t = Table::new(&[level_head(c.axis), "BASE", "NEW", "change"]);
    for (m, x) in priced {
        t.rows
            .push(vec![fmt_rate(m.level), usd(x.base), usd(x.new), pct(&x)]);
    }
    d.table(&t);
}

fn level_head(axis: Axis) -> &'static str {
    match axis {
        Axis::Rate => "req/s",
        Axis::Concurrency => "users",
    }
}

/// Draws the overlay chart at `path`: p95 latency of BASE and NEW against the level, each
/// point's verdict as on the sweep charts, each run's headline ringed.
pub fn render_chart(c: &Comparison, runs: &Runs<'_>, path: &Path) -> Result<(), ChartError> {
    let line = |s: &SweepSummary, label: String, color, stroke| Series {
        label: Some(label),
        color,
        points: s
            .rates
            .iter()
            .map(|r| (r.level(), r.latency_ms.p95))
            .collect(),
        stroke,
        marks: s.rates.iter().map(|r| r.status).collect(),
    };
    let mut series = vec![
        line(
            runs.base,
            format!("BASE p95: {}", runs.base_path),
            BASE_COLOR,
            Stroke::Solid,
        ),
        line(
            runs.new,
            format!("NEW p95: {}", runs.new_path),
            NEW_COLOR,
            Stroke::Dashed,
        ),
    ];
    // A ring (the hollow marker, in the headline marker's grey) around each headline point;
    // one legend entry for both. The chart's own headline marker is a single vertical line,
    // and two runs can have two headlines. (The ring is an unsustainable mark to the legend's
    // key, which then lists "hollow" even when no step was unsustainable.)
    let rings: Vec<(f64, f64)> = [runs.base, runs.new]
        .iter()
        .filter_map(|s| s.headline.as_ref())
        .map(|h| (h.level(), h.latency_p95_ms))
        .collect();
    let side = |x: Option<f64>| x.map_or_else(|| "none".into(), |l| c.axis.fmt_level(l));
    for (i, pt) in rings.iter().enumerate() {
        series.push(Series {
            label: (i == 0).then(|| {
                format!(
                    "ringed: {} (BASE {}, NEW {})",
                    headline_name(c.axis),
                    side(c.headline.base),
                    side(c.headline.new)
                )
            }),
            color: MARKER,
            points: vec![*pt],
            stroke: Stroke::Solid,
            marks: vec![Status::Unsustainable],
        });
    }
    let title = format!("p95 latency vs {}: BASE vs NEW", level_word(c.axis));
    chart::render(
        path,
        SIZE,
        &[Panel {
            title: &title,
            x_desc: c.axis.title(),
            y_desc: "p95 latency of successes, from intended send",
            x: XUnit::Rps,
            y: YUnit::LatencyMs,
            series,
            thresholds: Vec::new(),
            diagonal: false,
            marker: None,
            status_key: StatusKey::Markers,
        }],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
