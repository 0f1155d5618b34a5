//! GPT-NeoX (Pythia, RedPajama-INCITE) in candle: config, weights by their HuggingFace names, and
//! one forward step over a ragged batch of sequences.
//!
//! Key characteristics (HF `modeling_gpt_neox.py`):
//! - fused QKV whose 3h output rows are laid out PER HEAD as `[q, k, v]` (not contiguous thirds);
//! - rotary embedding on the first `rotary_pct` of each head, NeoX half-split rotation;
//! - sequential or parallel residual (`use_parallel_residual`), exact erf GELU, biases everywhere
//!   except the untied `embed_out`.
//!
//! The dense layers (LayerNorms, QKV, output projection, MLP, head) run once over the tokens of
//! all sequences stacked; attention runs per sequence against that sequence's own [`KvCache`],
//! so sequences of any length and phase (prefill or decode) share a step.
//! Must not sample, tokenize or schedule.

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{LayerNorm, Linear, Module};
use serde::Deserialize;

use super::EngineError;
use super::cpu_attention::{self, RotaryTables, SeqRows};
use super::kv_cache::KvCache;
use super::weights::WeightSource;

/// `config.json` of a `GPTNeoXForCausalLM`. Older files (Pythia, RedPajama) name the rotary
/// settings `rotary_pct`/`rotary_emb_base`; transformers 4.4x+ writes `partial_rotary_factor`/
/// `rope_theta`, and 5.x nests them in `rope_parameters`. All three are accepted.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default)]
    pub rotary_pct: Option<f64>,
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
    #[serde(default)]
    pub rotary_emb_base: Option<f64>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_true")]
    pub use_parallel_residual: bool,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// An id or a list of ids; the first is used.
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
}

fn default_max_position_embeddings() -> usize {
    2048
}
fn default_layer_norm_eps() -> f64 {
    1e-5
}
fn default_true() -> bool {
    true
}
fn default_hidden_act() -> String {
    "gelu".to_string()
}

impl Config {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    pub fn rotary_fraction(&self) -> f64 {
        let nested = self.rope_parameters.as_ref();
        self.rotary_pct
            .or(self.partial_rotary_factor)
            .or(nested.and_then(|r| r.partial_rotary_factor))
            .unwrap_or(0.25)
    }

    /// Dimensions of each head that are rotated (`int(head_dim * rotary_pct)`, as HF does).
    pub fn rotary_dims(&self) -> usize {
        (self.head_dim() as f64 * self.rotary_fraction()) as usize
    }

    pub fn rope_base(&self) -> f64 {
        let nested = self.rope_parameters.as_ref();
        self.rotary_emb_base
            .or(self.rope_theta)
            .or(nested.and_then(|r| r.rope_theta))
            .unwrap_or(10000.0)
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        match &self.eos_token_id {
            Some(serde_json::Value::Number(n)) => n.as_u64().map(|v| v as u32),
            Some(serde_json::Value::Array(a)) => {
                a.first().and_then(|v| v.as_u64()).map(|v| v as u32)
            }
            _ => None,
        }
    }

    /// Checks the shape rules the forward pass relies on.
    pub fn check(&self) -> Result<(), EngineError> {
        let bad = |msg: String| Err(EngineError::Config(msg));
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return bad(format!(
                "hidden_size {} must be a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self.rotary_dims().is_multiple_of(2) {
            return bad(format!(
                "rotary dims {} (head_dim {} x rotary_pct {}) must be even",
                self.rotary_dims(),
                self.head_dim(),
                self.rotary_fraction()
            ));
        }
        if self.vocab_size == 0 || self.num_hidden_layers == 0 {
            return bad("vocab_size and num_hidden_layers must be positive".to_string());
        }
        Activation::parse(&self.hidden_act)?;
        Ok(())
    }
}

/// The MLP activation: HF `gelu` is the exact erf form; the tanh forms are accepted for
/// fine-tunes that changed it.
#[derive(Debug, Clone, Copy)]
enum Activation {
    GeluErf,
    GeluTanh,
}

impl Activation {
    fn parse(name: &str) -> Result<Self, EngineError> {
        match name {
            "gelu" => Ok(Self::GeluErf),
            "gelu_new" | "gelu_fast" | "gelu_pytorch_tanh" => Ok(Self::GeluTanh),
            other => Err(EngineError::Config(format!(
                "hidden_act `{other}` is not supported: use gelu (GPT-NeoX's exact GELU)"
            ))),
        }
    }

    fn apply(self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::GeluErf => xs.gelu_erf(),
            Self::GeluTanh => xs.gelu(),
        }
    }
}

struct Layer {
    input_layernorm: LayerNorm,
    post_attention_layernorm: LayerNorm,
    query_key_value: Linear,
    dense: Linear,
    dense_h_to_4h: Linear,
    dense_4h_to_h: Linear,
}

/// One sequence's part of a step: the tokens to feed (the whole prompt on prefill, the last
/// sampled token on decode) and its cache, which the step extends.
pub struct SeqInput<'a> {
    pub tokens: &'a [u32],
    pub cache: &'a mut KvCache,
}

/// The model's weights and precomputed rotary tables.
pub struct GptNeox {
    cfg: Config,
    act: Activation,
    embed_in: Tensor,
    layers: Vec<Layer>,
    final_layer_norm: LayerNorm,
    /// `[vocab, hidden]`, transposed once at load so the head is a plain matmul.
    embed_out_t: Tensor,
    /// `[max_position_embeddings, rotary_dims / 2]`.
    cos: Tensor,
    sin: Tensor,
    /// The same tables on the host, for the f32 CPU kernel.
    host_rotary: RotaryTables,
    /// Attention through `cpu_attention` (f32 on CPU) rather than candle ops.
    host_attention: bool,
    device: Device,
    dtype: DType,
}

impl GptNeox {
    /// Builds the model from `weights`, checking every tensor's presence and shape.
    pub fn load(
        cfg: Config,
        weights: &WeightSource,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, EngineError> {
        cfg.check()?;
        let act = Activation::parse(&cfg.hidden_act)?;
        let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
        let get = |name: &str, shape: &[usize]| weights.get(name, shape, dtype, device);
        let layer_norm = |prefix: &str| -> Result<LayerNorm, EngineError> {
            Ok(LayerNorm::new(
                get(&format!("{prefix}.weight"), &[h])?,
                get(&format!("{prefix}.bias"), &[h])?,
                cfg.layer_norm_eps,
            ))
        };
        let linear = |prefix: &str, out: usize, inp: usize| -> Result<Linear, EngineError> {
            Ok(Linear::new(
                get(&format!("{prefix}.weight"), &[out, inp])?,
                Some(get(&format!("{prefix}.bias"), &[out])?),
            ))
        };
        let embed_in = get("gpt_neox.embed_in.weight", &[v, h])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("gpt_neox.layers.{l}");
            layers.push(Layer {
                input_layernorm: layer_norm(&format!("{p}.input_layernorm"))?,
                post_attention_layernorm: layer_norm(&format!("{p}.post_attention_layernorm"))?,
                query_key_value: linear(&format!("{p}.attention.query_key_value"), 3 * h, h)?,
                dense: linear(&format!("{p}.attention.dense"), h, h)?,
                dense_h_to_4h: linear(&format!("{p}.mlp.dense_h_to_4h"), i, h)?,
                dense_4h_to_h: linear(&format!("{p}.mlp.dense_4h_to_h"), h, i)?,
            });
        }
        let final_layer_norm = layer_norm("gpt_neox.final_layer_norm")?;
        let embed_out = if cfg.tie_word_embeddings {
            embed_in.clone()
        } else {
            get("embed_out.weight", &[v, h])?
        };
        let embed_out_t = embed_out.t()?.contiguous()?;
        let (cos, sin) = rotary_tables(&cfg, dtype, device)?;
        let host_rotary = RotaryTables {
            cos: cos.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
            sin: sin.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
            half: cfg.rotary_dims().max(2) / 2,
        };
        let host_attention = device.is_cpu() && dtype == DType::F32;
        Ok(Self {
            cfg,
            act,
            embed_in,
            layers,
            final_layer_norm,
            embed_out_t,
            cos,
            sin,
            host_rotary,
            host_attention,
            device: device.clone(),
            dtype,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Forces the candle attention path (`false`) or the CPU kernel (`true`, f32 on CPU only);
    /// tests use it to pin both paths to the same numbers.
    pub fn set_host_attention(&mut self, on: bool) {
        self.host_attention = on && self.device.is_cpu() && self.dtype == DType::F32;
    }

    /// Runs one step: feeds each sequence its tokens, appends their K/V to its cache, and
    /// returns the logits of each sequence's last fed position, `[batch, vocab]` in f32.
    pub fn forward(&self, batch: &mut [SeqInput<'_>]) -> candle_core::Result<Tensor> {
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        let mut spans = Vec::with_capacity(batch.len());
        for seq in batch.iter() {
            let past = seq.cache.len();
            if past + seq.tokens.len() > self.cfg.max_position_embeddings {
                candle_core::bail!(
                    "sequence of {} tokens exceeds max_position_embeddings {}",
                    past + seq.tokens.len(),
                    self.cfg.max_position_embeddings
                );
            }
            spans.push((ids.len(), seq.tokens.len(), past));
            ids.extend_from_slice(seq.tokens);
            positions.extend((past..past + seq.tokens.len()).map(|p| p as u32));
        }
        let n = ids.len();
        let ids = Tensor::from_vec(ids, n, &self.device)?;
        let positions = Tensor::from_vec(positions, n, &self.device)?;
        // The CPU kernel reads the host tables itself; the candle path gathers per token.
        let rope = if self.host_attention {
            None
        } else {
            Some((
                self.cos.index_select(&positions, 0)?,
                self.sin.index_select(&positions, 0)?,
            ))
        };
        let mut x = self.embed_in.index_select(&ids, 0)?;
        for (l, layer) in self.layers.iter().enumerate() {
            let a_in = layer.input_layernorm.forward(&x)?;
            let qkv = layer.query_key_value.forward(&a_in)?;
            let attn = match &rope {
                None => self.attend_host(l, &qkv, batch, &spans)?,
                Some((cos, sin)) => self.attend_candle(l, &qkv, batch, &spans, (cos, sin))?,
            };
            let attn = layer.dense.forward(&attn)?;
            x = if self.cfg.use_parallel_residual {
                let m = self.mlp(layer, &layer.post_attention_layernorm.forward(&x)?)?;
                ((x + attn)? + m)?
            } else {
                let x = (x + attn)?;
                let m = self.mlp(layer, &layer.post_attention_layernorm.forward(&x)?)?;
                (x + m)?
            };
        }
        for (seq, &(_, t, _)) in batch.iter_mut().zip(&spans) {
            seq.cache.commit(t);
        }
        let last: Vec<u32> = spans.iter().map(|&(s, t, _)| (s + t - 1) as u32).collect();
        let last = Tensor::from_vec(last, spans.len(), &self.device)?;
        let x = self.final_layer_norm.forward(&x.index_select(&last, 0)?)?;
        x.matmul(&self.embed_out_t)?.to_dtype(DType::F32)
    }

    /// Attention of layer `l` with candle ops, one sequence at a time (any dtype, any device).
    fn attend_candle(
        &self,
        l: usize,
        qkv: &Tensor,
        batch: &mut [SeqInput<'_>],
        spans: &[(usize, usize, usize)],
        (cos, sin): (&Tensor, &Tensor),
    ) -> candle_core::Result<Tensor> {
        let (h, heads, hd) = (
            self.cfg.hidden_size,
            self.cfg.num_attention_heads,
            self.cfg.head_dim(),
        );
        let n = qkv.dim(0)?;
        let scale = 1.0 / (hd as f64).sqrt();
        // Per-head fused layout: output features are [head][q|k|v][head_dim].
        let qkv = qkv.reshape((n, heads, 3 * hd))?;
        let q = self.rotate(&qkv.narrow(2, 0, hd)?, cos, sin)?;
        let k = self.rotate(&qkv.narrow(2, hd, hd)?, cos, sin)?;
        let v = qkv.narrow(2, 2 * hd, hd)?.contiguous()?;
        let mut outs = Vec::with_capacity(batch.len());
        for (seq, &(start, t, past)) in batch.iter_mut().zip(spans) {
            let (k_all, v_all) =
                seq.cache
                    .append(l, &k.narrow(0, start, t)?, &v.narrow(0, start, t)?)?;
            let q_s = self.mm_operand(q.narrow(0, start, t)?.transpose(0, 1)?)?; // [H,t,hd]
            let k_t = self.mm_operand(k_all.permute((1, 2, 0))?)?; // [H,hd,T]
            let v_h = self.mm_operand(v_all.permute((1, 0, 2))?)?; // [H,T,hd]
            let mut scores = (q_s.matmul(&k_t)? * scale)?;
            if t > 1 {
                scores = scores.broadcast_add(&self.causal_mask(t, past)?)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            outs.push(probs.matmul(&v_h)?.transpose(0, 1)?.reshape((t, h))?);
        }
        Tensor::cat(&outs, 0)
    }

    /// Attention of layer `l` through the f32 CPU kernel: one copy of QKV out, one of the
    /// result back, and plain loops in between.
    fn attend_host(
        &self,
        l: usize,
        qkv: &Tensor,
        batch: &mut [SeqInput<'_>],
        spans: &[(usize, usize, usize)],
    ) -> candle_core::Result<Tensor> {
        let (h, heads, hd) = (
            self.cfg.hidden_size,
            self.cfg.num_attention_heads,
            self.cfg.head_dim(),
        );
        let n = qkv.dim(0)?;
        let host = qkv.flatten_all()?.to_vec1::<f32>()?;
        let mut rows: Vec<SeqRows<'_>> = batch
            .iter_mut()
            .zip(spans)
            .map(|(seq, &(start, len, past))| SeqRows {
                start,
                len,
                past,
                kv: seq.cache.host_layer(l, heads, hd, len),
            })
            .collect();
        let mut out = vec![0f32; n * h];
        let shape = cpu_attention::Shape {
            heads: self.cfg.num_attention_heads,
            head_dim: self.cfg.head_dim(),
            rotary_dims: self.cfg.rotary_dims(),
        };
        cpu_attention::attend(&host, shape, &self.host_rotary, &mut rows, &mut out);
        Tensor::from_vec(out, (n, h), &self.device)
    }

    fn mlp(&self, layer: &Layer, xs: &Tensor) -> candle_core::Result<Tensor> {
        let hidden = self.act.apply(&layer.dense_h_to_4h.forward(xs)?)?;
        layer.dense_4h_to_h.forward(&hidden)
    }

    /// NeoX rotary on the first `rotary_dims` of each head of `xs` `[n, heads, head_dim]`;
    /// returns a contiguous tensor. `cos`/`sin` are already gathered per token `[n, rot/2]`.
    fn rotate(&self, xs: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
        let (n, heads, hd) = xs.dims3()?;
        let rot = self.cfg.rotary_dims();
        if rot == 0 {
            return xs.contiguous();
        }
        // candle's `rope` wants [b, h, t, d] with per-batch tables [b, t, d/2]: every token is
        // its own "batch" of length one, so each gets its own position.
        let x_rot = xs
            .narrow(2, 0, rot)?
            .contiguous()?
            .reshape((n, heads, 1, rot))?;
        let cos = cos.reshape((n, 1, rot / 2))?;
        let sin = sin.reshape((n, 1, rot / 2))?;
        let rotated = candle_nn::rotary_emb::rope(&x_rot, &cos, &sin)?.reshape((n, heads, rot))?;
        if rot == hd {
            Ok(rotated)
        } else {
            Tensor::cat(&[&rotated, &xs.narrow(2, rot, hd - rot)?], 2)
        }
    }

    /// `[t, past + t]` additive mask: token i of this chunk sees cache rows 0..=past+i.
    fn causal_mask(&self, t: usize, past: usize) -> candle_core::Result<Tensor> {
        let total = past + t;
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| {
                (0..total).map(move |j| {
                    if j <= past + i {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
            })
            .collect();
        Tensor::from_vec(mask, (t, total), &self.device)?.to_dtype(self.dtype)
    }

    /// CPU matmul takes strided views directly (saves a copy per sequence and layer); CUDA's
    /// cuBLAS path wants plain or transposed layouts, so copy there.
    fn mm_operand(&self, t: Tensor) -> candle_core::Result<Tensor> {
        if self.device.is_cpu() {
            Ok(t)
        } else {
            t.contiguous()
        }
    }
}

/// cos/sin for every position, `[max_position_embeddings, rotary_dims / 2]` (the half-split
/// rotation uses each frequency twice, which `rope` handles).
fn rotary_tables(
    cfg: &Config,
    dtype: DType,
    device: &Device,
) -> Result<(Tensor, Tensor), EngineError> {
    let rot = cfg.rotary_dims().max(2);
    let base = cfg.rope_base();
    let inv_freq: Vec<f32> = (0..rot / 2)
        .map(|i| (1.0 / base.powf((2 * i) as f64 / rot as f64)) as f32)
        .collect();
    let max = cfg.max_position_embeddings;
    let inv_freq = Tensor::from_vec(inv_freq, (1, rot / 2), device)?;
    let pos = Tensor::arange(0u32, max as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((max, 1))?;
    let freqs = pos.broadcast_mul(&inv_freq)?;
    Ok((freqs.cos()?.to_dtype(dtype)?, freqs.sin()?.to_dtype(dtype)?))
}

/// Used by tests and tools that need a row of logits as plain floats.
pub fn logits_row(logits: &Tensor, row: usize) -> candle_core::Result<Vec<f32>> {
    logits.i(row)?.to_vec1::<f32>()
}
