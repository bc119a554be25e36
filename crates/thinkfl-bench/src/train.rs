//! One LoRA update step timed on a model, the way `scripts/torch-train-step.py` times PyTorch's,
//! so that `thinkfl bench train` and the `train_step_bench` example can set the two side by side.
//!
//! It lives here, not in `thinkfl-train`, with the other harnesses of the project; it uses only
//! the trainer's public API, and its peak memory comes from the one `/proc` reader ([`crate::proc`]).
//!
//! The step is [`Trainer::sft_update`] itself (checkpointed forward and backward of each
//! sequence, clipping, AdamW). Its settings are fixed ([`CONFIG`]), not read from
//! `configs/stages.toml`, so that they stay those of the torch script: LoRA r=8, alpha=16 on
//! q,k,v,o,gate,up,down; AdamW betas 0.9/0.999, eps 1e-8, no weight decay, clipping to norm 1;
//! lr 2e-4. Ids and mask are the script's ([`sequence`]). The adapters start as the identity, so
//! the first step's loss is the base model's and must match torch's.
//!
//! Tokens/s = B*T over the wall time of the step, averaged over the timed steps after the
//! warm-up ones. Peak RSS is the process's (VmHWM), read after the steps: run one configuration
//! per process for a figure of its own.

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;
use thinkfl_train::config::TrainConfig;
use thinkfl_train::error::{Error, Result};
use thinkfl_train::loss::{Sequence, token_logprobs_detached};
use thinkfl_train::trainer::Trainer;

/// The step's settings; the stage only carries the learning rate (overridden by `lr`).
pub const CONFIG: &str = r#"
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

/// What to time.
#[derive(Debug, Clone, PartialEq)]
pub struct StepBench {
    /// Tokens per sequence (`T`).
    pub seq: usize,
    /// Sequences per step (`B`), copies of the one sequence.
    pub batch: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// Learning rate of every step.
    pub lr: f64,
    /// Blocks on the training kernels (`true`) or on candle's operations.
    pub fused: bool,
}

impl Default for StepBench {
    fn default() -> Self {
        StepBench {
            seq: 512,
            batch: 1,
            warmup: 1,
            steps: 2,
            lr: 2e-4,
            fused: true,
        }
    }
}

/// The figures of one configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Tokens per sequence.
    pub seq: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Matmul threads (candle's count).
    pub threads: usize,
    /// `fused` or `candle` (see [`StepBench::fused`]).
    pub kernels: String,
    /// Adapter parameters trained.
    pub trainable_params: usize,
    /// `B*T` per second of a timed step, over all timed steps.
    pub tokens_per_s: f64,
    /// Mean seconds of a timed step.
    pub step_s: f64,
    /// Seconds of one detached forward of the sequence (log-probs only), after the steps.
    pub forward_s: f64,
    /// Loss of every step, warm-up ones first (the first is the base model's).
    pub losses: Vec<f64>,
    /// Peak resident set of the process after the steps, MiB; `None` without `/proc`.
    pub peak_rss_mib: Option<f64>,
    /// Seconds to load the model and set up the trainer.
    pub load_s: f64,
}

/// The torch script's sequence of `t` tokens: id_i = (i * 7919) % 40000 + 100, position j
/// trained when j >= T*85/100.
pub fn sequence(t: usize) -> Sequence {
    let ids = (0..t as u32).map(|i| (i * 7919) % 40000 + 100).collect();
    let start = t * 85 / 100;
    let mask = (0..t).map(|j| j >= start).collect();
    Sequence { ids, mask }
}

/// Load the model at `path` (f32 weights only: the training forward uses nothing else) and time
/// `b.steps` updates after `b.warmup` untimed ones.
pub fn run(path: &Path, b: &StepBench) -> Result<StepReport> {
    if b.batch == 0 || b.steps == 0 || b.seq < 2 || !(b.lr > 0.0 && b.lr.is_finite()) {
        return Err(Error::Config(format!(
            "step bench: need batch >= 1, steps >= 1, T >= 2 and lr > 0, got {b:?}"
        )));
    }
    let cfg = TrainConfig::from_toml(CONFIG, Path::new("thinkfl_bench::train::CONFIG"))?;
    let t_load = Instant::now();
    let mut loaded = thinkfl_candle::load(path, &thinkfl_candle::LoadOptions::default())?;
    loaded.model.set_fused_train(b.fused);
    let run_dir = tempfile::tempdir().map_err(|e| Error::io(&std::env::temp_dir(), e))?;
    let mut trainer = Trainer::new(cfg, CONFIG.to_string(), loaded.model, run_dir.path())?;
    let load_s = t_load.elapsed().as_secs_f64();
    let seq = sequence(b.seq);
    let batch = vec![seq.clone(); b.batch];
    let mut losses = Vec::new();
    for _ in 0..b.warmup {
        losses.push(trainer.sft_update(&batch, b.lr)?.loss);
    }
    let (mut secs, mut tokens) = (0.0, 0usize);
    for _ in 0..b.steps {
        let s = trainer.sft_update(&batch, b.lr)?;
        losses.push(s.loss);
        secs += s.seconds;
        tokens += s.tokens;
    }
    // Read before the forward below, so that it is the steps' peak.
    let peak_rss_mib = crate::proc::peak_resident_bytes().map(|b| b as f64 / (1024.0 * 1024.0));
    let t0 = Instant::now();
    let _ = token_logprobs_detached(&trainer.policy.model, &seq)?;
    Ok(StepReport {
        seq: b.seq,
        batch: b.batch,
        threads: candle_core::utils::get_num_threads(),
        kernels: if b.fused { "fused" } else { "candle" }.into(),
        trainable_params: trainer.policy.num_trainable(),
        tokens_per_s: tokens as f64 / secs,
        step_s: secs / b.steps as f64,
        forward_s: t0.elapsed().as_secs_f64(),
        losses,
        peak_rss_mib,
        load_s,
    })
}
