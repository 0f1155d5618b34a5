//! Key/value caches. Two storages, picked by the model's attention path:
//!
//! - [`KvPool`]: device tensors shared by all sequences, `[slots, heads, max_tokens, head_dim]`
//!   per layer for K and for V, allocated once at start. A sequence leases one slot for its
//!   life. Because every slot has the same strides, a decode step writes all new rows with one
//!   scatter per layer and attends over all sequences with one batched matmul, whatever their
//!   lengths: the number of kernel launches does not grow with the batch (the CUDA path).
//! - host buffers for the f32 CPU kernel (`exec/cpu_attention/`), head-major per sequence
//!   (`[heads, capacity, head_dim]`), grown by doubling.
//!
//! [`KvCache`] is one sequence's handle on either; dropping it frees the slot or the buffers, so
//! the scheduler frees a finished or abandoned sequence by dropping it.
//! Must not know about weights, sampling or scheduling.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Tensor};

/// The shared device cache: K and V for every layer and slot.
#[derive(Debug)]
pub struct KvPool {
    /// Per layer, `(k, v)`, each `[slots, heads, max_tokens, head_dim]`.
    layers: Vec<(Tensor, Tensor)>,
    slots: usize,
    max_tokens: usize,
    /// Free slot indices; the lowest is leased first so a decode step's rows stay dense.
    free: Arc<Mutex<BTreeSet<usize>>>,
}

/// The shape of a [`KvPool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    pub layers: usize,
    pub slots: usize,
    pub heads: usize,
    pub max_tokens: usize,
    pub head_dim: usize,
}

impl PoolShape {
    /// Bytes the pool takes in `dtype`.
    pub fn bytes(&self, dtype: DType) -> usize {
        2 * self.layers
            * self.slots
            * self.heads
            * self.max_tokens
            * self.head_dim
            * dtype.size_in_bytes()
    }
}

impl KvPool {
    pub fn new(shape: PoolShape, dtype: DType, device: &Device) -> Result<Self> {
        let dims = (shape.slots, shape.heads, shape.max_tokens, shape.head_dim);
        let layers = (0..shape.layers)
            .map(|_| {
                Ok((
                    Tensor::zeros(dims, dtype, device)?,
                    Tensor::zeros(dims, dtype, device)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            slots: shape.slots,
            max_tokens: shape.max_tokens,
            free: Arc::new(Mutex::new((0..shape.slots).collect())),
        })
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Tokens one sequence can hold.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// K and V of `layer`, all slots.
    pub fn layer(&self, layer: usize) -> &(Tensor, Tensor) {
        &self.layers[layer]
    }

    /// A free slot for a sequence of up to `reserve` tokens, or why there is none.
    pub fn lease(
        &self,
        num_layers: usize,
        reserve: usize,
    ) -> std::result::Result<KvCache, PoolFull> {
        if reserve > self.max_tokens {
            return Err(PoolFull::TooLong {
                reserve,
                max_tokens: self.max_tokens,
            });
        }
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let index = free
            .pop_first()
            .ok_or(PoolFull::NoSlot { slots: self.slots })?;
        Ok(KvCache {
            host: (0..num_layers).map(|_| HostKv::default()).collect(),
            len: 0,
            initial_capacity: 1,
            slot: Some(SlotLease {
                index,
                free: self.free.clone(),
            }),
        })
    }
}

/// Why [`KvPool::lease`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolFull {
    #[error(
        "the request needs {reserve} cache tokens but a sequence holds at most {max_tokens}: lower max_new_tokens or restart the server with a larger --max-total-tokens"
    )]
    TooLong { reserve: usize, max_tokens: usize },
    #[error(
        "all {slots} cache slots are in use: lower --max-batch-size or --max-total-tokens so the scheduler admits fewer sequences"
    )]
    NoSlot { slots: usize },
}

/// A slot of a [`KvPool`], returned to the pool on drop.
#[derive(Debug)]
struct SlotLease {
    index: usize,
    free: Arc<Mutex<BTreeSet<usize>>>,
}

impl Drop for SlotLease {
    fn drop(&mut self) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.insert(self.index);
    }
}

/// One sequence's cache: a pool slot (candle path) or host buffers (f32 CPU kernel).
#[derive(Debug)]
pub struct KvCache {
    /// Host storage per layer (f32 CPU path only).
    host: Vec<HostKv>,
    /// Tokens stored (the same in every layer once a forward pass has finished).
    len: usize,
    /// Host rows to allocate on first use, so a request that reserved its budget never grows.
    initial_capacity: usize,
    slot: Option<SlotLease>,
}

impl KvCache {
    /// A host cache (f32 CPU kernel) that will hold about `initial_capacity` tokens.
    pub fn host(num_layers: usize, initial_capacity: usize) -> Self {
        Self {
            host: (0..num_layers).map(|_| HostKv::default()).collect(),
            len: 0,
            initial_capacity: initial_capacity.max(1),
            slot: None,
        }
    }

    /// Tokens already cached: also the position of the next token.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pool slot, for a cache leased from a [`KvPool`].
    pub fn slot(&self) -> Option<usize> {
        self.slot.as_ref().map(|s| s.index)
    }

    /// The host K and V of `layer`, with room for `extra` more tokens beyond the cached ones.
    pub fn host_layer(
        &mut self,
        layer: usize,
        heads: usize,
        head_dim: usize,
        extra: usize,
    ) -> &mut HostKv {
        let needed = self.len + extra;
        let kv = &mut self.host[layer];
        if kv.capacity < needed {
            let capacity = if kv.capacity == 0 {
                self.initial_capacity.max(needed)
            } else {
                (kv.capacity * 2).max(needed)
            };
            kv.grow(self.len, capacity, heads, head_dim);
        }
        kv
    }

    /// Marks `t` more tokens as stored, after all layers wrote them.
    pub fn commit(&mut self, t: usize) {
        self.len += t;
    }
}

/// One layer's keys and values on the host, `[heads, capacity, head_dim]` each.
#[derive(Debug, Default)]
pub struct HostKv {
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// Token rows allocated per head.
    pub capacity: usize,
}

impl HostKv {
    /// Offset of row `pos` of `head` in `k`/`v`.
    pub fn at(&self, head: usize, pos: usize, head_dim: usize) -> usize {
        (head * self.capacity + pos) * head_dim
    }

    fn grow(&mut self, len: usize, capacity: usize, heads: usize, head_dim: usize) {
        let mut k = vec![0f32; heads * capacity * head_dim];
        let mut v = vec![0f32; heads * capacity * head_dim];
        for head in 0..heads {
            let from = self.at(head, 0, head_dim);
            let to = head * capacity * head_dim;
            let n = len * head_dim;
            k[to..to + n].copy_from_slice(&self.k[from..from + n]);
            v[to..to + n].copy_from_slice(&self.v[from..from + n]);
        }
        (self.k, self.v, self.capacity) = (k, v, capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(slots: usize, max_tokens: usize) -> KvPool {
        let shape = PoolShape {
            layers: 1,
            slots,
            heads: 1,
            max_tokens,
            head_dim: 2,
        };
        KvPool::new(shape, DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn slots_are_leased_lowest_first_and_come_back_on_drop() {
        let p = pool(3, 8);
        let a = p.lease(1, 8).unwrap();
        let b = p.lease(1, 4).unwrap();
        assert_eq!((a.slot(), b.slot()), (Some(0), Some(1)));
        drop(a);
        let c = p.lease(1, 1).unwrap();
        assert_eq!(c.slot(), Some(0), "the freed lowest slot is reused");
        let _d = p.lease(1, 1).unwrap();
        assert_eq!(p.lease(1, 1).unwrap_err(), PoolFull::NoSlot { slots: 3 });
    }

    #[test]
    fn a_reservation_longer_than_a_slot_is_refused_with_the_limit() {
        let err = pool(1, 8).lease(1, 9).unwrap_err();
        assert_eq!(
            err,
            PoolFull::TooLong {
                reserve: 9,
                max_tokens: 8
            }
        );
        assert!(err.to_string().contains("--max-total-tokens"), "{err}");
    }

    #[test]
    fn pool_bytes_count_k_and_v_of_every_layer() {
        let shape = PoolShape {
            layers: 32,
            slots: 64,
            heads: 32,
            max_tokens: 1024,
            head_dim: 80,
        };
        // RedPajama-3B: 327,680 bytes per token in f16.
        assert_eq!(shape.bytes(DType::F16), 64 * 1024 * 327_680);
    }

    #[test]
    fn host_layer_grows_and_keeps_each_heads_rows() {
        let mut cache = KvCache::host(1, 1);
        let kv = cache.host_layer(0, 2, 1, 1);
        kv.k[0] = 1.0; // head 0, pos 0
        let at = kv.at(1, 0, 1);
        kv.k[at] = 2.0; // head 1, pos 0
        cache.commit(1);
        let kv = cache.host_layer(0, 2, 1, 3);
        assert!(kv.capacity >= 4);
        assert_eq!(kv.k[kv.at(0, 0, 1)], 1.0);
        assert_eq!(kv.k[kv.at(1, 0, 1)], 2.0);
    }
}
