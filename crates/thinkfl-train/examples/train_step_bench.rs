//! Times thinkfl's LoRA training step on the default model (SmolLM2-135M, f32, CPU) the way
//! `scripts/torch-train-step.py` times PyTorch's, so the two can be run side by side (issue 8).
//!
//! The step is `Trainer::sft_update` itself (forward of each sequence in `Mode::Train`,
//! log-probs of the trained tokens, mean cross-entropy, backward into the adapters, clipping and
//! AdamW). Its settings are fixed here (`CONFIG`), not read from `configs/stages.toml`, so that
//! they stay those of the torch script when the stages are retuned: LoRA r=8, alpha=16 on
//! q,k,v,o,gate,up,down; AdamW betas 0.9/0.999, eps 1e-8, no weight decay, clipping to norm 1;
//! lr 2e-4 (`--lr`). Ids and mask are those of the torch script:
//! id_i = (i * 7919) % 40000 + 100, position j trained when j >= T*85/100. The adapters start
//! as the identity, so the first step's loss is the base model's and must match torch's.
//!
//! Tokens/s = B*T over the wall time of the step (`UpdateStats::tokens_per_second`), averaged over
//! the timed steps after the warm-up ones. The step checkpoints gradients at block boundaries:
//! a forward without a graph, then per block a recomputed forward with its graph and its
//! backward; "fwd alone" times that first forward once more (`token_logprobs_detached`).
//! Each T runs in a child process, so the peak RSS printed (VmHWM, read after the steps) is its
//! own.
//!
//! `cargo run --release -p thinkfl-train --example train_step_bench -- [--batch 1]
//!  [--seq 512,1024] [--warmup 1] [--steps 3] [--model default]`
//! Threads as in the `thinkfl` CLI: matmuls on RAYON_NUM_THREADS (default: all cores);
//! elementwise ops on CANDLE_NUM_THREADS, which defaults to 1 on machines of two cores or fewer.

use std::path::Path;
use std::process::Command;
use std::time::Instant;
use thinkfl_train::config::TrainConfig;
use thinkfl_train::loss::{Sequence, token_logprobs_detached};
use thinkfl_train::trainer::Trainer;

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

/// The step's settings; the stage only carries the learning rate (overridden by `--lr`).
const CONFIG: &str = r#"
seed = 7
[lora]
rank = 8
alpha = 16.0
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
[optim]
beta1 = 0.9
beta2 = 0.999
eps = 1e-8
weight_decay = 0.0
max_grad_norm = 1.0
[[stage]]
name = "bench"
kind = "sft"
steps = 1000000
lr = 2e-4
"#;

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
        return Err("need --batch >= 1, --steps >= 1, every T >= 2, --lr > 0 and --kernels fused|candle".into());
    }
    Ok(a)
}

/// Peak resident set of this process (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn sequence(t: usize) -> Sequence {
    let ids = (0..t as u32).map(|i| (i * 7919) % 40000 + 100).collect();
    let start = t * 85 / 100;
    let mask = (0..t).map(|j| j >= start).collect();
    Sequence { ids, mask }
}

fn run_one(a: &Args, t: usize) -> Res<()> {
    let cfg = TrainConfig::from_toml(CONFIG, Path::new("train_step_bench.rs"))?;
    let lr = a.lr;
    let t_load = Instant::now();
    let path = thinkfl_candle::fetch::resolve_model(&a.model, false)?;
    // f32 weights only: the training forward uses nothing else (`thinkfl train` also keeps a
    // quantized copy for rollouts, which this step never touches).
    let mut loaded = thinkfl_candle::load(&path, &thinkfl_candle::LoadOptions::default())?;
    loaded.model.set_fused_train(a.kernels == "fused");
    let run_dir = tempfile::tempdir()?;
    let mut trainer = Trainer::new(cfg, CONFIG.to_string(), loaded.model, run_dir.path())?;
    let load_s = t_load.elapsed().as_secs_f64();
    let seq = sequence(t);
    let batch = vec![seq.clone(); a.batch];

    let mut losses = Vec::new();
    for _ in 0..a.warmup {
        losses.push(trainer.sft_update(&batch, lr)?.loss);
    }
    let (mut secs, mut tokens) = (0.0, 0usize);
    for _ in 0..a.steps {
        let s = trainer.sft_update(&batch, lr)?;
        losses.push(s.loss);
        secs += s.seconds;
        tokens += s.tokens;
    }
    let step_s = secs / a.steps as f64;
    // Read before the forward below, so that it is the steps' peak.
    let rss = peak_rss_mib();
    let t0 = Instant::now();
    let _ = token_logprobs_detached(&trainer.policy.model, &seq)?;
    let fwd_s = t0.elapsed().as_secs_f64();
    println!(
        "thinkfl ({} matmul / {} elementwise threads, {} kernels, lora r={} on {} projections, {} trainable) B={} T={t} logits=targets: \
         {:.1} tokens/s fwd+bwd+AdamW (step {step_s:.2}s, mean of {}; fwd alone {:.2}s = {:.1} tokens/s), \
         losses {}, peak RSS {} (load {load_s:.1}s)",
        candle_core::utils::get_num_threads(),
        elementwise_threads(),
        a.kernels,
        trainer.policy.lora.rank,
        trainer.policy.lora.targets.len(),
        trainer.policy.num_trainable(),
        a.batch,
        tokens as f64 / secs,
        a.steps,
        fwd_s,
        t as f64 / fwd_s,
        losses
            .iter()
            .map(|l| format!("{l:.4}"))
            .collect::<Vec<_>>()
            .join(" "),
        rss.map_or("n/a".into(), |m| format!("{m:.0} MiB")),
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
