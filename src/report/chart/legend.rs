//! Chart legends, drawn in a column beside the plot (plotters clips its own legend to the
//! plot, where it covers data): a swatch and wrapped text per entry, the verdict key last.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{FAMILY, MARKER, Rect, Stroke, draw_line, mark};
use crate::analysis::verdict::Status;
use crate::report::text_backend::TextBackend;

/// Legend text size and line height; entries wrap to the column.
const LEGEND_FONT: i32 = 15;
const LEGEND_LINE: i32 = 18;
/// Swatch length and the gap before its text.
const SWATCH: i32 = 22;
const SWATCH_GAP: i32 = 8;

/// How the legend explains the markers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusKey {
    /// One point per rate: the marker alone says the verdict.
    Markers,
    /// One line per step: its stroke says the verdict too (solid, dashed, dotted).
    Strokes,
}

impl StatusKey {
    pub(super) fn text(self, status: Status) -> &'static str {
        match (self, status) {
            (StatusKey::Markers, Status::Sustainable) => "sustainable",
            (StatusKey::Markers, Status::Unsustainable) => "unsustainable (hollow)",
            (StatusKey::Markers, Status::Undetermined) => {
                "undetermined (too few requests or too noisy to judge)"
            }
            (StatusKey::Strokes, Status::Sustainable) => "sustainable (solid)",
            (StatusKey::Strokes, Status::Unsustainable) => "unsustainable (dashed, hollow)",
            (StatusKey::Strokes, Status::Undetermined) => {
                "undetermined (dotted; too few requests or too noisy to judge)"
            }
        }
    }
}

/// The stroke a step's line gets from its verdict ([`StatusKey::Strokes`]).
pub(crate) fn status_stroke(status: Status) -> Stroke {
    match status {
        Status::Sustainable => Stroke::Solid,
        Status::Unsustainable => Stroke::Dashed,
        Status::Undetermined => Stroke::Dotted,
    }
}

/// What one legend entry shows before its text.
pub(super) enum Swatch {
    Line(RGBColor, Stroke),
    Status(Status, StatusKey),
}

pub(super) struct Entry {
    pub swatch: Swatch,
    pub text: String,
    /// A series' own entry: may give way to a count when the column is full.
    pub series: bool,
}

/// The largest font size from `max` down to `min` at which `text` is at most `width` px.
pub(super) fn fit(
    area: &DrawingArea<TextBackend<'_>, Shift>,
    text: &str,
    max: i32,
    min: i32,
    width: u32,
) -> Result<i32, String> {
    for size in (min..=max).rev() {
        let (w, _) = area
            .estimate_text_size(text, &(FAMILY, size).into())
            .map_err(|e| e.to_string())?;
        if w <= width {
            return Ok(size);
        }
    }
    Ok(min)
}

/// `text` broken at spaces into lines at most `width` px wide (a word wider stays whole).
fn wrap(
    area: &DrawingArea<TextBackend<'_>, Shift>,
    text: &str,
    width: u32,
) -> Result<Vec<String>, String> {
    let style: TextStyle = (FAMILY, LEGEND_FONT).into();
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        let (w, _) = area
            .estimate_text_size(&candidate, &style)
            .map_err(|e| e.to_string())?;
        if w > width && !line.is_empty() {
            lines.push(std::mem::replace(&mut line, word.to_string()));
        } else {
            line = candidate;
        }
    }
    lines.push(line);
    Ok(lines)
}

/// Draws `entries` in the column right of `plot`, top-aligned with it. When they would run
/// past the panel's bottom, the last series entries give way to a count of them (the limits,
/// the headline and the verdict key always show). Returns what it covered.
pub(super) fn draw_legend(
    area: &DrawingArea<TextBackend<'_>, Shift>,
    area_rect: &Rect,
    plot: &Rect,
    entries: &[Entry],
) -> Result<Rect, String> {
    let base = area.get_base_pixel();
    let x = plot.x1 - base.0 + 16;
    let text_x = x + SWATCH + SWATCH_GAP;
    let width = (area_rect.x1 - base.0 - text_x - 6).max(40) as u32;
    let top = plot.y0 - base.1 + 2;
    let room = area_rect.y1 - base.1 - 6 - top;
    let font = (FAMILY, LEGEND_FONT).into_font();
    let mut wrapped = Vec::new();
    for e in entries {
        wrapped.push(wrap(area, &e.text, width)?);
    }
    let height = |lines: &[String]| LEGEND_LINE * lines.len() as i32 + 4;
    let mut shown: Vec<bool> = vec![true; entries.len()];
    let mut total: i32 = wrapped.iter().map(|l| height(l)).sum();
    let mut hidden = 0;
    for i in (0..entries.len()).rev() {
        if total <= room {
            break;
        }
        if entries[i].series {
            if hidden == 0 {
                total += LEGEND_LINE + 4;
            }
            shown[i] = false;
            total -= height(&wrapped[i]);
            hidden += 1;
        }
    }
    let last_series = entries.iter().rposition(|e| e.series);
    let mut y = top;
    let mut right = x;
    for (i, (e, lines)) in entries.iter().zip(&wrapped).enumerate() {
        if shown[i] {
            draw_entry(area, e, lines, (x, y), &font, &mut right)?;
            y += height(lines);
        }
        if hidden > 0 && Some(i) == last_series {
            let text = format!("(and {hidden} more)");
            let (w, _) = area
                .estimate_text_size(&text, &font.clone().into())
                .map_err(|e| e.to_string())?;
            right = right.max(text_x + w as i32);
            area.draw(&Text::new(text, (text_x, y + 1), font.clone()))
                .map_err(|e| e.to_string())?;
            y += LEGEND_LINE + 4;
        }
    }
    Ok(Rect {
        x0: x + base.0,
        y0: top + base.1,
        x1: right + base.0 + 1,
        y1: y + base.1,
    })
}

/// One entry with its top-left at `(x, y)`; widens `right` to the text's end.
fn draw_entry(
    area: &DrawingArea<TextBackend<'_>, Shift>,
    e: &Entry,
    lines: &[String],
    (x, y): (i32, i32),
    font: &FontDesc<'_>,
    right: &mut i32,
) -> Result<(), String> {
    let text_x = x + SWATCH + SWATCH_GAP;
    let mid = (x + SWATCH / 2, y + LEGEND_LINE / 2);
    let swatch = vec![(x, mid.1), (x + SWATCH, mid.1)];
    match e.swatch {
        Swatch::Line(color, stroke) => draw_line(area, swatch, color, stroke)?,
        Swatch::Status(status, key) => {
            if key == StatusKey::Strokes {
                draw_line(area, swatch, MARKER, status_stroke(status))?;
            }
            area.draw(&mark(mid, status, MARKER))
                .map_err(|e| e.to_string())?;
        }
    }
    for (k, line) in lines.iter().enumerate() {
        let (w, _) = area
            .estimate_text_size(line, &font.clone().into())
            .map_err(|e| e.to_string())?;
        *right = (*right).max(text_x + w as i32);
        area.draw(&Text::new(
            line.clone(),
            (text_x, y + 1 + LEGEND_LINE * k as i32),
            font.clone(),
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}
