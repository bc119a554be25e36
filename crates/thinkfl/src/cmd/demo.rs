//! `thinkfl demo`: the main job on the embedded default. Simulates an Online Boutique day with a
//! fixed seed, localizes a few of its fault cases with the default local model (and the scripted
//! expert for reference), and prints the answers beside the truth with their timings.

use super::models::{MODEL_HELP, actor_config, build_model};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use thinkfl_agent::Actor;
use thinkfl_agent::expert::{ExpertConfig, ExpertPolicy};
use thinkfl_core::{FaultCase, RootCause};
use thinkfl_grader::{Matching, first_match};
use thinkfl_sim::{Preset, SimConfig};
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_tools::{AnomalyConfig, case_queries};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seed of the simulation (and of sampling).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Fault cases to localize.
    #[arg(long, default_value_t = 3)]
    pub cases: usize,
    #[arg(long, default_value = "default", help = MODEL_HELP)]
    pub model: String,
    #[arg(long, help = super::models::ADAPTER_HELP)]
    pub adapter: Option<PathBuf>,
    /// Simulated period.
    #[arg(long, default_value = "24h")]
    pub duration: String,
    /// Mean user requests per minute of the simulated system.
    #[arg(long, default_value_t = 20.0)]
    pub traces_per_minute: f64,
    /// Faults injected over the period.
    #[arg(long, default_value_t = 24)]
    pub faults: usize,
    /// Where the simulated data set goes (reused when it is already there with the same settings).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Most tool rounds per episode.
    #[arg(long, default_value_t = thinkfl_agent::ActorConfig::DEFAULT_D_MAX)]
    pub d_max: usize,
    #[arg(long, default_value = "calls", help = super::models::CONSTRAIN_HELP)]
    pub constrain: String,
}

fn home() -> PathBuf {
    std::env::var_os("THINKFL_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/thinkfl")))
        .unwrap_or_else(|| PathBuf::from(".thinkfl"))
}

pub fn run(args: Args) -> Result<()> {
    let cfg = SimConfig {
        preset: Preset::OnlineBoutique,
        seed: args.seed,
        duration_s: thinkfl_sim::parse_duration(&args.duration)?,
        traces_per_minute: args.traces_per_minute,
        faults: args.faults,
        ..SimConfig::default()
    };
    cfg.validate()?;
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| home().join(format!("demo/online-boutique-seed{}", args.seed)));
    let stamp = dir.join("simconfig.json");
    let wanted = serde_json::to_string_pretty(&cfg)?;
    let t0 = Instant::now();
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        eprintln!(
            "simulating Online Boutique for {} (seed {}) into {}",
            args.duration,
            args.seed,
            dir.display()
        );
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        thinkfl_sim::simulate_to_dir(&cfg, &dir, &mut |_, _| {})?;
        std::fs::write(&stamp, &wanted)?;
    }
    let (store, _) = TelemetryStore::load(&dir, &LoadOptions::default())?;
    let store = Arc::new(store);
    println!(
        "data: Online Boutique, {} simulated (seed {}): {} spans, {} traces, {} metric series, {} fault cases ({:.1} s) in {}",
        args.duration,
        args.seed,
        store.span_count(),
        store.trace_count(),
        store.series_count(),
        store.faults().len(),
        t0.elapsed().as_secs_f64(),
        dir.display()
    );

    let anomaly = AnomalyConfig::default();
    let picked: Vec<(usize, FaultCase, thinkfl_tools::Query)> = (0..store.faults().len())
        .filter_map(|n| {
            case_queries(&store, n, &anomaly)
                .into_iter()
                .next()
                .map(|q| (n, store.faults()[n].clone(), q))
        })
        .take(args.cases)
        .collect();

    let t_load = Instant::now();
    let model = build_model(&args.model, args.adapter.as_deref(), &store)?;
    let actor_cfg = actor_config("ours", args.d_max, 0.0, args.seed, &args.constrain)?;
    let actor = Actor::new(model, actor_cfg.clone())?;
    let expert = Actor::new(
        ExpertPolicy::new(store.clone(), ExpertConfig::default()),
        actor_cfg,
    )?;
    println!(
        "model: {} (loaded in {:.1} s)\n",
        actor.model().name(),
        t_load.elapsed().as_secs_f64()
    );

    println!(
        "{:>4}  {:<52}  {:<44}  {:>3}  {:>3}  {:>7}  {:>6}  expert top 1",
        "case", "truth", "model's top 3", "R@1", "R@3", "time", "tokens"
    );
    let (mut hit1, mut hit3, mut ex1) = (0, 0, 0);
    let mut times = Vec::new();
    for (n, case, q) in &picked {
        let t = actor.run(&store, q)?;
        let e = expert.run(&store, q)?;
        let pred = t.prediction.clone().unwrap_or_default();
        let rank = first_match(&pred, case, Matching::Strict);
        let erank = first_match(
            &e.prediction.clone().unwrap_or_default(),
            case,
            Matching::Strict,
        );
        hit1 += usize::from(rank == Some(0));
        hit3 += usize::from(rank.is_some_and(|r| r < 3));
        ex1 += usize::from(erank == Some(0));
        times.push(t.timings.total_ms / 1000.0);
        let truth = format!("{} {} ({})", case.level, case.cmdb_id, case.display_type());
        println!(
            "{:>4}  {:<52}  {:<44}  {:>3}  {:>3}  {:>6.1}s  {:>6}  {}",
            n,
            truth,
            top3(&pred),
            u8::from(rank == Some(0)),
            u8::from(rank.is_some_and(|r| r < 3)),
            t.timings.total_ms / 1000.0,
            t.tokens.prompt + t.tokens.completion,
            top3(&e.prediction.unwrap_or_default())
                .split(", ")
                .next()
                .unwrap_or("-"),
        );
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    let k = picked.len();
    println!(
        "\n{}: R@1 {hit1}/{k}, R@3 {hit3}/{k}, median {median:.1} s per case; scripted expert R@1 {ex1}/{k}",
        actor.model().name()
    );
    println!(
        "next: `thinkfl eval --data {} --methods expert,descent,microrank,random` for the full comparison",
        dir.display()
    );
    Ok(())
}

fn top3(pred: &[RootCause]) -> String {
    if pred.is_empty() {
        return "(no answer)".into();
    }
    pred.iter()
        .take(3)
        .map(|r| {
            r.pod
                .clone()
                .or(r.service.clone())
                .or(r.node.clone())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(", ")
}
