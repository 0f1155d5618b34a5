//! The key/value cache of ONE sequence, held outside the model so that the scheduler can batch
//! any set of sequences, admit new ones between steps, and free a finished or abandoned one by
//! dropping it.
//!
//! Layout per layer: `[capacity, heads, head_dim]`, token-major, so appending the rows of a
//! step is one contiguous copy (`slice_set`) and reading is a view of the first `len` rows.
//! Capacity grows by doubling; the scheduler can reserve the request's whole budget up front.
//! Must not know about weights, sampling or scheduling.

use candle_core::{DType, Device, Result, Tensor};

/// K and V for every layer of one sequence.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    /// Tokens stored (the same in every layer once a forward pass has finished).
    len: usize,
    /// Rows to allocate on first use, so a request that reserved its budget never reallocates.
    initial_capacity: usize,
}

impl KvCache {
    pub fn new(num_layers: usize, initial_capacity: usize) -> Self {
        Self {
            layers: (0..num_layers).map(|_| None).collect(),
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
            if let Some((kc, vc)) = slot.take() {
                if self.len > 0 {
                    kn.slice_set(&kc.narrow(0, 0, self.len)?, 0, 0)?;
                    vn.slice_set(&vc.narrow(0, 0, self.len)?, 0, 0)?;
                }
            }
            *slot = Some((kn, vn));
        }
        // Unwrap is safe: the branch above filled the slot.
        let (kc, vc) = slot.as_ref().expect("cache slot allocated above");
        kc.slice_set(k, 0, self.len)?;
        vc.slice_set(v, 0, self.len)?;
        Ok((kc.narrow(0, 0, needed)?, vc.narrow(0, 0, needed)?))
    }

    /// Marks `t` more tokens as stored, after all layers appended them.
    pub fn commit(&mut self, t: usize) {
        self.len += t;
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
}
