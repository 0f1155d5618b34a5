//! [`Lengths`]: the distribution a generated request's token length is drawn from (a normal,
//! clipped to `min..=max`; fixed when the spread is 0), and its checks. Pure: the caller owns
//! the seeded generator, so one seed gives one sequence of lengths.

use rand::Rng;
use rand_distr::{Distribution, Normal};

/// A normal distribution of token counts clipped to `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lengths {
    pub mean: f64,
    pub stdev: f64,
    pub min: u32,
    pub max: u32,
}

/// Why a length distribution cannot be drawn from; `flag` is the option family
/// (`input-tokens`, `output-tokens`, `turns`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LengthsError {
    #[error("--{flag} {mean}: must be at least 1")]
    Mean { flag: &'static str, mean: f64 },
    #[error("--{flag}-stdev {stdev}: must be a number at least 0 (0 sends exactly --{flag})")]
    Stdev { flag: &'static str, stdev: f64 },
    #[error(
        "--{flag} {mean} lies outside --{flag}-min {min} ..= --{flag}-max {max}; move the mean inside the bounds or widen them"
    )]
    Bounds {
        flag: &'static str,
        mean: f64,
        min: u32,
        max: u32,
    },
}

impl Lengths {
    /// Checks `mean`, `stdev` and the bounds (`min` defaults to 1, `max` to no bound).
    pub fn new(
        flag: &'static str,
        mean: f64,
        stdev: Option<f64>,
        min: Option<u32>,
        max: Option<u32>,
    ) -> Result<Self, LengthsError> {
        if !(mean.is_finite() && mean >= 1.0) {
            return Err(LengthsError::Mean { flag, mean });
        }
        let stdev = stdev.unwrap_or(0.0);
        if !(stdev.is_finite() && stdev >= 0.0) {
            return Err(LengthsError::Stdev { flag, stdev });
        }
        let (min, max) = (min.unwrap_or(1).max(1), max.unwrap_or(u32::MAX));
        if mean < f64::from(min) || mean > f64::from(max) {
            return Err(LengthsError::Bounds {
                flag,
                mean,
                min,
                max,
            });
        }
        Ok(Self {
            mean,
            stdev,
            min,
            max,
        })
    }

    /// Exactly `n` every time.
    pub fn fixed(n: u32) -> Self {
        Self {
            mean: f64::from(n),
            stdev: 0.0,
            min: n,
            max: n,
        }
    }

    /// One length: rounded and clipped, so a wide spread piles at the bounds rather than
    /// moving the mean of the lengths inside them.
    pub fn draw(&self, rng: &mut impl Rng) -> u32 {
        let x = if self.stdev == 0.0 {
            self.mean
        } else {
            Normal::new(self.mean, self.stdev)
                .expect("checked in new")
                .sample(rng)
        };
        (x.round().clamp(f64::from(self.min), f64::from(self.max))) as u32
    }

    pub fn is_fixed(&self) -> bool {
        self.stdev == 0.0 || self.min == self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn draws_match_the_mean_and_spread_and_stay_in_bounds() {
        let l = Lengths::new("input-tokens", 200.0, Some(40.0), Some(50), Some(400)).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let xs: Vec<f64> = (0..20_000).map(|_| f64::from(l.draw(&mut rng))).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!((mean - 200.0).abs() < 1.5, "{mean}");
        assert!((var.sqrt() - 40.0).abs() < 1.5, "{}", var.sqrt());
        assert!(xs.iter().all(|&x| (50.0..=400.0).contains(&x)));
        let tight = Lengths::new("output-tokens", 10.0, Some(50.0), Some(8), Some(12)).unwrap();
        let ys: Vec<u32> = (0..1000).map(|_| tight.draw(&mut rng)).collect();
        assert!(ys.iter().all(|y| (8..=12).contains(y)) && ys.contains(&8) && ys.contains(&12));
    }

    #[test]
    fn zero_spread_is_fixed_and_one_seed_one_sequence() {
        let l = Lengths::new("output-tokens", 64.0, None, None, None).unwrap();
        assert!(l.is_fixed());
        let mut rng = StdRng::seed_from_u64(1);
        assert!((0..100).all(|_| l.draw(&mut rng) == 64));
        let s = Lengths::new("input-tokens", 100.0, Some(30.0), None, None).unwrap();
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50).map(|_| s.draw(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn bad_distributions_name_the_flag_and_the_fix() {
        let e = |r: Result<Lengths, LengthsError>| r.unwrap_err().to_string();
        assert_eq!(
            e(Lengths::new("input-tokens", 0.0, None, None, None)),
            "--input-tokens 0: must be at least 1"
        );
        assert!(
            e(Lengths::new("output-tokens", 5.0, Some(-1.0), None, None))
                .starts_with("--output-tokens-stdev -1: must be")
        );
        let out = e(Lengths::new(
            "input-tokens",
            500.0,
            None,
            Some(10),
            Some(100),
        ));
        assert!(
            out.contains(
                "--input-tokens 500 lies outside --input-tokens-min 10 ..= --input-tokens-max 100"
            ),
            "{out}"
        );
    }
}
