//! [`GptNeox`], the served engine: a [`Model`] plus the state a step changes — the attention
//! path (the f32 host kernel or candle ops over the shared [`KvPool`]), the pool itself, the
//! CUDA graphs of decode steps, and the profiler. [`GptNeox::forward`] checks a batch, runs it
//! through `exec::host` or `exec::pooled` (or replays a graph of the latter) and applies the
//! head; [`Engine`] adds the pick. Must not sample, tokenize or schedule.

use candle_core::{DType, Device, Tensor};

use super::error::EngineError;
use super::exec::plan::PooledPlan;
use super::exec::{host, pooled::Pooled};
use super::kv_cache::{KvCache, KvPool, PoolShape};
use super::model::{Config, Model};
use super::profile::{Laps, Profile};
use super::step::{Engine, SeqInput, StepOutput, pick};
use super::weights::WeightSource;

/// A GPT-NeoX model ready to run steps.
pub struct GptNeox {
    model: Model,
    /// Attention through `exec::cpu_attention` (f32 on CPU) rather than candle ops.
    host_attention: bool,
    /// The shared KV cache of the candle attention path.
    pool: Option<KvPool>,
    profile: Option<Profile>,
    /// Decode steps as CUDA graphs (see `graphs.rs`); `None` off CUDA or when disabled.
    /// Reached through `&mut self` only, so it needs no lock.
    #[cfg(feature = "cuda")]
    graphs: Option<super::graphs::Graphs>,
}

impl GptNeox {
    /// Builds the model from `weights`, checking every tensor's presence and shape.
    pub fn load(
        cfg: Config,
        weights: &WeightSource,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, EngineError> {
        let model = Model::load(cfg, weights, dtype, device)?;
        Ok(Self {
            model,
            host_attention: device.is_cpu() && dtype == DType::F32,
            pool: None,
            profile: Profile::from_env(),
            #[cfg(feature = "cuda")]
            graphs: (device.is_cuda() && super::graphs::wanted()).then(Default::default),
        })
    }

    pub fn config(&self) -> &Config {
        &self.model.cfg
    }

    /// Forces the candle attention path (`false`) or the CPU kernel (`true`, f32 on CPU only);
    /// tests use it to pin both paths to the same numbers.
    pub fn set_host_attention(&mut self, on: bool) {
        self.host_attention = on && self.device().is_cpu() && self.dtype() == DType::F32;
    }

    /// The per-phase profiler, when `RPLOAD_PROFILE` is set.
    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    fn laps(&self) -> Laps<'_> {
        Laps::new(self.profile.as_ref(), &self.model.device)
    }

    pub fn device(&self) -> &Device {
        &self.model.device
    }

    pub fn dtype(&self) -> DType {
        self.model.dtype
    }

    /// Allocates the shared KV cache for the candle attention path: `slots` sequences of up to
    /// `max_tokens` tokens each. The f32 CPU kernel keeps its own host caches and needs none.
    pub fn reserve_cache(&mut self, slots: usize, max_tokens: usize) -> Result<(), EngineError> {
        self.pool = None; // free the old pool before allocating the new one
        let shape = self.pool_shape(slots, max_tokens);
        self.pool = Some(KvPool::new(shape, self.dtype(), self.device())?);
        Ok(())
    }

    /// The pool `reserve_cache(slots, max_tokens)` would allocate.
    pub fn pool_shape(&self, slots: usize, max_tokens: usize) -> PoolShape {
        let cfg = &self.model.cfg;
        PoolShape {
            layers: cfg.num_hidden_layers,
            slots,
            heads: cfg.num_attention_heads,
            max_tokens,
            head_dim: cfg.head_dim(),
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
        let layers = self.model.cfg.num_hidden_layers;
        if self.host_attention {
            return Ok(KvCache::host(layers, reserve));
        }
        if self.pool.is_none() {
            self.reserve_cache(8, self.model.cfg.max_position_embeddings)?;
        }
        // Unwrap is safe: the pool was allocated just above.
        let pool = self.pool.as_ref().expect("pool allocated above");
        Ok(pool.lease(layers, reserve)?)
    }

    /// [`Self::forward`] with the logits copied to the host, one row per sequence.
    pub fn logits(&mut self, batch: &mut [SeqInput<'_>]) -> Result<Vec<Vec<f32>>, EngineError> {
        Ok(self.forward(batch)?.to_vec2::<f32>()?)
    }

    /// Runs one step: feeds each sequence its tokens, appends their K/V to its cache, and
    /// returns the logits of each sequence's last fed position, `[batch, vocab]` in f32.
    pub fn forward(&mut self, batch: &mut [SeqInput<'_>]) -> candle_core::Result<Tensor> {
        let max_positions = self.model.cfg.max_position_embeddings;
        for seq in batch.iter() {
            let total = seq.cache.len() + seq.tokens.len();
            if total > max_positions {
                candle_core::bail!(
                    "sequence of {total} tokens exceeds max_position_embeddings {max_positions}"
                );
            }
        }
        if let Some(p) = &self.profile {
            p.start(self.device());
        }
        let laps = Laps::new(self.profile.as_ref(), &self.model.device);
        let (x, last) = if self.host_attention {
            host::layers(&self.model, batch, laps)?
        } else {
            let Some(pool) = &self.pool else {
                candle_core::bail!("the KV cache pool is not allocated")
            };
            let plan = PooledPlan::new(batch, pool.max_tokens())?;
            let pooled = Pooled {
                model: &self.model,
                pool,
                laps,
            };
            #[cfg(feature = "cuda")]
            if let Some(graphs) = &mut self.graphs
                && let Some(logits) = decode_by_graph(graphs, pooled, &plan)?
            {
                for seq in batch.iter_mut() {
                    seq.cache.commit(1);
                }
                return Ok(logits);
            }
            pooled.layers(plan)?
        };
        for seq in batch.iter_mut() {
            seq.cache.commit(seq.tokens.len());
        }
        let last = Tensor::from_vec(last, batch.len(), self.device())?;
        let logits = self.model.layers.head(&x.index_select(&last, 0)?)?;
        laps.lap("head");
        Ok(logits)
    }

    /// The body of a decode-only CUDA graph, callable anywhere for tests: see
    /// [`Pooled::decode_from_device`]. Needs the pool (`reserve_cache`).
    pub fn decode_from_device(
        &self,
        input: &Tensor,
        arange: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let Some(pool) = &self.pool else {
            candle_core::bail!("the KV cache pool is not allocated")
        };
        let pooled = Pooled {
            model: &self.model,
            pool,
            laps: self.laps(),
        };
        pooled.decode_from_device(input, arange)
    }
}

/// A decode-only step through a CUDA graph, or `None` to run it eagerly.
#[cfg(feature = "cuda")]
fn decode_by_graph(
    graphs: &mut super::graphs::Graphs,
    pooled: Pooled<'_>,
    plan: &PooledPlan,
) -> candle_core::Result<Option<Tensor>> {
    if !plan.prefills.is_empty() {
        return Ok(None);
    }
    let pool = pooled.pool;
    let bucket = super::graphs::Bucket::of(plan.width, plan.span, pool.slots(), pool.max_tokens());
    let input = plan.device_input(bucket.width, pool.max_tokens());
    let body = |i: &super::graphs::StepInputs| pooled.decode_from_device(&i.packed, &i.arange);
    let Some(all) = graphs.run(&pooled.model.device, bucket, input, body)? else {
        return Ok(None);
    };
    let last = Tensor::from_vec(plan.last.clone(), plan.last.len(), &pooled.model.device)?;
    Ok(Some(all.index_select(&last, 0)?))
}

impl Engine for GptNeox {
    fn step(
        &mut self,
        batch: &mut [SeqInput<'_>],
        greedy: &[bool],
    ) -> Result<Vec<StepOutput>, EngineError> {
        let logits = self.forward(batch)?;
        let out = pick(&logits, greedy)?;
        if let Some(p) = self.profile() {
            p.lap(self.device(), "pick");
            p.end_step(batch.len());
        }
        Ok(out)
    }

    fn new_cache(&mut self, reserve: usize) -> Result<KvCache, EngineError> {
        GptNeox::new_cache(self, reserve)
    }
}
