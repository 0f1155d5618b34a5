//! The TGI-like policy: a FIFO waiting queue and a running batch. Between two engine steps,
//! waiting requests join the batch in arrival order while the batch has room in sequences
//! (`max_batch_size`), in reserved tokens (prompt + max_new_tokens, `max_batch_total_tokens`)
//! and in prompt tokens for this step (`max_batch_prefill_tokens`). New prompts are prefilled in
//! the same step that decodes the running sequences, so nobody waits for a batch to drain.
//! Plain data: no tokio, no clock, no tensors.

use std::collections::VecDeque;

use super::{BatchLimits, Scheduler, Waiting};

/// Waiting queue, running set and token budget.
#[derive(Debug)]
pub struct State {
    limits: BatchLimits,
    /// Arrival order; the head blocks those behind it (no overtaking, so no starvation).
    waiting: VecDeque<Waiting>,
    /// Running requests with the tokens each reserved.
    running: Vec<(u64, usize)>,
    /// Sum of the reservations in `running`.
    reserved: usize,
}

impl State {
    pub fn new(limits: BatchLimits) -> Self {
        Self {
            limits,
            waiting: VecDeque::new(),
            running: Vec::new(),
            reserved: 0,
        }
    }
}

impl Scheduler for State {
    fn push(&mut self, entry: Waiting) {
        self.waiting.push_back(entry);
    }

    fn next_batch(&mut self) -> Vec<u64> {
        let mut admitted = Vec::new();
        let mut prefill = 0;
        while let Some(head) = self.waiting.front() {
            let need = head.input_tokens + head.max_new_tokens;
            if self.running.len() >= self.limits.max_batch_size
                || self.reserved + need > self.limits.max_batch_total_tokens
                || (!admitted.is_empty()
                    && prefill + head.input_tokens > self.limits.max_batch_prefill_tokens)
            {
                break;
            }
            prefill += head.input_tokens;
            self.reserved += need;
            self.running.push((head.id, need));
            admitted.push(head.id);
            self.waiting.pop_front();
        }
        admitted
    }

    fn remove(&mut self, id: u64) {
        if let Some(pos) = self.running.iter().position(|&(r, _)| r == id) {
            let (_, need) = self.running.swap_remove(pos);
            self.reserved -= need;
        } else {
            self.waiting.retain(|w| w.id != id);
        }
    }

    fn queue_len(&self) -> usize {
        self.waiting.len()
    }

    fn running_len(&self) -> usize {
        self.running.len()
    }

    fn reserved_tokens(&self) -> usize {
        self.reserved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, input_tokens: usize, max_new_tokens: usize) -> Waiting {
        Waiting {
            id,
            input_tokens,
            max_new_tokens,
        }
    }

    fn state(max_batch_size: usize, total: usize, prefill: usize) -> State {
        State::new(BatchLimits {
            max_batch_size,
            max_batch_total_tokens: total,
            max_batch_prefill_tokens: prefill,
        })
    }

    #[test]
    fn admits_in_order_up_to_the_batch_size() {
        let mut s = state(2, 1000, 1000);
        for id in 0..3 {
            s.push(entry(id, 10, 10));
        }
        assert_eq!(s.next_batch(), vec![0, 1]);
        assert_eq!((s.running_len(), s.queue_len()), (2, 1));
        assert_eq!(s.next_batch(), Vec::<u64>::new());
        s.remove(0);
        assert_eq!(s.next_batch(), vec![2]);
    }

    #[test]
    fn token_budget_blocks_the_head_and_those_behind_it() {
        let mut s = state(10, 100, 1000);
        s.push(entry(0, 30, 30)); // 60
        s.push(entry(1, 30, 30)); // would make 120
        s.push(entry(2, 1, 1)); // fits, but must not overtake 1
        assert_eq!(s.next_batch(), vec![0]);
        assert_eq!(s.reserved_tokens(), 60);
        s.remove(0);
        assert_eq!(s.reserved_tokens(), 0);
        assert_eq!(s.next_batch(), vec![1, 2]);
    }

    #[test]
    fn late_request_joins_a_running_batch() {
        let mut s = state(4, 1000, 1000);
        s.push(entry(0, 10, 100));
        assert_eq!(s.next_batch(), vec![0]);
        s.push(entry(1, 10, 5));
        assert_eq!(s.next_batch(), vec![1], "admitted while 0 still runs");
        assert_eq!(s.running_len(), 2);
    }

    #[test]
    fn prefill_budget_splits_admissions_but_never_starves_one_big_prompt() {
        let mut s = state(10, 10_000, 100);
        s.push(entry(0, 500, 1)); // alone over the prefill budget: still admitted alone
        s.push(entry(1, 60, 1));
        s.push(entry(2, 60, 1));
        assert_eq!(s.next_batch(), vec![0]);
        assert_eq!(s.next_batch(), vec![1]);
        assert_eq!(s.next_batch(), vec![2]);
    }

    #[test]
    fn removing_a_waiting_request_keeps_the_rest_in_order() {
        let mut s = state(1, 1000, 1000);
        for id in 0..3 {
            s.push(entry(id, 1, 1));
        }
        s.remove(1);
        assert_eq!(s.next_batch(), vec![0]);
        s.remove(0);
        assert_eq!(s.next_batch(), vec![2]);
    }
}
