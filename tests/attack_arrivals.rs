//! Arrival processes and ramps end to end, on virtual time (tokio's paused clock drives the
//! pacer, the loopback server and the attacker, so intended times are exact): gamma arrivals
//! have the coefficient of variation `--burstiness` asks for, and a `--ramp` sends what the
//! integral of its rate says, whatever the arrival process.

mod common;

use std::time::Duration;

use common::{Behaviour, attack_on_virtual_time, spawn, url};

async fn intended_secs(rest: &[&str]) -> Vec<f64> {
    let addr = spawn(Behaviour {
        ttft: Duration::from_millis(1),
        tokens: 1,
        ..Behaviour::default()
    })
    .await;
    let target = url(addr);
    let mut argv = vec!["--api", "tgi", "--target", &target];
    argv.extend_from_slice(rest);
    let records = attack_on_virtual_time(&argv).await;
    assert!(records.iter().all(|r| r.is_success()));
    records.iter().map(|r| r.intended_ns as f64 / 1e9).collect()
}

fn mean_and_cv(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt() / mean)
}

fn gaps(times: &[f64]) -> Vec<f64> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn gamma_arrivals_have_the_burstiness_asked_for() {
    // 500/s for 4 s: about 2000 gaps of mean 2 ms; B = 0.25 asks for a CV of 1/sqrt(0.25) = 2.
    // The CV estimate's own spread at this size is about 6%, so 15% is a loose bound.
    let rest = [
        "--rate",
        "500/s",
        "--duration",
        "4s",
        "--arrival",
        "gamma",
        "--burstiness",
        "0.25",
        "--seed",
        "9",
    ];
    let times = intended_secs(&rest).await;
    assert!(
        (1700..2300).contains(&times.len()),
        "{} requests",
        times.len()
    );
    let (mean, cv) = mean_and_cv(&gaps(&times));
    assert!((mean / 0.002 - 1.0).abs() < 0.1, "mean gap {mean}");
    assert!((cv - 2.0).abs() < 0.3, "CV {cv}, want 2");
    // The same seed gives the same schedule.
    assert_eq!(intended_secs(&rest).await, times);
    // B = 4 asks for evener gaps: CV 0.5.
    let even = intended_secs(&[
        "--rate",
        "500/s",
        "--duration",
        "2s",
        "--arrival",
        "gamma",
        "--burstiness",
        "4",
    ])
    .await;
    let (_, cv) = mean_and_cv(&gaps(&even));
    assert!((cv - 0.5).abs() < 0.05, "CV {cv}, want 0.5");
}

#[tokio::test(start_paused = true)]
async fn a_ramp_sends_the_integral_of_its_rate() {
    // 0 -> 100 req/s over 2 s (100 requests), then 100 req/s for the last second (100 more).
    let times = intended_secs(&["--ramp", "0..100/2s", "--duration", "3s"]).await;
    assert_eq!(times.len(), 200);
    // Evenly spaced in operational time: request n is due when 25 t² (the ramp's integral)
    // reaches n, so request 25 at 1 s and request 100 at 2 s.
    assert!((times[25] - 1.0).abs() < 1e-6, "{}", times[25]);
    assert!((times[100] - 2.0).abs() < 1e-6, "{}", times[100]);
    let per_half_second: Vec<usize> = (0..6)
        .map(|i| {
            let (lo, hi) = (i as f64 * 0.5, (i + 1) as f64 * 0.5);
            times.iter().filter(|t| (lo..hi).contains(*t)).count()
        })
        .collect();
    // Requests 0..=6, 7..=24, 25..=56, 57..=99 (the n below 25 t² at each window's end), then
    // 50 and 50 at the held rate.
    assert_eq!(per_half_second, [7, 18, 32, 43, 50, 50]);
    // Poisson arrivals follow the same ramp: about as many, in the same shape.
    let poisson = intended_secs(&[
        "--ramp",
        "0..100/2s",
        "--duration",
        "3s",
        "--arrival",
        "poisson",
        "--seed",
        "4",
    ])
    .await;
    assert!((150..250).contains(&poisson.len()), "{}", poisson.len());
    let early = poisson.iter().filter(|t| **t < 1.0).count();
    let late = poisson.iter().filter(|t| **t >= 2.0).count();
    // 25 expected before 1 s, 100 after 2 s.
    assert!(early < 50 && late > 70, "{early} early, {late} late");
}
