//! `rpload plan`: instances and monthly cost to serve a target load, from the headlines of
//! measured sweeps (re-judged under another SLO if asked), cheapest first.

use std::fmt::Write;

use anyhow::{Context, Result};
use clap::Args;

use crate::cost::{self, PlanInput, fmt_sig, fmt_usd};
use crate::scenario::plan::fmt_rate;
use crate::scenario::slo::Slo;
use crate::sweep::output;

/// Flags of `rpload plan`.
#[derive(Debug, Clone, Default, Args)]
pub struct PlanArgs {
    /// A sweep output folder (repeatable): its highest sustainable rate and price.
    #[arg(long = "from", value_name = "DIR", required = true)]
    pub from: Vec<std::path::PathBuf>,
    /// Load to serve, requests per second.
    #[arg(long)]
    pub target_rps: f64,
    /// Spare capacity factor: 1.2 plans for 20% more than the target.
    #[arg(long, default_value_t = 1.2)]
    pub headroom: f64,
    /// Re-judge every step with this SLO instead of the run's, e.g. 'p95<1s'.
    #[arg(long)]
    pub slo: Option<String>,
}

/// `rpload plan`: one row per run, cheapest per month first.
pub fn text(args: &PlanArgs) -> Result<String> {
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
                // A concurrency sweep's headline has no offered rate: what one instance
                // sustains is the throughput at its highest sustainable concurrency.
                sustainable_rps: match h.target_concurrency {
                    Some(_) => h.served_rps,
                    None => h.target_rps,
                },
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
