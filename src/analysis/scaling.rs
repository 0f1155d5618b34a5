//! Whether a closed-loop step still scales: did adding users buy throughput, or only waiting?
//!
//! A closed loop of N users has no arrival rate to keep pace with; what it shows is how the
//! target shares N requests in flight between throughput X and latency R. Little's law holds
//! for any stable system: N = X x R. Going from N1 to N2 users (ratio b = N2/N1), the ratios
//! of throughput (a = X2/X1) and latency (b / a) multiply to b. A level **scales** while more of
//! the added users became throughput than waiting, a > b / a, that is a > sqrt(b); when the
//! throughput gain falls to sqrt(b) or below, latency now grows faster than throughput: the
//! knee of the throughput-latency curve, past which users only queue.
//!
//! Noise: a level's throughput is its successes over the step's span. N users each sending back
//! to back are N renewal processes; the count of a superposition of renewals has, to first
//! order, a relative variance of cv^2 / n (cv: the coefficient of variation of one request's
//! latency, n: successes), so ln X has a standard error of cv / sqrt(n), Poisson's 1 / sqrt(n)
//! when latencies are exponential and far less when requests take about the same time. The
//! call is made with 95% confidence on the log gain: above the bound by 1.96 standard errors
//! scales, below it by as much does not, and in between the requests cannot tell.
//! `scenarios/README.md` has the rule beside the rate rule. Pure: numbers in, a call out.

use serde::Serialize;

/// The 95% normal quantile.
const Z95: f64 = 1.96;

/// One closed-loop level: its users, its throughput and what that throughput's noise depends on.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Level {
    pub users: u32,
    /// Successful requests per second over the step.
    pub throughput_rps: f64,
    pub successes: u64,
    /// Standard deviation over mean of successful requests' latency.
    pub latency_cv: f64,
}

/// What the step's throughput says against the level below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalingCall {
    Scales,
    Plateau,
    Noisy,
}

/// The comparison of one level with the level below it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scaling {
    pub below_users: u32,
    pub users: u32,
    /// Throughput ratio `a`, this level over the one below.
    pub gain: f64,
    /// The gain scaling needs: `sqrt(users ratio)`.
    pub needed: f64,
    /// The 95% interval of the gain, as factors (`gain / spread ..= gain x spread`).
    pub spread: f64,
    pub call: ScalingCall,
}

/// Compares `here` with `below` (fewer users). None when there is nothing to compare: the
/// level below had no successes or no more users.
pub fn compare(below: &Level, here: &Level) -> Option<Scaling> {
    if below.successes == 0
        || here.successes == 0
        || below.throughput_rps <= 0.0
        || here.throughput_rps <= 0.0
        || here.users <= below.users
    {
        return None;
    }
    let gain = here.throughput_rps / below.throughput_rps;
    let users_ratio = f64::from(here.users) / f64::from(below.users);
    let needed = users_ratio.sqrt();
    let var = |l: &Level| l.latency_cv * l.latency_cv / l.successes as f64;
    let margin = Z95 * (var(below) + var(here)).sqrt();
    let (g, t) = (gain.ln(), needed.ln());
    let call = if g - margin > t {
        ScalingCall::Scales
    } else if g + margin <= t {
        ScalingCall::Plateau
    } else {
        ScalingCall::Noisy
    };
    Some(Scaling {
        below_users: below.users,
        users: here.users,
        gain,
        needed,
        spread: margin.exp(),
        call,
    })
}

/// The level several repeats of one concurrency make together: throughput averaged,
/// successes summed (they all count towards the noise), cv averaged.
pub fn pooled(repeats: &[Level]) -> Option<Level> {
    let first = repeats.first()?;
    let n = repeats.len() as f64;
    Some(Level {
        users: first.users,
        throughput_rps: repeats.iter().map(|l| l.throughput_rps).sum::<f64>() / n,
        successes: repeats.iter().map(|l| l.successes).sum(),
        latency_cv: repeats.iter().map(|l| l.latency_cv).sum::<f64>() / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(users: u32, throughput_rps: f64, successes: u64, latency_cv: f64) -> Level {
        Level {
            users,
            throughput_rps,
            successes,
            latency_cv,
        }
    }

    #[test]
    fn below_a_concurrency_limit_throughput_follows_the_users() {
        // A server of 4 slots of 100 ms: 10 req/s per user up to 4, then flat at 40.
        let s = compare(&level(2, 20.0, 40, 0.02), &level(4, 40.0, 80, 0.02)).unwrap();
        assert_eq!(s.call, ScalingCall::Scales);
        assert!((s.gain - 2.0).abs() < 1e-12 && (s.needed - 2f64.sqrt()).abs() < 1e-12);
        let s = compare(&level(4, 40.0, 80, 0.02), &level(8, 40.4, 81, 0.03)).unwrap();
        assert_eq!(s.call, ScalingCall::Plateau);
    }

    #[test]
    fn the_bound_is_the_square_root_of_the_users_ratio() {
        // x4 users need x2 throughput. Exactly on the bound no count can tell the side; a
        // little either side, a million precise requests can.
        let call = |x: f64| {
            compare(
                &level(4, 40.0, 1_000_000, 0.01),
                &level(16, x, 1_000_000, 0.01),
            )
            .unwrap()
            .call
        };
        assert_eq!(call(80.0), ScalingCall::Noisy);
        assert_eq!(call(79.0), ScalingCall::Plateau);
        assert_eq!(call(81.0), ScalingCall::Scales);
        // The same gain of x1.5 scales for x2 users (needs x1.41) but not for x4 (needs x2).
        let two = compare(&level(8, 100.0, 5000, 0.1), &level(16, 150.0, 5000, 0.1)).unwrap();
        let four = compare(&level(8, 100.0, 5000, 0.1), &level(32, 150.0, 5000, 0.1)).unwrap();
        assert_eq!(
            (two.call, four.call),
            (ScalingCall::Scales, ScalingCall::Plateau)
        );
    }

    #[test]
    fn a_short_noisy_step_cannot_tell() {
        // x1.6 for x2 users looks like scaling, but 12 requests of exponential-like latency
        // put the gain anywhere from about x0.9 to x2.8.
        let s = compare(&level(1, 5.0, 6, 1.0), &level(2, 8.0, 12, 1.0)).unwrap();
        assert_eq!(s.call, ScalingCall::Noisy);
        assert!(s.spread > 1.5, "{s:?}");
        // The same figures from a thousand times more requests decide.
        let s = compare(&level(1, 5.0, 6000, 1.0), &level(2, 8.0, 12000, 1.0)).unwrap();
        assert_eq!(s.call, ScalingCall::Scales);
    }

    #[test]
    fn nothing_to_compare_without_successes_below() {
        assert!(compare(&level(1, 0.0, 0, 0.0), &level(2, 8.0, 12, 0.1)).is_none());
        assert!(compare(&level(2, 8.0, 12, 0.1), &level(2, 8.0, 12, 0.1)).is_none());
        let p = pooled(&[level(4, 40.0, 80, 0.1), level(4, 44.0, 88, 0.3)]).unwrap();
        assert_eq!((p.users, p.successes), (4, 168));
        assert!((p.throughput_rps - 42.0).abs() < 1e-12 && (p.latency_cv - 0.2).abs() < 1e-12);
    }
}
