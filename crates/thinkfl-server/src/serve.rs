//! The accept loop: hyper's HTTP/1.1 connection driver under an axum router, with the limits
//! that `axum::serve` does not expose (header-read timeout, a cap on open connections).

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connection and request limits of a server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeLimits {
    /// Most open connections; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (slow-loris guard).
    pub header_read_timeout: Duration,
    /// Time one request may take from headers to response, body upload included.
    pub request_timeout: Duration,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
}

impl ServeLimits {
    /// Default of `max_connections`.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
    /// Default of `header_read_timeout`.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of `request_timeout`.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default of `max_body_bytes`.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

    /// Checks that every limit lets some request through; the error names the limit.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |field: &'static str, msg: &str| {
            Err(crate::Error::Limits {
                field,
                msg: msg.into(),
            })
        };
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.header_read_timeout.is_zero() {
            return bad("header_read_timeout", "must be > 0");
        }
        if self.request_timeout.is_zero() {
            return bad("request_timeout", "must be > 0");
        }
        if self.max_body_bytes < 1024 {
            return bad("max_body_bytes", "must be at least 1024");
        }
        Ok(())
    }
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves. Connections in flight are dropped at
/// shutdown (tool calls are short and idempotent).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, _peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        tokio::spawn(async move {
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
        });
    }
}

/// Binds `addr` and serves `server` on a runtime of `threads` workers until the process ends.
/// Prints the bound address on stderr (useful with port 0).
pub fn serve_blocking(
    server: std::sync::Arc<crate::ToolServer>,
    addr: std::net::SocketAddr,
    threads: usize,
) -> std::io::Result<()> {
    let datasets = server.dataset_ids().join(", ");
    run_blocking(
        addr,
        threads,
        "tool server",
        &datasets,
        |listener| async move {
            let limits = server.config().limits.clone();
            serve(listener, server.router(), &limits, std::future::pending()).await
        },
    )
}

/// What every HTTP `thinkfl serve` does around its own loop: a runtime of `threads` workers,
/// `addr` bound (a warning when it is not loopback), "thinkfl NAME on http://ADDR (data sets:
/// DATASETS)" on stderr (useful with port 0), then `run` with the listener until it returns.
pub fn run_blocking<Fut>(
    addr: std::net::SocketAddr,
    threads: usize,
    name: &str,
    datasets: &str,
    run: impl FnOnce(TcpListener) -> Fut,
) -> std::io::Result<()>
where
    Fut: Future<Output = std::io::Result<()>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(format!("thinkfl {name}"))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        if !bound.ip().is_loopback() {
            tracing::warn!("serving on {bound}, which is not a loopback address");
        }
        eprintln!("thinkfl {name} on http://{bound} (data sets: {datasets})");
        run(listener).await
    })
}
