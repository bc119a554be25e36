//! Times thinkfl's LoRA training step on the default model (SmolLM2-135M, f32, CPU) the way
//! `scripts/torch-train-step.py` times PyTorch's, so the two can be run side by side (issue 8).
//!
//! The step, its fixed settings (LoRA r=8, alpha=16 on all seven projections, AdamW, lr 2e-4
//! or `--lr`) and the torch script's ids and mask are `thinkfl_bench::train`'s, which
//! `thinkfl bench train` also runs beside the torch script. The adapters start as the identity,
//! so the first step's loss is the base model's and must match torch's.
//!
//! Tokens/s = B*T over the wall time of the step (`UpdateStats::tokens_per_second`), averaged over
//! the timed steps after the warm-up ones. The step checkpoints gradients at block boundaries:
//! a forward without a graph, then per block a recomputed forward with its graph and its
//! backward; "fwd alone" times that first forward once more (`token_logprobs_detached`).
//! Each T runs in a child process, so the peak RSS printed (VmHWM, read after the steps) is its
//! own.
//!
//! `cargo run --release -p thinkfl-bench --example train_step_bench -- [--batch 1]
//!  [--seq 512,1024] [--warmup 1] [--steps 3] [--model default] [--kernels fused|candle]`
//! Threads as in the `thinkfl` CLI: matmuls on RAYON_NUM_THREADS (default: all cores);
//! elementwise ops on CANDLE_NUM_THREADS, which defaults to 1 on machines of two cores or fewer.

use std::process::Command;
use thinkfl_bench::train as bench;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// As in the `thinkfl` binary: mimalloc as the global allocator, with freed memory kept for reuse. glibc's malloc maps
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

struct Args {
    batch: usize,
    seqs: Vec<usize>,
    warmup: usize,
    steps: usize,
    model: String,
    lr: f64,
    /// Train blocks on the fused kernels (`fused`, default) or candle's operations (`candle`).
    kernels: String,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        batch: 1,
        seqs: vec![512, 1024],
        warmup: 1,
        steps: 3,
        model: "default".into(),
        lr: 2e-4,
        kernels: "fused".into(),
    };
    fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Res<T> {
        v.parse()
            .map_err(|_| format!("{flag}: not a number: {v}").into())
    }
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--batch" => a.batch = num(&flag, &value()?)?,
            "--seq" => {
                a.seqs = value()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| num(&flag, s))
                    .collect::<Res<_>>()?
            }
            "--warmup" => a.warmup = num(&flag, &value()?)?,
            "--steps" => a.steps = num(&flag, &value()?)?,
            "--model" => a.model = value()?,
            "--lr" => a.lr = num(&flag, &value()?)?,
            "--kernels" => a.kernels = value()?,
            "-h" | "--help" => {
                println!(
                    "train_step_bench [--batch B] [--seq T[,T...]] [--warmup N] [--steps N] [--lr LR] [--model default|PATH] [--kernels fused|candle]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if a.batch == 0
        || a.steps == 0
        || a.seqs.is_empty()
        || a.seqs.iter().any(|&t| t < 2)
        || !(a.lr > 0.0 && a.lr.is_finite())
        || !matches!(a.kernels.as_str(), "fused" | "candle")
    {
        return Err(
            "need --batch >= 1, --steps >= 1, every T >= 2, --lr > 0 and --kernels fused|candle"
                .into(),
        );
    }
    Ok(a)
}

fn run_one(a: &Args, t: usize) -> Res<()> {
    let path = thinkfl_candle::fetch::resolve_model(&a.model, false)?;
    let r = bench::run(
        &path,
        &bench::StepBench {
            seq: t,
            batch: a.batch,
            warmup: a.warmup,
            steps: a.steps,
            lr: a.lr,
            fused: a.kernels == "fused",
        },
    )?;
    println!(
        "thinkfl ({} matmul / {} elementwise threads, {} kernels, lora r=8 on 7 projections, {} trainable) B={} T={t} logits=targets: \
         {:.1} tokens/s fwd+bwd+AdamW (step {:.2}s, mean of {}; fwd alone {:.2}s = {:.1} tokens/s), \
         losses {}, peak RSS {} (load {:.1}s)",
        r.threads,
        elementwise_threads(),
        r.kernels,
        r.trainable_params,
        r.batch,
        r.tokens_per_s,
        r.step_s,
        a.steps,
        r.forward_s,
        t as f64 / r.forward_s,
        r.losses
            .iter()
            .map(|l| format!("{l:.4}"))
            .collect::<Vec<_>>()
            .join(" "),
        r.peak_rss_mib
            .map_or("n/a".into(), |m| format!("{m:.0} MiB")),
        r.load_s,
    );
    Ok(())
}

/// The `thinkfl` CLI's policy (crates/thinkfl/src/main.rs), so that this step runs as in
/// `thinkfl train`: on two cores or fewer candle's elementwise pool, whose spin-waiting workers
/// stall when one of them is descheduled, is cut to the calling thread.
fn single_threaded_elementwise_on_small_machines() {
    let small = std::thread::available_parallelism().is_ok_and(|n| n.get() <= 2);
    if small && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}

/// Threads of candle's elementwise pool (CANDLE_NUM_THREADS, else the matmul count).
fn elementwise_threads() -> usize {
    std::env::var("CANDLE_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(candle_core::utils::get_num_threads)
}

fn main() -> Res<()> {
    keep_freed_memory();
    single_threaded_elementwise_on_small_machines();
    let a = parse_args()?;
    if let [t] = a.seqs[..] {
        return run_one(&a, t);
    }
    // One child per T: the peak RSS printed is then that T's alone.
    let exe = std::env::current_exe()?;
    for t in &a.seqs {
        let status = Command::new(&exe)
            .args(["--batch", &a.batch.to_string(), "--seq", &t.to_string()])
            .args([
                "--warmup",
                &a.warmup.to_string(),
                "--steps",
                &a.steps.to_string(),
            ])
            .args(["--model", &a.model, "--lr", &a.lr.to_string()])
            .args(["--kernels", &a.kernels])
            .status()?;
        if !status.success() {
            return Err(format!("T={t}: {status}").into());
        }
    }
    Ok(())
}
