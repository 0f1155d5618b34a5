//! Whether a target kept pace with a step's arrivals, from the step's own requests alone.
//!
//! A server that keeps pace with its arrivals has a latency that does not grow across the step;
//! one that falls behind builds a backlog, and every later request waits longer. For a FIFO
//! server of capacity `mu` offered `lambda > mu`, the request sent at time `t` ends at
//! `t0 + (n(t) + 1) / mu`, so latency grows with slope `b = lambda / mu - 1`, and the departure
//! rate is `lambda / (1 + b)` exactly. A continuous-batching server that falls behind either
//! queues at its batch limit (the same FIFO growth) or slows every step as its batch grows, which
//! also lengthens the latency of every later request. So the served-rate estimate here is
//! `arrival rate x success ratio / (1 + max(b, 0))`, with `b` the least-squares slope of
//! successful requests' latency over their intended send times. It needs no other step, no
//! "unloaded" latency and no drain window, so it reads the same for a 4-request burst and a
//! 10-minute step. `scenarios/README.md` has the rule and its limits.
//!
//! Which requests are fitted: a server that started idle fills first (by Little's law the
//! number in flight climbs from nothing to `lambda x L`, which takes about one steady latency
//! `L`, and a batching server slows as its batch grows), so the fill's latencies are below `L`
//! and `L` sits near the top of the step's distribution: its p90, robust to one slow request,
//! rather than its median, which the fill pulls down. After the last arrival the server drains,
//! and the last requests of a burst speed up as their batch empties. Neither is a backlog. The
//! fill bends the slope up, the drain bends it down, so each decision uses the window whose bias
//! works against it: *fell behind* is called on the requests sent one p90 latency after the
//! first (the drain kept in can only lower the slope); *kept pace* on the *steady* ones among
//! them, which also ended before the last send (no fill, no drain). With fewer than
//! [`MIN_TREND_REQUESTS`] steady requests (a burst about as long as its latency) every success is
//! fitted: a growth beyond the bound still fails, a latency flat within the bound both ways
//! passes, anything else is undetermined. A FIFO server that falls behind grows on one line
//! from its first request to its last, so none of this changes its slope.
//! Points are kept per step (at most [`MAX_POINTS`]; beyond that every other one is dropped and
//! the stride doubles, a uniform thinning that leaves the fit unbiased), so memory stays bounded.
//!
//! Pure: numbers in, estimates out.

use serde::Serialize;

/// Successful requests a trend needs: two points fix a line, a third is the least that says
/// how far the points scatter around it.
pub const MIN_TREND_REQUESTS: u64 = 3;
/// Blocks a window's requests are averaged into before the line is fitted (batch means): the
/// latencies of a batching server move in a sawtooth, whose neighbouring points are not
/// independent, and a fit of single points would claim a precision the data does not have.
/// Means over blocks of consecutive sends smooth the sawtooth, and the scatter of the block
/// means around the line is an honest error.
pub const TREND_BLOCKS: usize = 8;

/// Two-sided 95% Student t quantiles for 1..=30 degrees of freedom (then 1.96 is close).
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The half-width of a 95% interval is `t95(dof) x se`.
pub fn t95(dof: u64) -> f64 {
    match dof {
        0 => f64::INFINITY,
        d if d as usize <= T95.len() => T95[d as usize - 1],
        _ => 1.96,
    }
}

/// Online least-squares fit of `y` (latency, s) on `x` (intended send time, s).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrendFit {
    n: u64,
    mean_x: f64,
    mean_y: f64,
    /// Sums of squared deviations and of cross products (Welford's centred form: no
    /// cancellation when the times are large).
    sxx: f64,
    syy: f64,
    sxy: f64,
}

impl TrendFit {
    pub fn add(&mut self, x: f64, y: f64) {
        self.n += 1;
        let n = self.n as f64;
        let dx = x - self.mean_x;
        let dy = y - self.mean_y;
        self.mean_x += dx / n;
        self.mean_y += dy / n;
        self.sxx += dx * (x - self.mean_x);
        self.syy += dy * (y - self.mean_y);
        self.sxy += dx * (y - self.mean_y);
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    /// Latency growth per second of the step (s/s); None with fewer than two distinct times.
    pub fn slope(&self) -> Option<f64> {
        (self.n >= 2 && self.sxx > 0.0).then(|| self.sxy / self.sxx)
    }

    /// Standard error of the slope; None below [`MIN_TREND_REQUESTS`].
    pub fn slope_se(&self) -> Option<f64> {
        let b = self.slope()?;
        if self.n < MIN_TREND_REQUESTS {
            return None;
        }
        let residual = (self.syy - b * self.sxy).max(0.0);
        Some((residual / (self.n - 2) as f64 / self.sxx).sqrt())
    }
}

/// First and last of a set of instants (ns) and how many there were.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Span {
    n: u64,
    first: u64,
    last: u64,
}

impl Span {
    pub fn add(&mut self, t: u64) {
        if self.n == 0 {
            self.first = t;
            self.last = t;
        } else {
            self.first = self.first.min(t);
            self.last = self.last.max(t);
        }
        self.n += 1;
    }

    /// Events per second over the span: `(n - 1) / (last - first)`, the rate that places `n`
    /// events at those ends (Vegeta's `n / span` reads 4 requests sent 0.25 s apart as 5.3/s).
    pub fn rate(&self) -> Option<f64> {
        (self.n >= 2 && self.last > self.first)
            .then(|| (self.n - 1) as f64 / ((self.last - self.first) as f64 / 1e9))
    }
}

/// (intended send, latency) of one successful request, in seconds.
type Point = (f64, f64);

/// Points a step keeps for its fit before thinning (1 MiB).
pub const MAX_POINTS: usize = 65_536;

/// What one step's requests say about pace: the (intended send, latency) of its successes,
/// and the spans of intended and actual sends of all its requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaceData {
    /// (intended, latency) in ns of successful requests, thinned past [`MAX_POINTS`].
    points: Vec<(u64, u64)>,
    /// Keep one success in `stride` (a power of two) once thinning began.
    stride: u64,
    seen: u64,
    successes: u64,
    pub intended: Span,
    pub sent: Span,
}

impl PaceData {
    /// Folds one request in (times in ns from the attack start; latency from the intended time).
    pub fn add(&mut self, intended_ns: u64, sent_ns: u64, latency_ns: u64, ok: bool) {
        self.intended.add(intended_ns);
        self.sent.add(sent_ns);
        if !ok {
            return;
        }
        self.successes += 1;
        let stride = self.stride.max(1);
        self.seen += 1;
        if !self.seen.is_multiple_of(stride) {
            return;
        }
        self.points.push((intended_ns, latency_ns));
        if self.points.len() >= MAX_POINTS {
            let mut i = 0;
            self.points.retain(|_| {
                i += 1;
                i % 2 == 0
            });
            self.stride = stride * 2;
        }
    }

    /// The successes sent after the fill, the steady ones among them (also ended before the
    /// last send), and all of them; each sorted by send time, in seconds.
    fn windows(&self) -> [Vec<Point>; 3] {
        let mut latencies: Vec<u64> = self.points.iter().map(|&(_, y)| y).collect();
        latencies.sort_unstable();
        let p90 = latencies
            .get(latencies.len() * 9 / 10)
            .copied()
            .unwrap_or(0);
        let filled = self.intended.first.saturating_add(p90);
        let last_sent = self.intended.last;
        let mut points = self.points.clone();
        points.sort_unstable();
        let secs = |&(x, y): &(u64, u64)| (x as f64 / 1e9, y as f64 / 1e9);
        let after_fill: Vec<(u64, u64)> = points
            .iter()
            .copied()
            .filter(|&(x, _)| x >= filled)
            .collect();
        let steady = after_fill
            .iter()
            .filter(|&&(x, y)| x.saturating_add(y) <= last_sent)
            .map(secs)
            .collect();
        [
            after_fill.iter().map(secs).collect(),
            steady,
            points.iter().map(secs).collect(),
        ]
    }

    /// The pace call of several repeats of one rate taken together: each repeat's windows (by
    /// time within its own step), pooled, then fitted as one. Repeats are replicates of one
    /// schedule, so three 3-request bursts give 9 points where each alone gives 3.
    pub fn pooled(repeats: &[&PaceData], max_slope: f64) -> (Option<SlopeFit>, PaceCall) {
        let mut pooled: [Vec<Point>; 3] = Default::default();
        for r in repeats {
            for (all, mine) in pooled.iter_mut().zip(r.windows()) {
                all.extend(mine);
            }
        }
        for w in &mut pooled {
            w.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        let (_, call, fit) = decide(&pooled, max_slope);
        (fit, call)
    }

    /// The estimates a verdict reads, given the step's offered rate, its success ratio and the
    /// steepest latency growth (s/s) that still counts as keeping pace.
    pub fn estimate(&self, offered_rps: f64, success_ratio: f64, max_slope: f64) -> PaceEstimate {
        let arrival_rps = self.intended.rate().unwrap_or(offered_rps);
        let (window, call, fit) = decide(&self.windows(), max_slope);
        let slope = fit.map(|f| f.slope);
        let served_rps = arrival_rps * success_ratio / (1.0 + slope.unwrap_or(0.0).max(0.0));
        // Counted in successes, not kept points, so thinning does not change the figure.
        let kept = self.points.len().max(1) as f64;
        let fitted = fit.map_or(0, |f| f.requests) as f64;
        PaceEstimate {
            successes: self.successes,
            call,
            window,
            left_out: ((kept - fitted).max(0.0) * self.successes as f64 / kept).round() as u64,
            arrival_rps,
            sent_rps: self.sent.rate(),
            served_rps,
            slope,
            slope_margin: fit.map(|f| f.margin),
        }
    }
}

/// A window's latency slope and the half-width of its 95% interval (s/s).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SlopeFit {
    pub slope: f64,
    pub margin: f64,
    pub requests: u64,
}

impl SlopeFit {
    /// None below [`MIN_TREND_REQUESTS`] points or with a zero span.
    fn of(points: &[Point]) -> Option<SlopeFit> {
        if (points.len() as u64) < MIN_TREND_REQUESTS {
            return None;
        }
        let fit = block_fit(points);
        Some(SlopeFit {
            slope: fit.slope()?,
            margin: t95(fit.count() - 2) * fit.slope_se()?,
            requests: points.len() as u64,
        })
    }

    fn above(&self, bound: f64) -> bool {
        self.slope - self.margin > bound
    }

    fn below(&self, bound: f64) -> bool {
        self.slope + self.margin <= bound
    }
}

/// Which requests the trend was fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Sent after the fill (the drain kept in).
    AfterFill,
    /// Sent after the fill and ended before the last send.
    Steady,
    /// Every success.
    #[default]
    Whole,
}

impl Window {
    pub fn as_str(self) -> &'static str {
        match self {
            Window::AfterFill => "after_fill",
            Window::Steady => "steady",
            Window::Whole => "whole",
        }
    }
}

/// What the trend says of pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PaceCall {
    KeptPace,
    FellBehind,
    /// The steady trend's interval straddles the bound.
    Noisy,
    /// No steady window, and the whole step's latency was neither flat nor clearly growing.
    Transient,
    /// Fewer than [`MIN_TREND_REQUESTS`] successes.
    #[default]
    TooFew,
}

/// Fits the three windows (after the fill, steady, whole), decides, and returns the window the
/// decision rests on with its fit.
fn decide(windows: &[Vec<Point>; 3], max_slope: f64) -> (Window, PaceCall, Option<SlopeFit>) {
    let [after_fill, steady, all] = [0, 1, 2].map(|i| SlopeFit::of(&windows[i]));
    let (window, call) = call(after_fill, steady, all, max_slope);
    let fit = match window {
        Window::AfterFill => after_fill,
        Window::Steady => steady,
        Window::Whole => all,
    };
    (window, call, fit)
}

/// The pace decision (module header): growth after the fill fails the step, since the drain it
/// keeps in can only lower the slope; a steady window below the bound passes it, since it holds
/// neither fill nor drain; without a steady window the whole step must be flat to pass.
fn call(
    after_fill: Option<SlopeFit>,
    steady: Option<SlopeFit>,
    all: Option<SlopeFit>,
    max_slope: f64,
) -> (Window, PaceCall) {
    if let Some(f) = after_fill
        && f.above(max_slope)
    {
        return (Window::AfterFill, PaceCall::FellBehind);
    }
    if let Some(f) = steady {
        let call = if f.below(max_slope) {
            PaceCall::KeptPace
        } else if f.above(max_slope) {
            PaceCall::FellBehind
        } else {
            PaceCall::Noisy
        };
        return (Window::Steady, call);
    }
    let Some(f) = all else {
        return (Window::Whole, PaceCall::TooFew);
    };
    let call = if f.above(max_slope) {
        PaceCall::FellBehind
    } else if f.below(max_slope) && f.slope - f.margin >= -max_slope {
        PaceCall::KeptPace
    } else {
        PaceCall::Transient
    };
    (Window::Whole, call)
}

/// The fit of the means of [`TREND_BLOCKS`] blocks of consecutive points (each point its own
/// block when there are fewer).
fn block_fit(points: &[Point]) -> TrendFit {
    let n = points.len();
    let blocks = n.min(TREND_BLOCKS);
    let mut fit = TrendFit::default();
    for b in 0..blocks {
        let block = &points[b * n / blocks..(b + 1) * n / blocks];
        let k = block.len() as f64;
        let (sx, sy) = block
            .iter()
            .fold((0.0, 0.0), |(sx, sy), &(x, y)| (sx + x, sy + y));
        fit.add(sx / k, sy / k);
    }
    fit
}

/// The pace figures of one step.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct PaceEstimate {
    pub successes: u64,
    pub call: PaceCall,
    /// The window the trend shown was fitted on.
    pub window: Window,
    /// Successes outside that window.
    pub left_out: u64,
    /// The rate the schedule actually placed requests at (`(n - 1) / span` of intended sends;
    /// the offered rate with fewer than two requests).
    pub arrival_rps: f64,
    /// The rate requests actually left at; None with fewer than two.
    pub sent_rps: Option<f64>,
    /// Departures of successful requests per second: `arrival x success / (1 + max(slope, 0))`.
    pub served_rps: f64,
    /// Latency growth, seconds per second of the step.
    pub slope: Option<f64>,
    /// Half-width of the slope's 95% interval (`t95(blocks - 2) x se` of the block fit).
    pub slope_margin: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound at 95% served.
    const MAX: f64 = 1.0 / 0.95 - 1.0;

    /// A FIFO server of fixed service time `service_s`, offered `n` requests at `rate`.
    fn fifo(n: u64, rate: f64, service_s: f64) -> PaceData {
        let mut d = PaceData::default();
        let mut free_at = 0.0f64;
        for i in 0..n {
            let t = i as f64 / rate;
            let end = t.max(free_at) + service_s;
            free_at = end;
            let ns = |s: f64| (s * 1e9) as u64;
            d.add(ns(t), ns(t), ns(end - t), true);
        }
        d
    }

    #[test]
    fn fifo_below_capacity_serves_the_offered_rate() {
        // 3 req/s to a 0.3 s server (capacity 3.33): a flat latency.
        let e = fifo(3, 3.0, 0.3).estimate(3.0, 1.0, MAX);
        assert!((e.arrival_rps - 3.0).abs() < 1e-6);
        assert!(e.slope.unwrap().abs() < 1e-6);
        assert!((e.served_rps - 3.0).abs() < 1e-6);
        assert_eq!((e.window, e.call), (Window::Whole, PaceCall::KeptPace));
    }

    #[test]
    fn fifo_above_capacity_reads_the_capacity() {
        // Bursts and long steps alike: the served rate is the server's 1 / 0.3 s.
        for (n, rate) in [(4, 4.0), (6, 6.0), (40, 4.0), (600, 3.7)] {
            let e = fifo(n, rate, 0.3).estimate(rate, 1.0, MAX);
            assert!(
                (e.served_rps - 1.0 / 0.3).abs() < 1e-3,
                "{n} at {rate}: {e:?}"
            );
            assert!(
                e.slope_margin.unwrap() < 1e-6,
                "an exact line has no scatter"
            );
            assert_eq!(e.call, PaceCall::FellBehind);
        }
    }

    #[test]
    fn failures_reduce_the_served_rate_and_leave_the_trend() {
        let mut d = fifo(10, 10.0, 0.05);
        // Five fast failures inside the same span: counted in the arrivals, not in the trend.
        for i in 0..5 {
            d.add(
                i * 100_000_000 + 50_000_000,
                i * 100_000_000,
                700_000,
                false,
            );
        }
        let e = d.estimate(10.0, 10.0 / 15.0, MAX);
        assert_eq!(e.successes, 10);
        assert!(e.slope.unwrap().abs() < 1e-6);
        let arrivals = 14.0 / 0.9;
        assert!((e.arrival_rps - arrivals).abs() < 1e-6, "{e:?}");
        assert!(
            (e.served_rps - arrivals * 10.0 / 15.0).abs() < 1e-6,
            "{e:?}"
        );
    }

    #[test]
    fn too_few_requests_give_no_trend() {
        let e = fifo(1, 1.0, 0.3).estimate(1.0, 1.0, MAX);
        assert_eq!((e.slope, e.slope_margin, e.sent_rps), (None, None, None));
        assert_eq!(e.arrival_rps, 1.0);
        let e = fifo(2, 2.0, 0.3).estimate(2.0, 1.0, MAX);
        assert_eq!((e.slope, e.call), (None, PaceCall::TooFew));
    }

    #[test]
    fn repeats_pool_into_one_decision() {
        // Three 3-request bursts of a flat 300 ms server with a few ms of jitter: each alone is
        // too noisy for its 1 degree of freedom, the nine together are not.
        let burst = |jitter_ms: [u64; 3]| {
            let mut d = PaceData::default();
            for (i, j) in jitter_ms.iter().enumerate() {
                let t = i as u64 * 333_333_333;
                d.add(t, t, 300_000_000 + j * 1_000_000, true);
            }
            d
        };
        let (a, b, c) = (burst([0, 6, 1]), burst([3, 0, 5]), burst([1, 4, 0]));
        assert_eq!(a.estimate(3.0, 1.0, MAX).call, PaceCall::Transient);
        let (fit, call) = PaceData::pooled(&[&a, &b, &c], MAX);
        assert_eq!(call, PaceCall::KeptPace, "{fit:?}");
        // FIFO bursts over capacity stay over it pooled.
        let (x, y) = (fifo(4, 4.0, 0.3), fifo(4, 4.0, 0.3));
        assert_eq!(PaceData::pooled(&[&x, &y], MAX).1, PaceCall::FellBehind);
    }

    #[test]
    fn thinning_keeps_the_fit() {
        // 200,000 requests of a FIFO server 10% over capacity, thinned to under 64K points.
        let rate = 1100.0;
        let d = fifo(200_000, rate, 1.0 / 1000.0);
        assert!(d.points.len() < MAX_POINTS);
        let e = d.estimate(rate, 1.0, MAX);
        assert_eq!(e.successes, 200_000);
        assert!((e.served_rps - 1000.0).abs() < 1.0, "{e:?}");
    }

    #[test]
    fn a_burst_that_ends_together_is_not_steady() {
        // Ten requests over 0.9 s that all end at 1.2 s (a batch that drains together).
        let mut d = PaceData::default();
        for i in 0..10u64 {
            let t = i * 100_000_000;
            d.add(t, t, 1_200_000_000 - t, true);
        }
        let e = d.estimate(10.0, 1.0, MAX);
        assert_eq!((e.window, e.call), (Window::Whole, PaceCall::Transient));
        assert!((e.slope.unwrap() + 1.0).abs() < 1e-9, "{e:?}");
    }
}
