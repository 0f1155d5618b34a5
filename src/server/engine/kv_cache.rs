//! The key/value cache of ONE sequence, held outside the model so that the scheduler can batch
//! any set of sequences, admit new ones between steps, and free a finished or abandoned one by
//! dropping it.
//!
//! Two storages, picked by the model: device tensors for the candle attention path
//! (`[capacity, heads, head_dim]` per layer, token-major, so appending a step is one contiguous
//! `slice_set` and reading is a view of the first `len` rows; capacity doubles when full), and
//! host buffers for the f32 CPU kernel (`cpu_attention.rs`), head-major
//! (`[heads, capacity, head_dim]`) so that one head's keys stream through the cache in order.
//! The scheduler can reserve the request's whole budget up front.
//! Must not know about weights, sampling or scheduling.

use candle_core::{DType, Device, Result, Tensor};

/// K and V for every layer of one sequence.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    /// Host storage per layer (f32 CPU path only).
    host: Vec<HostKv>,
    /// Tokens stored (the same in every layer once a forward pass has finished).
    len: usize,
    /// Rows to allocate on first use, so a request that reserved its budget never reallocates.
    initial_capacity: usize,
}

impl KvCache {
    pub fn new(num_layers: usize, initial_capacity: usize) -> Self {
        Self {
            layers: (0..num_layers).map(|_| None).collect(),
            host: (0..num_layers).map(|_| HostKv::default()).collect(),
            len: 0,
            initial_capacity: initial_capacity.max(1),
        }
    }

    /// Tokens already cached: also the position of the next token.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `k`, `v` (`[t, heads, head_dim]`, contiguous) to `layer` and returns views of
    /// all cached rows `[len + t, heads, head_dim]`. The length advances in [`Self::commit`],
    /// once every layer has appended, so all layers write at the same offset.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (t, heads, head_dim) = k.dims3()?;
        let needed = self.len + t;
        let slot = &mut self.layers[layer];
        let grow = match slot {
            Some((kc, _)) => kc.dim(0)? < needed,
            None => true,
        };
        if grow {
            let capacity = match slot {
                Some((kc, _)) => (kc.dim(0)? * 2).max(needed),
                None => self.initial_capacity.max(needed),
            };
            let (dtype, device): (DType, Device) = (k.dtype(), k.device().clone());
            let kn = Tensor::zeros((capacity, heads, head_dim), dtype, &device)?;
            let vn = Tensor::zeros((capacity, heads, head_dim), dtype, &device)?;
            if let Some((kc, vc)) = slot.take()
                && self.len > 0
            {
                kn.slice_set(&kc.narrow(0, 0, self.len)?, 0, 0)?;
                vn.slice_set(&vc.narrow(0, 0, self.len)?, 0, 0)?;
            }
            *slot = Some((kn, vn));
        }
        // Unwrap is safe: the branch above filled the slot.
        let (kc, vc) = slot.as_ref().expect("cache slot allocated above");
        kc.slice_set(k, 0, self.len)?;
        vc.slice_set(v, 0, self.len)?;
        Ok((kc.narrow(0, 0, needed)?, vc.narrow(0, 0, needed)?))
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

    /// Marks `t` more tokens as stored, after all layers appended them.
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

    #[test]
    fn append_grows_and_keeps_rows() -> Result<()> {
        let dev = Device::Cpu;
        let mut cache = KvCache::new(1, 2);
        let a = Tensor::arange(0f32, 6., &dev)?.reshape((3, 1, 2))?;
        let (k, _) = cache.append(0, &a, &a)?;
        cache.commit(3);
        assert_eq!(k.dims(), &[3, 1, 2]);
        let b = Tensor::arange(6f32, 8., &dev)?.reshape((1, 1, 2))?;
        let (k, v) = cache.append(0, &b, &b)?;
        cache.commit(1);
        assert_eq!(cache.len(), 4);
        let want: Vec<f32> = (0..8).map(|x| x as f32).collect();
        assert_eq!(k.flatten_all()?.to_vec1::<f32>()?, want);
        assert_eq!(v.flatten_all()?.to_vec1::<f32>()?, want);
        Ok(())
    }

    #[test]
    fn host_layer_grows_and_keeps_each_heads_rows() {
        let mut cache = KvCache::new(1, 1);
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
