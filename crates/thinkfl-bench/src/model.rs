//! Throughput of the inference path (`thinkfl bench model`): prefill tokens/s on a long prompt,
//! decode tokens/s at batch 1, and aggregate decode tokens/s at a larger batch. It drives the
//! same forward and KV cache as [`thinkfl_candle::Engine`] with greedy choices, but with fixed lengths (no early
//! end-of-turn), so runs are comparable.

use crate::{Error, Result};
use candle_core::Tensor;
use serde::Serialize;
use std::time::Instant;
use thinkfl_candle::{KvCache, Llama, Mode, Tok};

/// What to measure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchConfig {
    /// Tokens of the prefill prompt.
    pub prompt_tokens: usize,
    /// Tokens decoded per sequence.
    pub decode_tokens: usize,
    /// Batch of the aggregate decode figure.
    pub batch: usize,
    /// Prompt tokens per sequence before decoding.
    pub decode_prompt_tokens: usize,
}

impl BenchConfig {
    /// Default of `prompt_tokens`.
    pub const DEFAULT_PROMPT_TOKENS: usize = 512;
    /// Default of `decode_tokens`.
    pub const DEFAULT_DECODE_TOKENS: usize = 64;
    /// Default of `batch`.
    pub const DEFAULT_BATCH: usize = 8;
    /// Default of `decode_prompt_tokens`.
    pub const DEFAULT_DECODE_PROMPT_TOKENS: usize = 32;
    /// Checks that every size is positive.
    pub fn validate(&self) -> Result<()> {
        if self.prompt_tokens == 0
            || self.decode_tokens == 0
            || self.batch == 0
            || self.decode_prompt_tokens == 0
        {
            return Err(Error::Options("benchmark sizes must be positive".into()));
        }
        Ok(())
    }
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            prompt_tokens: Self::DEFAULT_PROMPT_TOKENS,
            decode_tokens: Self::DEFAULT_DECODE_TOKENS,
            batch: Self::DEFAULT_BATCH,
            decode_prompt_tokens: Self::DEFAULT_DECODE_PROMPT_TOKENS,
        }
    }
}

/// Figures of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Prompt tokens per second of the prefill.
    pub prefill_tokens_per_s: f64,
    /// Tokens per second decoding one sequence.
    pub decode_tokens_per_s_batch1: f64,
    /// Tokens per second over all sequences decoding `batch` together.
    pub decode_tokens_per_s_batch: f64,
    /// The batch of the aggregate figure.
    pub batch: usize,
    /// Tokens of the prefill prompt.
    pub prompt_tokens: usize,
    /// Tokens decoded per sequence.
    pub decode_tokens: usize,
}

/// `n` token ids of English text, different for each `variant`.
fn prompt_ids(tok: &Tok, n: usize, variant: usize) -> Result<Vec<u32>> {
    Ok(tok.filler_ids(n, variant)?)
}

fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    let v: Vec<Vec<f32>> = logits.to_vec2()?;
    Ok(v.iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0u32, f32::NEG_INFINITY), |a, (i, &x)| {
                    if x > a.1 { (i as u32, x) } else { a }
                })
                .0
        })
        .collect())
}

/// Prefill `prompts` (equal lengths) and decode `steps` tokens greedily; returns
/// (prefill seconds, decode seconds).
fn run(model: &Llama, prompts: &[Vec<u32>], steps: usize) -> Result<(f64, f64)> {
    let dev = model.device();
    let (b, t) = (prompts.len(), prompts[0].len());
    let mut cache = KvCache::new(model.config.num_hidden_layers);
    let ids = Tensor::from_vec(prompts.concat(), (b, t), dev)?;
    let pos: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
    let pos = Tensor::from_vec(pos, (b, t), dev)?;
    let t0 = Instant::now();
    let h = model.forward_hidden(&ids, &pos, None, Some(&mut cache), Mode::Infer)?;
    let mut next = argmax_rows(&model.logits(&h.narrow(1, t - 1, 1)?.squeeze(1)?, Mode::Infer)?)?;
    let prefill = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    for s in 0..steps {
        let ids = Tensor::from_vec(next.clone(), (b, 1), dev)?;
        let pos = Tensor::from_vec(vec![(t + s) as u32; b], (b, 1), dev)?;
        let h = model.forward_hidden(&ids, &pos, None, Some(&mut cache), Mode::Infer)?;
        next = argmax_rows(&model.logits(&h.squeeze(1)?, Mode::Infer)?)?;
    }
    Ok((prefill, t1.elapsed().as_secs_f64()))
}

/// Run the three measurements.
pub fn bench(model: &Llama, tok: &Tok, cfg: &BenchConfig) -> Result<BenchReport> {
    cfg.validate()?;
    // Warm-up: first calls allocate and page in weights.
    run(model, &[prompt_ids(tok, 16, 0)?], 2)?;
    let (prefill, _) = run(model, &[prompt_ids(tok, cfg.prompt_tokens, 0)?], 0)?;
    let (_, d1) = run(
        model,
        &[prompt_ids(tok, cfg.decode_prompt_tokens, 1)?],
        cfg.decode_tokens,
    )?;
    let prompts = (0..cfg.batch)
        .map(|i| prompt_ids(tok, cfg.decode_prompt_tokens, i + 2))
        .collect::<Result<Vec<_>>>()?;
    let (_, db) = run(model, &prompts, cfg.decode_tokens)?;
    Ok(BenchReport {
        prefill_tokens_per_s: cfg.prompt_tokens as f64 / prefill,
        decode_tokens_per_s_batch1: cfg.decode_tokens as f64 / d1,
        decode_tokens_per_s_batch: (cfg.batch * cfg.decode_tokens) as f64 / db,
        batch: cfg.batch,
        prompt_tokens: cfg.prompt_tokens,
        decode_tokens: cfg.decode_tokens,
    })
}

/// Figures of llama.cpp's `llama-bench` on the same GGUF (the speed peer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerReport {
    /// The peer and its path.
    pub tool: String,
    /// Threads it ran with.
    pub threads: usize,
    /// Prompt tokens per second of its prefill.
    pub prefill_tokens_per_s: f64,
    /// Tokens per second decoding one sequence.
    pub decode_tokens_per_s_batch1: f64,
}

/// `llama-bench`: `$THINKFL_LLAMA_BENCH`, else the binaries `scripts/llama-peer.sh` builds under
/// `$THINKFL_PEERS` (default `~/.cache/thinkfl/peers`).
pub fn find_llama_bench() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("THINKFL_LLAMA_BENCH") {
        return Some(p.into());
    }
    let peers = std::env::var_os("THINKFL_PEERS")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| std::path::PathBuf::from(h).join(".cache/thinkfl/peers"))
        })?;
    let mut found: Vec<_> = std::fs::read_dir(peers)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin").join("llama-bench"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// Run `llama-bench` for prefill of `cfg.prompt_tokens` and decode of `cfg.decode_tokens` with
/// `threads` threads, one repetition.
pub fn llama_bench_peer(
    exe: &std::path::Path,
    gguf: &std::path::Path,
    cfg: &BenchConfig,
    threads: usize,
) -> Result<PeerReport> {
    let out = std::process::Command::new(exe)
        .arg("-m")
        .arg(gguf)
        .args([
            "-p",
            &cfg.prompt_tokens.to_string(),
            "-n",
            &cfg.decode_tokens.to_string(),
        ])
        .args(["-r", "1", "-t", &threads.to_string(), "-o", "json"])
        .output()
        .map_err(|e| Error::io(exe, e))?;
    if !out.status.success() {
        return Err(Error::Peer {
            exe: exe.to_path_buf(),
            message: format!(
                "llama-bench failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).map_err(|e| Error::Peer {
            exe: exe.to_path_buf(),
            message: format!("unreadable llama-bench JSON: {e}"),
        })?;
    let pick = |prompt: bool| {
        rows.iter()
            .find(|r| {
                let np = r.get("n_prompt").and_then(|v| v.as_u64()).unwrap_or(0);
                let ng = r.get("n_gen").and_then(|v| v.as_u64()).unwrap_or(0);
                if prompt {
                    np > 0 && ng == 0
                } else {
                    np == 0 && ng > 0
                }
            })
            .and_then(|r| r.get("avg_ts").and_then(|v| v.as_f64()))
            .ok_or_else(|| Error::Peer {
                exe: exe.to_path_buf(),
                message: "llama-bench printed no pp/tg row".into(),
            })
    };
    Ok(PeerReport {
        tool: format!("llama.cpp llama-bench ({})", exe.display()),
        threads,
        prefill_tokens_per_s: pick(true)?,
        decode_tokens_per_s_batch1: pick(false)?,
    })
}
