//! Chart axes: how values print (latency, per second, USD; rates and percentiles on x), and
//! the y axis with round ticks on a linear or log10 scale.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};

use crate::cost::fmt_sig;

/// How y values print on the axis.
#[derive(Clone, Copy)]
pub(crate) enum YUnit {
    LatencyMs,
    PerSecond,
    Usd,
}

impl YUnit {
    pub(super) fn fmt(self, v: f64) -> String {
        match self {
            YUnit::LatencyMs if v >= 1000.0 => format!("{} s", trim(fmt_sig(v / 1e3, 3))),
            YUnit::LatencyMs if v >= 1.0 => format!("{} ms", trim(fmt_sig(v, 3))),
            YUnit::LatencyMs => format!("{} ms", fmt_sig(v, 2)),
            YUnit::PerSecond => trim(fmt_sig(v, 3)),
            YUnit::Usd => format!("${}", trim(fmt_sig(v, 2))),
        }
    }
}

pub(crate) fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// How x values print.
#[derive(Clone, Copy)]
pub(crate) enum XUnit {
    Rps,
    /// x = -log10(1 - q): 0 -> 0%, 1 -> 90%, 2 -> 99%, ...
    Nines,
}

/// Percentile `q` (0..100) on a [`XUnit::Nines`] axis.
pub(crate) fn nines(q: f64) -> f64 {
    -(1.0 - q / 100.0).log10()
}

/// A linear f64 axis whose ticks are given (plotters picks log-space ticks like 10^0.5 on a
/// log10-transformed axis; these are round numbers instead).
pub(super) struct Ticked {
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<f64>,
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
pub(super) fn y_ticks(y0: f64, y1: f64, log: bool) -> Vec<f64> {
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

pub(super) fn nines_label(x: f64) -> String {
    let q = 100.0 * (1.0 - 10f64.powf(-x));
    let s = trim(format!("{q:.4}"));
    format!("{s}%")
}
