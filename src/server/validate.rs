//! `RawRequest -> ValidRequest`: TGI's validation rules, order and messages (router
//! `validation.rs`), with every default resolved so the scheduler sees no `Option`s.
//! Inputs: the prompt text, the raw parameters of any route, the tokenizer and the limits.
//! Must not know HTTP status codes (`http` maps [`ValidationError`]) or scheduling.

use super::engine::TextTokenizer;
use super::engine::sampler::{FrequencyPenalty, SamplingParams};

/// Per-request limits (from the server config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_input_tokens: usize,
    pub max_total_tokens: usize,
    pub max_stop_sequences: usize,
    pub max_best_of: usize,
    pub max_top_n_tokens: u32,
}

/// Parameters as any route received them: TGI's `parameters`, read straight from its wire
/// type; the OpenAI and `/predict` routes map onto these.
pub use crate::wire::tgi::GenerationParameters as RawParams;

/// A checked request, ready for the scheduler.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRequest {
    pub input_ids: Vec<u32>,
    pub max_new_tokens: usize,
    pub stop: Vec<String>,
    pub ignore_eos: bool,
    pub sampling: SamplingParams,
    /// The client reads tokens as they come (SSE). Otherwise the scheduler sends them all with
    /// the end: one wake-up per request instead of one per token, which on a small CPU is
    /// time taken from the model thread.
    pub stream: bool,
}

/// TGI's messages, word for word where TGI has one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    #[error("`best_of` must be > 0 and <= {0}. Given: {1}")]
    BestOf(usize, usize),
    #[error("you must use sampling when `best_of` is > 1")]
    BestOfSampling,
    #[error("`seed` must not be set when `best_of` > 1")]
    BestOfSeed,
    #[error("`best_of` != 1 is not supported when streaming tokens")]
    BestOfStream,
    #[error("`best_of` > 1 is not supported by this server: use best_of 1")]
    BestOfUnsupported,
    #[error("`top_n_tokens` must be >= 0 and <= {0}. Given: {1}")]
    TopNTokens(u32, u32),
    #[error("`decoder_input_details` == true is not supported when streaming tokens")]
    PrefillDetailsStream,
    /// The engines gather logits for each sequence's last row only, so there are no prompt
    /// logprobs to return; an empty `prefill` would read as an answer.
    #[error(
        "`decoder_input_details` == true is not supported by this server (it does not compute prompt logprobs): leave it false"
    )]
    PrefillDetailsUnsupported,
    #[error("`temperature` must be strictly positive")]
    Temperature,
    #[error("`repetition_penalty` must be strictly positive")]
    RepetitionPenalty,
    #[error("`frequency_penalty` must be >= -2.0 and <= 2.0")]
    FrequencyPenalty,
    /// OpenAI's range; TGI has no `presence_penalty`.
    #[error("`presence_penalty` must be >= -2.0 and <= 2.0")]
    PresencePenalty,
    #[error("`top_p` must be > 0.0 and < 1.0")]
    TopP,
    #[error("`typical_p` must be > 0.0 and < 1.0")]
    TypicalP,
    #[error("`top_k` must be strictly positive")]
    TopK,
    #[error("`max_new_tokens` must be strictly positive")]
    NegativeMaxNewTokens,
    #[error("`truncate` must be strictly positive and less than {0}. Given: {1}")]
    Truncate(usize, usize),
    #[error("`stop` supports up to {0} stop sequences. Given: {1}")]
    StopSequence(usize, usize),
    #[error(
        "`stop` sequence {0} is empty: it would end every generation before its first token; remove it"
    )]
    EmptyStop(usize),
    #[error(
        "`inputs` is {bytes} bytes, over the {bound} that {tokens} tokens can hold (--max-input-tokens, at most {per_token} bytes a token): shorten the prompt or set `truncate`"
    )]
    InputBytes {
        bytes: usize,
        bound: usize,
        tokens: usize,
        per_token: usize,
    },
    #[error("`inputs` cannot be empty")]
    EmptyInput,
    #[error(
        "`inputs` tokens + `max_new_tokens` must be <= {0}. Given: {1} `inputs` tokens and {2} `max_new_tokens`"
    )]
    MaxTotalTokens(usize, usize, u32),
    #[error("`inputs` must have less than {0} tokens. Given: {1}")]
    InputLength(usize, usize),
    #[error("tokenizer error {0}")]
    Tokenizer(String),
}

/// What the route allows beyond the parameters themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteOptions {
    pub stream: bool,
    /// Used when `max_new_tokens` is not given (routes differ; see `http`).
    pub default_max_new_tokens: u32,
    /// Set by the OpenAI routes: their penalties follow OpenAI's definitions, not TGI's.
    pub openai: Option<OpenAiParams>,
}

/// What an OpenAI route's sampling means beyond TGI's parameters. With it, `frequency_penalty`
/// counts the generated tokens only (OpenAI, vLLM) instead of TGI's count over the whole
/// sequence divided by its length.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpenAiParams {
    /// Subtracted once from every token the output already holds. TGI's own OpenAI route maps
    /// it onto `repetition_penalty` instead; this server keeps OpenAI's meaning.
    pub presence_penalty: Option<f32>,
}

/// Checks `params` and tokenizes `inputs` in TGI's order: parameters, empty input, tokens.
/// [`check`] then [`Checked::tokenize`]; the server runs the second off its async threads.
pub fn validate(
    inputs: &str,
    params: &RawParams,
    route: RouteOptions,
    tokenizer: &TextTokenizer,
    limits: &Limits,
) -> Result<ValidRequest, ValidationError> {
    check(inputs, params, route, tokenizer, limits)?.tokenize(inputs, tokenizer)
}

/// Everything decided before tokenizing.
#[derive(Debug, Clone)]
pub struct Checked {
    max_new_tokens: u32,
    truncate: Option<usize>,
    stop: Vec<String>,
    ignore_eos: bool,
    stream: bool,
    sampling: SamplingParams,
    limits: Limits,
}

/// The checks that need no tokens, cheap enough for an async thread: the parameters, then the
/// prompt's length in bytes against the most that `max_input_tokens` tokens can cover, so that
/// a megabyte prompt is refused without the tokenizer's work and memory.
pub fn check(
    inputs: &str,
    params: &RawParams,
    route: RouteOptions,
    tokenizer: &TextTokenizer,
    limits: &Limits,
) -> Result<Checked, ValidationError> {
    let sampling_requested = params.do_sample
        || params.temperature.is_some_and(|t| t != 1.0)
        || params.top_k.is_some()
        || params.top_p.is_some()
        || params.typical_p.is_some();
    if let Some(best_of) = params.best_of {
        if best_of == 0 || best_of > limits.max_best_of {
            return Err(ValidationError::BestOf(limits.max_best_of, best_of));
        }
        if best_of > 1 {
            if route.stream {
                return Err(ValidationError::BestOfStream);
            }
            if !sampling_requested {
                return Err(ValidationError::BestOfSampling);
            }
            if params.seed.is_some() {
                return Err(ValidationError::BestOfSeed);
            }
            return Err(ValidationError::BestOfUnsupported);
        }
    }
    if let Some(n) = params.top_n_tokens.filter(|&n| n > limits.max_top_n_tokens) {
        return Err(ValidationError::TopNTokens(limits.max_top_n_tokens, n));
    }
    if params.decoder_input_details {
        return Err(if route.stream {
            ValidationError::PrefillDetailsStream
        } else {
            ValidationError::PrefillDetailsUnsupported
        });
    }
    let temperature = params.temperature.unwrap_or(1.0);
    // Written so NaN fails too.
    if temperature.is_nan() || temperature <= 0.0 {
        return Err(ValidationError::Temperature);
    }
    let repetition_penalty = params.repetition_penalty.unwrap_or(1.0);
    if repetition_penalty.is_nan() || repetition_penalty <= 0.0 {
        return Err(ValidationError::RepetitionPenalty);
    }
    let open_unit = |p: f32| p > 0.0 && p < 1.0;
    // Written so NaN fails too.
    let penalty_range = |f: &f32| !(-2.0..=2.0).contains(f);
    if params.frequency_penalty.is_some_and(|f| penalty_range(&f)) {
        return Err(ValidationError::FrequencyPenalty);
    }
    let presence_penalty = route.openai.and_then(|o| o.presence_penalty);
    if presence_penalty.is_some_and(|p| penalty_range(&p)) {
        return Err(ValidationError::PresencePenalty);
    }
    let frequency_penalty = match params.frequency_penalty.filter(|&f| f != 0.0) {
        None => FrequencyPenalty::Off,
        Some(f) if route.openai.is_some() => FrequencyPenalty::OpenAi(f),
        Some(f) => FrequencyPenalty::Tgi(f),
    };
    if params.top_p.is_some_and(|p| !open_unit(p)) {
        return Err(ValidationError::TopP);
    }
    if params.typical_p.is_some_and(|p| !open_unit(p)) {
        return Err(ValidationError::TypicalP);
    }
    let top_k = match params.top_k {
        Some(k) if k <= 0 => return Err(ValidationError::TopK),
        Some(k) => Some(k as usize),
        None => None,
    };
    let max_new_tokens = params
        .max_new_tokens
        .unwrap_or(route.default_max_new_tokens);
    if max_new_tokens == 0 {
        return Err(ValidationError::NegativeMaxNewTokens);
    }
    if params.stop.len() > limits.max_stop_sequences {
        return Err(ValidationError::StopSequence(
            limits.max_stop_sequences,
            params.stop.len(),
        ));
    }
    if let Some(i) = params.stop.iter().position(String::is_empty) {
        return Err(ValidationError::EmptyStop(i));
    }
    if let Some(t) = params
        .truncate
        .filter(|&t| t == 0 || t > limits.max_input_tokens)
    {
        return Err(ValidationError::Truncate(limits.max_input_tokens, t));
    }
    if inputs.is_empty() {
        return Err(ValidationError::EmptyInput);
    }
    // With `truncate` a longer prompt is allowed (its end is kept); the body limit bounds it.
    let per_token = tokenizer.max_token_bytes();
    let bound = limits.max_input_tokens.saturating_mul(per_token);
    if params.truncate.is_none() && inputs.len() > bound {
        return Err(ValidationError::InputBytes {
            bytes: inputs.len(),
            bound,
            tokens: limits.max_input_tokens,
            per_token,
        });
    }
    Ok(Checked {
        max_new_tokens,
        truncate: params.truncate,
        stop: params.stop.clone(),
        ignore_eos: params.ignore_eos,
        stream: route.stream,
        sampling: SamplingParams {
            do_sample: sampling_requested,
            temperature,
            top_k,
            top_p: params.top_p,
            typical_p: params.typical_p,
            repetition_penalty,
            frequency_penalty,
            presence_penalty: presence_penalty.unwrap_or(0.0),
            top_n_tokens: params.top_n_tokens.unwrap_or(0) as usize,
            seed: params.seed.unwrap_or_else(rand::random),
        },
        limits: *limits,
    })
}

impl Checked {
    /// Tokenizes `inputs` (the text given to [`check`]) and checks the token counts. CPU-bound
    /// for long prompts: the server calls it on a blocking thread.
    pub fn tokenize(
        self,
        inputs: &str,
        tokenizer: &TextTokenizer,
    ) -> Result<ValidRequest, ValidationError> {
        let Self {
            max_new_tokens,
            truncate,
            stop,
            ignore_eos,
            stream,
            sampling,
            limits,
        } = self;
        let mut input_ids = tokenizer
            .encode(inputs)
            .map_err(|e| ValidationError::Tokenizer(e.to_string()))?;
        if let Some(t) = truncate.filter(|&t| input_ids.len() > t) {
            // Keep the end of the prompt, as TGI does.
            input_ids.drain(..input_ids.len() - t);
        }
        let input_len = input_ids.len();
        if input_len == 0 {
            return Err(ValidationError::EmptyInput);
        }
        if input_len + max_new_tokens as usize > limits.max_total_tokens {
            return Err(ValidationError::MaxTotalTokens(
                limits.max_total_tokens,
                input_len,
                max_new_tokens,
            ));
        }
        if input_len > limits.max_input_tokens {
            return Err(ValidationError::InputLength(
                limits.max_input_tokens,
                input_len,
            ));
        }
        Ok(ValidRequest {
            input_ids,
            max_new_tokens: max_new_tokens as usize,
            stop,
            ignore_eos,
            stream,
            sampling,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_input_tokens: 20,
            max_total_tokens: 30,
            max_stop_sequences: 4,
            max_best_of: 2,
            max_top_n_tokens: 5,
        }
    }

    fn check(inputs: &str, params: RawParams) -> Result<ValidRequest, String> {
        let tok = TextTokenizer::embedded().unwrap();
        let route = RouteOptions {
            stream: false,
            default_max_new_tokens: 5,
            openai: None,
        };
        validate(inputs, &params, route, &tok, &limits()).map_err(|e| e.to_string())
    }

    #[test]
    fn tgi_messages() {
        let p = RawParams::default;
        let cases: Vec<(&str, RawParams, &str)> = vec![
            ("", p(), "`inputs` cannot be empty"),
            (
                "hi",
                RawParams {
                    temperature: Some(0.0),
                    ..p()
                },
                "`temperature` must be strictly positive",
            ),
            (
                "hi",
                RawParams {
                    top_p: Some(1.0),
                    ..p()
                },
                "`top_p` must be > 0.0 and < 1.0",
            ),
            (
                "hi",
                RawParams {
                    top_k: Some(0),
                    ..p()
                },
                "`top_k` must be strictly positive",
            ),
            (
                "hi",
                RawParams {
                    repetition_penalty: Some(-1.0),
                    ..p()
                },
                "`repetition_penalty` must be strictly positive",
            ),
            (
                "hi",
                RawParams {
                    max_new_tokens: Some(0),
                    ..p()
                },
                "`max_new_tokens` must be strictly positive",
            ),
            (
                "hi",
                RawParams {
                    stop: vec!["a".into(); 5],
                    ..p()
                },
                "`stop` supports up to 4 stop sequences. Given: 5",
            ),
            (
                "hi",
                RawParams {
                    best_of: Some(3),
                    ..p()
                },
                "`best_of` must be > 0 and <= 2. Given: 3",
            ),
            (
                "hi",
                RawParams {
                    max_new_tokens: Some(29),
                    ..p()
                },
                "`inputs` tokens + `max_new_tokens` must be <= 30. Given: 2 `inputs` tokens and 29 `max_new_tokens`",
            ),
        ];
        for (inputs, params, want) in cases {
            assert_eq!(check(inputs, params).unwrap_err(), want);
        }
        let long = "word ".repeat(40);
        let err = check(
            &long,
            RawParams {
                max_new_tokens: Some(1),
                ..p()
            },
        )
        .unwrap_err();
        assert!(
            err.starts_with("`inputs` tokens + `max_new_tokens` must be <= 30"),
            "{err}"
        );
    }

    #[test]
    fn empty_stop_and_oversized_prompts_are_refused_before_tokenizing() {
        let err = check(
            "hi",
            RawParams {
                stop: vec!["a".into(), String::new()],
                ..RawParams::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            err,
            "`stop` sequence 1 is empty: it would end every generation before its first token; remove it"
        );
        // 20 tokens x 72 bytes: 1440 bytes pass the byte check (then fail on tokens), 1441 do
        // not reach the tokenizer.
        let err = check(&"a".repeat(1441), RawParams::default()).unwrap_err();
        assert_eq!(
            err,
            "`inputs` is 1441 bytes, over the 1440 that 20 tokens can hold (--max-input-tokens, at most 72 bytes a token): shorten the prompt or set `truncate`"
        );
        let err = check(&"a".repeat(1440), RawParams::default()).unwrap_err();
        assert!(
            err.starts_with("`inputs` tokens + `max_new_tokens`"),
            "{err}"
        );
        let truncated = RawParams {
            truncate: Some(4),
            max_new_tokens: Some(1),
            ..RawParams::default()
        };
        assert_eq!(
            check(&"a ".repeat(2000), truncated)
                .unwrap()
                .input_ids
                .len(),
            4
        );
    }

    #[test]
    fn input_length_is_checked_after_total() {
        let tok = TextTokenizer::embedded().unwrap();
        let text = "word ".repeat(20);
        let n = tok.encode(&text).unwrap().len();
        let limits = Limits {
            max_total_tokens: n + 10,
            ..limits()
        };
        let route = RouteOptions {
            stream: false,
            default_max_new_tokens: 1,
            openai: None,
        };
        let err = validate(&text, &RawParams::default(), route, &tok, &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("`inputs` must have less than 20 tokens. Given: {n}")
        );
    }

    #[test]
    fn defaults_and_sampling_switch() {
        let v = check("hello", RawParams::default()).unwrap();
        assert_eq!(v.max_new_tokens, 5);
        assert!(!v.sampling.do_sample);
        let v = check(
            "hello",
            RawParams {
                temperature: Some(0.5),
                seed: Some(9),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            v.sampling.do_sample,
            "a temperature turns sampling on, as in TGI"
        );
        assert_eq!(v.sampling.seed, 9);
        let v = check(
            &"word ".repeat(40),
            RawParams {
                truncate: Some(4),
                max_new_tokens: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(v.input_ids.len(), 4);
    }
}
