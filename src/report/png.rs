//! PNG charts of a sweep (plotters, bitmap backend): latency p50/p90/p99, request and token
//! throughput (with the y = x line), TTFT and ITL (streaming APIs), cost per 1K tokens, all
//! against the offered rate, and the latency distribution of every step.
//!
//! Text is drawn with DejaVu Sans embedded in the binary (`assets/fonts/`), registered with
//! plotters' ab_glyph backend, so charts render on machines with no fonts installed. Reads only
//! [`SweepSummary`]; wide ranges switch the y axis to log10 (labels show real values).

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::cost::fmt_sig;
use crate::report::text_backend::TextBackend;
use crate::sweep::plan::fmt_rate;
use crate::sweep::summary::SweepSummary;

/// DejaVu Sans (Bitstream Vera licence, see assets/fonts/).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// The family name charts ask for (registered under plotters' default too).
const FAMILY: &str = "sans-serif";

/// Chart size in pixels (width, height) of a one-panel chart; two-panel charts are taller.
pub const SIZE: (u32, u32) = (1000, 600);
pub const SIZE_TWO_PANELS: (u32, u32) = (1000, 1000);

/// Errors drawing a chart (plotters reports them as strings).
#[derive(Debug, thiserror::Error)]
#[error("drawing chart {path}: {message}")]
pub struct ChartError {
    pub path: String,
    pub message: String,
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The font is compiled in and known to parse (a test renders text with it).
            let _ = plotters::style::register_font(FAMILY, style, FONT);
        }
    });
}

/// Width kept right of the plot for an outside legend.
const LEGEND_COLUMN: u32 = 240;

/// Colour of rate `i` of `n`: the fixed palette when it suffices, else a blue-to-red ramp.
fn rate_color(i: usize, n: usize) -> RGBColor {
    if n <= COLORS.len() {
        return COLORS[i % COLORS.len()];
    }
    let t = i as f64 / (n - 1).max(1) as f64;
    let (r, g, b) = HSLColor(0.66 * (1.0 - t), 0.75, 0.45).rgb();
    RGBColor(r, g, b)
}

/// The headline marker: neutral so it never reads as one of the series.
const MARKER: RGBColor = RGBColor(70, 70, 70);

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// One line of a panel.
struct Series {
    /// Legend text; None keeps the series out of the legend (repeats of a labelled rate).
    label: Option<String>,
    color: RGBColor,
    points: Vec<(f64, f64)>,
    dashed: bool,
    /// Per point: drawn hollow (an unsustainable step) when false.
    filled: Vec<bool>,
}

/// How y values print on the axis.
#[derive(Clone, Copy)]
enum YUnit {
    LatencyMs,
    PerSecond,
    Usd,
}

impl YUnit {
    fn fmt(self, v: f64) -> String {
        match self {
            YUnit::LatencyMs if v >= 1000.0 => format!("{} s", trim(fmt_sig(v / 1e3, 3))),
            YUnit::LatencyMs if v >= 1.0 => format!("{} ms", trim(fmt_sig(v, 3))),
            YUnit::LatencyMs => format!("{} ms", fmt_sig(v, 2)),
            YUnit::PerSecond => trim(fmt_sig(v, 3)),
            YUnit::Usd => format!("${}", trim(fmt_sig(v, 2))),
        }
    }
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// How x values print.
#[derive(Clone, Copy)]
enum XUnit {
    Rps,
    /// x = -log10(1 - q): 0 -> 0%, 1 -> 90%, 2 -> 99%, ...
    Nines,
}

struct Panel<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    x: XUnit,
    y: YUnit,
    series: Vec<Series>,
    /// Draw y = x (throughput charts).
    diagonal: bool,
    /// A vertical marker (the headline rate) with its text.
    marker: Option<(f64, String)>,
    /// Legend text for hollow points (shown only when some are hollow).
    hollow_label: &'a str,
    /// Where the legend goes: away from where the curves start.
    legend: SeriesLabelPosition,
}

fn draw_panel(area: &DrawingArea<TextBackend<'_>, Shift>, p: &Panel<'_>) -> Result<(), String> {
    let all: Vec<(f64, f64)> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(_, y)| y.is_finite())
        .collect();
    let x_max = all.iter().map(|(x, _)| *x).fold(0.0, f64::max);
    let (x0, x1) = match p.x {
        XUnit::Rps => (0.0, if x_max > 0.0 { x_max * 1.05 } else { 1.0 }),
        XUnit::Nines => (0.0, 4.25),
    };
    let positive: Vec<f64> = all.iter().map(|(_, y)| *y).filter(|y| *y > 0.0).collect();
    let y_min = positive.iter().copied().fold(f64::INFINITY, f64::min);
    let y_max = positive.iter().copied().fold(0.0, f64::max);
    let log = positive.len() > 1 && y_max / y_min > 30.0;
    let (y0, y1) = if positive.is_empty() {
        (0.0, 1.0)
    } else if log {
        (y_min.log10() - 0.1, y_max.log10() + 0.1)
    } else {
        let top = if p.diagonal { y_max.max(x1) } else { y_max };
        (0.0, top * 1.1)
    };
    let ty = |y: f64| {
        if log {
            y.max(f64::MIN_POSITIVE).log10()
        } else {
            y
        }
    };

    let outside = matches!(p.legend, SeriesLabelPosition::Coordinate(..));
    let mut chart = ChartBuilder::on(area)
        .caption(p.title, (FAMILY, 24))
        .margin(18)
        .margin_right(if outside { LEGEND_COLUMN } else { 18 })
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(
            x0..x1,
            Ticked {
                lo: y0,
                hi: y1,
                ticks: y_ticks(y0, y1, log),
            },
        )
        .map_err(|e| e.to_string())?;
    let y_unit = p.y;
    let x_unit = p.x;
    let y_desc = if log {
        format!("{} (log scale)", p.y_desc)
    } else {
        p.y_desc.to_string()
    };
    let y_fmt = move |v: &f64| y_unit.fmt(if log { 10f64.powf(*v) } else { *v });
    let x_fmt = move |v: &f64| match x_unit {
        XUnit::Rps => trim(fmt_sig(*v, 3)),
        XUnit::Nines => nines_label(*v),
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(p.x_desc)
        .y_desc(y_desc)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .y_label_formatter(&y_fmt)
        .x_label_formatter(&x_fmt);
    if let XUnit::Nines = p.x {
        mesh.x_labels(5);
    }
    mesh.draw().map_err(|e| e.to_string())?;

    if p.diagonal {
        let top = x1.min(if log { 10f64.powf(y1) } else { y1 });
        let pts: Vec<(f64, f64)> = (0..=50)
            .map(|i| top * i as f64 / 50.0)
            .filter(|v| *v > 0.0 || !log)
            .map(|v| (v, ty(v)))
            .collect();
        chart
            .draw_series(DashedLineSeries::new(
                pts,
                6,
                4,
                RGBColor(120, 120, 120).stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label("y = x (all offered requests served)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], RGBColor(120, 120, 120)));
    }

    if let Some((mx, text)) = &p.marker {
        let line = vec![(*mx, y0), (*mx, y1)];
        chart
            .draw_series(DashedLineSeries::new(line, 4, 4, MARKER.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(text.clone())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], MARKER.stroke_width(2)));
    }

    for s in &p.series {
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|(_, y)| y.is_finite() && (!log || *y > 0.0))
            .map(|&(x, y)| (x, ty(y)))
            .collect();
        let color = s.color;
        let style = color.stroke_width(2);
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(pts.clone(), 8, 5, style))
        } else {
            chart.draw_series(LineSeries::new(pts.clone(), style))
        }
        .map_err(|e| e.to_string())?;
        if let Some(label) = &s.label {
            anno.label(label.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(2))
            });
        }
        let kept: Vec<(usize, (f64, f64))> = s
            .points
            .iter()
            .enumerate()
            .filter(|(_, (_, y))| y.is_finite() && (!log || *y > 0.0))
            .map(|(i, &(x, y))| (i, (x, ty(y))))
            .collect();
        chart
            .draw_series(kept.into_iter().map(|(i, pt)| {
                let filled = s.filled.get(i).copied().unwrap_or(true);
                if filled {
                    Circle::new(pt, 4, color.filled())
                } else {
                    Circle::new(pt, 5, color.stroke_width(2))
                }
            }))
            .map_err(|e| e.to_string())?;
    }

    if !outside && p.series.iter().any(|s| s.filled.iter().any(|f| !f)) {
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(|e| e.to_string())?
            .label(p.hollow_label)
            .legend(|(x, y)| Circle::new((x + 11, y), 5, MARKER.stroke_width(2)));
    }

    if outside {
        // plotters clips its legend to the plot, so the column is drawn by hand beside it.
        let (pw, _) = chart.plotting_area().dim_in_pixel();
        let plot = chart.plotting_area().get_base_pixel();
        let base = area.get_base_pixel();
        let x = plot.0 - base.0 + pw as i32 + 16;
        let mut y = plot.1 - base.1 + 8;
        let text = (FAMILY, 15).into_font();
        for s in &p.series {
            let Some(label) = &s.label else { continue };
            let style = if s.dashed {
                s.color.stroke_width(2)
            } else {
                s.color.stroke_width(3)
            };
            area.draw(&PathElement::new(vec![(x, y), (x + 22, y)], style))
                .map_err(|e| e.to_string())?;
            area.draw(&Text::new(label.clone(), (x + 30, y - 8), text.clone()))
                .map_err(|e| e.to_string())?;
            y += 20;
        }
        if p.series.iter().any(|s| s.filled.iter().any(|f| !f)) {
            area.draw(&Circle::new((x + 11, y), 5, MARKER.stroke_width(2)))
                .map_err(|e| e.to_string())?;
            area.draw(&Text::new(
                p.hollow_label.to_string(),
                (x + 30, y - 8),
                text,
            ))
            .map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .position(p.legend.clone())
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A linear f64 axis whose ticks are given (plotters picks log-space ticks like 10^0.5 on a
/// log10-transformed axis; these are round numbers instead).
struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let r = (v - self.lo) / (self.hi - self.lo);
        limit.0 + (r * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() && hint.max_num_points() > self.ticks.len() * 2 {
            // Light grid lines: none between our ticks, the bold ones carry the reading.
            return Vec::new();
        }
        let max = hint.max_num_points().max(1);
        let every = self.ticks.len().div_ceil(max).max(1);
        self.ticks.iter().step_by(every).copied().collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Tick positions on the y axis: 1-2-5 steps on a linear axis; 1, 2 and 5 of each decade on
/// a log10 axis (every digit when the range spans less than a decade), so labels read as round
/// numbers.
fn y_ticks(y0: f64, y1: f64, log: bool) -> Vec<f64> {
    if log {
        let mut ticks = Vec::new();
        for mults in [
            &[1.0, 2.0, 5.0][..],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0][..],
        ] {
            ticks.clear();
            for k in (y0.floor() as i32)..=(y1.ceil() as i32) {
                for &m in mults {
                    let v = f64::log10(m) + f64::from(k);
                    if v >= y0 && v <= y1 {
                        ticks.push(v);
                    }
                }
            }
            if ticks.len() >= 3 {
                break;
            }
        }
        return ticks;
    }
    let raw = (y1 - y0) / 8.0;
    if !(raw > 0.0 && raw.is_finite()) {
        return vec![y0];
    }
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (y0 / step).ceil() as i64;
    let last = (y1 / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn nines_label(x: f64) -> String {
    let q = 100.0 * (1.0 - 10f64.powf(-x));
    let s = trim(format!("{q:.4}"));
    format!("{s}%")
}

const HOLLOW: &str = "hollow: unsustainable";

fn render(path: &Path, size: (u32, u32), panels: &[Panel<'_>]) -> Result<(), ChartError> {
    register_font();
    let err = |message: String| ChartError {
        path: path.display().to_string(),
        message,
    };
    let root = TextBackend::new(BitMapBackend::new(path, size), FONT).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let areas = root.split_evenly((panels.len(), 1));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel).map_err(err)?;
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Writes every chart of `s` into `dir`; returns the files written.
pub fn render_all(s: &SweepSummary, dir: &Path) -> Result<Vec<PathBuf>, ChartError> {
    let mut written = Vec::new();
    let xs: Vec<f64> = s.rates.iter().map(|r| r.target_rps).collect();
    let filled: Vec<bool> = s.rates.iter().map(|r| r.sustainable).collect();
    let marker = s.headline.as_ref().map(|h| {
        (
            h.target_rps,
            format!("highest sustainable: {} req/s", fmt_rate(h.target_rps)),
        )
    });
    // With repeats every point is a mean over them; say so in the titles.
    let means = if s.repeat > 1 {
        format!(" (means over {} repeats)", s.repeat)
    } else {
        String::new()
    };
    let title = |t: &str| format!("{t}{means}");
    let line = |label: &str, color: usize, ys: Vec<f64>, dashed: bool| Series {
        label: Some(label.to_string()),
        color: COLORS[color % COLORS.len()],
        points: xs.iter().copied().zip(ys).collect(),
        dashed,
        filled: filled.clone(),
    };

    // Latency.
    let path = dir.join("latency.png");
    render(
        &path,
        SIZE,
        &[Panel {
            title: &title("Latency vs offered rate"),
            x_desc: "offered rate (requests/s)",
            y_desc: "latency from intended send",
            x: XUnit::Rps,
            y: YUnit::LatencyMs,
            series: vec![
                line(
                    "p50",
                    0,
                    s.rates.iter().map(|r| r.latency_ms.p50).collect(),
                    false,
                ),
                line(
                    "p90",
                    1,
                    s.rates.iter().map(|r| r.latency_ms.p90).collect(),
                    false,
                ),
                line(
                    "p99",
                    2,
                    s.rates.iter().map(|r| r.latency_ms.p99).collect(),
                    false,
                ),
            ],
            diagonal: false,
            marker: marker.clone(),
            hollow_label: HOLLOW,
            legend: SeriesLabelPosition::UpperLeft,
        }],
    )?;
    written.push(path);

    // Throughput.
    let path = dir.join("throughput.png");
    render(
        &path,
        SIZE_TWO_PANELS,
        &[
            Panel {
                title: &title("Request throughput vs offered rate"),
                x_desc: "offered rate (requests/s)",
                y_desc: "successful requests/s",
                x: XUnit::Rps,
                y: YUnit::PerSecond,
                series: vec![
                    line(
                        "throughput (successes / (sending + drain), Vegeta's)",
                        0,
                        s.rates.iter().map(|r| r.throughput_rps).collect(),
                        false,
                    ),
                    line(
                        "served rate (drain beyond unloaded latency removed; judged)",
                        1,
                        s.rates.iter().map(|r| r.served_rps).collect(),
                        true,
                    ),
                ],
                diagonal: true,
                marker: marker.clone(),
                hollow_label: HOLLOW,
                legend: SeriesLabelPosition::UpperLeft,
            },
            Panel {
                title: &title("Output token throughput vs offered rate"),
                x_desc: "offered rate (requests/s)",
                y_desc: "output tokens/s",
                x: XUnit::Rps,
                y: YUnit::PerSecond,
                series: vec![line(
                    "output tokens/s",
                    4,
                    s.rates.iter().map(|r| r.output_tokens_per_s).collect(),
                    false,
                )],
                diagonal: false,
                marker: marker.clone(),
                hollow_label: HOLLOW,
                legend: SeriesLabelPosition::UpperLeft,
            },
        ],
    )?;
    written.push(path);

    // TTFT and ITL, when the API streamed.
    if s.rates.iter().any(|r| r.ttft_ms.is_some()) {
        let nan = f64::NAN;
        let path = dir.join("ttft_itl.png");
        render(
            &path,
            SIZE_TWO_PANELS,
            &[
                Panel {
                    title: &title("Time to first token vs offered rate"),
                    x_desc: "offered rate (requests/s)",
                    y_desc: "TTFT from intended send",
                    x: XUnit::Rps,
                    y: YUnit::LatencyMs,
                    series: vec![
                        line(
                            "TTFT p50",
                            0,
                            s.rates
                                .iter()
                                .map(|r| r.ttft_ms.map_or(nan, |m| m.p50))
                                .collect(),
                            false,
                        ),
                        line(
                            "TTFT p95",
                            1,
                            s.rates
                                .iter()
                                .map(|r| r.ttft_ms.map_or(nan, |m| m.p95))
                                .collect(),
                            false,
                        ),
                    ],
                    diagonal: false,
                    marker: marker.clone(),
                    hollow_label: HOLLOW,
                    legend: SeriesLabelPosition::UpperLeft,
                },
                Panel {
                    title: &title("Inter-token latency vs offered rate"),
                    x_desc: "offered rate (requests/s)",
                    y_desc: "gap between tokens",
                    x: XUnit::Rps,
                    y: YUnit::LatencyMs,
                    series: vec![
                        line(
                            "ITL p50",
                            0,
                            s.rates
                                .iter()
                                .map(|r| r.itl_ms.map_or(nan, |m| m.p50))
                                .collect(),
                            false,
                        ),
                        line(
                            "ITL p95",
                            1,
                            s.rates
                                .iter()
                                .map(|r| r.itl_ms.map_or(nan, |m| m.p95))
                                .collect(),
                            false,
                        ),
                    ],
                    diagonal: false,
                    marker: marker.clone(),
                    hollow_label: HOLLOW,
                    legend: SeriesLabelPosition::UpperLeft,
                },
            ],
        )?;
        written.push(path);
    }

    // Cost.
    if let Some(price) = &s.price {
        let nan = f64::NAN;
        let cost_title = title(&format!(
            "Cost per 1K tokens, {} at {} USD/h",
            price.instance, price.usd_per_hour
        ));
        let path = dir.join("cost.png");
        render(
            &path,
            SIZE,
            &[Panel {
                title: &cost_title,
                x_desc: "offered rate (requests/s)",
                y_desc: "USD per 1K tokens",
                x: XUnit::Rps,
                y: YUnit::Usd,
                series: vec![
                    line(
                        "measured (input + output tokens/s)",
                        0,
                        s.rates
                            .iter()
                            .map(|r| r.cost.usd_per_1k_tokens.unwrap_or(nan))
                            .collect(),
                        false,
                    ),
                    line(
                        "study formula (offered rate x tokens/request)",
                        1,
                        s.rates
                            .iter()
                            .map(|r| r.cost.study_usd_per_1k_tokens.unwrap_or(nan))
                            .collect(),
                        true,
                    ),
                ],
                diagonal: false,
                marker: marker.clone(),
                hollow_label: HOLLOW,
                legend: SeriesLabelPosition::UpperRight,
            }],
        )?;
        written.push(path);
    }

    // Latency distribution of every step: one line per step, coloured by rate.
    let path = dir.join("latency_distribution.png");
    let mut series = Vec::new();
    for r in &s.steps {
        let points: Vec<(f64, f64)> = r
            .latency_distribution
            .iter()
            .filter(|(q, _)| *q < 100.0)
            .map(|&(q, ms)| (-(1.0 - q / 100.0).log10(), ms))
            .collect();
        // Repeats share their rate's colour and legend entry.
        let label = (r.repeat == 0).then(|| format!("{} req/s", fmt_rate(r.target_rps)));
        series.push(Series {
            label,
            color: rate_color(r.rate_index, s.rates.len()),
            filled: vec![r.sustainable; points.len()],
            points,
            dashed: !r.sustainable,
        });
    }
    render(
        &path,
        SIZE,
        &[Panel {
            title: "Latency distribution per step",
            x_desc: "percentile",
            y_desc: "latency from intended send",
            x: XUnit::Nines,
            y: YUnit::LatencyMs,
            series,
            diagonal: false,
            marker: None,
            hollow_label: "unsustainable (dashed)",
            legend: SeriesLabelPosition::Coordinate(0, 0),
        }],
    )?;
    written.push(path);
    Ok(written)
}
