//! The validation workers: [`VALIDATION_WORKERS`] long-lived threads that tokenize prompts,
//! as TGI's `--validation-workers`. Off the async threads, so a megabyte prompt never stalls
//! `/health` or the accept loop; and always the same few threads, because a tokenizer's peak
//! memory stays in the allocator arena of the thread that ran it: on short-lived blocking
//! threads every new thread took a new arena, and the process grew with each one.

use tokio::sync::oneshot;

/// Threads that tokenize at once; `/info` reports it as `validation_workers`.
pub const VALIDATION_WORKERS: usize = 2;

/// The worker pool, shared by every handler.
pub struct ValidationWorkers {
    pool: rayon::ThreadPool,
}

/// The pool is gone (the server is shutting down) or the job panicked.
#[derive(Debug, thiserror::Error)]
#[error("the validation worker stopped before answering")]
pub struct WorkerGone;

impl ValidationWorkers {
    pub fn start() -> std::io::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(VALIDATION_WORKERS)
            .thread_name(|i| format!("rpload-validate-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self { pool })
    }

    /// Runs `job` on a worker once one is free, in arrival order.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, WorkerGone> {
        let (tx, rx) = oneshot::channel();
        self.pool.spawn_fifo(move || {
            // The client left while its prompt waited: skip the work.
            if !tx.is_closed() {
                let _ = tx.send(job());
            }
        });
        rx.await.map_err(|_| WorkerGone)
    }
}
