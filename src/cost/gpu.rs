//! Finding catalog instances by GPU model (`cost --list --gpu h100`) and the suggestions an
//! unknown `--instance` gets: the instances carrying that GPU when the name is a GPU model
//! (people type `--instance h100`), else the nearest names by edit distance. Pure matching
//! over the catalog's `gpu` field ("H100 80GB"); no I/O.

use super::catalog::{Catalog, CostError, Instance};

/// The words of a GPU description or query, lowercased, without a count prefix: "8x H100
/// 80GB" and "h100-80gb" both give `["h100", "80gb"]`. Counts are dropped because the
/// catalog keeps them in `gpu_count`, and a user who types "8x h100" means the model.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '-' | '_' | ',' | '/'))
        .filter(|w| !w.is_empty() && !is_count(w))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// `8x`, `x8`, `1x`: a GPU count written next to a model.
fn is_count(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    let digits = w.trim_start_matches('x').trim_end_matches('x');
    digits.len() + 1 == w.len() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `query` names the GPU described by `gpu`: every word of the query is a whole word
/// of the description, case-insensitive. `h100` matches "H100 80GB"; `a100 80gb` matches
/// "A100 80GB" but not "A100 40GB"; `h10` matches nothing (a prefix is not a model).
pub fn matches_gpu(query: &str, gpu: &str) -> bool {
    let q = words(query);
    let g = words(gpu);
    !q.is_empty() && q.iter().all(|w| g.contains(w))
}

/// A memory size written with a model (`80GB`, `24gb`): not part of the model's name.
fn is_memory(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    w.strip_suffix("gb")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The model of a GPU description, without count or memory: "H100 80GB" -> "H100",
/// "8x H100" -> "H100", "RTX 4090" -> "RTX 4090".
pub fn gpu_model(gpu: &str) -> String {
    let kept: Vec<&str> = gpu
        .split_whitespace()
        .filter(|w| !is_count(w) && !is_memory(w))
        .collect();
    if kept.is_empty() {
        gpu.trim().to_string()
    } else {
        kept.join(" ")
    }
}

impl Catalog {
    /// Every entry (each region and date) whose GPU matches `query`; an error listing the
    /// known models when none does.
    pub fn with_gpu(&self, query: &str) -> Result<Vec<&Instance>, CostError> {
        let found: Vec<&Instance> = self
            .instances()
            .iter()
            .filter(|i| matches_gpu(query, &i.gpu))
            .collect();
        if found.is_empty() {
            return Err(CostError::UnknownGpu {
                query: query.to_string(),
                models: self.gpu_models(),
            });
        }
        Ok(found)
    }

    /// The distinct GPU models of the catalog, sorted ("A100", "H100", ...).
    pub fn gpu_models(&self) -> Vec<String> {
        let mut models: Vec<String> = self.instances().iter().map(|i| gpu_model(&i.gpu)).collect();
        models.sort_unstable();
        models.dedup();
        models
    }

    /// What to offer for a name that is no instance: the instances carrying that GPU, each
    /// once at the price `--instance NAME` would pick, if `name` is a GPU model; else the `n`
    /// nearest names by edit distance.
    pub fn suggest(&self, name: &str, n: usize) -> Suggestion {
        let mut names: Vec<&str> = self
            .instances()
            .iter()
            .filter(|i| matches_gpu(name, &i.gpu))
            .map(|i| i.name.as_str())
            .collect();
        if names.is_empty() {
            return Suggestion::Nearest(self.nearest(name, n));
        }
        names.sort_unstable();
        names.dedup();
        let mut picked: Vec<&Instance> = names
            .into_iter()
            .filter_map(|n| self.lookup(n).ok())
            .collect();
        // Cheapest first: the one a user most likely wants to try is at the front.
        picked.sort_by(|a, b| {
            a.usd_per_hour
                .total_cmp(&b.usd_per_hour)
                .then_with(|| a.name.cmp(&b.name))
        });
        let model = picked
            .first()
            .map_or_else(|| name.to_string(), |i| gpu_model(&i.gpu));
        Suggestion::Gpu {
            model,
            instances: picked
                .iter()
                .map(|i| {
                    format!(
                        "{} ({}x {}, {} USD/h)",
                        i.name,
                        i.gpu_count,
                        gpu_model(&i.gpu),
                        i.usd_per_hour
                    )
                })
                .collect(),
        }
    }
}

/// What an unknown `--instance` is offered instead.
#[derive(Debug, Clone, PartialEq)]
pub enum Suggestion {
    /// Names closest by edit distance (a typo).
    Nearest(Vec<String>),
    /// The name is listed, but not in the asked region: `NAME@REGION` of those it is in.
    Regions(Vec<String>),
    /// The name is a GPU model: the instances carrying it, described ("p5.48xlarge (8x
    /// H100, 55.04 USD/h)").
    Gpu {
        model: String,
        instances: Vec<String>,
    },
}

/// The message of [`CostError::UnknownInstance`].
pub(crate) fn describe_unknown(name: &str, region: Option<&str>, s: &Suggestion) -> String {
    match s {
        Suggestion::Gpu { model, instances } => format!(
            "no instance named `{name}`; instances with {model} GPUs: {}\n\
             (pass one of them with --instance, or see `rpload cost --list --gpu {}`)",
            instances.join(", "),
            shell_word(&name.to_ascii_lowercase())
        ),
        Suggestion::Nearest(v) | Suggestion::Regions(v) => format!(
            "unknown instance `{name}`{}; nearest in the catalog: {}\n\
             (add it with --pricing FILE, or pass --price-per-hour USD)",
            region
                .map(|r| format!(" in region `{r}`"))
                .unwrap_or_default(),
            v.join(", ")
        ),
    }
}

/// `word`, quoted for a shell when it has spaces.
fn shell_word(word: &str) -> String {
    if word.contains(char::is_whitespace) {
        format!("'{word}'")
    } else {
        word.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_queries_match_whole_words_case_insensitively() {
        assert!(matches_gpu("h100", "H100 80GB"));
        assert!(matches_gpu("H100", "8x H100"));
        assert!(matches_gpu("8x h100", "H100 80GB"));
        assert!(matches_gpu("a100-80gb", "A100 80GB"));
        assert!(matches_gpu("A100 80GB", "A100 80GB"));
        assert!(!matches_gpu("a100 80gb", "A100 40GB"));
        assert!(!matches_gpu("h10", "H100 80GB"));
        assert!(!matches_gpu("h100", "H200 141GB"));
        assert!(!matches_gpu("", "H100 80GB"));
        assert!(!matches_gpu("8x", "8x H100"));
        assert_eq!(gpu_model("H100 80GB"), "H100");
        assert_eq!(gpu_model("8x H100"), "H100");
        assert_eq!(gpu_model("RTX 4090"), "RTX 4090");
        assert!(is_memory("80GB") && !is_memory("gb") && !is_memory("L40S"));
        assert!(is_count("8x") && is_count("x8") && !is_count("x") && !is_count("h100"));
    }

    #[test]
    fn with_gpu_filters_and_lists_models_when_nothing_matches() {
        let c = Catalog::builtin();
        let h100 = c.with_gpu("h100").unwrap();
        assert!(h100.iter().any(|i| i.name == "p5.48xlarge"));
        assert!(h100.iter().any(|i| i.name == "p5.48xlarge-per-gpu"));
        assert!(h100.iter().all(|i| i.gpu.starts_with("H100")));
        let a10g = c.with_gpu("A10G").unwrap();
        assert!(
            a10g.iter()
                .any(|i| i.name == "g5.4xlarge" && i.region == "eu-west-1")
        );
        let err = c.with_gpu("b200").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("--gpu: no instance in the catalog has a `b200`"),
            "{msg}"
        );
        assert!(
            msg.contains("A100, A10G, H100, H200, L4, L40S, T4"),
            "{msg}"
        );
        match err {
            CostError::UnknownGpu { models, .. } => assert!(models.contains(&"H100".into())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_gpu_model_as_instance_suggests_its_instances_cheapest_first() {
        let c = Catalog::builtin();
        match c.suggest("h100", 5) {
            Suggestion::Gpu { model, instances } => {
                assert_eq!(model, "H100");
                assert_eq!(instances[0], "p5.48xlarge-per-gpu (1x H100, 6.88 USD/h)");
                // Each name once, at the price `--instance NAME` picks (the latest).
                assert!(
                    instances.contains(&"p5.48xlarge (8x H100, 55.04 USD/h)".to_string()),
                    "{instances:?}"
                );
                assert_eq!(
                    instances
                        .iter()
                        .filter(|i| i.starts_with("p5.48xlarge "))
                        .count(),
                    1
                );
            }
            other => panic!("{other:?}"),
        }
        match c.suggest("g5.4xlarg", 3) {
            Suggestion::Nearest(v) => assert_eq!(v[0], "g5.4xlarge"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_instance_messages() {
        let c = Catalog::builtin();
        let msg = c.lookup("H100").unwrap_err().to_string();
        assert!(
            msg.starts_with("no instance named `H100`; instances with H100 GPUs: p5.48xlarge-per-gpu (1x H100, 6.88 USD/h), "),
            "{msg}"
        );
        assert!(msg.contains("see `rpload cost --list --gpu h100`"), "{msg}");
        let msg = c.lookup("g5.4xlarg").unwrap_err().to_string();
        assert!(
            msg.starts_with("unknown instance `g5.4xlarg`; nearest in the catalog: g5.4xlarge"),
            "{msg}"
        );
        let msg = c.lookup("h100@mars-1").unwrap_err().to_string();
        assert!(msg.contains("instances with H100 GPUs"), "{msg}");
    }

    #[test]
    fn user_catalogs_are_searched_too() {
        let mut c = Catalog::builtin();
        c.extend(
            Catalog::parse(
                "[[instance]]\nname = \"my-box\"\nprovider = \"onprem\"\nregion = \"basement\"\n\
                 gpu = \"RTX 4090\"\ngpu_count = 2\nusd_per_hour = 0.4\nsource = \"mine\"\n\
                 date = \"2025-01\"\n",
                "mine.toml",
            )
            .unwrap(),
        );
        assert_eq!(c.with_gpu("rtx 4090").unwrap()[0].name, "my-box");
        match c.suggest("4090", 5) {
            Suggestion::Gpu { model, instances } => {
                assert_eq!(model, "RTX 4090");
                assert_eq!(
                    instances,
                    vec!["my-box (2x RTX 4090, 0.4 USD/h)".to_string()]
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
