//! `thinkfl serve tools --data DATASET[,DATASET...] [--addr 127.0.0.1:5001]`: the tool server,
//! with the paper's endpoints (`/search_traces?parent_span_id=..&cloudbed_id=..`, ...) and
//! `/v1/tools`, `/v1/tools/call`. A data set's `cloudbed_id` is its directory name.

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
    }
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
