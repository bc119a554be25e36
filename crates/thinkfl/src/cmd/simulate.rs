//! `thinkfl simulate`: writes a simulated data set in the AIOps 2022 layout, and
//! `thinkfl bench sim`: spans generated and written per second.

use anyhow::Context;
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;
use thinkfl_core::FaultType;
use thinkfl_sim::{Difficulty, Preset, SimConfig, parse_duration};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// online-boutique, train-ticket or synthetic.
    #[arg(long, default_value = "online-boutique")]
    preset: String,
    /// Simulated period: 90m, 2h, 1d...
    #[arg(long, default_value = "2h")]
    duration: String,
    /// Number of injected faults.
    #[arg(long, default_value_t = thinkfl_sim::config::DEFAULT_FAULTS)]
    faults: usize,
    #[arg(long, default_value_t = thinkfl_sim::config::DEFAULT_SEED)]
    seed: u64,
    /// Services of the synthetic preset.
    #[arg(long, default_value_t = thinkfl_sim::config::DEFAULT_SYNTHETIC_SERVICES)]
    services: usize,
    /// easy, standard or hard.
    #[arg(long, default_value = "standard")]
    difficulty: String,
    /// Mean user requests (traces) per minute.
    #[arg(long, default_value_t = thinkfl_sim::config::DEFAULT_TRACES_PER_MINUTE)]
    traces_per_minute: f64,
    /// Shortest and longest fault, seconds.
    #[arg(long, default_value_t = thinkfl_sim::config::DEFAULT_FAULT_MIN_S)]
    fault_min_s: i64,
    #[arg(long, default_value_t = thinkfl_sim::config::DEFAULT_FAULT_MAX_S)]
    fault_max_s: i64,
    /// Fault types to draw from, comma separated (slugs such as `container-cpu-load`,
    /// `code-exception`, or English names); `aiops` for the 15 of AIOps 2022 (the default),
    /// `code` for the code-level ones, `all` for all 17.
    #[arg(long, default_value = "aiops")]
    fault_types: String,
    /// No background spikes, bursts, hiccups or noisy pods.
    #[arg(long)]
    no_confounders: bool,
    /// Write no logs.
    #[arg(long)]
    no_logs: bool,
    /// Output directory (created).
    #[arg(long)]
    out: PathBuf,
}

/// `thinkfl bench sim`.
#[derive(Debug, ClapArgs)]
pub struct BenchArgs {
    /// Spans to generate (about: the rate is set from the preset's spans per trace).
    #[arg(long, default_value_t = 5_000_000)]
    spans: u64,
    #[arg(long, default_value = "online-boutique")]
    preset: String,
    #[arg(long, default_value_t = thinkfl_sim::config::DEFAULT_SYNTHETIC_SERVICES)]
    services: usize,
    /// Where to write (a temporary directory, removed afterwards, when absent).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write logs (the default writes spans and metrics only).
    #[arg(long)]
    logs: bool,
}

fn progress(minutes: u64) -> ProgressBar {
    let pb = ProgressBar::new(minutes);
    if std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner} simulating [{bar:40}] {pos}/{len} min ({elapsed}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
    } else {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb
}

/// `aiops`, `code`, `all`, or a comma-separated list of fault types.
fn fault_types(s: &str) -> anyhow::Result<Vec<FaultType>> {
    Ok(match s.trim() {
        "aiops" | "" => Vec::new(),
        "code" => FaultType::CODE_LEVEL.to_vec(),
        "all" => FaultType::ALL.to_vec(),
        list => list
            .split(',')
            .map(|t| t.parse::<FaultType>())
            .collect::<Result<_, _>>()?,
    })
}

fn config(a: &Args) -> anyhow::Result<SimConfig> {
    let preset: Preset = a.preset.parse()?;
    let difficulty: Difficulty = a.difficulty.parse()?;
    let cfg = SimConfig {
        preset,
        services: a.services,
        seed: a.seed,
        duration_s: parse_duration(&a.duration)?,
        faults: a.faults,
        difficulty,
        traces_per_minute: a.traces_per_minute,
        fault_min_s: a.fault_min_s,
        fault_max_s: a.fault_max_s,
        fault_types: fault_types(&a.fault_types)?,
        confounders: !a.no_confounders,
        logs: !a.no_logs,
        ..SimConfig::default()
    };
    cfg.validate()?;
    Ok(cfg)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = config(&a)?;
    let pb = progress(cfg.minutes() as u64);
    let t = Instant::now();
    let out = thinkfl_sim::simulate_to_dir(&cfg, &a.out, &mut |done, _| pb.set_position(done))
        .with_context(|| format!("simulating into {}", a.out.display()))?;
    pb.finish_and_clear();
    let s = out.stats;
    println!(
        "wrote {}: {} traces, {} spans, {} metric points, {} log lines, {} fault cases \
         ({} services, {} pods, {} nodes) in {:.1} s",
        a.out.display(),
        s.traces,
        s.spans,
        s.metrics,
        s.logs,
        out.faults.len(),
        out.topology.services.len(),
        out.topology.placement.len(),
        out.topology.nodes.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    let preset: Preset = a.preset.parse()?;
    let tmp = std::env::temp_dir().join(format!("thinkfl-bench-sim-{}", std::process::id()));
    let dir = a.out.clone().unwrap_or_else(|| tmp.clone());
    let r = thinkfl_bench::sim::bench(preset, a.services, a.spans, a.logs, &dir)?;
    if a.out.is_none() {
        std::fs::remove_dir_all(&tmp).ok();
    }
    println!(
        "bench sim: preset {preset}, logs {}",
        if a.logs { "on" } else { "off" }
    );
    println!("{r}");
    Ok(())
}
