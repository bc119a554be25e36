//! `thinkfl serve tools --data DATASET[,DATASET...] [--addr 127.0.0.1:5001]`: the tool server,
//! with the paper's endpoints (`/search_traces?parent_span_id=..&cloudbed_id=..`, ...) and
//! `/v1/tools`, `/v1/tools/call`. A data set's `cloudbed_id` is its directory name.
//!
//! `thinkfl serve mcp --data DATASET [--http 127.0.0.1:PORT]`: the Model Context Protocol server
//! over stdio (what desktop clients launch) or streamable HTTP at `/mcp`.
//!
//! `thinkfl serve env --data DATASET...`: the RL environment (see `env.rs`).

use clap::{Args as ClapArgs, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thinkfl_server::{LoadedDataset, ServeLimits, ToolServer, ToolServerConfig, serve_blocking};
use thinkfl_store::LoadOptions;
use thinkfl_tools::{OutputMode, ToolsConfig};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: ServeCommand,
}

#[derive(Debug, Subcommand)]
enum ServeCommand {
    /// The diagnostic tools over HTTP.
    Tools(ToolsArgs),
    /// A Model Context Protocol server (stdio, or streamable HTTP with --http): the diagnostic
    /// tools, list_incidents, inspect and localize, the incidents as resources, a prompt.
    Mcp(McpArgs),
    /// The RL environment for OpenRLHF, TRL and verl: episodes over HTTP (create, step with
    /// the model's text, grade with a stage reward) and OpenRLHF's `POST /get_reward`.
    Env(super::env::ServeArgs),
}

#[derive(Debug, ClapArgs)]
struct McpArgs {
    /// A data set in the AIOps 2022 layout.
    #[arg(long)]
    data: PathBuf,
    /// Serve streamable HTTP at http://ADDR/mcp (a loopback address) instead of stdio.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Most rows in one tool result.
    #[arg(long, default_value_t = ToolsConfig::DEFAULT_MAX_ROWS)]
    max_rows: usize,
    /// Seconds a diagnostic tool call may take.
    #[arg(long, default_value_t = thinkfl_mcp::McpConfig::DEFAULT_TOOL_TIMEOUT.as_secs())]
    tool_timeout: u64,
    /// Seconds a localize call may take, loading the model included.
    #[arg(long, default_value_t = thinkfl_mcp::McpConfig::DEFAULT_LOCALIZE_TIMEOUT.as_secs())]
    localize_timeout: u64,
    /// The model `localize` runs as "default" (a --model spec of `thinkfl localize`).
    #[arg(long, default_value = "default", help = super::models::MODEL_HELP)]
    model: String,
    #[arg(long, help = super::models::ADAPTER_HELP)]
    adapter: Option<PathBuf>,
    /// Worker threads of the server (tool calls and episodes run on blocking threads besides).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long)]
    lenient: bool,
}

#[derive(Debug, ClapArgs)]
struct ToolsArgs {
    /// Data sets in the AIOps 2022 layout, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    data: Vec<PathBuf>,
    /// Address to bind; loopback by default.
    #[arg(long, default_value = "127.0.0.1:5001")]
    addr: SocketAddr,
    /// Default output mode: plain (the paper's server) or enriched; a request may pass `mode`.
    #[arg(long, default_value = "plain")]
    mode: String,
    #[arg(long, default_value_t = ToolsConfig::DEFAULT_MAX_ROWS)]
    max_rows: usize,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = ServeLimits::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    #[arg(long, default_value_t = ServeLimits::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Seconds one request may take.
    #[arg(long, default_value_t = ServeLimits::DEFAULT_REQUEST_TIMEOUT.as_secs())]
    request_timeout: u64,
    #[arg(long)]
    lenient: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        ServeCommand::Tools(a) => tools(a),
        ServeCommand::Mcp(a) => mcp(a),
        ServeCommand::Env(a) => super::env::serve(a),
    }
}

fn mcp(a: McpArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(addr) = a.http
        && !addr.ip().is_loopback()
    {
        anyhow::bail!("--http {addr}: the MCP server binds a loopback address (127.0.0.1 or ::1)");
    }
    let config = thinkfl_mcp::McpConfig {
        tools: ToolsConfig {
            mode: OutputMode::Enriched,
            max_rows: a.max_rows,
            ..Default::default()
        },
        tool_timeout: Duration::from_secs(a.tool_timeout),
        localize_timeout: Duration::from_secs(a.localize_timeout),
        ..Default::default()
    };
    let opts = LoadOptions { lenient: a.lenient };
    let (store, report) = super::open_store(&a.data, &opts)
        .with_context(|| format!("loading {}", a.data.display()))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let name = a
        .data
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| a.data.display().to_string());
    // The model is built on the first localize that asks for it: a client that only searches
    // traces never waits for it. The expert needs no loader (the server builds it).
    let (spec, adapter) = (a.model.clone(), a.adapter.clone());
    let loader: thinkfl_mcp::ModelLoader = std::sync::Arc::new(move |store| {
        super::models::build_model(&spec, adapter.as_deref(), store).map_err(|e| format!("{e:#}"))
    });
    let server = thinkfl_mcp::ThinkflMcp::new(name, store, config, Some(loader))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .thread_name("thinkfl-mcp")
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match a.http {
            None => {
                eprintln!(
                    "thinkfl MCP server on stdio (data set {}: {} spans, {} fault cases)",
                    server.name(),
                    server.store().span_count(),
                    server.store().faults().len()
                );
                thinkfl_mcp::serve_stdio(server).await
            }
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                eprintln!(
                    "thinkfl MCP server on http://{}/mcp (data set {}: {} spans, {} fault cases)",
                    listener.local_addr()?,
                    server.name(),
                    server.store().span_count(),
                    server.store().faults().len()
                );
                thinkfl_mcp::serve_http(server, listener, std::future::pending()).await
            }
        }
    })?;
    Ok(())
}

fn tools(a: ToolsArgs) -> anyhow::Result<()> {
    let mode: OutputMode = a.mode.parse()?;
    let config = ToolServerConfig {
        tools: ToolsConfig {
            mode,
            max_rows: a.max_rows,
            ..Default::default()
        },
        limits: ServeLimits {
            max_connections: a.max_connections,
            max_body_bytes: a.max_body_bytes,
            request_timeout: Duration::from_secs(a.request_timeout),
            ..Default::default()
        },
    };
    let opts = LoadOptions { lenient: a.lenient };
    let mut datasets = Vec::new();
    for d in &a.data {
        let ds = LoadedDataset::load(d, &opts)?;
        eprintln!(
            "loaded {} as cloudbed_id {:?}: {} spans",
            d.display(),
            ds.id,
            ds.store.span_count()
        );
        datasets.push(ds);
    }
    let server = Arc::new(ToolServer::new(datasets, config)?);
    serve_blocking(server, a.addr, a.threads)?;
    Ok(())
}
