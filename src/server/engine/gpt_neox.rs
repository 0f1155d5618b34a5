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
//! all sequences stacked, so sequences of any length and phase (prefill or decode) share a step.
//! Attention has two paths: the f32 CPU kernel (`cpu_attention.rs`, per-sequence host caches)
//! and candle ops over the shared [`KvPool`] (any dtype and device, the CUDA path), where all
//! decoding sequences attend in one batched matmul per layer and prefills run per sequence.
//! Decode-only steps on CUDA replay graphs (`cuda_graph.rs`) of [`GptNeox::decode_from_device`].
//! Must not sample, tokenize or schedule.

use candle_core::{DType, Device, Tensor};
use candle_nn::{LayerNorm, Linear, Module};
use serde::Deserialize;

use super::EngineError;
use super::cpu_attention::{self, RotaryTables, SeqRows};
use super::kv_cache::{KvCache, KvPool, PoolShape};
use super::profile::Profile;
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
    /// The shared KV cache of the candle attention path.
    pool: Option<KvPool>,
    profile: Option<Profile>,
    /// Decode steps as CUDA graphs (see `cuda_graph.rs`); `None` off CUDA or when disabled.
    #[cfg(feature = "cuda")]
    graphs: Option<std::sync::Mutex<super::cuda_graph::Graphs>>,
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
            pool: None,
            profile: Profile::from_env(),
            #[cfg(feature = "cuda")]
            graphs: (device.is_cuda() && super::cuda_graph::wanted())
                .then(|| std::sync::Mutex::new(Default::default())),
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

    /// The per-phase profiler, when `RPLOAD_PROFILE` is set.
    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    /// Charges the time since the last lap to `phase` when profiling.
    fn lap(&self, phase: &'static str) {
        if let Some(p) = &self.profile {
            p.lap(&self.device, phase);
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Allocates the shared KV cache for the candle attention path: `slots` sequences of up to
    /// `max_tokens` tokens each. The f32 CPU kernel keeps its own host caches and needs none.
    pub fn reserve_cache(&mut self, slots: usize, max_tokens: usize) -> Result<(), EngineError> {
        self.pool = None; // free the old pool before allocating the new one
        let shape = self.pool_shape(slots, max_tokens);
        self.pool = Some(KvPool::new(shape, self.dtype, &self.device)?);
        Ok(())
    }

    /// The pool `reserve_cache(slots, max_tokens)` would allocate.
    pub fn pool_shape(&self, slots: usize, max_tokens: usize) -> PoolShape {
        PoolShape {
            layers: self.cfg.num_hidden_layers,
            slots,
            heads: self.cfg.num_attention_heads,
            max_tokens,
            head_dim: self.cfg.head_dim(),
        }
    }

    /// Whether attention runs on the host kernel (true) or on candle ops over the pool.
    pub fn uses_host_attention(&self) -> bool {
        self.host_attention
    }

    /// An empty cache for a new sequence of up to `reserve` tokens: host buffers for the CPU
    /// kernel, else a slot of the pool (allocated on first use with room for 8 sequences of
    /// the model's context, when the server has not sized it).
    pub fn new_cache(&mut self, reserve: usize) -> Result<KvCache, EngineError> {
        let layers = self.cfg.num_hidden_layers;
        if self.host_attention {
            return Ok(KvCache::host(layers, reserve));
        }
        if self.pool.is_none() {
            self.reserve_cache(8, self.cfg.max_position_embeddings)?;
        }
        // Unwrap is safe: the pool was allocated just above.
        let pool = self.pool.as_ref().expect("pool allocated above");
        Ok(pool.lease(layers, reserve)?)
    }

    /// [`Self::forward`] with the logits copied to the host, one row per sequence.
    pub fn logits(&self, batch: &mut [SeqInput<'_>]) -> Result<Vec<Vec<f32>>, EngineError> {
        Ok(self.forward(batch)?.to_vec2::<f32>()?)
    }

    /// Runs one step: feeds each sequence its tokens, appends their K/V to its cache, and
    /// returns the logits of each sequence's last fed position, `[batch, vocab]` in f32.
    pub fn forward(&self, batch: &mut [SeqInput<'_>]) -> candle_core::Result<Tensor> {
        for seq in batch.iter() {
            let total = seq.cache.len() + seq.tokens.len();
            if total > self.cfg.max_position_embeddings {
                candle_core::bail!(
                    "sequence of {total} tokens exceeds max_position_embeddings {}",
                    self.cfg.max_position_embeddings
                );
            }
        }
        if let Some(p) = &self.profile {
            p.start(&self.device);
        }
        let (x, last) = if self.host_attention {
            self.layers_host(batch)?
        } else {
            let Some(pool) = &self.pool else {
                candle_core::bail!("the KV cache pool is not allocated")
            };
            let plan = PooledPlan::new(batch, pool.max_tokens())?;
            #[cfg(feature = "cuda")]
            if let Some(logits) = self.decode_by_graph(&plan, pool)? {
                for seq in batch.iter_mut() {
                    seq.cache.commit(1);
                }
                return Ok(logits);
            }
            self.layers_pooled(plan, pool)?
        };
        for seq in batch.iter_mut() {
            seq.cache.commit(seq.tokens.len());
        }
        let last = Tensor::from_vec(last, batch.len(), &self.device)?;
        let x = self.final_layer_norm.forward(&x.index_select(&last, 0)?)?;
        let logits = x.matmul(&self.embed_out_t)?.to_dtype(DType::F32)?;
        self.lap("head");
        Ok(logits)
    }

    /// The transformer over the tokens of all sequences stacked, attention through the f32
    /// host kernel. Returns the hidden states and each sequence's last row.
    fn layers_host(&self, batch: &mut [SeqInput<'_>]) -> candle_core::Result<(Tensor, Vec<u32>)> {
        let mut ids = Vec::new();
        let mut spans = Vec::with_capacity(batch.len());
        for seq in batch.iter() {
            spans.push((ids.len(), seq.tokens.len(), seq.cache.len()));
            ids.extend_from_slice(seq.tokens);
        }
        let last = spans.iter().map(|&(s, t, _)| (s + t - 1) as u32).collect();
        let n = ids.len();
        let ids = Tensor::from_vec(ids, n, &self.device)?;
        let x = self.run_layers(&ids, |l, qkv| self.attend_host(l, qkv, batch, &spans))?;
        Ok((x, last))
    }

    /// The transformer with attention over the pool. Rows are laid out as one decode row per
    /// slot `0..width` (slot order; slots not decoding this step get a dummy row whose output
    /// is discarded), then each prefilling sequence's tokens. The dense layers run once over
    /// all rows; decode attention is one scatter and two batched matmuls per layer for the
    /// whole batch; prefill attention is per sequence.
    fn layers_pooled(
        &self,
        plan: PooledPlan,
        pool: &KvPool,
    ) -> candle_core::Result<(Tensor, Vec<u32>)> {
        let dev = &self.device;
        let n = plan.ids.len();
        let rope = self.rope_tables(&Tensor::from_vec(plan.positions.clone(), n, dev)?)?;
        let width = plan.width;
        let decode = if width > 0 {
            let write = Tensor::from_vec(plan.write.clone(), width, dev)?;
            let mask = Tensor::from_vec(plan.decode_mask(), (width, 1, 1, plan.span), dev)?
                .to_dtype(self.dtype)?;
            Some(self.decode_rows(&write, mask, plan.span)?)
        } else {
            None
        };
        let prefill_masks = plan
            .prefills
            .iter()
            .map(|p| self.causal_mask(p.t, p.past))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let h = self.cfg.hidden_size;
        self.lap("step_setup");
        let ids = Tensor::from_vec(plan.ids.clone(), n, dev)?;
        let x = self.run_layers(&ids, |l, qkv| {
            let (q, k, v) = self.split_rotate(qkv, &rope)?;
            self.lap("rope");
            let mut outs = Vec::with_capacity(1 + plan.prefills.len());
            if let Some(d) = &decode {
                outs.push(self.attend_decode(l, &q, &k, &v, d)?);
                self.lap("attn_decode");
            }
            let (kc, vc) = pool.layer(l);
            for (p, mask) in plan.prefills.iter().zip(&prefill_masks) {
                // [t, heads, hd] -> [1, heads, t, hd], the slot's layout.
                let head_major = |x: &Tensor| {
                    x.narrow(0, p.start, p.t)?
                        .transpose(0, 1)?
                        .contiguous()?
                        .unsqueeze(0)
                };
                let (kc, vc) = (kc.narrow(0, p.slot, 1)?, vc.narrow(0, p.slot, 1)?);
                kc.slice_set(&head_major(&k)?, 2, p.past)?;
                vc.slice_set(&head_major(&v)?, 2, p.past)?;
                let keys = kc.narrow(2, 0, p.past + p.t)?;
                let values = vc.narrow(2, 0, p.past + p.t)?;
                let scores = head_major(&q)?.matmul(&keys.t()?)?.broadcast_add(mask)?;
                let probs = candle_nn::ops::softmax_last_dim(&scores)?;
                let out = probs.matmul(&values)?.squeeze(0)?.transpose(0, 1)?;
                outs.push(out.reshape((p.t, h))?);
            }
            self.lap("attn_prefill");
            Tensor::cat(&outs, 0)
        })?;
        Ok((x, plan.last))
    }

    /// A decode-only step through a CUDA graph, or `None` to run it eagerly.
    #[cfg(feature = "cuda")]
    fn decode_by_graph(
        &self,
        plan: &PooledPlan,
        pool: &KvPool,
    ) -> candle_core::Result<Option<Tensor>> {
        use super::cuda_graph::{span_bucket, width_bucket};
        let Some(graphs) = &self.graphs else {
            return Ok(None);
        };
        if !plan.prefills.is_empty() {
            return Ok(None);
        }
        let width = width_bucket(plan.width, pool.slots());
        let span = span_bucket(plan.span, pool.max_tokens());
        let input = plan.device_input(width, pool.max_tokens());
        let mut graphs = graphs.lock().unwrap_or_else(|p| p.into_inner());
        let Some(all) = graphs.run(self, input, width, span)? else {
            return Ok(None);
        };
        let last = Tensor::from_vec(plan.last.clone(), plan.last.len(), &self.device)?;
        Ok(Some(all.index_select(&last, 0)?))
    }

    /// The decode-only step over slots `0..width` from device inputs alone, so that it can be
    /// captured as a CUDA graph and replayed: `input` is `[4, width]` u32 (token id, position,
    /// cache row to write, keys visible, per slot), `arange` is `0..span` u32. Returns the
    /// logits of every slot, `[width, vocab]` f32.
    pub fn decode_from_device(
        &self,
        input: &Tensor,
        arange: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (_, width) = input.dims2()?;
        let span = arange.dim(0)?;
        let row = |i: usize| input.narrow(0, i, 1)?.squeeze(0);
        let (ids, positions, write, visible) = (row(0)?, row(1)?, row(2)?, row(3)?);
        // 0 where the key is visible, -1e4 (exp underflows to 0) where it is not.
        let mask = arange
            .reshape((1, span))?
            .broadcast_lt(&visible.reshape((width, 1))?)?
            .to_dtype(self.dtype)?
            .affine(1e4, -1e4)?
            .reshape((width, 1, 1, span))?;
        let rope = self.rope_tables(&positions)?;
        let decode = self.decode_rows(&write, mask, span)?;
        let x = self.run_layers(&ids, |l, qkv| {
            let (q, k, v) = self.split_rotate(qkv, &rope)?;
            self.attend_decode(l, &q, &k, &v, &decode)
        })?;
        let x = self.final_layer_norm.forward(&x)?;
        x.matmul(&self.embed_out_t)?.to_dtype(DType::F32)
    }

    /// Rotary tables gathered for `positions`; with full rotary the 1/sqrt(head_dim) score
    /// scale rides in q's tables, saving a multiply per layer.
    fn rope_tables(&self, positions: &Tensor) -> candle_core::Result<RopeRows> {
        let hd = self.cfg.head_dim();
        let cos = self.cos.index_select(positions, 0)?;
        let sin = self.sin.index_select(positions, 0)?;
        let scale = 1.0 / (hd as f64).sqrt();
        let scale_in_rope = self.cfg.rotary_dims() == hd;
        let (cos_q, sin_q) = if scale_in_rope {
            ((&cos * scale)?, (&sin * scale)?)
        } else {
            (cos.clone(), sin.clone())
        };
        Ok(RopeRows {
            cos,
            sin,
            cos_q,
            sin_q,
            q_scale: (!scale_in_rope).then_some(scale),
        })
    }

    /// Splits the fused QKV rows `[n, 3h]` into rotated q (scaled), rotated k and v, each
    /// `[n, heads, head_dim]` and contiguous.
    fn split_rotate(
        &self,
        qkv: &Tensor,
        rope: &RopeRows,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let (heads, hd) = (self.cfg.num_attention_heads, self.cfg.head_dim());
        let n = qkv.dim(0)?;
        // Per-head fused layout: output features are [head][q|k|v][head_dim].
        let qkv = qkv.reshape((n, heads, 3 * hd))?;
        let mut q = self.rotate(&qkv.narrow(2, 0, hd)?, &rope.cos_q, &rope.sin_q)?;
        if let Some(scale) = rope.q_scale {
            q = (q * scale)?;
        }
        let k = self.rotate(&qkv.narrow(2, hd, hd)?, &rope.cos, &rope.sin)?;
        let v = qkv.narrow(2, 2 * hd, hd)?.contiguous()?;
        Ok((q, k, v))
    }

    /// The per-step inputs of decode attention: `write` (`[width]` u32, the cache row of each
    /// slot's new K/V) expanded to the scatter's shape, and the additive key mask.
    fn decode_rows(
        &self,
        write: &Tensor,
        mask: Tensor,
        span: usize,
    ) -> candle_core::Result<DecodeRows> {
        let (heads, hd) = (self.cfg.num_attention_heads, self.cfg.head_dim());
        let width = write.dim(0)?;
        let write = write
            .reshape((width, 1, 1, 1))?
            .broadcast_as((width, heads, 1, hd))?
            .contiguous()?;
        Ok(DecodeRows {
            width,
            span,
            write,
            mask,
        })
    }

    /// Decode attention of layer `l` for slots `0..width` (the first rows of q, k, v): one
    /// scatter per cache writes every slot's new row, then two batched matmuls attend each
    /// slot's first `span` keys under the mask. Returns `[width, hidden]`.
    fn attend_decode(
        &self,
        l: usize,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        d: &DecodeRows,
    ) -> candle_core::Result<Tensor> {
        let Some(pool) = &self.pool else {
            candle_core::bail!("the KV cache pool is not allocated")
        };
        let (heads, hd) = (self.cfg.num_attention_heads, self.cfg.head_dim());
        let width = d.width;
        let rows = |t: &Tensor| t.narrow(0, 0, width)?.reshape((width, heads, 1, hd));
        let (kc, vc) = pool.layer(l);
        let (kc, vc) = (kc.narrow(0, 0, width)?, vc.narrow(0, 0, width)?);
        kc.scatter_set(&d.write, &rows(k)?, 2)?;
        vc.scatter_set(&d.write, &rows(v)?, 2)?;
        let keys = kc.narrow(2, 0, d.span)?;
        let values = vc.narrow(2, 0, d.span)?;
        let scores = rows(q)?.matmul(&keys.t()?)?.broadcast_add(&d.mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        probs
            .matmul(&values)?
            .reshape((width, self.cfg.hidden_size))
    }

    /// Embeds `ids` and runs every layer, `attend(layer, qkv)` supplying attention.
    fn run_layers(
        &self,
        ids: &Tensor,
        mut attend: impl FnMut(usize, &Tensor) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Tensor> {
        let mut x = self.embed_in.index_select(ids, 0)?;
        self.lap("embed");
        for (l, layer) in self.layers.iter().enumerate() {
            let a_in = layer.input_layernorm.forward(&x)?;
            self.lap("layernorm");
            let qkv = layer.query_key_value.forward(&a_in)?;
            self.lap("qkv");
            let attn = attend(l, &qkv)?;
            let attn = layer.dense.forward(&attn)?;
            self.lap("dense");
            x = if self.cfg.use_parallel_residual {
                let m = self.mlp(layer, &layer.post_attention_layernorm.forward(&x)?)?;
                ((x + attn)? + m)?
            } else {
                let x = (x + attn)?;
                let m = self.mlp(layer, &layer.post_attention_layernorm.forward(&x)?)?;
                (x + m)?
            };
        }
        Ok(x)
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
        self.lap("layernorm");
        let hidden = self.act.apply(&layer.dense_h_to_4h.forward(xs)?)?;
        self.lap("mlp_up");
        let out = layer.dense_4h_to_h.forward(&hidden)?;
        self.lap("mlp_down");
        Ok(out)
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

/// Rotary tables gathered for one step's rows, `[n, rotary_dims / 2]`.
struct RopeRows {
    cos: Tensor,
    sin: Tensor,
    /// q's tables, carrying the score scale when the rotation covers the whole head.
    cos_q: Tensor,
    sin_q: Tensor,
    /// The score scale still to apply to q (partial rotary).
    q_scale: Option<f64>,
}

/// Device inputs of decode attention for slots `0..width`.
struct DecodeRows {
    width: usize,
    /// Keys read per slot.
    span: usize,
    /// `[width, heads, 1, head_dim]` u32: each slot's cache row for this step's K/V.
    write: Tensor,
    /// `[width, 1, 1, span]` additive mask.
    mask: Tensor,
}

/// Where each row of a pooled step comes from. Pure bookkeeping, no tensors.
#[derive(Debug, PartialEq)]
struct PooledPlan {
    /// Decode rows `0..width` are slots; prefill rows follow.
    width: usize,
    ids: Vec<u32>,
    /// Rotary position of each row.
    positions: Vec<u32>,
    /// Per decode row: the cache row its K/V goes to (a dummy row writes the slot's last row,
    /// which no live sequence reads: a sequence always keeps room for one more token).
    write: Vec<u32>,
    /// Per decode row: keys it may see (`position + 1`; 1 for a dummy).
    visible: Vec<usize>,
    /// Keys the decode attention reads per slot: the longest `visible`.
    span: usize,
    prefills: Vec<PrefillRows>,
    /// Per sequence, in batch order: the row whose logits it gets.
    last: Vec<u32>,
}

#[derive(Debug, PartialEq)]
struct PrefillRows {
    slot: usize,
    past: usize,
    t: usize,
    /// First row of this sequence in the step.
    start: usize,
}

impl PooledPlan {
    fn new(batch: &[SeqInput<'_>], max_tokens: usize) -> candle_core::Result<Self> {
        let slot_of = |seq: &SeqInput<'_>| {
            seq.cache.slot().ok_or_else(|| {
                candle_core::Error::Msg("a host cache was given to the pooled attention".into())
            })
        };
        let mut width = 0;
        for seq in batch.iter().filter(|s| s.tokens.len() == 1) {
            width = width.max(slot_of(seq)? + 1);
        }
        let dummy = max_tokens.saturating_sub(1) as u32;
        let mut plan = Self {
            width,
            ids: vec![0; width],
            positions: vec![0; width],
            write: vec![dummy; width],
            visible: vec![1; width],
            span: 1,
            prefills: Vec::new(),
            last: Vec::with_capacity(batch.len()),
        };
        let mut taken = vec![false; width];
        for seq in batch {
            let (slot, past, t) = (slot_of(seq)?, seq.cache.len(), seq.tokens.len());
            if past + t > max_tokens {
                candle_core::bail!(
                    "sequence of {} tokens exceeds its cache slot of {max_tokens}",
                    past + t
                );
            }
            if t == 1 {
                if std::mem::replace(&mut taken[slot], true) {
                    candle_core::bail!("two sequences share cache slot {slot}");
                }
                plan.ids[slot] = seq.tokens[0];
                plan.positions[slot] = past as u32;
                plan.write[slot] = past as u32;
                plan.visible[slot] = past + 1;
                plan.span = plan.span.max(past + 1);
                plan.last.push(slot as u32);
            } else {
                let start = plan.ids.len();
                plan.ids.extend_from_slice(seq.tokens);
                plan.positions.extend((past..past + t).map(|p| p as u32));
                plan.prefills.push(PrefillRows {
                    slot,
                    past,
                    t,
                    start,
                });
                plan.last.push((start + t - 1) as u32);
            }
        }
        Ok(plan)
    }

    /// The decode rows packed for `GptNeox::decode_from_device`, padded with dummy slots to
    /// `width`: token ids, positions, cache rows to write, keys visible.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))] // only CUDA graphs pack inputs
    fn device_input(&self, width: usize, max_tokens: usize) -> Vec<u32> {
        let pad = |v: &mut Vec<u32>, fill: u32| v.resize(width, fill);
        let (mut ids, mut pos, mut write) = (
            self.ids[..self.width].to_vec(),
            self.positions[..self.width].to_vec(),
            self.write.clone(),
        );
        let mut visible: Vec<u32> = self.visible.iter().map(|&v| v as u32).collect();
        pad(&mut ids, 0);
        pad(&mut pos, 0);
        pad(&mut write, max_tokens.saturating_sub(1) as u32);
        pad(&mut visible, 1);
        [ids, pos, write, visible].concat()
    }

    /// `[width, span]` additive mask: row r sees keys `0..visible[r]`.
    fn decode_mask(&self) -> Vec<f32> {
        self.visible
            .iter()
            .flat_map(|&v| (0..self.span).map(move |j| if j < v { 0.0 } else { f32::NEG_INFINITY }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::engine::kv_cache::KvPool;

    #[test]
    fn pooled_plan_puts_decode_rows_at_their_slots_and_prefills_after() {
        let shape = PoolShape {
            layers: 1,
            slots: 4,
            heads: 1,
            max_tokens: 16,
            head_dim: 2,
        };
        let pool = KvPool::new(shape, DType::F32, &Device::Cpu).unwrap();
        let mut caches: Vec<KvCache> = (0..3).map(|_| pool.lease(1, 16).unwrap()).collect();
        drop(caches.remove(0)); // slot 0 free: its decode row is a dummy
        caches[0].commit(5); // slot 1, decoding at position 5
        let mut fresh = pool.lease(1, 16).unwrap(); // slot 0 again, prefilling
        let (a, b) = caches.split_at_mut(1);
        let batch = [
            SeqInput {
                tokens: &[7, 8, 9],
                cache: &mut fresh,
            },
            SeqInput {
                tokens: &[42],
                cache: &mut a[0],
            },
            SeqInput {
                tokens: &[43],
                cache: &mut b[0], // slot 2, position 0
            },
        ];
        let plan = PooledPlan::new(&batch, 16).unwrap();
        assert_eq!(plan.width, 3);
        assert_eq!(plan.ids, vec![0, 42, 43, 7, 8, 9]);
        assert_eq!(plan.positions, vec![0, 5, 0, 0, 1, 2]);
        assert_eq!(
            plan.write,
            vec![15, 5, 0],
            "the dummy writes the slot's last row"
        );
        assert_eq!((plan.visible.clone(), plan.span), (vec![1, 6, 1], 6));
        assert_eq!(
            plan.last,
            vec![5, 1, 2],
            "batch order: prefill's last row, then slots"
        );
        assert_eq!(
            plan.prefills,
            vec![PrefillRows {
                slot: 0,
                past: 0,
                t: 3,
                start: 3
            }]
        );
        assert_eq!(
            plan.device_input(4, 16),
            vec![0, 42, 43, 0, 0, 5, 0, 0, 15, 5, 0, 15, 1, 6, 1, 1],
            "ids, positions, rows to write, keys visible; slot 3 pads"
        );
        let mask = plan.decode_mask();
        assert_eq!(
            mask[..6],
            [
                0.0,
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
                f32::NEG_INFINITY
            ]
        );
        assert!(mask[6..12].iter().all(|&m| m == 0.0));
    }

    #[test]
    fn pooled_plan_refuses_a_sequence_past_its_slot() {
        let shape = PoolShape {
            layers: 1,
            slots: 1,
            heads: 1,
            max_tokens: 4,
            head_dim: 2,
        };
        let pool = KvPool::new(shape, DType::F32, &Device::Cpu).unwrap();
        let mut c = pool.lease(1, 4).unwrap();
        c.commit(4);
        let batch = [SeqInput {
            tokens: &[1],
            cache: &mut c,
        }];
        let err = PooledPlan::new(&batch, 4).unwrap_err().to_string();
        assert!(
            err.contains("5 tokens") && err.contains("slot of 4"),
            "{err}"
        );
    }
}
