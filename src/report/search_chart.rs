//! `search.png`: a search's course, each step's level in the order it ran with its verdict's
//! marker, and the answer as a line across. Reads only [`SweepSummary`].

use super::chart::{COLORS, Panel, Series, StatusKey, Stroke, Threshold, XUnit, YUnit};
use crate::analysis::summary::SweepSummary;

/// A search's course: each step's level in the order it ran, marked with its verdict, and the
/// answer as a line across.
pub(crate) fn panel(s: &SweepSummary, answer: Option<f64>) -> Panel<'static> {
    let probes = Series {
        label: Some("level probed".into()),
        color: COLORS[0],
        points: s
            .steps
            .iter()
            .map(|r| (f64::from(r.step + 1), r.level()))
            .collect(),
        stroke: Stroke::Solid,
        marks: s.steps.iter().map(|r| r.status).collect(),
    };
    Panel {
        title: "Search: the levels in the order probed",
        x_desc: "step (in the order run)",
        y_desc: s.axis.title(),
        x: XUnit::Rps,
        y: YUnit::PerSecond,
        series: vec![probes],
        thresholds: answer
            .map(|a| Threshold {
                y: a,
                x_end: None,
                label: format!("answer: {}", s.axis.fmt_level(a)),
            })
            .into_iter()
            .collect(),
        diagonal: false,
        marker: None,
        status_key: StatusKey::Markers,
    }
}
