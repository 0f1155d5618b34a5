//! The pricing catalog (`scenarios/pricing.toml`, compiled in, plus `--pricing FILE`) and
//! resolving a price from an instance name or an hourly figure, with the nearest names
//! suggested for a typo. The only I/O of `cost`: reading catalog files.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::gpu::Suggestion;

/// The catalog shipped with rpload, compiled in so `--instance` works from any directory.
pub const BUILTIN_CATALOG: &str = include_str!("../../scenarios/pricing.toml");

/// Region preferred when a name is listed in several regions and none is asked for.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Errors of the pricing catalog and the cost arguments; callers branch on `UnknownInstance`.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("reading pricing catalog {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("pricing catalog {path}: {message}")]
    Parse { path: String, message: String },
    /// `--instance` names nothing in the catalog; `suggestion` says what it might have meant.
    #[error("{}", super::gpu::describe_unknown(name, region.as_deref(), suggestion))]
    UnknownInstance {
        name: String,
        region: Option<String>,
        suggestion: Suggestion,
    },
    /// `--gpu` matches no instance's GPU.
    #[error(
        "--gpu: no instance in the catalog has a `{query}` GPU; known models: {}\n\
         (pass one of them, or add instances with --pricing FILE)",
        models.join(", ")
    )]
    UnknownGpu { query: String, models: Vec<String> },
    #[error("{field} must be a positive finite number, got {value}")]
    NotPositive { field: &'static str, value: f64 },
    #[error("pass either --instance or --price-per-hour, not both")]
    BothPrices,
    #[error("no price: pass --instance NAME (see scenarios/pricing.toml) or --price-per-hour USD")]
    NoPrice,
}

/// One priced instance type in one region at one date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub name: String,
    pub provider: String,
    pub region: String,
    pub gpu: String,
    pub gpu_count: u32,
    pub usd_per_hour: f64,
    pub source: String,
    pub date: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    instance: Vec<Instance>,
}

/// A list of priced instances; later-added entries win over earlier ones with the same
/// name, region and date.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    instances: Vec<Instance>,
}

impl Catalog {
    /// The catalog compiled into the binary.
    pub fn builtin() -> Self {
        Self::parse(BUILTIN_CATALOG, "scenarios/pricing.toml (built in)")
            .expect("the built-in pricing catalog parses (checked by a unit test)")
    }

    /// The built-in catalog extended by the user's files, in order (later files win).
    pub fn with_files(files: &[impl AsRef<Path>]) -> Result<Self, CostError> {
        let mut catalog = Self::builtin();
        for file in files {
            catalog.extend(Self::load(file.as_ref())?);
        }
        Ok(catalog)
    }

    /// Reads one catalog file.
    pub fn load(path: &Path) -> Result<Self, CostError> {
        let text = std::fs::read_to_string(path).map_err(|source| CostError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses catalog text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CostError> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| CostError::Parse {
            path: origin.to_string(),
            message: crate::toml_error::describe(&e, text),
        })?;
        for inst in &file.instance {
            if !(inst.usd_per_hour.is_finite() && inst.usd_per_hour > 0.0) {
                return Err(CostError::Parse {
                    path: origin.to_string(),
                    message: format!(
                        "instance `{}`: usd_per_hour must be positive, got {}",
                        inst.name, inst.usd_per_hour
                    ),
                });
            }
        }
        Ok(Self {
            instances: file.instance,
        })
    }

    /// Adds `other`'s entries; an entry with the same name, region and date replaces ours.
    pub fn extend(&mut self, other: Catalog) {
        for inst in other.instances {
            self.instances.retain(|mine| {
                !(mine.name == inst.name && mine.region == inst.region && mine.date == inst.date)
            });
            self.instances.push(inst);
        }
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// Finds `name` or `name@region`. Without a region: us-east-1 if listed, else the first
    /// region listed; within a region the latest `date` wins (user entries win ties).
    pub fn lookup(&self, spec: &str) -> Result<&Instance, CostError> {
        let (name, region) = match spec.split_once('@') {
            Some((n, r)) => (n.trim(), Some(r.trim())),
            None => (spec.trim(), None),
        };
        let named: Vec<&Instance> = self.instances.iter().filter(|i| i.name == name).collect();
        let region = match region {
            Some(r) => Some(r),
            None if named.iter().any(|i| i.region == DEFAULT_REGION) => Some(DEFAULT_REGION),
            None => named.first().map(|i| i.region.as_str()),
        };
        let best = named
            .iter()
            .filter(|i| Some(i.region.as_str()) == region)
            .enumerate()
            .max_by_key(|(pos, i)| (date_key(&i.date), *pos))
            .map(|(_, i)| *i);
        best.ok_or_else(|| CostError::UnknownInstance {
            name: name.to_string(),
            region: if named.is_empty() {
                None
            } else {
                region.map(str::to_string)
            },
            suggestion: if named.is_empty() {
                self.suggest(name, 5)
            } else {
                let mut regions: Vec<String> = named
                    .iter()
                    .map(|i| format!("{}@{}", i.name, i.region))
                    .collect();
                regions.dedup();
                Suggestion::Regions(regions)
            },
        })
    }

    /// The `n` distinct names closest to `name` by edit distance (ties alphabetical).
    pub fn nearest(&self, name: &str, n: usize) -> Vec<String> {
        let mut names: Vec<&str> = self.instances.iter().map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let lower = name.to_ascii_lowercase();
        let mut scored: Vec<(usize, &str)> = names
            .into_iter()
            .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(n)
            .map(|(_, c)| c.to_string())
            .collect()
    }
}

/// Orders `date` strings: a leading `YYYY[-MM[-DD]]` sorts by value; anything else
/// ("before 2025-06", "unrecorded") sorts before every dated entry.
fn date_key(date: &str) -> (u32, u32, u32) {
    let mut parts = date.trim().splitn(3, '-').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    match parts.next().flatten() {
        Some(y) if y >= 1000 => {
            let m = parts.next().flatten().unwrap_or(0);
            let d = parts.next().flatten().unwrap_or(0);
            (y, m, d)
        }
        _ => (0, 0, 0),
    }
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The price a run is costed at: an hourly figure and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// Catalog name (`g5.4xlarge`) or `custom` for `--price-per-hour`.
    pub instance: String,
    pub region: Option<String>,
    pub usd_per_hour: f64,
}

impl Price {
    /// Resolves `--instance` / `--price-per-hour` (exactly one of them) against `catalog`.
    pub fn resolve(
        catalog: &Catalog,
        instance: Option<&str>,
        price_per_hour: Option<f64>,
    ) -> Result<Self, CostError> {
        match (instance, price_per_hour) {
            (Some(_), Some(_)) => Err(CostError::BothPrices),
            (None, None) => Err(CostError::NoPrice),
            (None, Some(p)) => Ok(Price {
                instance: "custom".into(),
                region: None,
                usd_per_hour: positive("price per hour", p)?,
            }),
            (Some(name), None) => {
                let inst = catalog.lookup(name)?;
                Ok(Price {
                    instance: inst.name.clone(),
                    region: Some(inst.region.clone()),
                    usd_per_hour: inst.usd_per_hour,
                })
            }
        }
    }
}

impl Price {
    /// `--instance` / `--price-per-hour` as `cost` and `report --sweep` take them: both
    /// together price the named instance at the given figure (a quote the catalog does not
    /// have), one alone resolves as [`Price::resolve`].
    pub fn from_flags(
        catalog: &Catalog,
        instance: Option<&str>,
        price_per_hour: Option<f64>,
    ) -> Result<Self, CostError> {
        match (instance, price_per_hour) {
            (Some(name), Some(p)) => Ok(Price {
                instance: name.to_string(),
                region: None,
                usd_per_hour: positive("price per hour", p)?,
            }),
            (inst, p) => Self::resolve(catalog, inst, p),
        }
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.region {
            Some(r) => write!(f, "{} ({r}, {} USD/h)", self.instance, self.usd_per_hour),
            None if self.instance == "custom" => write!(f, "{} USD/h", self.usd_per_hour),
            None => write!(f, "{} at {} USD/h", self.instance, self.usd_per_hour),
        }
    }
}

fn positive(field: &'static str, value: f64) -> Result<f64, CostError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(CostError::NotPositive { field, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(date_key("2025-06"), (2025, 6, 0));
        assert_eq!(date_key("before 2025-06"), (0, 0, 0));
        assert!(date_key("2023-07") < date_key("2025-06"));
    }

    #[test]
    fn builtin_catalog_parses_and_has_the_seed_instance() {
        let c = Catalog::builtin();
        let g5 = c.lookup("g5.4xlarge").unwrap();
        assert_eq!(g5.usd_per_hour, 1.624);
        assert_eq!(g5.region, "us-east-1");
        assert_eq!(
            c.lookup("g5.4xlarge@eu-west-1").unwrap().usd_per_hour,
            1.81287
        );
        // Only region listed is picked without asking.
        assert_eq!(c.lookup("g5.16xlarge").unwrap().region, "us-west-2");
        // Latest date wins: the post-cut P5 price.
        assert_eq!(c.lookup("p5.48xlarge").unwrap().usd_per_hour, 55.04);
        for i in c.instances() {
            assert!(
                !i.source.is_empty() && !i.date.is_empty() && i.gpu_count > 0,
                "{i:?}"
            );
        }
    }

    #[test]
    fn unknown_instance_lists_nearest_names() {
        let err = Catalog::builtin().lookup("g5.4xlarg").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("unknown instance `g5.4xlarg`"), "{msg}");
        match err {
            CostError::UnknownInstance {
                suggestion: Suggestion::Nearest(nearest),
                ..
            } => assert_eq!(nearest[0], "g5.4xlarge"),
            other => panic!("{other:?}"),
        }
        let err = Catalog::builtin().lookup("g5.4xlarge@mars-1").unwrap_err();
        assert!(err.to_string().contains("g5.4xlarge@eu-west-1"), "{err}");
    }

    #[test]
    fn user_catalog_overrides_and_adds() {
        let mut c = Catalog::builtin();
        let mine = Catalog::parse(
            r#"
[[instance]]
name = "g5.4xlarge"
provider = "aws"
region = "us-east-1"
gpu = "A10G 24GB"
gpu_count = 1
usd_per_hour = 1.0
source = "my reserved price"
date = "2023-06"

[[instance]]
name = "my-box"
provider = "onprem"
region = "basement"
gpu = "RTX 4090"
gpu_count = 2
usd_per_hour = 0.4
source = "electricity + amortisation"
date = "2025-01"
"#,
            "mine.toml",
        )
        .unwrap();
        c.extend(mine);
        assert_eq!(c.lookup("g5.4xlarge").unwrap().usd_per_hour, 1.0);
        assert_eq!(c.lookup("my-box").unwrap().usd_per_hour, 0.4);
    }

    #[test]
    fn catalog_rejects_unknown_keys_with_line() {
        let err =
            Catalog::parse("[[instance]]\nname = \"x\"\nprice = 1\n", "bad.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bad.toml") && msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn price_resolution_errors() {
        let c = Catalog::builtin();
        assert!(matches!(
            Price::resolve(&c, None, None),
            Err(CostError::NoPrice)
        ));
        assert!(matches!(
            Price::resolve(&c, Some("g5.4xlarge"), Some(1.0)),
            Err(CostError::BothPrices)
        ));
        assert!(matches!(
            Price::resolve(&c, None, Some(-1.0)),
            Err(CostError::NotPositive { .. })
        ));
        assert_eq!(
            Price::resolve(&c, None, Some(2.5)).unwrap().usd_per_hour,
            2.5
        );
    }
}
