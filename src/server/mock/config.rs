//! [`MockConfig`]: the checked flags of `--engine mock` (`--ttft`, `--itl`, `--tokens`,
//! `--mock-jitter`, `--mock-jitter-dist`, `--mock-seed`, `--mock-concurrency`), read from
//! [`ServerOptions`], and [`MockFlagError`], which names the flag, its limit and the fix.
//! Must not start anything: `mock/mod.rs` runs what this checks.

use std::time::Duration;

use super::timing::{Jitter, Timing};
use crate::server::ServerOptions;

pub const DEFAULT_TTFT: &str = "50ms";
pub const DEFAULT_ITL: &str = "20ms";
pub const DEFAULT_TOKENS: usize = 100;
pub const DEFAULT_JITTER_DIST: &str = "uniform";
/// Past an hour a delay tests nothing but the client's timeout.
const MAX_DELAY: Duration = Duration::from_secs(3600);

/// A mock flag with a value the mock cannot use, or one given to another engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MockFlagError {
    #[error(
        "{flag} `{value}` is not a duration: pass a length such as 50ms or 1.5ms (units ns, us, ms, s)"
    )]
    Duration { flag: &'static str, value: String },
    #[error("{flag} `{value}` is over the limit of 1h: pass a shorter delay")]
    TooLong { flag: &'static str, value: String },
    #[error("{flag} must be at least 1: raise it")]
    Zero { flag: &'static str },
    #[error(
        "--tokens ({tokens}) must be less than --max-total-tokens ({total}): a prompt needs a token too; lower --tokens or raise --max-total-tokens"
    )]
    TokensOverTotal { tokens: usize, total: usize },
    #[error(
        "--mock-jitter `{0}` is not a percentage from 0% to 100%: pass e.g. 10% (each delay then varies by up to 10%)"
    )]
    Jitter(String),
    #[error("--mock-jitter-dist `{0}` is unknown: use uniform or normal")]
    JitterDist(String),
    #[error(
        "{flag} applies to --engine mock only (the engine here is `{engine}`): add --engine mock or drop {flag}"
    )]
    NotMock { flag: &'static str, engine: String },
}

/// The mock's checked settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MockConfig {
    pub timing: Timing,
    /// At most this many requests generate at once; the rest wait in arrival order.
    /// `None`: no limit but --max-concurrent-requests.
    pub concurrency: Option<usize>,
}

impl MockConfig {
    /// The mock's settings when `--engine mock`; otherwise checks that no mock flag was given.
    pub fn from_options(opts: &ServerOptions) -> Result<Option<Self>, MockFlagError> {
        if opts.engine() != "mock" {
            if let Some(flag) = given_mock_flag(opts) {
                return Err(MockFlagError::NotMock {
                    flag,
                    engine: opts.engine().to_string(),
                });
            }
            return Ok(None);
        }
        let ttft = delay("--ttft", opts.ttft())?;
        let itl = delay("--itl", opts.itl())?;
        let tokens = opts.tokens();
        if tokens == 0 {
            return Err(MockFlagError::Zero { flag: "--tokens" });
        }
        if opts.mock_concurrency == Some(0) {
            return Err(MockFlagError::Zero {
                flag: "--mock-concurrency",
            });
        }
        let fraction = opts.mock_jitter.as_deref().map(percent).transpose()?;
        let normal = match opts.mock_jitter_dist() {
            "uniform" => false,
            "normal" => true,
            other => return Err(MockFlagError::JitterDist(other.to_string())),
        };
        let jitter = fraction.filter(|&f| f > 0.0).map(|f| {
            if normal {
                Jitter::Normal(f)
            } else {
                Jitter::Uniform(f)
            }
        });
        Ok(Some(Self {
            timing: Timing {
                ttft,
                itl,
                tokens,
                jitter,
                seed: opts.mock_seed(),
            },
            concurrency: opts.mock_concurrency,
        }))
    }

    /// `--tokens` must leave room for a prompt within `max_total_tokens`.
    pub fn check_total(&self, max_total_tokens: usize) -> Result<(), MockFlagError> {
        if self.timing.tokens >= max_total_tokens {
            return Err(MockFlagError::TokensOverTotal {
                tokens: self.timing.tokens,
                total: max_total_tokens,
            });
        }
        Ok(())
    }

    /// `ttft 50ms, itl 20ms, 100 tokens`, for the start-up line.
    pub fn describe(&self) -> String {
        let t = &self.timing;
        let mut s = format!(
            "ttft {:?}, itl {:?}, {} tokens unless the request says",
            t.ttft, t.itl, t.tokens
        );
        match t.jitter {
            Some(Jitter::Uniform(f)) => s.push_str(&format!(", uniform jitter {}%", f * 100.0)),
            Some(Jitter::Normal(f)) => s.push_str(&format!(", normal jitter {}%", f * 100.0)),
            None => {}
        }
        if let Some(n) = self.concurrency {
            s.push_str(&format!(
                ", {n} at once (capacity {:.1} req/s)",
                t.capacity(n)
            ));
        }
        s
    }
}

/// The first mock flag set in `opts`, by its command-line name.
fn given_mock_flag(opts: &ServerOptions) -> Option<&'static str> {
    [
        (opts.ttft.is_some(), "--ttft"),
        (opts.itl.is_some(), "--itl"),
        (opts.tokens.is_some(), "--tokens"),
        (opts.mock_jitter.is_some(), "--mock-jitter"),
        (opts.mock_jitter_dist.is_some(), "--mock-jitter-dist"),
        (opts.mock_seed.is_some(), "--mock-seed"),
        (opts.mock_concurrency.is_some(), "--mock-concurrency"),
    ]
    .into_iter()
    .find_map(|(set, flag)| set.then_some(flag))
}

fn delay(flag: &'static str, value: &str) -> Result<Duration, MockFlagError> {
    let d = crate::pacer::parse_duration(value).map_err(|_| MockFlagError::Duration {
        flag,
        value: value.to_string(),
    })?;
    if d > MAX_DELAY {
        return Err(MockFlagError::TooLong {
            flag,
            value: value.to_string(),
        });
    }
    Ok(d)
}

/// `10%` (or `10`) as 0.10.
fn percent(value: &str) -> Result<f64, MockFlagError> {
    let bad = || MockFlagError::Jitter(value.to_string());
    let number = value.trim().trim_end_matches('%');
    let p: f64 = number.trim().parse().map_err(|_| bad())?;
    // Written so NaN fails too.
    if !(0.0..=100.0).contains(&p) {
        return Err(bad());
    }
    Ok(p / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock(f: impl FnOnce(&mut ServerOptions)) -> Result<Option<MockConfig>, String> {
        let mut o = ServerOptions {
            engine: Some("mock".to_string()),
            ..ServerOptions::default()
        };
        f(&mut o);
        MockConfig::from_options(&o).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_a_full_set() {
        let m = mock(|_| {}).unwrap().unwrap();
        let t = m.timing;
        assert_eq!(
            (t.ttft, t.itl, t.tokens, t.jitter, m.concurrency),
            (
                Duration::from_millis(50),
                Duration::from_millis(20),
                100,
                None,
                None
            )
        );
        let m = mock(|o| {
            o.ttft = Some("1.5ms".into());
            o.itl = Some("0".into());
            o.tokens = Some(3);
            o.mock_jitter = Some("10%".into());
            o.mock_jitter_dist = Some("normal".into());
            o.mock_concurrency = Some(2);
        })
        .unwrap()
        .unwrap();
        assert_eq!(m.timing.ttft, Duration::from_micros(1500));
        assert_eq!(m.timing.jitter, Some(Jitter::Normal(0.1)));
        assert!(m.describe().contains("2 at once"), "{}", m.describe());
    }

    /// A change to the options, and the start of the error it must give.
    type Case = (Box<dyn FnOnce(&mut ServerOptions)>, &'static str);

    #[test]
    fn bad_values_name_the_flag() {
        let cases: Vec<Case> = vec![
            (
                Box::new(|o| o.ttft = Some("-1".into())),
                "--ttft `-1` is not a duration",
            ),
            (
                Box::new(|o| o.itl = Some("2h".into())),
                "--itl `2h` is over the limit of 1h",
            ),
            (
                Box::new(|o| o.tokens = Some(0)),
                "--tokens must be at least 1",
            ),
            (
                Box::new(|o| o.mock_concurrency = Some(0)),
                "--mock-concurrency must be at least 1",
            ),
            (
                Box::new(|o| o.mock_jitter = Some("150%".into())),
                "--mock-jitter `150%` is not a percentage from 0% to 100%",
            ),
            (
                Box::new(|o| o.mock_jitter_dist = Some("pareto".into())),
                "--mock-jitter-dist `pareto` is unknown",
            ),
        ];
        for (set, want) in cases {
            let err = mock(set).unwrap_err();
            assert!(err.starts_with(want), "{err}");
        }
    }

    #[test]
    fn mock_flags_with_another_engine_are_refused() {
        let o = ServerOptions {
            tokens: Some(5),
            ..ServerOptions::default()
        };
        assert_eq!(
            MockConfig::from_options(&o).unwrap_err().to_string(),
            "--tokens applies to --engine mock only (the engine here is `continuous`): add --engine mock or drop --tokens"
        );
        assert_eq!(
            MockConfig::from_options(&ServerOptions::default()),
            Ok(None)
        );
    }
}
