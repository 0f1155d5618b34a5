//! [`EmbeddedServer`]: the reference server inside this process, on 127.0.0.1 and a free
//! port, for a target-less `rpload sweep` and the tests ([`spawn_embedded_fake`] around a
//! [`FakeEngine`] for exact scheduling figures).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use super::engine::{FakeEngine, TextTokenizer};
use super::{App, Backend, ServerConfig, build, router, serve};

/// A server running inside this process (the default target of `rpload sweep`).
pub struct EmbeddedServer {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl EmbeddedServer {
    /// Where it listens (127.0.0.1 and a free port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Loads the model, binds 127.0.0.1 on a free port and serves in a background task.
/// Model errors are returned here, before any request can be sent.
pub async fn spawn_embedded(cfg: ServerConfig) -> anyhow::Result<EmbeddedServer> {
    serve_embedded(build(cfg).await?).await
}

/// [`spawn_embedded`] around `fake` instead of `cfg.model`, with the presets' tokenizer; the
/// token limits come from the fake's context as they would from a model's. The server reports
/// the model id `fake`.
pub async fn spawn_embedded_fake(
    cfg: ServerConfig,
    fake: FakeEngine,
) -> anyhow::Result<EmbeddedServer> {
    let resolved = cfg.resolve(fake.max_positions())?;
    let tokenizer = Arc::new(TextTokenizer::embedded()?);
    let app = router(
        &cfg,
        resolved,
        Backend::Model(Box::new(fake)),
        tokenizer,
        "fake".to_string(),
    )?;
    serve_embedded(app).await
}

/// Binds 127.0.0.1 on a free port and serves `app` in a background task.
async fn serve_embedded(app: App) -> anyhow::Result<EmbeddedServer> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stopped = async {
        let _ = stopped.await;
    };
    let task = tokio::spawn(serve(listener, stopped, app));
    Ok(EmbeddedServer { addr, stop, task })
}
