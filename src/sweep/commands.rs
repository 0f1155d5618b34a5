//! The `cost`, `plan` and `report --sweep` commands: turn parsed flags into calls of `cost`
//! and `sweep::output`, and print the answer. Each returns its text so tests check it
//! in-process; `lib.rs` prints it.

use std::fmt::Write;

use anyhow::{Context, Result};

use crate::cli::{CostArgs, PlanArgs};
use crate::cost::{self, Catalog, PlanInput, Price, fmt_sig, fmt_usd};
use crate::scenario::parse_duration;
use crate::sweep::output;
use crate::sweep::plan::fmt_rate;
use crate::sweep::slo::Slo;

/// `rpload cost`: the study's cost per 1K tokens (offered rps x tokens per request), or from a
/// measured token throughput; per 1K requests; and the window cost of a latency.
pub fn cost_text(args: &CostArgs) -> Result<String> {
    let catalog = Catalog::with_files(&args.pricing)?;
    let mut o = String::new();
    if args.list {
        let _ = writeln!(
            o,
            "{:<28} {:<8} {:<15} {:<12} {:>4} {:>10}  date",
            "instance", "provider", "region", "gpu", "gpus", "USD/h"
        );
        for i in catalog.instances() {
            let _ = writeln!(
                o,
                "{:<28} {:<8} {:<15} {:<12} {:>4} {:>10}  {}",
                i.name, i.provider, i.region, i.gpu, i.gpu_count, i.usd_per_hour, i.date
            );
        }
        return Ok(o);
    }
    let price = match (&args.instance, args.price_per_hour) {
        (Some(name), Some(p)) => Price {
            instance: name.clone(),
            region: None,
            usd_per_hour: p,
        },
        (inst, p) => Price::resolve(&catalog, inst.as_deref(), p)?,
    };
    let tokens_per_s = match (args.tokens_per_s, args.rps, args.tokens_per_request) {
        (Some(t), _, _) => Some((t, format!("{} tokens/s", fmt_rate(t)))),
        (None, Some(r), Some(t)) => Some((
            r * t,
            format!("{} req/s x {} tokens per request", fmt_rate(r), fmt_rate(t)),
        )),
        (None, Some(_), None) => anyhow::bail!(
            "--rps needs --tokens-per-request (the study used 104 for classification, 150 for summarization), or pass --tokens-per-s"
        ),
        (None, None, _) => None,
    };
    if tokens_per_s.is_none() && args.latency.is_none() && args.rps.is_none() {
        anyhow::bail!(
            "nothing to cost: pass --rps N --tokens-per-request T, --tokens-per-s T, or --latency 1.44s (or --list)"
        );
    }
    if let Some((t, how)) = &tokens_per_s {
        let c = cost::usd_per_1k(price.usd_per_hour, *t)
            .context("token throughput must be above zero")?;
        let _ = writeln!(o, "{} USD per 1K tokens", fmt_sig(c, 3));
        let _ = writeln!(o, "  {how} on {price}");
    }
    if let Some(r) = args.rps
        && let Some(c) = cost::usd_per_1k(price.usd_per_hour, r)
    {
        let _ = writeln!(
            o,
            "{} USD per 1K requests at {} req/s",
            fmt_sig(c, 3),
            fmt_rate(r)
        );
    }
    if let Some(l) = &args.latency {
        let d = parse_duration(l).map_err(|m| anyhow::anyhow!("--latency: {m}"))?;
        let _ = writeln!(
            o,
            "{} USD for a {} s window (price / 3600 x latency, the study's cost to answer a burst)",
            fmt_sig(cost::window_usd(price.usd_per_hour, d.as_secs_f64()), 3),
            d.as_secs_f64()
        );
    }
    Ok(o)
}

/// `rpload plan`: one row per run, cheapest per month first.
pub fn plan_text(args: &PlanArgs) -> Result<String> {
    if !(args.target_rps.is_finite() && args.target_rps > 0.0) {
        anyhow::bail!("--target-rps must be above zero, got {}", args.target_rps);
    }
    if !(args.headroom.is_finite() && args.headroom >= 1.0) {
        anyhow::bail!(
            "--headroom must be at least 1.0 (1.2 = 20% spare), got {}",
            args.headroom
        );
    }
    let slo = args
        .slo
        .as_deref()
        .map(Slo::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--slo: {e}"))?;
    let mut inputs = Vec::new();
    let mut skipped = Vec::new();
    for dir in &args.from {
        let s = output::summarize(dir, slo.as_ref())
            .with_context(|| format!("reading run {}", dir.display()))?;
        let run = dir.display().to_string();
        match (&s.price, &s.headline) {
            (None, _) => skipped.push(format!(
                "{run}: no price (rerun with --instance or --price-per-hour)"
            )),
            (_, None) => skipped.push(format!("{run}: no sustainable step")),
            (Some(price), Some(h)) => inputs.push(PlanInput {
                run,
                price: price.clone(),
                sustainable_rps: h.target_rps,
                usd_per_1k_tokens: h.cost.usd_per_1k_tokens,
            }),
        }
    }
    let rows = cost::plan(&inputs, args.target_rps, args.headroom);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "target {} req/s, headroom {}, {} h/month{}",
        fmt_rate(args.target_rps),
        args.headroom,
        cost::HOURS_PER_MONTH,
        slo.as_ref()
            .map(|s| format!(", SLO {s}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        o,
        "{:<32} {:<22} {:>8} {:>12} {:>9} {:>12} {:>14} {:>14}",
        "run",
        "instance",
        "USD/h",
        "sustainable",
        "instances",
        "USD/h total",
        "USD/month",
        "USD/1K tokens"
    );
    for r in &rows {
        let _ = writeln!(
            o,
            "{:<32} {:<22} {:>8} {:>12} {:>9} {:>12} {:>14} {:>14}",
            r.run,
            r.instance,
            r.usd_per_hour,
            format!("{} req/s", fmt_rate(r.sustainable_rps)),
            r.instances,
            fmt_usd(r.usd_per_hour_total),
            fmt_usd(r.usd_per_month),
            r.usd_per_1k_tokens
                .map(|c| fmt_sig(c, 3))
                .unwrap_or_else(|| "n/a".into()),
        );
    }
    for s in skipped {
        let _ = writeln!(o, "left out: {s}");
    }
    Ok(o)
}

/// `rpload report --sweep DIR`: rebuild every derived file, return the final table.
pub fn report_sweep_text(dir: &std::path::Path) -> Result<String> {
    let s = output::rebuild(dir)?;
    Ok(crate::report::table::sweep_table(&s))
}
