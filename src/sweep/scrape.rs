//! `sweep --server-metrics`: [`Scraping`] wraps the step runner and, beside each measured step's
//! attack, scrapes the server's Prometheus text once before the first request, every second
//! while the step sends, and once after its last request ended; every scrape (or why it
//! failed) is a line of `server-metrics.jsonl`, which `output::summarize` reads back.
//!
//! A scrape that fails or outlasts its timeout is a warning (one per step, through `warn`) and
//! an error line, never a failed step: the attack's records are all that a step must keep.
//! Warm-ups are not scraped.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::run::{StepRunner, StepSpec};
use crate::analysis::server::{Family, Phase, ScrapeLine, parse};
use crate::record::Record;

/// `server-metrics.jsonl`, in the run folder.
pub const SERVER_METRICS_JSONL: &str = "server-metrics.jsonl";

/// How long one scrape may take: well under the second between two.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_millis(500);
/// Between two scrapes of a step.
pub const SCRAPE_EVERY: Duration = Duration::from_secs(1);
/// The largest metrics page read (a server's is tens of KiB).
const MAX_BODY: usize = 8 << 20;

/// Where and how to scrape.
pub struct ScrapeConfig {
    pub url: reqwest::Url,
    /// `server-metrics.jsonl` in the run folder (the run folder's `begin` removed any old one).
    pub path: PathBuf,
    pub timeout: Duration,
    pub every: Duration,
}

/// A step runner that also scrapes the server during measured steps.
pub struct Scraping<R> {
    inner: R,
    cfg: ScrapeConfig,
    client: reqwest::Client,
    warn: Box<dyn FnMut(String) + Send>,
}

impl<R: StepRunner> Scraping<R> {
    /// `warn` gets one line per step whose scrapes failed (or could not be written).
    pub fn new(inner: R, cfg: ScrapeConfig, warn: Box<dyn FnMut(String) + Send>) -> Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .user_agent(concat!("rpload/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            inner,
            cfg,
            client,
            warn,
        })
    }
}

/// One GET of the metrics page, parsed.
async fn scrape(client: reqwest::Client, url: reqwest::Url) -> Result<Vec<Family>, String> {
    let mut resp = client.get(url).send().await.map_err(describe)?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(describe)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("page larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&body);
    let families = parse::parse(&text).map_err(|e| e.to_string())?;
    Ok(families.into_iter().map(Family::compact).collect())
}

/// reqwest's causes (its own `error sending request for url (...)` repeats the URL the
/// warning names and says nothing).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("timed out after {} ms", SCRAPE_TIMEOUT.as_millis());
    }
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    }
}

/// A scrape started now, `t0` being the step's start; spawned, so the attack goes on being
/// polled while it waits.
fn spawn(
    client: &reqwest::Client,
    url: &reqwest::Url,
    (step, t0, phase): (u32, Instant, Phase),
) -> tokio::task::JoinHandle<ScrapeLine> {
    let (client, url) = (client.clone(), url.clone());
    let t_s = t0.elapsed().as_secs_f64();
    tokio::spawn(async move {
        let (families, error) = match scrape(client, url).await {
            Ok(f) => (f, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        ScrapeLine {
            step,
            t_s,
            phase,
            error,
            families,
        }
    })
}

impl<R: StepRunner> Scraping<R> {
    fn write(&self, lines: &[ScrapeLine]) -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.cfg.path)?;
        let mut text = String::new();
        for l in lines {
            text.push_str(&serde_json::to_string(l).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        file.write_all(text.as_bytes())?;
        file.flush()
    }
}

impl<R: StepRunner> StepRunner for Scraping<R> {
    async fn run_step(&mut self, spec: &StepSpec, sink: &mut dyn FnMut(Record)) -> Result<()> {
        let Some(step) = spec.step else {
            return self.inner.run_step(spec, sink).await;
        };
        let t0 = Instant::now();
        let (client, url) = (&self.client, &self.cfg.url);
        // The baseline is taken before the first request, so the deltas are this step's.
        let start = spawn(client, url, (step, t0, Phase::Start)).await?;
        let mut handles = Vec::new();
        let mut ticks = tokio::time::interval_at(
            tokio::time::Instant::from_std(t0) + self.cfg.every,
            self.cfg.every,
        );
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let result = {
            let attack = self.inner.run_step(spec, sink);
            tokio::pin!(attack);
            loop {
                tokio::select! {
                    r = &mut attack => break r,
                    _ = ticks.tick() => handles.push(spawn(client, url, (step, t0, Phase::During))),
                }
            }
        };
        let mut lines = vec![start];
        for h in handles {
            lines.push(h.await?);
        }
        lines.push(spawn(client, url, (step, t0, Phase::End)).await?);
        let failed: Vec<&ScrapeLine> = lines.iter().filter(|l| l.error.is_some()).collect();
        if let Some(first) = failed.first() {
            let answered = lines.len() - failed.len();
            let consequence = if answered < 2 {
                "its server_* columns stay empty"
            } else {
                "its server_* figures are from the scrapes that answered"
            };
            (self.warn)(format!(
                "warning: --server-metrics: step {step}: {} of {} scrapes of {} failed ({}); {consequence}",
                failed.len(),
                lines.len(),
                crate::redact::url(self.cfg.url.as_str()),
                first.error.as_deref().unwrap_or_default(),
            ));
        }
        if let Err(e) = self.write(&lines) {
            (self.warn)(format!(
                "warning: --server-metrics: step {step}: cannot write {}: {e}; its server_* columns stay empty",
                self.cfg.path.display()
            ));
        }
        result
    }
}

/// `--server-metrics` (or `server_metrics`) meaning "the target's `/metrics`".
pub const OF_TARGET: &str = "target";

/// A bad `--server-metrics`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UrlError {
    #[error(
        "--server-metrics: `{value}` is not an http(s) URL ({why}); pass --server-metrics http://HOST:PORT/metrics, or the flag alone for the target's /metrics"
    )]
    Invalid { value: String, why: String },
    #[error(
        "--server-metrics: a --targets file names no single server to scrape; pass --server-metrics http://HOST:PORT/metrics"
    )]
    NoTarget,
}

/// The URL to scrape for `flag`: itself, or `/metrics` at the origin of `target` (an OpenAI
/// base URL's `/v1` is not the metrics page's folder).
pub fn metrics_url(flag: &str, target: Option<&str>) -> Result<reqwest::Url, UrlError> {
    let invalid = |value: &str, why: String| UrlError::Invalid {
        value: crate::redact::url(value),
        why,
    };
    let http = |value: &str| -> Result<reqwest::Url, UrlError> {
        let url = reqwest::Url::parse(value).map_err(|e| invalid(value, e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(value, format!("scheme {}", url.scheme())));
        }
        Ok(url)
    };
    if flag != OF_TARGET {
        return http(flag);
    }
    let mut url = http(target.ok_or(UrlError::NoTarget)?)?;
    url.set_path("/metrics");
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_the_flag() {
        let of = |flag: &str, target| metrics_url(flag, target).map(|u| u.to_string());
        assert_eq!(
            of("target", Some("http://127.0.0.1:8000/v1?key=x")).unwrap(),
            "http://127.0.0.1:8000/metrics"
        );
        assert_eq!(
            of("http://h:9/m", None).unwrap(),
            "http://h:9/m",
            "an explicit URL is taken as given"
        );
        assert_eq!(of("target", None), Err(UrlError::NoTarget));
        let e = of("localhost:9", None).unwrap_err().to_string();
        assert!(
            e.starts_with("--server-metrics: `localhost:9` is not an http(s) URL"),
            "{e}"
        );
        assert!(of("not a url", None).is_err());
    }
}
