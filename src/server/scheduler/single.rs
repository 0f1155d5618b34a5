//! The FastAPI-like policy the study compared against: one request at a time, in arrival order;
//! the others wait. Plain data: no tokio, no clock, no tensors.

use std::collections::VecDeque;

use super::{Scheduler, Waiting};

#[derive(Debug, Default)]
pub struct State {
    waiting: VecDeque<Waiting>,
    /// The request being generated and the tokens it reserved.
    running: Option<(u64, usize)>,
}

impl Scheduler for State {
    fn push(&mut self, entry: Waiting) {
        self.waiting.push_back(entry);
    }

    fn next_batch(&mut self) -> Vec<u64> {
        if self.running.is_some() {
            return Vec::new();
        }
        match self.waiting.pop_front() {
            Some(w) => {
                self.running = Some((w.id, w.input_tokens + w.max_new_tokens));
                vec![w.id]
            }
            None => Vec::new(),
        }
    }

    fn remove(&mut self, id: u64) {
        if self.running.is_some_and(|(r, _)| r == id) {
            self.running = None;
        } else {
            self.waiting.retain(|w| w.id != id);
        }
    }

    fn queue_len(&self) -> usize {
        self.waiting.len()
    }

    fn running_len(&self) -> usize {
        usize::from(self.running.is_some())
    }

    fn reserved_tokens(&self) -> usize {
        self.running.map_or(0, |(_, n)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_at_a_time_in_order() {
        let mut s = State::default();
        for id in 0..3 {
            s.push(Waiting {
                id,
                input_tokens: 5,
                max_new_tokens: 5,
            });
        }
        assert_eq!(s.next_batch(), vec![0]);
        assert_eq!(s.next_batch(), Vec::<u64>::new(), "a late request waits");
        assert_eq!(s.reserved_tokens(), 10);
        s.remove(0);
        assert_eq!(s.next_batch(), vec![1]);
        s.remove(2); // abandoned while waiting
        s.remove(1);
        assert_eq!(s.next_batch(), Vec::<u64>::new());
        assert_eq!((s.queue_len(), s.running_len()), (0, 0));
    }
}
