//! The drawing toolkit under `png.rs`: a [`Panel`] (lines against the offered rate or a
//! percentile, with per-point verdict markers, SLO thresholds, the headline marker and y = x)
//! drawn on a plotters bitmap, its legend in a column beside the plot, and where everything
//! landed ([`PanelLayout`]) so tests can find it in the pixels. Knows nothing of sweeps beyond
//! [`Status`].
//!
//! Text is drawn with DejaVu Sans embedded in the binary (`assets/fonts/`), registered with
//! plotters' ab_glyph backend, so charts render on machines with no fonts installed. Wide
//! ranges switch the y axis to log10 (labels show real values).

mod axis;
mod legend;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::element::{DashedPathElement, DynElement, IntoDynElement};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::analysis::verdict::Status;
use crate::cost::fmt_sig;
use crate::report::text_backend::TextBackend;

use axis::{Ticked, nines_label, y_ticks};
pub(crate) use axis::{XUnit, YUnit, nines, trim};
use legend::{Entry, Swatch, draw_legend, fit};
pub(crate) use legend::{StatusKey, status_stroke};

/// DejaVu Sans (Bitstream Vera licence, see assets/fonts/).
static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
/// The family name charts ask for (registered under plotters' default too).
pub(super) const FAMILY: &str = "sans-serif";

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

/// Width kept right of the plot for the legend: plotters clips its own legend to the plot,
/// where it covers data, so every chart draws its legend in this column instead.
const LEGEND_COLUMN: u32 = 270;
/// Blank border of each panel.
const MARGIN: u32 = 18;

/// Colour of rate `i` of `n`: the fixed palette when it suffices, else a blue-to-red ramp.
pub(crate) fn rate_color(i: usize, n: usize) -> RGBColor {
    if n <= COLORS.len() {
        return COLORS[i % COLORS.len()];
    }
    let t = i as f64 / (n - 1).max(1) as f64;
    let (r, g, b) = HSLColor(0.66 * (1.0 - t), 0.75, 0.45).rgb();
    RGBColor(r, g, b)
}

/// The headline marker and the verdict key: neutral so they never read as one of the series.
pub(super) const MARKER: RGBColor = RGBColor(70, 70, 70);
/// SLO limits: near-black navy, apart from the black axes, and a colour no series, grid line
/// or text pixel has (text is black blended on white: always grey), so tests can find it.
pub const SLO_COLOR: RGBColor = RGBColor(20, 20, 70);
/// Undetermined points: grey, not the series' colour, since they carry no verdict (lighter
/// than `MARKER`, so the two never read as one).
pub(crate) const UNDETERMINED_COLOR: RGBColor = RGBColor(150, 150, 150);
const DIAGONAL: RGBColor = RGBColor(120, 120, 120);

pub(crate) const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// How a line is stroked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Stroke {
    Solid,
    Dashed,
    Dotted,
}

/// One line of a panel.
pub(crate) struct Series {
    /// Legend text; None keeps the series out of the legend (repeats of a labelled rate).
    pub label: Option<String>,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
    pub stroke: Stroke,
    /// Per point: the verdict its marker shows (filled, hollow, grey cross).
    pub marks: Vec<Status>,
}

/// A horizontal limit (an SLO clause) across the plot, or up to `x_end`.
pub(crate) struct Threshold {
    pub y: f64,
    pub x_end: Option<f64>,
    pub label: String,
}

pub(crate) struct Panel<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub x: XUnit,
    pub y: YUnit,
    pub series: Vec<Series>,
    /// SLO limits; the y range always includes them.
    pub thresholds: Vec<Threshold>,
    /// Draw y = x (throughput charts).
    pub diagonal: bool,
    /// A vertical marker (the headline rate) with its text.
    pub marker: Option<(f64, String)>,
    pub status_key: StatusKey,
}

/// A pixel rectangle of the whole image, `x1`/`y1` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rect {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

#[cfg(test)]
impl Rect {
    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
}

/// Where one panel landed in the image.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PanelLayout {
    /// The plotting area (inside the axes).
    pub plot: Rect,
    /// Everything the legend drew.
    pub legend: Rect,
    /// The panel's whole area.
    pub area: Rect,
    /// Pixels of two data points, (x0, y_lo) and (x1, y_hi) in axis units, for [`Self::pixel`].
    corners: [((f64, f64), (i32, i32)); 2],
    log: bool,
}

impl PanelLayout {
    /// The pixel of data point (x, y), to within rounding.
    #[cfg(test)]
    pub fn pixel(&self, x: f64, y: f64) -> (i32, i32) {
        let y = if self.log { y.log10() } else { y };
        let [((ax, ay), (px0, py0)), ((bx, by), (px1, py1))] = self.corners;
        let lerp = |v: f64, a: f64, b: f64, pa: i32, pb: i32| {
            (f64::from(pa) + (v - a) / (b - a) * f64::from(pb - pa)).round() as i32
        };
        (lerp(x, ax, bx, px0, px1), lerp(y, ay, by, py0, py1))
    }
}

fn draw_panel(
    area: &DrawingArea<TextBackend<'_>, Shift>,
    p: &Panel<'_>,
) -> Result<PanelLayout, String> {
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
    let ys = all.iter().map(|(_, y)| *y);
    let (y0, y1, log) = y_range(ys.chain(p.thresholds.iter().map(|t| t.y)), p.diagonal, x1);
    let ty = |y: f64| {
        if log {
            y.max(f64::MIN_POSITIVE).log10()
        } else {
            y
        }
    };

    // Each SLO limit gets its own tick, so a line reads as its value without the legend.
    let limits: Vec<f64> = p.thresholds.iter().map(|t| ty(t.y)).collect();
    let (area_w, _) = area.dim_in_pixel();
    // plotters centres the caption over the area left of the legend column.
    let caption_w = area_w.saturating_sub(MARGIN + LEGEND_COLUMN + 8);
    let caption = fit(area, p.title, 24, 12, caption_w)?;
    let mut chart = ChartBuilder::on(area)
        .caption(p.title, (FAMILY, caption))
        .margin(MARGIN)
        .margin_right(LEGEND_COLUMN)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(
            x0..x1,
            Ticked {
                lo: y0,
                hi: y1,
                ticks: with_limits(y_ticks(y0, y1, log), &limits, (y1 - y0) * 0.04),
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
    let (_, plot_h) = chart.plotting_area().dim_in_pixel();
    let desc_size = fit(area, &y_desc, 17, 11, plot_h)?;
    let y_fmt = move |v: &f64| y_unit.fmt(if log { 10f64.powf(*v) } else { *v });
    let x_fmt = move |v: &f64| match x_unit {
        XUnit::Rps => trim(fmt_sig(*v, 3)),
        XUnit::Nines => nines_label(*v),
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(p.x_desc)
        .y_desc(y_desc)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, desc_size))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .y_label_formatter(&y_fmt)
        .x_label_formatter(&x_fmt);
    if let XUnit::Nines = p.x {
        mesh.x_labels(5);
    }
    mesh.draw().map_err(|e| e.to_string())?;

    let mut entries = Vec::new();
    for s in &p.series {
        if let Some(label) = &s.label {
            entries.push(Entry {
                swatch: Swatch::Line(s.color, s.stroke),
                text: label.clone(),
                series: true,
            });
        }
    }

    for t in &p.thresholds {
        let pts = vec![(x0, ty(t.y)), (t.x_end.unwrap_or(x1).min(x1), ty(t.y))];
        draw_line(chart.plotting_area(), pts, SLO_COLOR, Stroke::Dashed)?;
        entries.push(Entry {
            swatch: Swatch::Line(SLO_COLOR, Stroke::Dashed),
            text: t.label.clone(),
            series: false,
        });
    }

    if let Some((mx, text)) = &p.marker {
        draw_line(
            chart.plotting_area(),
            vec![(*mx, y0), (*mx, y1)],
            MARKER,
            Stroke::Dotted,
        )?;
        entries.push(Entry {
            swatch: Swatch::Line(MARKER, Stroke::Dotted),
            text: text.clone(),
            series: false,
        });
    }

    if p.diagonal {
        let top = x1.min(if log { 10f64.powf(y1) } else { y1 });
        let pts: Vec<(f64, f64)> = (0..=50)
            .map(|i| top * i as f64 / 50.0)
            .filter(|v| *v > 0.0 || !log)
            .map(|v| (v, ty(v)))
            .collect();
        chart
            .draw_series(DashedLineSeries::new(pts, 6, 4, DIAGONAL.stroke_width(1)))
            .map_err(|e| e.to_string())?;
        entries.push(Entry {
            swatch: Swatch::Line(DIAGONAL, Stroke::Dashed),
            text: "y = x (all offered requests served)".into(),
            series: false,
        });
    }

    let kept = |s: &Series| -> Vec<(usize, (f64, f64))> {
        s.points
            .iter()
            .enumerate()
            .filter(|(_, (_, y))| y.is_finite() && (!log || *y > 0.0))
            .map(|(i, &(x, y))| (i, (x, ty(y))))
            .collect()
    };
    for s in &p.series {
        let pts: Vec<(f64, f64)> = kept(s).into_iter().map(|(_, pt)| pt).collect();
        draw_line(chart.plotting_area(), pts, s.color, s.stroke)?;
    }
    // Markers after every line, so no line hides a verdict.
    for s in &p.series {
        chart
            .draw_series(kept(s).into_iter().map(|(i, pt)| {
                mark(
                    pt,
                    s.marks.get(i).copied().unwrap_or(Status::Sustainable),
                    s.color,
                )
            }))
            .map_err(|e| e.to_string())?;
    }
    // The key lists only the verdicts some drawn point has.
    for status in [
        Status::Sustainable,
        Status::Unsustainable,
        Status::Undetermined,
    ] {
        let drawn = |s: &Series| {
            kept(s)
                .iter()
                .any(|(i, _)| s.marks.get(*i).copied().unwrap_or(Status::Sustainable) == status)
        };
        if p.series.iter().any(drawn) {
            entries.push(Entry {
                swatch: Swatch::Status(status, p.status_key),
                text: p.status_key.text(status).into(),
                series: false,
            });
        }
    }

    let (px, py) = chart.plotting_area().get_pixel_range();
    let plot = Rect {
        x0: px.start,
        y0: py.start,
        x1: px.end,
        y1: py.end,
    };
    let (ax, ay) = area.get_pixel_range();
    let area_rect = Rect {
        x0: ax.start,
        y0: ay.start,
        x1: ax.end,
        y1: ay.end,
    };
    let legend = draw_legend(area, &area_rect, &plot, &entries)?;
    Ok(PanelLayout {
        plot,
        legend,
        area: area_rect,
        corners: [
            ((x0, y0), chart.backend_coord(&(x0, y0))),
            ((x1, y1), chart.backend_coord(&(x1, y1))),
        ],
        log,
    })
}

/// The y axis (lo, hi, log10) for values `ys` (SLO limits among them): log10 when the
/// positive values span more than 30x, else from 0 with a tenth of headroom (up to `x1` too
/// for y = x).
fn y_range(ys: impl Iterator<Item = f64>, diagonal: bool, x1: f64) -> (f64, f64, bool) {
    let positive: Vec<f64> = ys.filter(|y| *y > 0.0 && y.is_finite()).collect();
    let y_min = positive.iter().copied().fold(f64::INFINITY, f64::min);
    let y_max = positive.iter().copied().fold(0.0, f64::max);
    let log = positive.len() > 1 && y_max / y_min > 30.0;
    if positive.is_empty() {
        (0.0, 1.0, false)
    } else if log {
        (y_min.log10() - 0.1, y_max.log10() + 0.1, true)
    } else {
        let top = if diagonal { y_max.max(x1) } else { y_max };
        (0.0, top * 1.1, false)
    }
}

/// `ticks` with `limits` added, dropping the round ticks within `gap` of one (their labels
/// would overlap).
fn with_limits(mut ticks: Vec<f64>, limits: &[f64], gap: f64) -> Vec<f64> {
    ticks.retain(|t| limits.iter().all(|l| (t - l).abs() > gap));
    ticks.extend_from_slice(limits);
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    ticks
}

/// Draws a line through `pts` in `stroke` on `area` (the plot, in data coordinates, or the
/// panel, in pixels).
pub(super) fn draw_line<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    pts: Vec<CT::From>,
    color: RGBColor,
    stroke: Stroke,
) -> Result<(), String>
where
    CT::From: Clone + 'static,
{
    let style = color.stroke_width(2);
    match stroke {
        Stroke::Solid => area.draw(&PathElement::new(pts, style)),
        Stroke::Dashed => area.draw(&DashedPathElement::new(pts, 8, 5, style)),
        Stroke::Dotted => area.draw(&DashedPathElement::new(pts, 2, 4, style)),
    }
    .map_err(|e| e.to_string())
}

/// A point's marker: filled (sustainable), hollow (unsustainable), or a grey cross
/// (undetermined: no verdict, so not the series' colour either).
pub(super) fn mark<C: Clone + 'static, DB: DrawingBackend>(
    pt: C,
    status: Status,
    color: RGBColor,
) -> DynElement<'static, DB, C> {
    match status {
        Status::Sustainable => Circle::new(pt, 4, color.filled()).into_dyn(),
        Status::Unsustainable => Circle::new(pt, 5, color.stroke_width(2)).into_dyn(),
        Status::Undetermined => Cross::new(pt, 5, UNDETERMINED_COLOR.stroke_width(2)).into_dyn(),
    }
}

/// Draws `panels` stacked in one image of `size` at `path`; returns where each landed.
pub(crate) fn render(
    path: &Path,
    size: (u32, u32),
    panels: &[Panel<'_>],
) -> Result<Vec<PanelLayout>, ChartError> {
    register_font();
    let err = |message: String| ChartError {
        path: path.display().to_string(),
        message,
    };
    let root = TextBackend::new(BitMapBackend::new(path, size), FONT).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let areas = root.split_evenly((panels.len(), 1));
    let mut layouts = Vec::new();
    for (area, panel) in areas.iter().zip(panels) {
        layouts.push(draw_panel(area, panel).map_err(err)?);
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(layouts)
}
