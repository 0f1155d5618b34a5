//! One distribution (`Dist`): an HDR histogram (1 us to 1 h, 3 significant digits) with exact
//! count, sum, min and max beside it, and the `Percentiles` a report shows of it.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Histogram range: values are ns; 1 us resolution floor, 1 h ceiling (larger values clamp).
const HIST_LOW_NS: u64 = 1_000;
const HIST_HIGH_NS: u64 = 3_600_000_000_000;
const HIST_SIGFIG: u8 = 3;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(HIST_LOW_NS, HIST_HIGH_NS, HIST_SIGFIG)
        .expect("static histogram bounds are valid")
}

/// One distribution: an HDR histogram plus exact count, sum, min and max.
#[derive(Clone, Debug)]
pub struct Dist {
    hist: Histogram<u64>,
    count: u64,
    total: u128,
    min: u64,
    max: u64,
}

impl Default for Dist {
    fn default() -> Self {
        Self {
            hist: histogram(),
            count: 0,
            total: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

impl Dist {
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.min(HIST_HIGH_NS));
        self.count = self.count.saturating_add(1);
        self.total += u128::from(ns);
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Standard deviation over mean (0 with no values): how alike the values are, which sets
    /// how noisy a count of back-to-back requests is (`analysis::scaling`).
    pub fn cv(&self) -> f64 {
        let mean = self.hist.mean();
        if self.count == 0 || mean <= 0.0 {
            0.0
        } else {
            self.hist.stdev() / mean
        }
    }

    /// A percentile in ns (`q` in 0..=100); exact min/max at the ends.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        if q <= 0.0 {
            return self.min;
        }
        if q >= 100.0 {
            return self.max;
        }
        // HDR reports the highest value equivalent to the bucket; cap it by the exact max so a
        // percentile never exceeds the maximum that was actually seen.
        self.hist.value_at_quantile(q / 100.0).min(self.max)
    }

    /// Counts of values in `[lo, hi)` buckets, ns; the last bucket is `[bN, inf)`.
    pub fn bucket_counts(&self, bounds: &[u64]) -> Vec<u64> {
        let mut counts = vec![0u64; bounds.len()];
        for v in self.hist.iter_recorded() {
            let value = v.value_iterated_to();
            let idx = bounds.partition_point(|&b| b <= value);
            if idx > 0 {
                counts[idx - 1] = counts[idx - 1].saturating_add(v.count_at_value());
            }
        }
        counts
    }

    pub fn percentiles(&self) -> Percentiles {
        if self.count == 0 {
            return Percentiles::default();
        }
        Percentiles {
            total: self.total.min(u128::from(u64::MAX)) as u64,
            mean: (self.total / u128::from(self.count)) as u64,
            p50: self.quantile(50.0),
            p90: self.quantile(90.0),
            p95: self.quantile(95.0),
            p99: self.quantile(99.0),
            p999: self.quantile(99.9),
            max: self.max,
            min: self.min,
            count: self.count,
        }
    }

    /// The underlying histogram, for renderers that walk it (hdrplot).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }
}

/// Percentile summary of one distribution, ns. JSON keys as Vegeta's `latencies`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub total: u64,
    pub mean: u64,
    #[serde(rename = "50th")]
    pub p50: u64,
    #[serde(rename = "90th")]
    pub p90: u64,
    #[serde(rename = "95th")]
    pub p95: u64,
    #[serde(rename = "99th")]
    pub p99: u64,
    #[serde(rename = "99.9th")]
    pub p999: u64,
    pub max: u64,
    pub min: u64,
    /// Samples behind these figures (requests, or token gaps for ITL).
    pub count: u64,
}
