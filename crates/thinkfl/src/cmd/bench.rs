//! `thinkfl bench ...`: throughput figures, printed (never asserted).

use clap::{Args as ClapArgs, Subcommand};
use thinkfl_bench::model::{BenchConfig, bench, find_llama_bench, llama_bench_peer};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Telemetry store: load+index spans/s and bytes per span, beside pandas read_csv.
    Store(super::bench_store::StoreArgs),
    /// Local model: prefill tokens/s, decode tokens/s at batch 1 and aggregate at a batch.
    Model(ModelArgs),
    /// Diagnostic tools: in-process latency and loopback HTTP throughput of the tool server.
    Tools(super::bench_tools::Args),
    /// LoRA training step: ours beside the PyTorch peer (tokens/s, peak RSS, first-step loss).
    Train(super::bench_train::Args),
    /// Rollouts under a grammar at temperature > 0: sample-first beside masking every step.
    Rollouts(RolloutArgs),
    /// Simulator: spans generated and written per second.
    Sim(crate::cmd::simulate::BenchArgs),
    /// RL environment server: steps/s and step latency with many concurrent episodes.
    Env(super::env::BenchArgs),
}

#[derive(Debug, ClapArgs)]
struct ModelArgs {
    #[arg(long, default_value = "default")]
    model: String,
    #[arg(long, default_value_t = BenchConfig::DEFAULT_PROMPT_TOKENS)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = BenchConfig::DEFAULT_DECODE_TOKENS)]
    decode_tokens: usize,
    #[arg(long, default_value_t = BenchConfig::DEFAULT_BATCH)]
    batch: usize,
    /// Weights for the inference path: `packed` (packed 8/4-bit copies with f32 activations,
    /// without the f32 copies, as `chat` and `localize` load), `f32` (dequantized once at load),
    /// `quantized` (the GGUF's own quantized matmuls), or `q8_0` / `q4_0` (re-quantized at load).
    #[arg(long, default_value = "packed")]
    weights: String,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    /// Skip the llama.cpp peer (`llama-bench`, found via THINKFL_LLAMA_BENCH or the peers cache
    /// that scripts/llama-peer.sh fills).
    #[arg(long)]
    no_peer: bool,
}

#[derive(Debug, ClapArgs)]
struct RolloutArgs {
    #[arg(long, default_value = "default")]
    model: String,
    /// Rows sampled together (a GRPO group).
    #[arg(long, default_value_t = 8)]
    group: usize,
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    #[arg(long, default_value_t = 160)]
    max_tokens: usize,
    /// Alternating repetitions of each mode.
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

fn rollouts(a: RolloutArgs) -> anyhow::Result<()> {
    let path = thinkfl_candle::fetch::resolve_model(&a.model, true)?;
    let loaded = thinkfl_candle::load(&path, &thinkfl_candle::LoadOptions::inference())?;
    let cfg = thinkfl_bench::rollouts::RolloutConfig {
        group: a.group,
        temperature: a.temperature,
        max_tokens: a.max_tokens,
        repeats: a.repeats,
    };
    let (reports, cost) = thinkfl_bench::rollouts::bench(&loaded, &cfg)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"modes": reports, "step": cost}))?
        );
        return Ok(());
    }
    println!(
        "model: {} (packed weights, {} matmul threads); group {}, temperature {}, final-review grammar",
        path.display(),
        matmul_threads(),
        a.group,
        a.temperature
    );
    for r in &reports {
        let secs: Vec<String> = r.seconds.iter().map(|s| format!("{s:.2}")).collect();
        println!(
            "{:13} {:7.1} tokens/s, {:6.1} ms per sampled token  ({} tokens, {} forced, {} masked steps of {} sampled; runs {} s)",
            r.mode,
            r.tokens_per_s(),
            r.ms_per_sampled(),
            r.tokens,
            r.forced,
            r.masked_steps,
            r.tokens - r.forced,
            secs.join(", ")
        );
    }
    println!(
        "per sampled position ({} replayed): mask {:.0} us, one check {:.1} us",
        cost.positions, cost.mask_us, cost.check_us
    );
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Rollouts(a) => rollouts(a),
        BenchCommand::Model(a) => model(a),
        BenchCommand::Store(a) => super::bench_store::run(a),
        BenchCommand::Tools(a) => super::bench_tools::run(a),
        BenchCommand::Sim(a) => crate::cmd::simulate::bench(a),
        BenchCommand::Train(a) => super::bench_train::run(a),
        BenchCommand::Env(a) => super::env::bench(a),
    }
}

fn model(a: ModelArgs) -> anyhow::Result<()> {
    let path = thinkfl_candle::fetch::resolve_model(&a.model, true)?;
    let opts = match a.weights.as_str() {
        "quantized" => thinkfl_candle::LoadOptions::quantized(),
        "packed" => thinkfl_candle::LoadOptions::inference(),
        "f32" => thinkfl_candle::LoadOptions::f32_only(),
        "q8_0" => thinkfl_candle::LoadOptions::requantized(thinkfl_candle::GgmlDType::Q8_0),
        "q4_0" => thinkfl_candle::LoadOptions::requantized(thinkfl_candle::GgmlDType::Q4_0),
        other => anyhow::bail!("--weights {other}: expected packed, f32, quantized, q8_0 or q4_0"),
    };
    let loaded = thinkfl_candle::load(&path, &opts)?;
    let cfg = BenchConfig {
        prompt_tokens: a.prompt_tokens,
        decode_tokens: a.decode_tokens,
        batch: a.batch,
        ..BenchConfig::default()
    };
    let r = bench(&loaded.model, &loaded.tokenizer, &cfg)?;
    let threads = matmul_threads();
    let peer = match (a.no_peer, find_llama_bench()) {
        (true, _) => None,
        (false, None) => {
            eprintln!(
                "no llama-bench found (run scripts/llama-peer.sh or set THINKFL_LLAMA_BENCH); no peer figures"
            );
            None
        }
        (false, Some(exe)) if path.is_file() => {
            match llama_bench_peer(&exe, &path, &cfg, threads) {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!("peer failed: {e}");
                    None
                }
            }
        }
        (false, Some(_)) => None,
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"thinkfl": r, "peer": peer}))?
        );
        return Ok(());
    }
    println!(
        "model: {} ({} weights, {threads} matmul threads, elementwise CANDLE_NUM_THREADS={})",
        path.display(),
        a.weights,
        std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );
    println!(
        "prefill ({} tokens):        {:8.1} tokens/s",
        r.prompt_tokens, r.prefill_tokens_per_s
    );
    println!(
        "decode batch 1 ({} tokens):  {:8.1} tokens/s",
        r.decode_tokens, r.decode_tokens_per_s_batch1
    );
    println!(
        "decode batch {} (aggregate): {:8.1} tokens/s",
        r.batch, r.decode_tokens_per_s_batch
    );
    if let Some(p) = peer {
        println!("peer: {} with {} threads", p.tool, p.threads);
        println!(
            "  prefill ({} tokens):      {:8.1} tokens/s",
            r.prompt_tokens, p.prefill_tokens_per_s
        );
        println!(
            "  decode batch 1 ({} tokens): {:8.1} tokens/s",
            r.decode_tokens, p.decode_tokens_per_s_batch1
        );
    }
    Ok(())
}

/// Threads of the matmuls (candle's f32 gemm and the packed kernels both use rayon's pool), and
/// so of the llama.cpp peer. `CANDLE_NUM_THREADS` only sizes candle's elementwise pool, which
/// `main` makes single-threaded on small machines.
fn matmul_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}
