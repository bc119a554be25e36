//! The transports: stdio (what desktop clients launch) and streamable HTTP on a loopback address.

use crate::{Error, ThinkflMcp};
use axum::Router;
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves `server` on stdin/stdout until the client closes the connection. Nothing else may
/// write to stdout meanwhile: it is the protocol's channel (logs go to stderr).
pub async fn serve_stdio(server: ThinkflMcp) -> Result<(), Error> {
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| Error::Transport(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| Error::Transport(e.to_string()))?;
    Ok(())
}

/// Serves `server` over streamable HTTP at `/mcp` on `listener` until `shutdown` resolves. The
/// listener must be on a loopback address (the data and the localizer are for this machine's
/// user); the tool server's limits apply (open connections, header-read time, body size), and
/// the `Host` header must name a loopback host (DNS-rebinding guard).
pub async fn serve_http(
    server: ThinkflMcp,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        return Err(Error::Config {
            field: "addr",
            msg: format!("{addr} is not a loopback address; the MCP server binds 127.0.0.1 or ::1"),
        });
    }
    let limits = server.config().limits.clone();
    let stop = CancellationToken::new();
    let config = StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(limits.max_body_bytes)
        .with_cancellation_token(stop.child_token());
    let service: StreamableHttpService<ThinkflMcp, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
    let app = Router::new().nest_service("/mcp", service);
    let _stop_sessions = stop.drop_guard();
    thinkfl_server::serve(listener, app, &limits, shutdown).await?;
    Ok(())
}
