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
//! The fit leaves out the requests sent before the step's first success ended. Until then a
//! server that started idle is filling (Little's law: from nothing in flight to `lambda x L`),
//! and a batching server slows as its batch grows: latency rises once and levels off, which is
//! no backlog. Once departures have begun, growth is a backlog. A FIFO server that falls behind
//! grows linearly from its first request, so leaving the fill out changes its slope not at all;
//! when fewer than [`MIN_TREND_REQUESTS`] successes are left (a 3-request burst), every success
//! is fitted. Times are kept in 10 ms buckets of intended time for the first 10 s of a step (one
//! fit each, so memory stays bounded however long the step) and one fit beyond.
//!
//! Pure: numbers in, estimates out. The accumulators merge exactly (sums of centred moments).

use serde::Serialize;

/// Successful requests a trend needs: two points fix a line, a third is the least that says
/// how far the points scatter around it.
pub const MIN_TREND_REQUESTS: u64 = 3;
/// Standard errors a trend must clear the bound by (both ways) to be called: about 95%
/// confidence for a normal estimate.
pub const TREND_Z: f64 = 2.0;

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

    pub fn merge(&mut self, o: &TrendFit) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        let (na, nb) = (self.n as f64, o.n as f64);
        let n = na + nb;
        let dx = o.mean_x - self.mean_x;
        let dy = o.mean_y - self.mean_y;
        self.sxx += o.sxx + dx * dx * na * nb / n;
        self.syy += o.syy + dy * dy * na * nb / n;
        self.sxy += o.sxy + dx * dy * na * nb / n;
        self.mean_x += dx * nb / n;
        self.mean_y += dy * nb / n;
        self.n += o.n;
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

    pub fn merge(&mut self, o: &Span) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        self.n += o.n;
    }

    /// Events per second over the span: `(n - 1) / (last - first)`, the rate that places `n`
    /// events at those ends (Vegeta's `n / span` reads 4 requests sent 0.25 s apart as 5.3/s).
    pub fn rate(&self) -> Option<f64> {
        (self.n >= 2 && self.last > self.first)
            .then(|| (self.n - 1) as f64 / ((self.last - self.first) as f64 / 1e9))
    }
}

/// Width of the intended-time buckets the fill can be cut at.
const BUCKET_NS: u64 = 10_000_000;
/// Buckets kept one by one (the first 10 s of a step); later requests share one fit.
const BUCKETS: usize = 1000;

/// What one step's requests say about pace: the latency fit of its successes by intended-time
/// bucket, when its first success ended, and the spans of intended and actual sends of all its
/// requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaceData {
    early: Vec<TrendFit>,
    tail: TrendFit,
    first_end_ns: Option<u64>,
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
        let end = intended_ns.saturating_add(latency_ns);
        self.first_end_ns = Some(self.first_end_ns.map_or(end, |e| e.min(end)));
        let (x, y) = (intended_ns as f64 / 1e9, latency_ns as f64 / 1e9);
        let idx = (intended_ns / BUCKET_NS) as usize;
        if idx < BUCKETS {
            if self.early.len() <= idx {
                self.early.resize(idx + 1, TrendFit::default());
            }
            self.early[idx].add(x, y);
        } else {
            self.tail.add(x, y);
        }
    }

    pub fn merge(&mut self, o: &PaceData) {
        if self.early.len() < o.early.len() {
            self.early.resize(o.early.len(), TrendFit::default());
        }
        for (a, b) in self.early.iter_mut().zip(&o.early) {
            a.merge(b);
        }
        self.tail.merge(&o.tail);
        self.first_end_ns = match (self.first_end_ns, o.first_end_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.intended.merge(&o.intended);
        self.sent.merge(&o.sent);
    }

    /// Every success's fit.
    fn all(&self) -> TrendFit {
        self.from_bucket(0)
    }

    fn from_bucket(&self, first: usize) -> TrendFit {
        let mut fit = TrendFit::default();
        for b in self.early.iter().skip(first) {
            fit.merge(b);
        }
        fit.merge(&self.tail);
        fit
    }

    /// The fit of the successes sent after the first success ended (whole buckets, so a
    /// request sent in the same 10 ms is left out too), when enough are left.
    fn settled(&self) -> Option<TrendFit> {
        let from = self.first_end_ns?.div_ceil(BUCKET_NS) as usize;
        if from > BUCKETS {
            return None;
        }
        let fit = self.from_bucket(from);
        (fit.count() >= MIN_TREND_REQUESTS).then_some(fit)
    }

    /// The estimates a verdict reads, given the step's offered rate and success ratio.
    pub fn estimate(&self, offered_rps: f64, success_ratio: f64) -> PaceEstimate {
        let arrival_rps = self.intended.rate().unwrap_or(offered_rps);
        let all = self.all();
        let (fit, fill_excluded) = match self.settled() {
            Some(f) => (f, all.count() - f.count()),
            None => (all, 0),
        };
        let slope = fit.slope();
        let served_rps = arrival_rps * success_ratio / (1.0 + slope.unwrap_or(0.0).max(0.0));
        PaceEstimate {
            successes: all.count(),
            fill_excluded,
            arrival_rps,
            sent_rps: self.sent.rate(),
            served_rps,
            slope,
            slope_se: fit.slope_se(),
        }
    }
}

/// The pace figures of one step.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct PaceEstimate {
    pub successes: u64,
    /// Successes sent while the step was filling (before its first success ended), left out
    /// of the trend.
    pub fill_excluded: u64,
    /// The rate the schedule actually placed requests at (`(n - 1) / span` of intended sends;
    /// the offered rate with fewer than two requests).
    pub arrival_rps: f64,
    /// The rate requests actually left at; None with fewer than two.
    pub sent_rps: Option<f64>,
    /// Departures of successful requests per second: `arrival x success / (1 + max(slope, 0))`.
    pub served_rps: f64,
    /// Latency growth, seconds per second of the step.
    pub slope: Option<f64>,
    pub slope_se: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = fifo(3, 3.0, 0.3).estimate(3.0, 1.0);
        assert!((e.arrival_rps - 3.0).abs() < 1e-6);
        assert!(e.slope.unwrap().abs() < 1e-6);
        assert!((e.served_rps - 3.0).abs() < 1e-6);
    }

    #[test]
    fn fifo_above_capacity_reads_the_capacity() {
        // Bursts and long steps alike: the served rate is the server's 1 / 0.3 s.
        for (n, rate) in [(4, 4.0), (6, 6.0), (40, 4.0), (600, 3.7)] {
            let e = fifo(n, rate, 0.3).estimate(rate, 1.0);
            assert!(
                (e.served_rps - 1.0 / 0.3).abs() < 1e-3,
                "{n} at {rate}: {e:?}"
            );
            assert!(e.slope_se.unwrap() < 1e-6, "an exact line has no scatter");
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
        let e = d.estimate(10.0, 10.0 / 15.0);
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
        let e = fifo(1, 1.0, 0.3).estimate(1.0, 1.0);
        assert_eq!((e.slope, e.slope_se, e.sent_rps), (None, None, None));
        assert_eq!(e.arrival_rps, 1.0);
        let e = fifo(2, 2.0, 0.3).estimate(2.0, 1.0);
        assert!(e.slope.is_some());
        assert_eq!(e.slope_se, None);
    }

    #[test]
    fn merging_equals_adding_everything() {
        let whole = fifo(50, 4.0, 0.3);
        let mut parts = [PaceData::default(), PaceData::default()];
        let mut free_at = 0.0f64;
        for i in 0..50u64 {
            let t = i as f64 / 4.0;
            let end = t.max(free_at) + 0.3;
            free_at = end;
            let ns = |s: f64| (s * 1e9) as u64;
            parts[(i % 2) as usize].add(ns(t), ns(t), ns(end - t), true);
        }
        let [mut a, b] = parts;
        a.merge(&b);
        let (x, y) = (a.estimate(4.0, 1.0), whole.estimate(4.0, 1.0));
        assert!((x.slope.unwrap() - y.slope.unwrap()).abs() < 1e-9);
        assert!((x.served_rps - y.served_rps).abs() < 1e-9);
        assert_eq!(a.intended, whole.intended);
    }
}
