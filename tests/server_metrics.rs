//! `sweep --server-metrics`: TGI's and vLLM's metric text (fixtures under
//! tests/fixtures/metrics/) into per-step server figures with hand-computed values; a real
//! sweep of the embedded server that fills the KV-cache and tokens/s columns; a metrics URL
//! on a closed loopback port that warns once per step, keeps every record and leaves the
//! server columns empty. Loopback only, bounded traffic.

mod sweep_common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpload::analysis::server::{Phase, ScrapeLine, parse, step_figures};
use rpload::sweep::output::{self, RunFolder};
use rpload::sweep::run::{DriveConfig, Silent, drive};
use rpload::sweep::scrape::{SERVER_METRICS_JSONL, ScrapeConfig, Scraping};
use sweep_common::{Model, ModelRunner, ONE_AT_A_TIME, sweep_cli};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new("tests/fixtures/metrics").join(name)).unwrap()
}

fn scrape(name: &str, t_s: f64, phase: Phase) -> ScrapeLine {
    ScrapeLine {
        step: 0,
        t_s,
        phase,
        error: None,
        families: parse::parse(&fixture(name))
            .unwrap()
            .into_iter()
            .map(|f| f.compact())
            .collect(),
    }
}

fn close(a: Option<f64>, b: f64) {
    let a = a.unwrap_or_else(|| panic!("expected {b}, got None"));
    assert!((a - b).abs() < 1e-9, "expected {b}, got {a}");
}

#[test]
fn tgi_metrics_become_server_figures() {
    let lines = [
        scrape("tgi-start.prom", 0.0, Phase::Start),
        scrape("tgi-during.prom", 1.0, Phase::During),
        scrape("tgi-end.prom", 2.5, Phase::End),
    ];
    let refs: Vec<&ScrapeLine> = lines.iter().collect();
    let f = step_figures(&refs, 2.0).unwrap();
    assert_eq!((f.scrapes, f.failed_scrapes, f.span_s), (3, 0, 2.5));
    // Queue: (1.2 - 0.2) s over (30 - 10) requests.
    close(f.queue_time_s, 0.05);
    // Request duration: 24 s over 20; buckets 0, 6, 15, 20 at 0.5, 1, 2, 4 s -> the 19th of
    // 20 lies 4/5 into (2, 4].
    close(f.request_latency_s, 1.2);
    close(f.request_latency_p95_s, 3.6);
    // The gauge while sending; tokens: (600 - 200) over the 2 s step.
    close(f.batch_size, 6.0);
    close(f.generated_tokens, 400.0);
    close(f.tokens_per_s, 200.0);
    assert_eq!(f.kv_cache_usage, None, "TGI exports no KV-cache gauge");
    assert_eq!(f.sources["queue_time_s"], "tgi_request_queue_duration");
    assert_eq!(f.sources["tokens_per_s"], "tgi_request_generated_tokens");
    // Everything else raw: counter deltas, gauges' last values, histogram sum/count deltas.
    assert_eq!(f.other["tgi_request_count"], 20.0);
    assert_eq!(f.other["tgi_request_failure{err=\"overloaded\"}"], 1.0);
    assert_eq!(f.other["tgi_batch_current_max_tokens"], 0.0);
    assert_eq!(
        f.other["tgi_batch_forward_duration_count{method=\"decode\"}"],
        400.0
    );
    close(
        f.other
            .get("tgi_batch_forward_duration_sum{method=\"decode\"}")
            .copied(),
        2.0,
    );
    assert!(
        !f.other.contains_key("tgi_request_duration_count"),
        "mapped"
    );
}

#[test]
fn vllm_metrics_become_server_figures() {
    let lines = [
        scrape("vllm-start.prom", 0.0, Phase::Start),
        scrape("vllm-during-1.prom", 1.0, Phase::During),
        scrape("vllm-during-2.prom", 2.0, Phase::During),
        scrape("vllm-end.prom", 4.0, Phase::End),
    ];
    let refs: Vec<&ScrapeLine> = lines.iter().collect();
    let f = step_figures(&refs, 4.0).unwrap();
    close(f.queue_time_s, 0.15);
    close(f.request_latency_s, 2.0);
    // Buckets 0, 12, 20 at 1, 2.5, 5 s: the 19th lies 7/8 into (2.5, 5].
    close(f.request_latency_p95_s, 4.6875);
    close(f.batch_size, 10.0);
    close(f.kv_cache_usage, 0.5);
    close(f.tokens_per_s, 500.0);
    assert_eq!(f.sources["kv_cache_usage"], "vllm:kv_cache_usage_perc");
    assert_eq!(f.sources["batch_size"], "vllm:num_requests_running");
    let labels = "engine=\"0\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"";
    assert_eq!(
        f.other[&format!("vllm:prompt_tokens_total{{{labels}}}")],
        2000.0
    );
    assert_eq!(f.other["process_resident_memory_bytes"], 2.3748608e9);
    assert!(
        !f.other
            .keys()
            .any(|k| k.starts_with("vllm:gpu_cache_usage_perc")),
        "the deprecated KV name is mapped too"
    );
}

fn column<'a>(csv: &'a str, name: &str) -> Vec<&'a str> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let i = header.iter().position(|h| *h == name).unwrap();
    // The server columns are last and hold no commas, so they count from the end.
    let from_end = header.len() - i;
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            cells[cells.len() - from_end]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_sweep_fills_the_server_columns() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Two closed-loop users keep a request in the server at every scrape.
    let (_code, summary) = tokio::time::timeout(
        Duration::from_secs(120),
        sweep_cli(
            dir.path(),
            &[
                "--concurrency",
                "2",
                "--step-duration",
                "3s",
                "--initial-warmup",
                "0s",
                "--max-new-tokens",
                "16",
                "--server-metrics",
            ],
        ),
    )
    .await
    .unwrap();
    let summary = summary.unwrap();
    let f = summary.steps[0].server.as_ref().expect("scraped");
    assert_eq!(f.failed_scrapes, 0, "{f:?}");
    assert!(f.scrapes >= 4, "start, every second, end: {f:?}");
    let kv = f.kv_cache_usage.unwrap();
    assert!(kv > 0.0 && kv <= 1.0, "{f:?}");
    assert!(f.tokens_per_s.is_some_and(|t| t > 0.0), "{f:?}");
    assert!(f.batch_size.unwrap() > 0.0, "{f:?}");
    assert!(f.request_latency_s.unwrap() > 0.0, "{f:?}");
    let csv = std::fs::read_to_string(dir.path().join("steps.csv")).unwrap();
    let kv_cell: f64 = column(&csv, "server_kv_cache_usage")[0].parse().unwrap();
    assert!(kv_cell > 0.0 && kv_cell <= 1.0, "{csv}");
    let tps: f64 = column(&csv, "server_tokens_per_s")[0].parse().unwrap();
    assert!(tps > 0.0, "{csv}");
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with("server_latency_gap_s")
    );
    // `report --sweep` rebuilds the same bytes from the run folder.
    output::rebuild(dir.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("steps.csv")).unwrap(),
        csv
    );
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        md.contains("## Server metrics") && md.contains("server.png"),
        "{md}"
    );
    assert!(dir.path().join("server.png").exists());
    let json = std::fs::read_to_string(dir.path().join("summary.json")).unwrap();
    assert!(json.contains("\"kv_cache_usage\""), "{json}");
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Drives a two-step sweep of the instant model runner, scraping `url`; returns the summary
/// and the warnings printed.
async fn drive_scraping(
    dir: &Path,
    url: &str,
) -> (rpload::analysis::summary::SweepSummary, Vec<String>) {
    let text = "target = \"http://127.0.0.1:9\"\n[sweep]\nrps = \"10,20\"\nstep_duration = \"2s\"\ncooldown = \"0s\"\ninitial_warmup = \"0s\"\n";
    let sc = rpload::scenario::ScenarioFile::parse(text, "t.toml")
        .unwrap()
        .validate()
        .unwrap();
    let warnings = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = warnings.clone();
    let mut runner = Scraping::new(
        ModelRunner::new(Model {
            capacity: 100.0,
            service_s: 0.05,
        }),
        ScrapeConfig {
            url: url.parse().unwrap(),
            path: dir.join(SERVER_METRICS_JSONL),
            timeout: Duration::from_millis(500),
            every: Duration::from_secs(1),
        },
        Box::new(move |w| seen.lock().unwrap().push(w)),
    )
    .unwrap();
    let cfg = DriveConfig {
        scenario: &sc,
        price: None,
        stop: Default::default(),
        timeline: None,
    };
    let summary = drive(&cfg, &mut runner, &mut RunFolder::new(dir), &mut Silent)
        .await
        .unwrap();
    let warnings = warnings.lock().unwrap().clone();
    (summary, warnings)
}

#[tokio::test]
async fn a_closed_metrics_port_warns_once_per_step_and_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/metrics", closed_port());
    let (summary, warnings) = drive_scraping(dir.path(), &url).await;
    assert_eq!(warnings.len(), 2, "one per step: {warnings:?}");
    assert!(
        warnings[0]
            .starts_with("warning: --server-metrics: step 0: 2 of 2 scrapes of http://127.0.0.1:"),
        "{warnings:?}"
    );
    assert!(
        warnings[0].ends_with("its server_* columns stay empty"),
        "{warnings:?}"
    );
    // Every record is kept: 10 x 2 s + 20 x 2 s.
    let records = std::fs::read_to_string(dir.path().join("results.jsonl")).unwrap();
    assert_eq!(records.lines().count(), 60);
    for r in &summary.steps {
        let f = r.server.as_ref().unwrap();
        assert_eq!((f.scrapes, f.failed_scrapes), (0, 2), "{f:?}");
        assert_eq!(f.request_latency_s, None);
    }
    let csv = std::fs::read_to_string(dir.path().join("steps.csv")).unwrap();
    for name in rpload::report::csv::SERVER_COLUMNS {
        assert_eq!(column(&csv, name), vec![""; 2], "{name}: {csv}");
    }
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("Failed scrapes: step 0: 2 of 2 failed"), "{md}");
}

#[tokio::test]
async fn a_metrics_url_that_does_not_parse_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _) = sweep_cli(
        dir.path(),
        &[
            "--target",
            "http://127.0.0.1:9",
            "--rps",
            "1",
            "--server-metrics",
            "localhost:9/metrics",
        ],
    )
    .await;
    assert_eq!(code, rpload::exit::BAD_INPUT);
    assert!(!dir.path().join("results.jsonl").exists(), "nothing ran");
}

#[tokio::test]
async fn a_metrics_server_that_never_answers_times_out() {
    // Accepts connections and never answers: every scrape runs into its 500 ms.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (summary, warnings) = drive_scraping(dir.path(), &url).await;
    hold.abort();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("(timed out after 500 ms)"),
        "{warnings:?}"
    );
    assert_eq!(summary.steps.len(), 2);
    let unscraped = |r: &rpload::analysis::summary::StepRow| {
        r.requests > 0 && r.server.as_ref().is_some_and(|f| f.scrapes == 0)
    };
    assert!(summary.steps.iter().all(unscraped));
}
