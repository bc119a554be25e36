//! `thinkfl localize`: ranked root causes of one anomalous trace, with the evidence path.

use super::models::{MODEL_HELP, actor_config, build_model};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::sync::Arc;
use thinkfl_agent::Actor;
use thinkfl_core::FaultCase;
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_tools::{AnomalyConfig, Query, case_queries};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data set directory (AIOps 2022 layout).
    #[arg(long)]
    pub data: PathBuf,
    /// Fault case index (as `thinkfl incidents` lists them): start from its first anomalous trace.
    #[arg(long, conflicts_with_all = ["trace", "span"])]
    pub case: Option<usize>,
    /// Start from the entry span of this trace.
    #[arg(long, conflicts_with = "span")]
    pub trace: Option<String>,
    /// Start from this span.
    #[arg(long)]
    pub span: Option<String>,
    #[arg(long, default_value = "default", help = MODEL_HELP)]
    pub model: String,
    #[arg(long, help = super::models::ADAPTER_HELP)]
    pub adapter: Option<PathBuf>,
    /// Prompt set: `ours` (short, enriched tool output) or `thinkfl` (the released checkpoints').
    #[arg(long, default_value = "ours")]
    pub prompts: String,
    /// Most tool rounds before the forced final answer.
    #[arg(long, default_value_t = 10)]
    pub d_max: usize,
    #[arg(long, default_value = "calls", help = super::models::CONSTRAIN_HELP)]
    pub constrain: String,
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the whole trajectory as JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Append the trajectory to this JSON-lines file.
    #[arg(long)]
    pub trajectory: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let (store, report) = super::open_store(&args.data, &LoadOptions::default())
        .with_context(|| format!("loading {}", args.data.display()))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let store = Arc::new(store);
    let (query, case) = pick_query(&store, &args)?;
    let model = build_model(&args.model, args.adapter.as_deref(), &store)?;
    let cfg = actor_config(
        &args.prompts,
        args.d_max,
        args.temperature,
        args.seed,
        &args.constrain,
    )?;
    let actor = Actor::new(model, cfg)?;
    let traj = actor.run(&store, &query)?;
    if let Some(path) = &args.trajectory {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        thinkfl_agent::write_trajectories(f, std::slice::from_ref(&traj))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&traj)?);
    } else {
        print!(
            "{}",
            thinkfl_agent::summary(&query, case.as_ref(), &traj, actor.model().name())
        );
    }
    Ok(())
}

fn pick_query(store: &TelemetryStore, args: &Args) -> Result<(Query, Option<FaultCase>)> {
    let from_span = |id: &str| -> Result<Query> {
        Query::of_span(store, id).with_context(|| format!("span {id} is not in the data"))
    };
    if let Some(n) = args.case {
        let case = store.faults().get(n).cloned().with_context(|| {
            format!(
                "no fault case {n}: the data set has {} (see `thinkfl incidents`)",
                store.faults().len()
            )
        })?;
        let q = case_queries(store, n, &AnomalyConfig::default())
            .into_iter()
            .next()
            .with_context(|| {
                format!(
                    "fault case {n} has no anomalous trace in its window; pick a span with --span"
                )
            })?;
        return Ok((q, Some(case)));
    }
    if let Some(t) = &args.trace {
        let Some(q) = Query::of_trace(store, t) else {
            bail!("trace {t} is not in the data")
        };
        return Ok((q, None));
    }
    if let Some(s) = &args.span {
        return Ok((from_span(s)?, None));
    }
    // Without a choice: the first case with a query, else the slowest root span.
    for n in 0..store.faults().len() {
        if let Some(q) = case_queries(store, n, &AnomalyConfig::default())
            .into_iter()
            .next()
        {
            return Ok((q, store.faults().get(n).cloned()));
        }
    }
    let root = store
        .roots()
        .max_by_key(|s| s.duration())
        .context("the data set has no spans")?;
    let id = root.span_id().to_string();
    Ok((from_span(&id)?, None))
}
