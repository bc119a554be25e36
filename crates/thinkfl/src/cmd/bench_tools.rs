//! `thinkfl bench tools`: in-process latency of the tools and loopback HTTP throughput of the
//! tool server, on a seeded synthetic data set (default 5,000,000 spans) or a given one.

use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::time::Duration;
use thinkfl_bench::tools::{ToolsBenchConfig, run as bench_run};
use thinkfl_store::{LoadOptions, TelemetryStore};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Spans of the synthetic data set.
    #[arg(long, default_value_t = 5_000_000)]
    spans: usize,
    /// Use this data set (AIOps 2022 layout) instead of a synthetic one.
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 10_000)]
    queries: usize,
    #[arg(long, default_value_t = 2_000)]
    metric_queries: usize,
    #[arg(long, default_value_t = 200_000)]
    http_requests: usize,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 50_000)]
    storm_requests: usize,
    #[arg(long, default_value_t = 1_000)]
    storm_connections: usize,
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Upper bound (s) on each HTTP run.
    #[arg(long, default_value_t = 60)]
    deadline: u64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = ToolsBenchConfig {
        spans: a.spans,
        trace_queries: a.queries,
        metric_queries: a.metric_queries,
        http_requests: a.http_requests,
        http_connections: a.connections,
        storm_requests: a.storm_requests,
        storm_connections: a.storm_connections,
        server_threads: a.server_threads,
        client_threads: a.client_threads,
        http_deadline: Duration::from_secs(a.deadline),
        seed: a.seed,
    };
    let t0 = std::time::Instant::now();
    let store = match &a.data {
        Some(d) => Some(TelemetryStore::load(d, &LoadOptions::default())?.0),
        None => None,
    };
    let load_s = t0.elapsed().as_secs_f64();
    let mut report = bench_run(&cfg, store)?;
    if a.data.is_some() {
        report.build_seconds = load_s;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}
