//! `rpload attack`: flags -> config, results file, progress line, Ctrl-C handling, run.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{AttackConfig, Control, Sink, setup};
use crate::cli::AttackArgs;
use crate::metrics::Metrics;
use crate::record::{Record, RecordWriter};

pub async fn command(args: AttackArgs) -> anyhow::Result<ExitCode> {
    let cfg = setup::config(&args)?;
    let out: Box<dyn Write + Send> = match &args.output {
        Some(p) if p.as_os_str() != "-" => Box::new(
            std::fs::File::create(p)
                .with_context(|| format!("creating results file {}", p.display()))?,
        ),
        _ => Box::new(std::io::stdout()),
    };
    let control = Control::default();
    install_interrupts(&control, cfg.timeout);
    let mut sink = FileSink {
        writer: RecordWriter::new(std::io::BufWriter::with_capacity(1 << 16, out)),
        progress: ProgressLine::new(&cfg, control.progress.clone()),
    };
    let stats = super::run(cfg, control, &mut sink).await?;
    sink.writer.flush().context("writing results")?;
    sink.progress.finish();
    if stats.interrupted {
        eprintln!(
            "rpload: interrupted after {} of the scheduled requests; every finished request was written",
            stats.completed
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// First Ctrl-C stops scheduling and lets in-flight requests finish (bounded by the timeout);
/// a second exits at once. Records are flushed whenever the writer is idle, so little is lost.
fn install_interrupts(control: &Control, timeout: Duration) {
    let control = control.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!("rpload: stopping; waiting for in-flight requests (Ctrl-C again to exit now)");
        control.stop.cancel();
        let abort = control.abort.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            abort.cancel();
        });
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}

struct FileSink<W: Write> {
    writer: RecordWriter<W>,
    progress: ProgressLine,
}

impl<W: Write> Sink for FileSink<W> {
    fn record(&mut self, record: Record) -> std::io::Result<()> {
        self.writer.write(&record)?;
        self.progress.add(&record);
        Ok(())
    }

    fn idle(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

/// The live line on stderr (only when it is a terminal): sent, ok, errors, p50, p99, tokens/s.
struct ProgressLine {
    bar: Option<indicatif::ProgressBar>,
    metrics: Metrics,
    progress: Arc<super::Progress>,
    started: Instant,
    last_draw: Instant,
}

impl ProgressLine {
    fn new(cfg: &AttackConfig, progress: Arc<super::Progress>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .expect("static template"),
            );
            bar.set_prefix(cfg.rate.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            metrics: Metrics::default(),
            progress,
            started: Instant::now(),
            last_draw: Instant::now(),
        }
    }

    fn add(&mut self, record: &Record) {
        let Some(bar) = &self.bar else { return };
        self.metrics.add(record);
        if self.last_draw.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last_draw = Instant::now();
        let ms = |ns: u64| ns as f64 / 1e6;
        let lat = &self.metrics.latency;
        let errors = self.metrics.requests - self.metrics.successes;
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "sent {}  ok {}  errors {}  in-flight {}  p50 {:.1}ms  p99 {:.1}ms  {:.0} tok/s",
            self.progress.sent.load(Ordering::Relaxed),
            self.metrics.successes,
            errors,
            self.progress.inflight.load(Ordering::Relaxed),
            ms(lat.quantile(50.0)),
            ms(lat.quantile(99.0)),
            self.metrics.summary_tokens_out() as f64 / secs,
        ));
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
