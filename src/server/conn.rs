//! Accepting and holding TCP connections for [`super::serve`]: the connection cap
//! (`--max-connections`), the header-read deadline (`--header-read-timeout`) and the drain on
//! shutdown. axum's own `serve` has neither limit, so connections are served here with
//! hyper-util's builder, as axum does inside. Must not know routes or the model.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

/// How connections are held; from [`super::ServerConfig`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnLimits {
    /// Time to send a request's headers, and between requests on a kept-alive connection.
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// HTTP/2's client preface: a connection that starts with it speaks HTTP/2 (h2c).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves `router` on `listener` until `shutdown` resolves, then waits for open connections to
/// finish their requests (idle ones close at once).
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    router: axum::Router,
    limits: ConnLimits,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // Each connection task holds a receiver; a change asks it to finish gracefully.
    let (stop_tx, stop_rx) = watch::channel(());
    // Each task holds a sender; `recv` returning `None` means every connection has ended.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(&stream, limits.max_connections);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            builder: builder.clone(),
            router: router.clone(),
            header_read_timeout: limits.header_read_timeout,
            stop: stop_rx.clone(),
            _slot: slot,
            _open: open_tx.clone(),
        };
        tokio::spawn(conn.run(stream));
    }
    drop(listener);
    let _ = stop_tx.send(());
    drop(open_tx);
    let _ = open_rx.recv().await;
    Ok(())
}

/// An accept error is about one connection (reset before accept) or the process (out of file
/// descriptors); either way the listener still works, so wait a little and go on rather than
/// stop serving, as axum does.
async fn accept_failed(e: std::io::Error) {
    let transient = matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionRefused
    );
    if !transient {
        eprintln!("rpload serve: accepting a connection failed: {e} (retrying in 50 ms)");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Answers a connection over the cap with a 503 and closes it. The write is one non-blocking
/// attempt: a refused client must cost nothing more than this, or a flood of them would.
fn refuse(stream: &TcpStream, cap: usize) {
    let body = format!(
        r#"{{"error":"too many connections: the server holds at most {cap} (--max-connections); retry later or raise the flag","error_type":"overloaded"}}"#
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

/// One accepted connection and what it holds until it ends.
struct Connection {
    builder: auto::Builder<TokioExecutor>,
    router: axum::Router,
    header_read_timeout: Duration,
    stop: watch::Receiver<()>,
    _slot: OwnedSemaphorePermit,
    _open: mpsc::Sender<()>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        // hyper's header timer starts once the protocol is known, but the builder first waits
        // for enough bytes to tell HTTP/1 from HTTP/2, with no deadline: a client that sends
        // nothing would hold its slot forever. That wait gets the same deadline here.
        let sniff = tokio::time::timeout(self.header_read_timeout, protocol_known(&stream));
        tokio::select! {
            known = sniff => {
                if !matches!(known, Ok(Ok(true))) {
                    return;
                }
            }
            _ = self.stop.changed() => return,
        }
        let service = TowerToHyperService::new(self.router);
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = self.stop.changed() => conn.as_mut().graceful_shutdown(),
        }
        let _ = conn.await;
    }
}

/// Waits until the first bytes tell the protocol: `false` when the client closed first.
async fn protocol_known(stream: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(false);
        }
        if n == buf.len() || buf[..n] != H2_PREFACE[..n] {
            return Ok(true);
        }
        // A proper prefix of the preface: `peek` returns at once while those bytes wait, so
        // poll for the rest instead of spinning.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
