//! `thinkfl simulate`: writes a simulated data set in the AIOps 2022 layout, and
//! `thinkfl bench sim`: spans generated and written per second.

use anyhow::Context;
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;
use thinkfl_sim::{CountingSink, Difficulty, Preset, SimConfig, parse_duration};

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
    let probe = SimConfig {
        preset,
        services: a.services,
        duration_s: 600,
        warmup_s: 0,
        faults: 0,
        logs: false,
        ..SimConfig::default()
    };
    // Spans per trace of this preset, measured on a short run.
    let mut c = CountingSink::default();
    let st = thinkfl_sim::simulate(&probe, &mut c, &mut |_, _| {})?.stats;
    let per_trace = st.spans as f64 / st.traces.max(1) as f64;
    let duration_s = 7_200;
    let cfg = SimConfig {
        traces_per_minute: (a.spans as f64 / per_trace / (duration_s / 60) as f64).max(1.0),
        duration_s,
        faults: 20,
        logs: a.logs,
        ..probe
    };
    println!(
        "bench sim: preset {preset}, {:.1} spans per trace, {:.0} traces/min over 2 h, logs {}",
        per_trace,
        cfg.traces_per_minute,
        if a.logs { "on" } else { "off" }
    );
    let mut c = CountingSink::default();
    let t = Instant::now();
    let st = thinkfl_sim::simulate(&cfg, &mut c, &mut |_, _| {})?.stats;
    let gen_s = t.elapsed().as_secs_f64();
    println!(
        "generate only:     {} spans, {} metric points, {} log lines in {:.2} s = {:.0} spans/s",
        st.spans,
        st.metrics,
        st.logs,
        gen_s,
        st.spans as f64 / gen_s
    );
    let tmp;
    let dir = match &a.out {
        Some(d) => d.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("thinkfl-bench-sim-{}", std::process::id()));
            tmp.clone()
        }
    };
    let t = Instant::now();
    let out = thinkfl_sim::simulate_to_dir(&cfg, &dir, &mut |_, _| {})?;
    let s = t.elapsed().as_secs_f64();
    let bytes = dir_size(&dir);
    println!(
        "generate + write:  {} spans, {} metric points, {} log lines, {:.0} MB in {:.2} s = {:.0} spans/s",
        out.stats.spans,
        out.stats.metrics,
        out.stats.logs,
        bytes as f64 / 1e6,
        s,
        out.stats.spans as f64 / s
    );
    if a.out.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(())
}

fn dir_size(p: &std::path::Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                n += dir_size(&path);
            } else if let Ok(m) = e.metadata() {
                n += m.len();
            }
        }
    }
    n
}
