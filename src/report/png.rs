//! The chart catalogue of a sweep: which PNGs a folder gets and what each shows, from
//! [`SweepSummary`] alone (drawing is `chart`'s). Against the offered rate (or, for a
//! concurrency sweep, the users): latency
//! (`latency.png`: p50/p90/p99, every other statistic an SLO clause of the latency or service
//! family names, and those clauses' limits), request and token throughput (`throughput.png`:
//! the served rate the verdict judges, Vegeta's throughput, y = x), TTFT and ITL
//! (`ttft_itl.png`, streaming APIs: p50/p95 and whatever the ttft, itl and tpot clauses name,
//! with their limits) and cost per 1K tokens (`cost.png`); and the latency distribution of
//! every step (`latency_distribution.png`, with the latency clauses' limits up to their
//! percentile); for a search, its levels in the order probed (`search.png`); with
//! `--server-metrics`, the server's own figures (`server.png`: client vs server latency, batch
//! size and KV-cache use, tokens/s).
//!
//! Every point shows its verdict the same way: filled sustainable, hollow unsustainable, a grey
//! cross undetermined. Legends sit in a column beside the plot, never over the data.

use std::path::{Path, PathBuf};

use plotters::style::RGBColor;

use super::chart::{
    self, COLORS, Panel, PanelLayout, Series, StatusKey, Stroke, Threshold, XUnit, YUnit,
};
use crate::analysis::server::ServerFigures;
use crate::analysis::summary::{Ms, RateRow, SweepSummary};
use crate::scenario::plan::Axis;
use crate::scenario::slo::{Clause, Family, Stat};

pub use super::chart::{ChartError, SLO_COLOR};

/// Chart size in pixels (width, height) of a one-panel chart; two-panel charts are taller.
pub const SIZE: (u32, u32) = (1000, 600);
pub const SIZE_TWO_PANELS: (u32, u32) = (1000, 1000);
/// server.png: three panels.
pub const SIZE_SERVER: (u32, u32) = (1000, 1400);

/// What latency.png always draws.
const LATENCY_STATS: [Stat; 3] = [Stat::P50, Stat::P90, Stat::P99];
/// What the TTFT and ITL panels always draw.
const TOKEN_STATS: [Stat; 2] = [Stat::P50, Stat::P95];

/// One colour per statistic across every chart, so `p95` reads the same on all of them.
fn stat_color(stat: Stat) -> RGBColor {
    COLORS[match stat {
        Stat::P50 => 0,
        Stat::P90 => 1,
        Stat::P99 => 2,
        Stat::P95 => 3,
        Stat::P999 => 4,
        Stat::Mean => 5,
        Stat::Max => 7,
    }]
}

/// The SLO clauses of `families`, in the order the SLO lists them.
fn clauses<'a>(s: &'a SweepSummary, families: &'a [Family]) -> impl Iterator<Item = &'a Clause> {
    s.rules
        .slo
        .clauses
        .iter()
        .filter(move |c| families.contains(&c.family))
}

/// `base` and every statistic a clause of `family` names, in [`Stat`] order.
fn with_clause_stats(s: &SweepSummary, base: &[Stat], family: Family) -> Vec<Stat> {
    let mut stats: Vec<Stat> = base
        .iter()
        .copied()
        .chain(clauses(s, &[family]).map(|c| c.stat))
        .collect();
    stats.sort();
    stats.dedup();
    stats
}

/// The statistics latency.png draws of end-to-end latency, and of service time (only what
/// service clauses name).
pub fn latency_stats(s: &SweepSummary) -> (Vec<Stat>, Vec<Stat>) {
    (
        with_clause_stats(s, &LATENCY_STATS, Family::Latency),
        with_clause_stats(s, &[], Family::Service),
    )
}

/// The statistics the TTFT panel draws; the ITL panel's, and TPOT's (only what tpot clauses
/// name).
pub fn token_stats(s: &SweepSummary) -> (Vec<Stat>, Vec<Stat>, Vec<Stat>) {
    (
        with_clause_stats(s, &TOKEN_STATS, Family::Ttft),
        with_clause_stats(s, &TOKEN_STATS, Family::Itl),
        with_clause_stats(s, &[], Family::Tpot),
    )
}

/// `p50 / p90 / p99`, for captions.
pub fn stat_list(stats: &[Stat]) -> String {
    stats
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(" / ")
}

fn threshold(c: &Clause) -> Threshold {
    Threshold {
        y: c.limit_ns / 1e6,
        x_end: None,
        label: format!("SLO {c}"),
    }
}

/// A chart written, and where its panels landed (tests look there).
pub(crate) struct Drawn {
    pub path: PathBuf,
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "only tests read where things landed")
    )]
    pub panels: Vec<PanelLayout>,
}

/// Writes every chart of `s` into `dir`; returns the files written.
pub fn render_all(s: &SweepSummary, dir: &Path) -> Result<Vec<PathBuf>, ChartError> {
    Ok(draw_all(s, dir)?.into_iter().map(|d| d.path).collect())
}

/// Builds series over the rates of a sweep: x the offered rate, each marker its rate's verdict.
struct Lines<'a> {
    s: &'a SweepSummary,
    xs: Vec<f64>,
}

impl Lines<'_> {
    fn line(&self, label: String, color: RGBColor, ys: Vec<f64>, stroke: Stroke) -> Series {
        Series {
            label: Some(label),
            color,
            points: self.xs.iter().copied().zip(ys).collect(),
            stroke,
            marks: self.s.rates.iter().map(|r| r.status).collect(),
        }
    }

    /// `stat` of `family` (None where a rate did not measure it), labelled
    /// `{family} {stat}{note}`.
    fn stat(
        &self,
        (family, note): (&str, &str),
        stat: Stat,
        values: fn(&RateRow) -> Option<Ms>,
        stroke: Stroke,
    ) -> Series {
        let ys = self
            .s
            .rates
            .iter()
            .map(|r| values(r).map_or(f64::NAN, |m| m.get(stat)))
            .collect();
        let name = if family.is_empty() {
            format!("{}{note}", stat.name())
        } else {
            format!("{family} {}{note}", stat.name())
        };
        self.line(name, stat_color(stat), ys, stroke)
    }

    fn of(&self, f: fn(&RateRow) -> f64) -> Vec<f64> {
        self.s.rates.iter().map(f).collect()
    }
}

/// The x-axis every rate panel shares: the plan's levels and the headline's place on them.
struct LevelAxis {
    desc: &'static str,
    marker: Option<(f64, String)>,
}

/// A panel against the plan's levels (offered rate or users), with the headline marker.
fn rate_panel<'a>(
    axis: &LevelAxis,
    title: &'a str,
    y_desc: &'a str,
    y: YUnit,
    series: Vec<Series>,
) -> Panel<'a> {
    Panel {
        title,
        x_desc: axis.desc,
        y_desc,
        x: XUnit::Rps,
        y,
        series,
        thresholds: Vec::new(),
        diagonal: false,
        marker: axis.marker.clone(),
        status_key: StatusKey::Markers,
    }
}

/// [`render_all`], keeping each chart's layout.
pub(crate) fn draw_all(s: &SweepSummary, dir: &Path) -> Result<Vec<Drawn>, ChartError> {
    let mut drawn = Vec::new();
    let mut put = |name: &str, size, panels: &[Panel<'_>]| -> Result<(), ChartError> {
        let path = dir.join(name);
        let panels = chart::render(&path, size, panels)?;
        drawn.push(Drawn { path, panels });
        Ok(())
    };
    let lines = Lines {
        s,
        xs: s.rates.iter().map(|r| r.level()).collect(),
    };
    let closed_loop = s.axis == Axis::Concurrency;
    let marker = LevelAxis {
        desc: s.axis.title(),
        marker: s.headline.as_ref().map(|h| {
            (
                h.level(),
                format!("highest sustainable: {}", s.axis.fmt_level(h.level())),
            )
        }),
    };
    // With repeats every point is a mean over them; say so in the titles.
    let means = if s.repeat > 1 {
        format!(" (means over {} repeats)", s.repeat)
    } else {
        String::new()
    };
    let versus = if closed_loop {
        "concurrency"
    } else {
        "offered rate"
    };
    let title = |t: &str| format!("{}{means}", t.replace("offered rate", versus));

    // Latency, and service time where an SLO judges it.
    let (latency, service) = latency_stats(s);
    let mut series: Vec<Series> = latency
        .iter()
        .map(|&st| lines.stat(("", ""), st, |r| Some(r.latency_ms), Stroke::Solid))
        .collect();
    series.extend(service.iter().map(|&st| {
        lines.stat(
            ("service", " (from actual send)"),
            st,
            |r| r.service_ms,
            Stroke::Dashed,
        )
    }));
    let latency_title = if service.is_empty() {
        title("Latency vs offered rate")
    } else {
        title("Latency and service time vs offered rate")
    };
    let mut panel = rate_panel(
        &marker,
        &latency_title,
        "latency of successes, from intended send",
        YUnit::LatencyMs,
        series,
    );
    panel.thresholds = clauses(s, &[Family::Latency, Family::Service])
        .map(threshold)
        .collect();
    put("latency.png", SIZE, &[panel])?;

    // Throughput.
    let requests_title = title("Request throughput vs offered rate");
    let tokens_title = title("Output token throughput vs offered rate");
    let mut requests = rate_panel(
        &marker,
        &requests_title,
        "successful requests/s",
        YUnit::PerSecond,
        if closed_loop {
            // A closed loop's served rate is its throughput; one line, judged.
            vec![lines.line(
                "throughput (successes / first send to last end; judged)".into(),
                COLORS[0],
                lines.of(|r| r.throughput_rps),
                Stroke::Solid,
            )]
        } else {
            vec![
                lines.line(
                    "served rate (from the latency trend; judged)".into(),
                    COLORS[1],
                    lines.of(|r| r.served_rps),
                    Stroke::Dashed,
                ),
                lines.line(
                    "Vegeta's throughput (successes / first send to last end)".into(),
                    COLORS[0],
                    lines.of(|r| r.throughput_rps),
                    Stroke::Solid,
                ),
            ]
        },
    );
    // y = x (served = offered) means something only against an offered rate.
    requests.diagonal = !closed_loop;
    let tokens = rate_panel(
        &marker,
        &tokens_title,
        "output tokens/s",
        YUnit::PerSecond,
        vec![lines.line(
            "output tokens/s (at the served rate)".into(),
            COLORS[4],
            lines.of(|r| r.output_tokens_per_s),
            Stroke::Solid,
        )],
    );
    put("throughput.png", SIZE_TWO_PANELS, &[requests, tokens])?;

    // TTFT and ITL (with TPOT where an SLO judges it), when the API streamed.
    if s.rates.iter().any(|r| r.ttft_ms.is_some()) {
        let (ttft, itl, tpot) = token_stats(s);
        let ttft_title = title("Time to first token vs offered rate");
        let mut ttft_panel = rate_panel(
            &marker,
            &ttft_title,
            "TTFT from intended send",
            YUnit::LatencyMs,
            ttft.iter()
                .map(|&st| lines.stat(("TTFT", ""), st, |r| r.ttft_ms, Stroke::Solid))
                .collect(),
        );
        ttft_panel.thresholds = clauses(s, &[Family::Ttft]).map(threshold).collect();
        let itl_title = if tpot.is_empty() {
            title("Inter-token latency vs offered rate")
        } else {
            title("Inter-token latency and time per output token vs offered rate")
        };
        let mut series: Vec<Series> = itl
            .iter()
            .map(|&st| lines.stat(("ITL", ""), st, |r| r.itl_ms, Stroke::Solid))
            .collect();
        series.extend(
            tpot.iter()
                .map(|&st| lines.stat(("TPOT", ""), st, |r| r.tpot_ms, Stroke::Dashed)),
        );
        let mut itl_panel = rate_panel(
            &marker,
            &itl_title,
            if tpot.is_empty() {
                "gap between tokens"
            } else {
                "time per token"
            },
            YUnit::LatencyMs,
            series,
        );
        itl_panel.thresholds = clauses(s, &[Family::Itl, Family::Tpot])
            .map(threshold)
            .collect();
        put("ttft_itl.png", SIZE_TWO_PANELS, &[ttft_panel, itl_panel])?;
    }

    // Cost.
    if let Some(price) = &s.price {
        let cost_title = title(&format!(
            "Cost per 1K tokens, {} at {} USD/h",
            price.instance, price.usd_per_hour
        ));
        let mut series = vec![lines.line(
            "measured (input + output tokens/s at the served rate)".into(),
            COLORS[0],
            lines.of(|r| r.cost.usd_per_1k_tokens.unwrap_or(f64::NAN)),
            Stroke::Solid,
        )];
        // The study's formula prices an offered rate, which a closed loop has not.
        if !closed_loop {
            series.push(lines.line(
                "study formula (offered rate x tokens/request)".into(),
                COLORS[1],
                lines.of(|r| r.cost.study_usd_per_1k_tokens.unwrap_or(f64::NAN)),
                Stroke::Dashed,
            ));
        }
        let panel = rate_panel(
            &marker,
            &cost_title,
            "USD per 1K tokens",
            YUnit::Usd,
            series,
        );
        put("cost.png", SIZE, &[panel])?;
    }

    // The server's own figures, when it was scraped.
    if s.steps.iter().any(|r| r.server.is_some()) {
        let titles = [
            title("Client and server latency vs offered rate"),
            title("Server batch size and KV-cache use vs offered rate"),
            title("Server tokens/s vs offered rate"),
        ];
        put(
            "server.png",
            SIZE_SERVER,
            &server_panels(&lines, &marker, &titles),
        )?;
    }

    // Latency distribution of every step: one line per step, coloured by rate.
    let mut series = Vec::new();
    for r in &s.steps {
        let points: Vec<(f64, f64)> = r
            .latency_distribution
            .iter()
            .filter(|(q, _)| *q < 100.0)
            .map(|&(q, ms)| (chart::nines(q), ms))
            .collect();
        let color = chart::rate_color(r.rate_index, s.rates.len());
        // Repeats share their rate's colour and one legend entry, solid: the stroke of a step
        // is its own verdict, which the repeats of a rate need not share.
        if r.repeat == 0 {
            series.push(Series {
                label: Some(s.axis.fmt_level(r.level())),
                color,
                points: Vec::new(),
                stroke: Stroke::Solid,
                marks: Vec::new(),
            });
        }
        series.push(Series {
            label: None,
            color,
            marks: vec![r.status; points.len()],
            points,
            stroke: chart::status_stroke(r.status),
        });
    }
    // A percentile clause bounds the curve up to its percentile (the curves only rise); a max
    // clause bounds all of it; a mean is no point of the curve.
    let thresholds = clauses(s, &[Family::Latency])
        .filter_map(|c| {
            let q = match c.stat {
                Stat::Mean => return None,
                Stat::Max => None,
                Stat::P50 => Some(50.0),
                Stat::P90 => Some(90.0),
                Stat::P95 => Some(95.0),
                Stat::P99 => Some(99.0),
                Stat::P999 => Some(99.9),
            };
            Some(Threshold {
                x_end: q.map(chart::nines),
                ..threshold(c)
            })
        })
        .collect();
    put(
        "latency_distribution.png",
        SIZE,
        &[Panel {
            title: "Latency distribution per step",
            x_desc: "percentile",
            y_desc: "latency of successes, from intended send",
            x: XUnit::Nines,
            y: YUnit::LatencyMs,
            series,
            thresholds,
            diagonal: false,
            marker: None,
            status_key: StatusKey::Strokes,
        }],
    )?;
    if let Some(search) = &s.search {
        put(
            "search.png",
            SIZE,
            &[super::search_chart::panel(s, search.answer())],
        )?;
    }
    Ok(drawn)
}

/// A server figure per rate: the mean over its repeats that have it (NaN: none).
fn per_rate(s: &SweepSummary, f: fn(&ServerFigures) -> Option<f64>) -> Vec<f64> {
    s.rates
        .iter()
        .map(|rate| {
            let v: Vec<f64> = s
                .steps
                .iter()
                .filter(|r| r.rate_index == rate.rate_index)
                .filter_map(|r| r.server.as_ref().and_then(f))
                .collect();
            if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        })
        .collect()
}

/// server.png's panels: client and server latency (the gap between them), batch and KV-cache
/// use, and tokens/s as the server counted them beside the client's.
fn server_panels<'a>(
    lines: &Lines<'_>,
    axis: &LevelAxis,
    titles: &'a [String; 3],
) -> Vec<Panel<'a>> {
    let s = lines.s;
    let ms = |f: fn(&ServerFigures) -> Option<f64>| -> Vec<f64> {
        per_rate(s, f).into_iter().map(|v| v * 1e3).collect()
    };
    let latency = vec![
        lines.line(
            "client mean (successes, from intended send)".into(),
            COLORS[0],
            lines.of(|r| r.latency_ms.mean),
            Stroke::Solid,
        ),
        lines.line(
            "server request mean".into(),
            COLORS[1],
            ms(|f| f.request_latency_s),
            Stroke::Solid,
        ),
        lines.line(
            "server request p95".into(),
            COLORS[3],
            ms(|f| f.request_latency_p95_s),
            Stroke::Dashed,
        ),
        lines.line(
            "server queue mean".into(),
            COLORS[4],
            ms(|f| f.queue_time_s),
            Stroke::Dashed,
        ),
    ];
    let kv_pct: Vec<f64> = per_rate(s, |f| f.kv_cache_usage)
        .into_iter()
        .map(|v| v * 100.0)
        .collect();
    let use_series = vec![
        lines.line(
            "batch size (mean running requests)".into(),
            COLORS[0],
            per_rate(s, |f| f.batch_size),
            Stroke::Solid,
        ),
        lines.line(
            "KV-cache use (mean, %)".into(),
            COLORS[2],
            kv_pct,
            Stroke::Dashed,
        ),
    ];
    let tokens = vec![
        lines.line(
            "server: generated tokens / step duration".into(),
            COLORS[1],
            per_rate(s, |f| f.tokens_per_s),
            Stroke::Solid,
        ),
        lines.line(
            "client: output tokens/s (at the served rate)".into(),
            COLORS[4],
            lines.of(|r| r.output_tokens_per_s),
            Stroke::Dashed,
        ),
    ];
    vec![
        rate_panel(axis, &titles[0], "mean latency", YUnit::LatencyMs, latency),
        rate_panel(
            axis,
            &titles[1],
            "requests, or % of the KV cache",
            YUnit::PerSecond,
            use_series,
        ),
        rate_panel(axis, &titles[2], "tokens/s", YUnit::PerSecond, tokens),
    ]
}
