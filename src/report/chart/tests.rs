//! Pixel tests of the charts: a hand-built [`SweepSummary`] is rendered by `png::draw_all`, the
//! PNGs are decoded, and what a reader relies on is looked up where the layout says it landed:
//! SLO lines at their limit on the chart of their family, the series of the statistic an SLO
//! names, legends beside the plot, grey crosses for undetermined rates, titles inside the image.

use std::path::Path;

use plotters::style::RGBColor;

use super::{COLORS, PanelLayout, Rect, SLO_COLOR, UNDETERMINED_COLOR};
use crate::analysis::summary::{CostRow, Headline, Ms, RateRow, StepRow, SweepSummary};
use crate::analysis::verdict::Status;
use crate::cost::Price;
use crate::report::png::{Drawn, draw_all};
use crate::scenario::rules::VerdictRules;
use crate::scenario::slo::Slo;

/// Percentiles growing from `b` ms the way real ones do.
fn ms(b: f64) -> Ms {
    Ms {
        mean: b,
        p50: b,
        p90: 1.2 * b,
        p95: 1.3 * b,
        p99: 1.5 * b,
        p999: 1.7 * b,
        max: 2.0 * b,
    }
}

fn latency(rps: f64) -> f64 {
    100.0 + 5.0 * rps
}

/// A streaming sweep at 10, 20, ... req/s (one step per rate) with these verdicts and SLO.
fn summary(statuses: &[Status], slo: &str) -> SweepSummary {
    let timings = |rps: f64| {
        let l = latency(rps);
        (
            ms(l),
            ms(0.95 * l),
            ms(0.3 * l),
            ms(20.0 + rps / 2.0),
            ms(22.0 + rps / 2.0),
        )
    };
    let rates: Vec<RateRow> = statuses
        .iter()
        .enumerate()
        .map(|(i, &status)| {
            let rps = 10.0 * (i + 1) as f64;
            let (lat, service, ttft, itl, tpot) = timings(rps);
            RateRow {
                rate_index: i,
                target_rps: rps,
                repeats: 1,
                requests: 100,
                throughput_rps: 0.9 * rps,
                served_rps: rps,
                success_ratio: 1.0,
                latency_ms: lat,
                service_ms: Some(service),
                ttft_ms: Some(ttft),
                itl_ms: Some(itl),
                tpot_ms: Some(tpot),
                output_tokens_per_s: 4.0 * rps,
                cost: CostRow {
                    usd_per_1k_tokens: Some(1.0 / rps),
                    study_usd_per_1k_tokens: Some(1.2 / rps),
                    ..CostRow::default()
                },
                status,
                sustainable: status == Status::Sustainable,
                all_succeeded: true,
                ..RateRow::default()
            }
        })
        .collect();
    let steps = rates
        .iter()
        .map(|r| {
            let (lat, service, ttft, itl, tpot) = timings(r.target_rps);
            StepRow {
                step: r.rate_index as u32,
                rate_index: r.rate_index,
                target_rps: r.target_rps,
                achieved_rps: r.target_rps,
                throughput_rps: r.throughput_rps,
                served_rps: r.served_rps,
                requests: r.requests,
                success_ratio: 1.0,
                latency_ms: lat,
                service_ms: Some(service),
                ttft_ms: Some(ttft),
                itl_ms: Some(itl),
                tpot_ms: Some(tpot),
                output_tokens_per_s: r.output_tokens_per_s,
                cost: r.cost,
                status: r.status,
                sustainable: r.sustainable,
                verdict: r.status.as_str().into(),
                latency_distribution: [0.0, 50.0, 90.0, 99.0, 99.9, 100.0]
                    .iter()
                    .map(|&q| (q, lat.p50 * (1.0 + q / 100.0)))
                    .collect(),
                ..StepRow::default()
            }
        })
        .collect();
    let headline = rates
        .iter()
        .rfind(|r| r.status == Status::Sustainable)
        .map(Headline::of);
    SweepSummary {
        name: "pixels".into(),
        target: "http://127.0.0.1:9".into(),
        api: "tgi-stream".into(),
        axis: Default::default(),
        plan: "10..40".into(),
        step_duration_s: 10.0,
        repeat: 1,
        price: Some(Price {
            instance: "g5.4xlarge".into(),
            region: None,
            usd_per_hour: 1.624,
        }),
        rules: VerdictRules {
            slo: Slo::parse(slo).unwrap(),
            ..VerdictRules::default()
        },
        planned_steps: statuses.len(),
        stopped_early: false,
        headline,
        study_max_rps: None,
        search: None,
        rates,
        steps,
        by_target: Vec::new(),
    }
}

const ALL_SUSTAINABLE: [Status; 4] = [Status::Sustainable; 4];

/// A decoded chart.
struct Image {
    width: i32,
    height: i32,
    channels: usize,
    data: Vec<u8>,
}

impl Image {
    fn load(path: &Path) -> Image {
        let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut data = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut data).unwrap();
        Image {
            width: info.width as i32,
            height: info.height as i32,
            channels: info.color_type.samples(),
            data,
        }
    }

    fn rgb(&self, x: i32, y: i32) -> RGBColor {
        let i = (y * self.width + x) as usize * self.channels;
        RGBColor(self.data[i], self.data[i + 1], self.data[i + 2])
    }

    /// Pixels of exactly `color` in `r` (clipped to the image).
    fn count(&self, r: Rect, color: RGBColor) -> usize {
        let mut n = 0;
        for y in r.y0.max(0)..r.y1.min(self.height) {
            for x in r.x0.max(0)..r.x1.min(self.width) {
                if self.rgb(x, y) == color {
                    n += 1;
                }
            }
        }
        n
    }

    /// Pixels that are not white in `r`.
    fn inked(&self, r: Rect) -> usize {
        let mut n = 0;
        for y in r.y0.max(0)..r.y1.min(self.height) {
            for x in r.x0.max(0)..r.x1.min(self.width) {
                if self.rgb(x, y) != RGBColor(255, 255, 255) {
                    n += 1;
                }
            }
        }
        n
    }
}

/// Renders `s` into a fresh folder; returns the folder (kept alive) and the charts.
fn render(s: &SweepSummary) -> (tempfile::TempDir, Vec<Drawn>) {
    let dir = tempfile::tempdir().unwrap();
    let drawn = draw_all(s, dir.path()).unwrap();
    (dir, drawn)
}

fn chart<'a>(drawn: &'a [Drawn], name: &str) -> (&'a Drawn, Image) {
    let d = drawn
        .iter()
        .find(|d| d.path.file_name().unwrap() == name)
        .unwrap_or_else(|| panic!("{name} was not drawn"));
    (d, Image::load(&d.path))
}

/// The band of rows `y ± 2` across the plot.
fn row_band(p: &PanelLayout, y: i32) -> Rect {
    Rect {
        x0: p.plot.x0,
        y0: y - 2,
        x1: p.plot.x1,
        y1: y + 3,
    }
}

/// SLO-coloured pixels in the row band of `limit_ms` and in the whole plot of panel `p`.
fn slo_pixels(img: &Image, p: &PanelLayout, limit_ms: f64) -> (usize, usize) {
    let (_, y) = p.pixel(0.0, limit_ms);
    (
        img.count(row_band(p, y), SLO_COLOR),
        img.count(p.plot, SLO_COLOR),
    )
}

#[test]
fn the_slo_limit_is_a_line_at_its_value_even_above_every_point() {
    // The data tops out near 400 ms; the limit is 2 s, so the y range has to stretch to it.
    let (_dir, drawn) = render(&summary(&ALL_SUSTAINABLE, "p95<2s"));
    let (d, img) = chart(&drawn, "latency.png");
    let p = &d.panels[0];
    let (_, y) = p.pixel(0.0, 2000.0);
    assert!(
        y > p.plot.y0 && y < p.plot.y1,
        "2 s at row {y} is outside the plot {:?}",
        p.plot
    );
    let (at_limit, in_plot) = slo_pixels(&img, p, 2000.0);
    let width = (p.plot.x1 - p.plot.x0) as usize;
    // Dashed 8 on, 5 off, 2 px thick: over half the width's worth of pixels.
    assert!(at_limit > width / 2, "{at_limit} SLO pixels at 2 s");
    assert_eq!(at_limit, in_plot, "SLO pixels away from the 2 s row");

    let (_dir, drawn) = render(&summary(&ALL_SUSTAINABLE, ""));
    let (d, img) = chart(&drawn, "latency.png");
    assert_eq!(img.count(d.panels[0].plot, SLO_COLOR), 0);
}

#[test]
fn every_slo_family_is_drawn_on_the_panel_of_its_family() {
    // (clause, chart, panel, limit ms)
    let cases = [
        ("p99<2s", "latency.png", 0, 2000.0),
        ("service_p95<1500ms", "latency.png", 0, 1500.0),
        ("ttft_p90<300ms", "ttft_itl.png", 0, 300.0),
        ("itl_p99<80ms", "ttft_itl.png", 1, 80.0),
        ("tpot_p50<60ms", "ttft_itl.png", 1, 60.0),
    ];
    for (slo, name, panel, limit) in cases {
        let (_dir, drawn) = render(&summary(&ALL_SUSTAINABLE, slo));
        for d in &drawn {
            let img = Image::load(&d.path);
            for (i, p) in d.panels.iter().enumerate() {
                let here = d.path.file_name().unwrap() == name && i == panel;
                let (at_limit, in_plot) = slo_pixels(&img, p, limit);
                let file = d.path.display();
                if here {
                    assert!(
                        at_limit > 100,
                        "{slo}: {at_limit} SLO pixels on {file}[{i}]"
                    );
                    assert_eq!(at_limit, in_plot, "{slo}: stray SLO pixels on {file}[{i}]");
                } else if !(name == "latency.png" && file.to_string().contains("distribution")) {
                    assert_eq!(in_plot, 0, "{slo} drawn on {file}[{i}] too");
                }
            }
        }
    }
}

#[test]
fn a_percentile_the_slo_names_is_drawn_as_a_series() {
    let p95 = COLORS[3];
    let (_dir, drawn) = render(&summary(&ALL_SUSTAINABLE, ""));
    let (d, img) = chart(&drawn, "latency.png");
    assert_eq!(img.count(d.panels[0].plot, p95), 0, "p95 drawn unasked");
    let (_dir, drawn) = render(&summary(&ALL_SUSTAINABLE, "p95<2s"));
    let (d, img) = chart(&drawn, "latency.png");
    assert!(img.count(d.panels[0].plot, p95) > 100, "no p95 series");

    // TTFT draws p50 and p95; an SLO on its p99 adds that (red), and a tpot clause adds TPOT
    // to the ITL panel (max: cyan).
    let (p99, max) = (COLORS[2], COLORS[7]);
    let (_dir, drawn) = render(&summary(&ALL_SUSTAINABLE, ""));
    let (d, img) = chart(&drawn, "ttft_itl.png");
    assert_eq!(img.count(d.panels[0].plot, p99), 0);
    assert_eq!(img.count(d.panels[1].plot, max), 0);
    let (_dir, drawn) = render(&summary(&ALL_SUSTAINABLE, "ttft_p99<1s,tpot_max<200ms"));
    let (d, img) = chart(&drawn, "ttft_itl.png");
    assert!(img.count(d.panels[0].plot, p99) > 100, "no TTFT p99 series");
    assert!(img.count(d.panels[1].plot, max) > 100, "no TPOT max series");
}

#[test]
fn legends_sit_beside_the_plot_inside_the_image() {
    let statuses = [
        Status::Sustainable,
        Status::Undetermined,
        Status::Sustainable,
        Status::Unsustainable,
    ];
    let slo = "p95<2s,max<3s,service_p999<2500ms,ttft_p99<1s,itl_mean<50ms,tpot_p95<70ms";
    let mut s = summary(&statuses, slo);
    s.repeat = 3;
    let (_dir, drawn) = render(&s);
    assert_eq!(drawn.len(), 5);
    for d in &drawn {
        let img = Image::load(&d.path);
        let file = d.path.display();
        for (i, p) in d.panels.iter().enumerate() {
            assert!(
                !p.legend.overlaps(&p.plot),
                "{file}[{i}]: legend {:?} over plot {:?}",
                p.legend,
                p.plot
            );
            assert!(
                p.legend.x0 >= p.plot.x1,
                "{file}[{i}]: legend left of the plot"
            );
            for r in [p.legend, p.plot] {
                assert!(
                    r.x0 >= p.area.x0 && r.x1 <= p.area.x1 && r.y0 >= p.area.y0,
                    "{file}[{i}]: {r:?} outside {:?}",
                    p.area
                );
                assert!(r.y1 <= p.area.y1, "{file}[{i}]: {r:?} below {:?}", p.area);
            }
            assert!(img.inked(p.legend) > 500, "{file}[{i}]: an empty legend");
            // Nothing but the plot's own drawing between the legend and the image's edge.
            let right = Rect {
                x0: p.legend.x1,
                x1: img.width,
                ..p.legend
            };
            assert_eq!(
                img.inked(right),
                0,
                "{file}[{i}]: legend text runs past its box"
            );
        }
    }
}

#[test]
fn undetermined_rates_are_grey_crosses() {
    let statuses = [
        Status::Sustainable,
        Status::Undetermined,
        Status::Unsustainable,
    ];
    let s = summary(&statuses, "");
    let (_dir, drawn) = render(&s);
    let (d, img) = chart(&drawn, "latency.png");
    let p = &d.panels[0];
    let around = |rps: f64| {
        let (x, y) = p.pixel(rps, latency(rps));
        Rect {
            x0: x - 7,
            y0: y - 7,
            x1: x + 8,
            y1: y + 8,
        }
    };
    assert!(
        img.count(around(20.0), UNDETERMINED_COLOR) > 10,
        "no grey cross at the undetermined rate"
    );
    for rps in [10.0, 30.0] {
        assert_eq!(img.count(around(rps), UNDETERMINED_COLOR), 0, "{rps}");
    }
    assert!(
        img.count(p.legend, UNDETERMINED_COLOR) > 5,
        "no undetermined entry in the legend"
    );
    let (_dir, drawn) = render(&summary(&ALL_SUSTAINABLE, ""));
    for d in &drawn {
        let img = Image::load(&d.path);
        for p in &d.panels {
            assert_eq!(
                img.count(p.plot, UNDETERMINED_COLOR),
                0,
                "{}",
                d.path.display()
            );
        }
    }
}

#[test]
fn long_titles_shrink_to_fit() {
    let mut s = summary(&ALL_SUSTAINABLE, "");
    s.repeat = 3;
    s.price.as_mut().unwrap().instance = "a-very-long-instance-name.48xlarge@ap-southeast-2".into();
    let (_dir, drawn) = render(&s);
    let (d, img) = chart(&drawn, "cost.png");
    let p = &d.panels[0];
    // The caption band: ink starts right of the left edge and ends before the legend column.
    let band = |x0: i32, x1: i32| {
        img.inked(Rect {
            x0,
            y0: 0,
            x1,
            y1: p.plot.y0 - 4,
        })
    };
    assert!(band(0, p.plot.x1) > 500, "no caption");
    assert_eq!(band(0, 12), 0, "the caption is cut at the left edge");
    assert_eq!(
        band(p.legend.x0, img.width),
        0,
        "the caption runs into the legend column"
    );
}

#[test]
fn a_full_legend_gives_rates_way_to_a_count_and_keeps_its_key() {
    // 30 rates: the distribution chart's legend cannot list them all in 600 px.
    let statuses: Vec<Status> = (0..30)
        .map(|i| match i % 3 {
            0 => Status::Sustainable,
            1 => Status::Unsustainable,
            _ => Status::Undetermined,
        })
        .collect();
    let (_dir, drawn) = render(&summary(&statuses, "p99<3s"));
    for d in &drawn {
        let img = Image::load(&d.path);
        for p in &d.panels {
            let file = d.path.display();
            assert!(
                p.legend.y1 <= p.area.y1,
                "{file}: {:?} past {:?}",
                p.legend,
                p.area
            );
            assert!(!p.legend.overlaps(&p.plot), "{file}");
            assert!(
                img.count(p.legend, UNDETERMINED_COLOR) > 5,
                "{file}: the key lost its undetermined entry"
            );
            assert!(
                img.count(p.legend, SLO_COLOR) > 5 || !file.to_string().contains("latency"),
                "{file}: the SLO entry is gone"
            );
        }
    }
}
