//! [`Generator`]: the one front the routes submit validated requests to, whichever engine
//! runs: the scheduler's worker thread around a model, or the mock's timers. Both answer with a
//! [`TokenStream`] of the same events, so every route and wire format is shared.
//! Must not know HTTP, policies or timing: it only dispatches.

use std::sync::Arc;
use std::time::Instant;

use super::mock::MockEngine;
use super::scheduler::{SchedulerHandle, TokenStream, WorkerStopped};
use super::validate::ValidRequest;

#[derive(Clone)]
pub enum Generator {
    /// `--engine continuous|single`: a model on the scheduler's worker thread.
    Worker(SchedulerHandle),
    /// `--engine mock`: no model, tokens on timers.
    Mock(Arc<MockEngine>),
}

impl Generator {
    /// Submits `req`; `arrived` is when the request reached the server (the mock times its
    /// answer from then; the worker stamps its own clock).
    pub fn submit(
        &self,
        req: ValidRequest,
        arrived: Instant,
    ) -> Result<TokenStream, WorkerStopped> {
        match self {
            Self::Worker(w) => w.submit(req),
            Self::Mock(m) => Ok(m.submit(req, arrived)),
        }
    }

    /// The answer length for a request that gives none: the route's own default on a model,
    /// `--tokens` on the mock (whose point is a known length).
    pub fn default_max_new_tokens(&self, route_default: u32) -> u32 {
        match self {
            Self::Worker(_) => route_default,
            Self::Mock(m) => u32::try_from(m.default_tokens()).unwrap_or(u32::MAX),
        }
    }
}
