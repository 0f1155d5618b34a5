//! The [`PooledPlan`] of a step over the KV pool: where each row of the stacked batch comes from
//! (one decode row per slot `0..width`, dummies for idle slots, then each prefill's tokens), the
//! cache row each decode row writes and the keys it may see. Pure bookkeeping, no tensors, so
//! the eager path and a CUDA graph's packed inputs are built from the same plan.
//! Must not know about weights.

use crate::server::engine::step::SeqInput;

/// Where each row of a pooled step comes from. Pure bookkeeping, no tensors.
#[derive(Debug, PartialEq)]
pub struct PooledPlan {
    /// Decode rows `0..width` are slots; prefill rows follow.
    pub width: usize,
    pub ids: Vec<u32>,
    /// Rotary position of each row.
    pub positions: Vec<u32>,
    /// Per decode row: the cache row its K/V goes to (a dummy row writes the slot's last row,
    /// which no live sequence reads: a sequence always keeps room for one more token).
    pub write: Vec<u32>,
    /// Per decode row: keys it may see (`position + 1`; 1 for a dummy).
    pub visible: Vec<usize>,
    /// Keys the decode attention reads per slot: the longest `visible`.
    pub span: usize,
    pub prefills: Vec<PrefillRows>,
    /// Per sequence, in batch order: the row whose logits it gets.
    pub last: Vec<u32>,
}

#[derive(Debug, PartialEq)]
pub struct PrefillRows {
    pub slot: usize,
    pub past: usize,
    pub t: usize,
    /// First row of this sequence in the step.
    pub start: usize,
}

impl PooledPlan {
    pub fn new(batch: &[SeqInput<'_>], max_tokens: usize) -> candle_core::Result<Self> {
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

    /// The decode rows packed for [`super::pooled::Pooled::decode_from_device`], padded with
    /// dummy slots to `width`: token ids, positions, cache rows to write, keys visible.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))] // only CUDA graphs pack inputs
    pub fn device_input(&self, width: usize, max_tokens: usize) -> Vec<u32> {
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
    pub fn decode_mask(&self) -> Vec<f32> {
        self.visible
            .iter()
            .flat_map(|&v| (0..self.span).map(move |j| if j < v { 0.0 } else { f32::NEG_INFINITY }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;
    use crate::server::engine::kv_cache::{KvCache, KvPool, PoolShape};

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
