//! Where a response chunk's arrival time is taken: at the wake-up that announced it, not at the
//! moment the request's task got round to reading it.
//!
//! A body chunk passes two hands on the attacker's runtime: the connection task reads the socket
//! and hands the bytes to the body, waking the request's task; that task then waits its turn
//! behind every other ready task (other bodies, the dispatcher) before it reads them. Stamping
//! at the read would add that queueing to TTFT and ITL exactly when the attacker is busiest.
//! [`Arrivals`] wraps the task's waker, records when the body woke it, and stamps the chunk with
//! that instant; the gap from wake to read is the *receive lag*, kept per request (its largest
//! value) so a step whose receive loop fell behind is flagged as the send side already is.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;

use super::clock::Clock;

/// Reads a response's chunks, stamping each where it arrived.
pub(super) struct Arrivals {
    stamp: Arc<WakeStamp>,
    waker: Waker,
    /// The largest wake-to-read delay seen so far.
    worst: Duration,
}

impl Arrivals {
    pub fn new(clock: Clock) -> Self {
        let stamp = Arc::new(WakeStamp {
            clock,
            woke_ns: AtomicU64::new(NOT_WOKEN),
            task: Mutex::new(None),
        });
        Self {
            waker: Waker::from(Arc::clone(&stamp)),
            stamp,
            worst: Duration::ZERO,
        }
    }

    /// The next chunk (`None`: the body's end) and the attack-clock time it arrived.
    pub async fn next(
        &mut self,
        resp: &mut reqwest::Response,
    ) -> reqwest::Result<(Option<Bytes>, Duration)> {
        let mut read = std::pin::pin!(resp.chunk());
        let (chunk, at) = std::future::poll_fn(|cx| self.poll_stamped(read.as_mut(), cx)).await;
        Ok((chunk?, at))
    }

    /// The largest delay between a chunk's wake-up and its read, over the chunks read so far.
    pub fn worst_lag(&self) -> Duration {
        self.worst
    }

    fn poll_stamped<F: Future>(
        &mut self,
        fut: std::pin::Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<(F::Output, Duration)> {
        self.stamp.follow(cx.waker());
        // The wake that led to this poll, if the body (not a timer beside it) asked for it.
        let woke = self.stamp.woke_ns.swap(NOT_WOKEN, Ordering::AcqRel);
        let mut inner = Context::from_waker(&self.waker);
        match fut.poll(&mut inner) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(out) => {
                let now = self.stamp.clock.elapsed();
                // No wake: the bytes were already there when we asked; their arrival is not
                // known more closely than now.
                let at = if woke == NOT_WOKEN {
                    now
                } else {
                    Duration::from_nanos(woke).min(now)
                };
                self.worst = self.worst.max(now - at);
                Poll::Ready((out, at))
            }
        }
    }
}

const NOT_WOKEN: u64 = u64::MAX;

/// The waker the body sees: notes the first wake-up's time, then wakes the task.
struct WakeStamp {
    clock: Clock,
    woke_ns: AtomicU64,
    task: Mutex<Option<Waker>>,
}

impl WakeStamp {
    /// Keeps the task's current waker (it changes only when the task moves between executors).
    fn follow(&self, waker: &Waker) {
        let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if !task.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *task = Some(waker.clone());
        }
    }
}

impl Wake for WakeStamp {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let now = u64::try_from(self.clock.elapsed().as_nanos()).unwrap_or(NOT_WOKEN - 1);
        // The first wake since the last poll is when the bytes became readable.
        let _ = self
            .woke_ns
            .compare_exchange(NOT_WOKEN, now, Ordering::AcqRel, Ordering::Relaxed);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = task.as_ref() {
            w.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::attack::clock::ClockKind;

    /// A future that is pending until its waker has been called, then ready.
    struct Gate {
        waker: Arc<Mutex<Option<Waker>>>,
        open: Arc<AtomicBool>,
    }

    impl Future for Gate {
        type Output = ();
        fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.open.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_chunk_is_stamped_at_its_wake_not_at_its_read() {
        let clock = Clock::start(ClockKind::Tokio);
        let mut arrivals = Arrivals::new(clock);
        let (waker, open) = (Arc::new(Mutex::new(None)), Arc::new(AtomicBool::new(false)));
        let mut gate = std::pin::pin!(Gate {
            waker: Arc::clone(&waker),
            open: Arc::clone(&open),
        });
        let mut cx = Context::from_waker(Waker::noop());
        assert!(arrivals.poll_stamped(gate.as_mut(), &mut cx).is_pending());
        // The bytes become readable at 10 ms ...
        tokio::time::advance(Duration::from_millis(10)).await;
        open.store(true, Ordering::Release);
        let body_waker = waker
            .lock()
            .unwrap()
            .take()
            .expect("the read registered a waker");
        body_waker.wake();
        // ... and the busy task reads them at 25 ms.
        tokio::time::advance(Duration::from_millis(15)).await;
        let Poll::Ready(((), at)) = arrivals.poll_stamped(gate.as_mut(), &mut cx) else {
            panic!("the gate was open");
        };
        assert_eq!(at, Duration::from_millis(10));
        assert_eq!(arrivals.worst_lag(), Duration::from_millis(15));
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_already_there_are_stamped_at_the_read() {
        let clock = Clock::start(ClockKind::Tokio);
        tokio::time::sleep(Duration::from_millis(3)).await;
        let mut arrivals = Arrivals::new(clock);
        let mut ready = std::pin::pin!(std::future::ready(7));
        let (v, at) = std::future::poll_fn(|cx| arrivals.poll_stamped(ready.as_mut(), cx)).await;
        assert_eq!((v, at), (7, Duration::from_millis(3)));
        assert_eq!(arrivals.worst_lag(), Duration::ZERO);
    }
}
