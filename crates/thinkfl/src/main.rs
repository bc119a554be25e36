//! `thinkfl`: the one binary. Each subcommand lives in its own file under `cmd/`; this file only
//! parses arguments and dispatches.

mod cmd;

/// mimalloc as the global allocator, with freed memory kept for reuse. glibc's malloc maps
/// every buffer over 32 MiB (attention scores, logits, activations of long sequences) afresh
/// and unmaps it when freed, so a training step page-faults its big buffers in again and again:
/// one 1,024-token LoRA step took 16.5 million minor faults and 28 s of system time against
/// 46 s of user time (`/usr/bin/time -v`). mimalloc alone still returns freed memory to the
/// system after 10 ms (2.1 million faults in a 512-token run); without that purge the same run
/// takes 1,030 faults. The process's resident memory then stays at its peak, which is what a
/// training or serving process needs again anyway.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc 2's `mi_option_e` (mimalloc.h); -1 never purges.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn keep_freed_memory() {
    // SAFETY: sets one integer option of the allocator; mimalloc reads it on each purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "thinkfl",
    version,
    about = "Failure localization for microservice systems"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Snapshots of the data sets a command opens (`DIR/.thinkfl/store.snap`): `auto` opens a
    /// fresh one and writes one for data sets of 64 MiB or more (or where one was stale),
    /// `rebuild` reloads the CSV files and writes it, `off` reads the CSV files only.
    #[arg(long, global = true, value_enum, default_value_t = SnapshotArg::Auto)]
    snapshot: SnapshotArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SnapshotArg {
    Auto,
    Rebuild,
    Off,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job on the embedded default: simulate, localize with the local model, compare.
    Demo(cmd::demo::Args),
    /// Localize the root cause of one anomalous trace (by fault case, trace or span).
    Localize(cmd::localize::Args),
    /// Evaluate localization methods over the fault cases of a data set (Recall@k, MRR, time).
    Eval(cmd::eval::Args),
    /// Summarize a data set: time range, counts, components, fault cases.
    Inspect(cmd::inspect::Args),
    /// List the fault cases of a data set with their queries (anomalous traces in each window).
    Incidents(cmd::incidents::Args),
    /// Call a diagnostic tool by hand (`tools call NAME --args JSON --data DATASET`), or list them.
    Tools(cmd::tools::Args),
    /// Local models: `model fetch smollm2-135m`, `model info PATH`, `model list`, `model path`.
    Model(cmd::model::Args),
    /// One chat completion from a local model (greedy at temperature 0).
    Chat(cmd::chat::Args),
    /// Benchmarks: `bench tools`, `bench model`, `bench train` (beside PyTorch), `bench store`.
    Bench(cmd::bench::Args),
    /// Serve over HTTP: `serve tools` (the paper's tool server API), `serve mcp`, `serve env` (RL).
    Serve(cmd::serve::Args),
    /// Train the localizer: LoRA, supervised priming, then progressive GRPO stages.
    Train(cmd::train::Args),
    /// Reports: `report train LOG` draws the curves of a training log.
    Report(cmd::report::Args),
    /// Convert AIOps 2022, OTLP JSON, Jaeger JSON or Parquet span tables into the AIOps 2022
    /// layout.
    Import(cmd::import::Args),
    /// Simulate a microservice system with injected faults into an AIOps 2022 layout data set.
    Simulate(cmd::simulate::Args),
    /// The training corpus: `corpus build --out DIR` simulates many data sets (topologies, seeds,
    /// difficulties, every fault type) with a manifest of which are for training and held out.
    Corpus(cmd::corpus::Args),
    /// Exports for other tools: `export rl-dataset` (OpenRLHF, TRL, verl inputs), `export spans`
    /// (a Parquet span table).
    Export(cmd::env::ExportCmd),
    /// Grade trajectories an engine played with `thinkfl`'s own actor and grader.
    Grade(cmd::env::GradeArgs),
    /// Fuzz a parser or server with seeded structured mutations: `fuzz --target NAME
    /// --iterations N --seed S` (`--list` names the targets).
    Fuzz(cmd::fuzz::Args),
}

/// candle runs elementwise ops on a pool whose threads and caller spin-wait for each other. On
/// a machine with two cores or fewer, shared with anything else, a descheduled worker leaves the
/// others spinning: a LoRA training step of 512 tokens measured 24-32 s with the pool and 17 s
/// without it (`perf`: 39% of the time in the pool's barrier). Matmuls keep their own threads
/// (`RAYON_NUM_THREADS`), so only the elementwise ops become single-threaded. A user's own
/// `CANDLE_NUM_THREADS` wins.
fn single_threaded_elementwise_on_small_machines() {
    let small = std::thread::available_parallelism().is_ok_and(|n| n.get() <= 2);
    if small && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}

/// candle asks for its matmul thread count on every matmul, and without `RAYON_NUM_THREADS`
/// that means counting physical cores in `/proc/cpuinfo`: 215,000 reads in one 40 s episode,
/// with `show_cpuinfo` and `vsnprintf` at 5% of the profile. Counting once and setting the
/// variable keeps the same number of threads without the reads. A user's own value wins.
fn count_matmul_threads_once() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = candle_core::utils::get_num_threads();
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
}

fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    count_matmul_threads_once();
    single_threaded_elementwise_on_small_machines();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    cmd::set_snapshot_mode(match cli.snapshot {
        SnapshotArg::Auto => thinkfl_store::snapshot::SnapshotMode::Auto,
        SnapshotArg::Rebuild => thinkfl_store::snapshot::SnapshotMode::Rebuild,
        SnapshotArg::Off => thinkfl_store::snapshot::SnapshotMode::Off,
    });
    match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Localize(a) => cmd::localize::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Incidents(a) => cmd::incidents::run(a),
        Command::Tools(a) => cmd::tools::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Model(a) => cmd::model::run(a),
        Command::Chat(a) => cmd::chat::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Import(a) => cmd::import::run(a),
        Command::Simulate(a) => cmd::simulate::run(a),
        Command::Corpus(a) => cmd::corpus::run(a),
        Command::Export(a) => cmd::env::run_export(a),
        Command::Grade(a) => cmd::env::grade(a),
        Command::Fuzz(a) => cmd::fuzz::run(a),
    }
}
