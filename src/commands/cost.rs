//! `rpload cost`: the study's cost per 1K tokens and per 1K requests for a rate on an
//! instance, and the window cost of a latency. Returns its text so tests check it in-process.

use std::fmt::Write;

use anyhow::{Context, Result};

use clap::Args;

use crate::cost::{self, Catalog, Price, fmt_sig};
use crate::scenario::parse_duration;
use crate::scenario::plan::fmt_rate;

/// Flags of `rpload cost`.
#[derive(Debug, Clone, Default, Args)]
pub struct CostArgs {
    /// Requests per second (offered, as the study; or measured).
    #[arg(long)]
    pub rps: Option<f64>,
    /// Input + output tokens per request (study: 104 classification, 150 summarization).
    #[arg(long)]
    pub tokens_per_request: Option<f64>,
    /// Measured token throughput (input + output tokens/s) instead of rps x tokens.
    #[arg(long)]
    pub tokens_per_s: Option<f64>,
    /// A latency for the study's window cost (price / 3600 x latency), e.g. 1.44s.
    #[arg(long)]
    pub latency: Option<String>,
    /// Instance from the pricing catalog (NAME or NAME@REGION).
    #[arg(long)]
    pub instance: Option<String>,
    /// Price in USD per hour.
    #[arg(long)]
    pub price_per_hour: Option<f64>,
    /// Extra pricing catalog (repeatable).
    #[arg(long, value_name = "FILE")]
    pub pricing: Vec<String>,
    /// Print the pricing catalog and exit.
    #[arg(long)]
    pub list: bool,
    /// With --list: only instances with this GPU model, case-insensitive (h100, a10g,
    /// 'a100 80gb').
    #[arg(long, value_name = "NAME", requires = "list")]
    pub gpu: Option<String>,
}

/// `rpload cost`: the study's cost per 1K tokens (offered rps x tokens per request), or from a
/// measured token throughput; per 1K requests; and the window cost of a latency.
pub fn text(args: &CostArgs) -> Result<String> {
    let catalog = Catalog::with_files(&args.pricing)?;
    let mut o = String::new();
    if args.list {
        let _ = writeln!(
            o,
            "{:<28} {:<8} {:<15} {:<12} {:>4} {:>10}  date",
            "instance", "provider", "region", "gpu", "gpus", "USD/h"
        );
        let listed: Vec<&cost::Instance> = match &args.gpu {
            Some(g) => catalog.with_gpu(g)?,
            None => catalog.instances().iter().collect(),
        };
        for i in listed {
            let _ = writeln!(
                o,
                "{:<28} {:<8} {:<15} {:<12} {:>4} {:>10}  {}",
                i.name, i.provider, i.region, i.gpu, i.gpu_count, i.usd_per_hour, i.date
            );
        }
        return Ok(o);
    }
    let price = Price::from_flags(&catalog, args.instance.as_deref(), args.price_per_hour)?;
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
