//! `report.md`: the sweep for a human. The headline first, in the study's table shape (RPS,
//! throughput, p90 latency, cost per 1K tokens), with its goodput when an SLO is set and how a
//! search ended, then the run's settings, every rate (means over repeats when `--repeat` > 1,
//! the study's columns), every step with its verdict, the figures its SLO judges and its
//! goodput, the server's own figures (`report::server`), the cost formulas, and the charts. Latencies are of successful
//! requests, with the errors counted beside them. Reads only [`SweepSummary`]; computes nothing
//! but the lookup of each SLO clause's figure.

use std::fmt::Write;

use crate::analysis::summary::{Ms, StepRow, SweepSummary};
use crate::analysis::verdict::Status;
use crate::cost::fmt_sig;
use crate::report::png;
use crate::scenario::plan::{Axis, fmt_rate};
use crate::scenario::slo::{Clause, Family};

/// A latency as people read it: `850.2 ms`, `1.44 s`.
pub fn fmt_latency_ms(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.3} s", ms / 1e3)
    }
}

fn usd(x: Option<f64>) -> String {
    x.map(|v| format!("US${}", fmt_sig(v, 3)))
        .unwrap_or_else(|| "n/a".into())
}

fn opt_lat(m: Option<Ms>, f: fn(&Ms) -> f64) -> String {
    m.map(|m| fmt_latency_ms(f(&m)))
        .unwrap_or_else(|| "-".into())
}

/// The statistic of a step an SLO clause judges, in ms (None when not measured).
pub fn clause_value_ms(r: &StepRow, c: &Clause) -> Option<f64> {
    let ms = match c.family {
        Family::Latency => Some(r.latency_ms),
        Family::Service => r.service_ms,
        Family::Ttft => r.ttft_ms,
        Family::Itl => r.itl_ms,
        Family::Tpot => r.tpot_ms,
    }?;
    Some(ms.get(c.stat))
}

/// What the verdict column says: `sustainable`, the failures, or `undetermined: ...`.
pub fn verdict_text(status: Status, verdict: &str) -> String {
    match status {
        Status::Sustainable => "sustainable".into(),
        Status::Unsustainable => verdict.to_string(),
        Status::Undetermined => format!("undetermined: {verdict}"),
    }
}

/// `, with the SLO limits p95<2s and ttft_p95<500ms` for the clauses of `families` (empty
/// when none).
fn slo_note(s: &SweepSummary, families: &[Family]) -> String {
    let clauses: Vec<String> = s
        .rules
        .slo
        .clauses
        .iter()
        .filter(|c| families.contains(&c.family))
        .map(|c| c.to_string())
        .collect();
    match clauses.len() {
        0 => String::new(),
        1 => format!(", with the SLO limit {}", clauses[0]),
        _ => format!(", with the SLO limits {}", clauses.join(" and ")),
    }
}

/// The charts `png::render_all` writes, with captions saying what each draws (file, caption).
pub fn chart_links(s: &SweepSummary) -> Vec<(&'static str, String)> {
    let (latency, service) = png::latency_stats(s);
    let service = if service.is_empty() {
        String::new()
    } else {
        format!(" and service time {}", png::stat_list(&service))
    };
    let mut v = vec![
        (
            "latency.png",
            format!(
                "Latency {}{service} vs offered rate{}",
                png::stat_list(&latency),
                slo_note(s, &[Family::Latency, Family::Service])
            ),
        ),
        (
            "throughput.png",
            "Served rate (judged), Vegeta's throughput and output tokens/s vs offered rate".into(),
        ),
    ];
    if s.rates.iter().any(|r| r.ttft_ms.is_some()) {
        let (ttft, itl, tpot) = png::token_stats(s);
        let tpot = if tpot.is_empty() {
            String::new()
        } else {
            format!(" and time per output token {}", png::stat_list(&tpot))
        };
        v.push((
            "ttft_itl.png",
            format!(
                "Time to first token {} and inter-token latency {}{tpot} vs offered rate{}",
                png::stat_list(&ttft),
                png::stat_list(&itl),
                slo_note(s, &[Family::Ttft, Family::Itl, Family::Tpot])
            ),
        ));
    }
    if s.price.is_some() {
        v.push(("cost.png", "Cost per 1K tokens vs offered rate".into()));
    }
    if s.steps.iter().any(|r| r.server.is_some()) {
        v.push((
            "server.png",
            "The server's own figures vs offered rate: client and server latency, batch size and KV-cache use, tokens/s".into(),
        ));
    }
    v.push((
        "latency_distribution.png",
        "Latency distribution per step (dashed: unsustainable, dotted: undetermined)".into(),
    ));
    if s.search.is_some() {
        v.push((
            "search.png",
            "The search's levels in the order it probed them, each marked with its verdict; the line is its answer".into(),
        ));
    }
    if s.axis == Axis::Concurrency {
        for (file, caption) in &mut v {
            *caption = caption.replace("vs offered rate", "vs concurrency");
            if *file == "throughput.png" {
                *caption = "Throughput (judged) and output tokens/s vs concurrency".into();
            }
        }
    }
    v
}

/// The first column of the rate tables.
fn level_head(axis: Axis) -> &'static str {
    match axis {
        Axis::Rate => "RPS",
        Axis::Concurrency => "Users",
    }
}

/// How the steps table's figures are read, per axis.
fn steps_note(axis: Axis) -> &'static str {
    match axis {
        Axis::Rate => {
            "Throughput is Vegeta's (successes / (first intended send to last end)); it includes the final drain, so it trails the offered rate by about latency / step duration even when the target keeps up. The verdict reads the *served* rate instead: the arrival rate x the success ratio / (1 + the growth of latency per second across the step), the departure rate of a server whose backlog grows (`served_rps` and `latency_trend_ms_per_s` in steps.csv; `scenarios/README.md` has the rule). Latency percentiles are of successful requests; errors are counted beside them. Token rates and costs are per second of the served rate.\n"
        }
        Axis::Concurrency => {
            "Each step is a closed loop: its users each send the next request as the last one ends, so there is no offered rate and throughput (successes / (first send to last end)) is what the target served. A level is sustainable when 99% succeeded, the SLO holds and its added users still bought throughput: by Little's law users = throughput x latency, so x b users split into x a throughput and x b/a latency, and the level scales while a > sqrt(b), with 95% confidence (`throughput_gain` in steps.csv; `scenarios/README.md` has the rule). Latency percentiles are of successful requests; errors are counted beside them. Token rates and costs are per second of throughput.\n"
        }
    }
}

/// Renders report.md.
pub fn report_md(s: &SweepSummary) -> String {
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "# rpload sweep: {}\n", s.name);

    // Headline.
    match &s.headline {
        Some(h) => {
            let price = s
                .price
                .as_ref()
                .map(|p| format!(" on {p}"))
                .unwrap_or_default();
            let level = h.describe();
            let _ = writeln!(
                w,
                "**Highest sustainable {level}**{price}: served {:.2} req/s (throughput {:.2}), p90 latency {}, {} per 1K tokens ({} per 1M; input + output, measured at the served rate).\n",
                h.served_rps,
                h.throughput_rps,
                fmt_latency_ms(h.latency_p90_ms),
                usd(h.cost.usd_per_1k_tokens),
                usd(h.cost.usd_per_1m_tokens),
            );
            let _ = writeln!(
                w,
                "| {} | Throughput (req/s) | Latency 90% | Cost per 1K tokens |",
                level_head(s.axis)
            );
            let _ = writeln!(w, "|---:|---:|---:|---:|");
            let _ = writeln!(
                w,
                "| {} | {:.2} | {} | {} |\n",
                fmt_rate(h.level()),
                h.throughput_rps,
                fmt_latency_ms(h.latency_p90_ms),
                usd(h.cost.usd_per_1k_tokens)
            );
            if !s.rules.slo.is_empty() {
                let _ = writeln!(
                    w,
                    "Goodput {:.2} req/s: {} of its requests met every clause of `{}` on their own; {} per 1K tokens of those requests.\n",
                    h.goodput_rps,
                    h.slo_attainment
                        .map_or("n/a".into(), |a| format!("{:.1}%", a * 100.0)),
                    s.rules.slo,
                    usd(h.cost.usd_per_1k_good_tokens),
                );
            }
            if h.cost.study_usd_per_1k_tokens.is_some() {
                let _ = writeln!(
                    w,
                    "The study's formula (offered rate x tokens per request) gives {} per 1K tokens; the window cost of the p90 latency (price / 3600 x p90) is {}.\n",
                    usd(h.cost.study_usd_per_1k_tokens),
                    usd(h.cost.window_usd_p90),
                );
            }
        }
        None => {
            let _ = writeln!(
                w,
                "**No step was sustainable.** See the verdicts below for why (`rpload sweep` exits 1).\n"
            );
        }
    }
    if let Some(search) = &s.search {
        let _ = writeln!(
            w,
            "**{}.** The steps below are its probes in the order they ran; the levels table reads from low to high.\n",
            search.describe(s.axis)
        );
    }

    // Settings.
    let _ = writeln!(w, "## Run\n");
    let _ = writeln!(w, "| setting | value |\n|---|---|");
    let _ = writeln!(w, "| target | {} |", s.target);
    let _ = writeln!(w, "| api | {} |", s.api);
    let closed_loop = s.axis == Axis::Concurrency;
    match s.axis {
        Axis::Rate => writeln!(w, "| rate plan | {} req/s |", s.plan),
        Axis::Concurrency => writeln!(w, "| concurrency plan | {} users (closed loops) |", s.plan),
    }
    .expect("writing to a String");
    let _ = writeln!(w, "| step duration | {} s |", s.step_duration_s);
    let per = if closed_loop { "level" } else { "rate" };
    let _ = writeln!(w, "| repeats per {per} | {} |", s.repeat);
    let _ = writeln!(
        w,
        "| steps run | {} of {} planned{} |",
        s.steps.len(),
        s.planned_steps,
        if s.stopped_early {
            " (stopped early)"
        } else {
            ""
        }
    );
    let price = s
        .price
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "none (pass --instance or --price-per-hour)".into());
    let _ = writeln!(w, "| price | {price} |");
    let slo = match (s.rules.slo.is_empty(), s.rules.slo_attainment) {
        (true, _) => "none".to_string(),
        (false, None) => format!("`{}` on successful requests", s.rules.slo),
        (false, Some(a)) => format!(
            "`{}` met by at least {}% of requests on their own (failures count as misses)",
            s.rules.slo,
            fmt_rate(a * 100.0)
        ),
    };
    let lag = match s.rules.max_send_lag {
        Some(d) => format!("<= {} ms (--max-send-lag)", d.as_secs_f64() * 1e3),
        None => "within one arrival gap and a tenth of the median latency (at least 1 ms)".into(),
    };
    if closed_loop {
        let _ = writeln!(
            w,
            "| sustainable when | success >= {:.0}%, throughput grew more than the square root of the users' growth over the level below (95% confidence), SLO {} |\n",
            s.rules.min_success_ratio * 100.0,
            slo
        );
    } else {
        let _ = writeln!(
            w,
            "| sustainable when | the target kept pace (served rate >= {:.0}% of arrivals: latency grows < {:.1} ms per s), success >= {:.0}%, the client kept up (send-lag p99 {lag}, sends at the scheduled rate, in-flight cap never waited on), SLO {} |\n",
            s.rules.min_served_ratio * 100.0,
            s.rules.max_slope() * 1e3,
            s.rules.min_success_ratio * 100.0,
            slo
        );
    }

    // Rates (the study's columns; means over repeats).
    if closed_loop {
        let means = if s.repeat > 1 {
            format!(" (means over {} repeats)", s.repeat)
        } else {
            String::new()
        };
        let _ = writeln!(w, "## Levels{means}\n");
    } else if s.repeat > 1 {
        let _ = writeln!(
            w,
            "## Rates (means over {} repeats, the study's columns)\n",
            s.repeat
        );
        let _ = writeln!(
            w,
            "The study's \"max RPS\" is the highest rate whose repeats all succeeded: **{}**.\n",
            s.study_max_rps
                .map(|r| format!("{} req/s", fmt_rate(r)))
                .unwrap_or_else(|| "none".into())
        );
    } else {
        let _ = writeln!(w, "## Rates\n");
    }
    let _ = writeln!(
        w,
        "| {} | Throughput (req/s) | Served (req/s) | Latency 50% | Latency 90% | Cost per 1K tokens (measured) | Cost per 1K tokens (study formula) | all succeeded | verdict |",
        level_head(s.axis)
    );
    let _ = writeln!(w, "|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|");
    for r in &s.rates {
        let _ = writeln!(
            w,
            "| {} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} |",
            fmt_rate(r.level()),
            r.throughput_rps,
            r.served_rps,
            fmt_latency_ms(r.latency_ms.p50),
            fmt_latency_ms(r.latency_ms.p90),
            usd(r.cost.usd_per_1k_tokens),
            usd(r.cost.study_usd_per_1k_tokens),
            yes_no(r.all_succeeded),
            r.status.as_str(),
        );
    }
    let _ = writeln!(w);
    per_target(s, w);

    // Steps.
    let _ = writeln!(w, "## Steps\n");
    let _ = writeln!(w, "{}", steps_note(s.axis));
    let clauses = &s.rules.slo.clauses;
    let slo_heads: String = clauses
        .iter()
        .map(|c| format!(" {} |", c.metric()))
        .collect();
    let good = !clauses.is_empty();
    let slo_heads = slo_heads + if good { " good/s | attained |" } else { "" };
    let slo_rule: String =
        clauses.iter().map(|_| "---:|").collect::<String>() + if good { "---:|---:|" } else { "" };
    let _ = writeln!(
        w,
        "| step | {} | achieved | throughput | served | success | errors | p50 | p90 | p99 |{slo_heads} TTFT p50 | ITL p50 | out tok/s | cost / 1K tok | verdict |",
        match s.axis {
            Axis::Rate => "offered",
            Axis::Concurrency => "users",
        }
    );
    let _ = writeln!(
        w,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{slo_rule}---:|---:|---:|---:|---|"
    );
    for r in &s.steps {
        let slo_cells: String = clauses
            .iter()
            .map(|c| {
                format!(
                    " {} |",
                    clause_value_ms(r, c).map_or("-".into(), fmt_latency_ms)
                )
            })
            .chain(good.then(|| {
                let attained = r
                    .slo_attainment
                    .map_or("-".into(), |a| format!("{:.1}%", a * 100.0));
                format!(" {:.2} | {attained} |", r.goodput_rps)
            }))
            .collect();
        let _ = writeln!(
            w,
            "| {}{} | {} | {:.2} | {:.2} | {:.2} | {:.2}% | {} | {} | {} | {} |{slo_cells} {} | {} | {:.1} | {} | {} |",
            r.step,
            if s.repeat > 1 {
                format!(" (r{})", r.repeat + 1)
            } else {
                String::new()
            },
            fmt_rate(r.level()),
            r.achieved_rps,
            r.throughput_rps,
            r.served_rps,
            r.success_ratio * 100.0,
            r.errors,
            fmt_latency_ms(r.latency_ms.p50),
            fmt_latency_ms(r.latency_ms.p90),
            fmt_latency_ms(r.latency_ms.p99),
            opt_lat(r.ttft_ms, |m| m.p50),
            opt_lat(r.itl_ms, |m| m.p50),
            r.output_tokens_per_s,
            usd(r.cost.usd_per_1k_tokens),
            verdict_text(r.status, &r.verdict).replace('|', "/"),
        );
    }
    let _ = writeln!(w);

    // Cost notes.
    if s.price.is_some() {
        let _ = writeln!(w, "## How cost is computed\n");
        let _ = writeln!(
            w,
            "- **Measured**: price per hour / 3600 / (input + output tokens per second of successful requests) x 1000, with tokens per second = the served rate x the mean tokens of a successful request (the verdict's window, not Vegeta's, which counts the drain); x 1000 again per 1M tokens; the same with output tokens only and with requests (steps.csv)."
        );
        let _ = writeln!(
            w,
            "- **Study formula**: price per hour x 1000 / (offered rate x tokens per request x 3600). It assumes the offered rate is served for an hour, so it is only as good as the verdict at that rate."
        );
        let _ = writeln!(
            w,
            "- **Window cost**: price per hour / 3600 x p90 latency, the study's \"cost to get responses on N requests in L seconds\"."
        );
        let _ = writeln!(
            w,
            "- **Per 1K good tokens**: the measured cost over the tokens of requests that met every SLO clause on their own (with no SLO, every success): what a token served within the objectives costs.\n"
        );
    }

    o.push_str(&super::server::section(s));
    let w = &mut o;

    // Charts.
    let _ = writeln!(w, "## Charts\n");
    for (file, caption) in chart_links(s) {
        let _ = writeln!(w, "![{caption}]({file})\n");
    }
    o
}

/// Several targets: each one's levels, judged on its own requests.
fn per_target(s: &SweepSummary, w: &mut String) {
    if s.by_target.is_empty() {
        return;
    }
    let _ = writeln!(w, "## Per target\n");
    let _ = writeln!(
        w,
        "Each target judged alone, by the same rules, on the requests it was sent; the level is the plan's (offered to all targets together).\n"
    );
    for t in &s.by_target {
        let line = match &t.headline {
            Some(h) => format!(
                "highest sustainable {} (served {:.2} req/s, p90 {})",
                h.describe(),
                h.served_rps,
                fmt_latency_ms(h.latency_p90_ms)
            ),
            None => "no step was sustainable".into(),
        };
        let _ = writeln!(w, "- `{}`: {line}", t.target);
    }
    let _ = writeln!(
        w,
        "\n| {} | target | Requests | Served (req/s) | Success | Latency 50% | Latency 90% | verdict |",
        level_head(s.axis)
    );
    let _ = writeln!(w, "|---:|---|---:|---:|---:|---:|---:|:---:|");
    for t in &s.by_target {
        for r in &t.rates {
            let _ = writeln!(
                w,
                "| {} | `{}` | {} | {:.2} | {:.2}% | {} | {} | {} |",
                fmt_rate(r.level()),
                t.target,
                r.requests,
                r.served_rps,
                r.success_ratio * 100.0,
                fmt_latency_ms(r.latency_ms.p50),
                fmt_latency_ms(r.latency_ms.p90),
                r.status.as_str(),
            );
        }
    }
    let _ = writeln!(w);
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
