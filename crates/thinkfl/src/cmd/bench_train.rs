//! `thinkfl bench train`: our LoRA update step (`thinkfl_bench::train`) and the PyTorch peer
//! (`scripts/torch-train-step.py`, embedded) on the same ids, mask and LoRA settings, for each
//! sequence length and thread count, each configuration in a process of its own so that peak
//! RSS is its own. Prints tokens/s, peak RSS and the first-step loss of both, and the ratio.
//!
//! The peer is a Python with torch, transformers, gguf and peft: `THINKFL_TORCH_PYTHON`, else the
//! venv that `scripts/torch-peer.sh` makes in the peers cache, else `python3` when it imports
//! torch. Without one, only our figures are printed, with a line saying so.

use clap::Args as ClapArgs;
use std::path::{Path, PathBuf};
use std::process::Command;
use thinkfl_bench::train::{StepBench, StepReport};

const TORCH_SCRIPT: &str = include_str!("../../../../scripts/torch-train-step.py");

/// First-step losses must agree within this relative difference (same weights, same ids).
const LOSS_RTOL: f64 = 1e-3;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[arg(long, default_value = "default")]
    model: String,
    /// Sequence lengths T, comma-separated.
    #[arg(long, default_value = "512,1024,2048", value_delimiter = ',')]
    seq: Vec<usize>,
    /// Thread counts, comma-separated (matmul threads for us, torch.set_num_threads for torch).
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Untimed steps first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 2)]
    steps: usize,
    /// Our blocks on candle's operations instead of the training kernels.
    #[arg(long)]
    candle_ops: bool,
    /// Skip the PyTorch peer.
    #[arg(long)]
    no_peer: bool,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    /// Internal: run our step for this T in this process and print its report as JSON.
    #[arg(long, hide = true)]
    one: Option<usize>,
}

/// The peer's figures (the fields of the script's `--json` output that we use).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PeerReport {
    torch: String,
    threads: usize,
    lora: String,
    tokens_per_s: f64,
    losses: Vec<f64>,
    peak_rss_mib: f64,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let path = thinkfl_candle::fetch::resolve_model(&a.model, true)?;
    let bench = |seq| StepBench {
        seq,
        warmup: a.warmup,
        steps: a.steps,
        fused: !a.candle_ops,
        ..StepBench::default()
    };
    if let Some(t) = a.one {
        let r = thinkfl_bench::train::run(&path, &bench(t))?;
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    if a.seq.iter().any(|&t| t < 2) || a.threads.contains(&0) || a.steps == 0 {
        anyhow::bail!("need every T >= 2, every thread count >= 1 and --steps >= 1");
    }
    let python = if a.no_peer { None } else { find_torch_python() };
    if !a.no_peer && python.is_none() {
        eprintln!(
            "no PyTorch peer found (set THINKFL_TORCH_PYTHON to a Python with torch, transformers, \
             gguf and peft, or run scripts/torch-peer.sh); no peer figures"
        );
    }
    let script = match &python {
        Some(_) => {
            let f = tempfile::Builder::new()
                .prefix("torch-train-step")
                .suffix(".py")
                .tempfile()?;
            std::fs::write(f.path(), TORCH_SCRIPT)?;
            Some(f)
        }
        None => None,
    };
    let mut rows = Vec::new();
    if !a.json {
        println!(
            "model {}; LoRA r=8 alpha=16 on 7 projections, B=1, last 15% of tokens trained; \
             mean of {} steps after {} warm-up",
            path.display(),
            a.steps,
            a.warmup
        );
        println!(
            "{:>5} {:>3} | {:>10} {:>9} {:>10} | {:>10} {:>9} {:>10} | {:>6} loss",
            "T", "thr", "ours tok/s", "RSS MiB", "loss", "torch t/s", "RSS MiB", "loss", "ratio"
        );
    }
    for &t in &a.seq {
        for &n in &a.threads {
            let ours = ours_in_child(&a, t, n)?;
            let peer = match (&python, &script) {
                (Some(py), Some(s)) => match torch_in_child(py, s.path(), &path, &a, t, n) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        eprintln!("peer failed at T={t}, {n} threads: {e}");
                        None
                    }
                },
                _ => None,
            };
            if !a.json {
                print_row(&ours, peer.as_ref(), n);
            }
            rows.push(serde_json::json!({"seq": t, "threads": n, "thinkfl": ours, "torch": peer}));
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}

fn print_row(ours: &StepReport, peer: Option<&PeerReport>, threads: usize) {
    let rss = |m: Option<f64>| m.map_or("n/a".to_string(), |m| format!("{m:.0}"));
    let first = |l: &[f64]| l.first().copied().unwrap_or(f64::NAN);
    let (l_ours, mut line) = (
        first(&ours.losses),
        format!(
            "{:>5} {:>3} | {:>10.1} {:>9} {:>10.5} |",
            ours.seq,
            threads,
            ours.tokens_per_s,
            rss(ours.peak_rss_mib),
            first(&ours.losses)
        ),
    );
    match peer {
        Some(p) => {
            let l = first(&p.losses);
            let rel = (l_ours - l).abs() / l.abs().max(f64::MIN_POSITIVE);
            line += &format!(
                " {:>10.1} {:>9.0} {:>10.5} | {:>6.2} {}",
                p.tokens_per_s,
                p.peak_rss_mib,
                l,
                ours.tokens_per_s / p.tokens_per_s,
                if rel <= LOSS_RTOL {
                    format!("agree ({rel:.1e})")
                } else {
                    format!("DISAGREE ({rel:.1e} > {LOSS_RTOL:.0e})")
                }
            );
        }
        None => line += " (no peer)",
    }
    println!("{line}");
}

/// Our step for `t` in a child process of this binary with `threads` matmul threads.
fn ours_in_child(a: &Args, t: usize, threads: usize) -> anyhow::Result<StepReport> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "bench",
        "train",
        "--model",
        &a.model,
        "--one",
        &t.to_string(),
    ])
    .args([
        "--warmup",
        &a.warmup.to_string(),
        "--steps",
        &a.steps.to_string(),
    ])
    .env("RAYON_NUM_THREADS", threads.to_string());
    if a.candle_ops {
        cmd.arg("--candle-ops");
    }
    let out = cmd.output()?;
    if !out.status.success() {
        anyhow::bail!(
            "our step at T={t}, {threads} threads: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    last_json_line(&out.stdout)
}

fn torch_in_child(
    python: &Path,
    script: &Path,
    gguf: &Path,
    a: &Args,
    t: usize,
    threads: usize,
) -> anyhow::Result<PeerReport> {
    let out = Command::new(python)
        .arg(script)
        .arg("--model")
        .arg(gguf)
        .args(["--seq", &t.to_string(), "--logits", "targets", "--json"])
        .args(["--threads", &threads.to_string()])
        .args([
            "--warmup",
            &a.warmup.to_string(),
            "--steps",
            &a.steps.to_string(),
        ])
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    last_json_line(&out.stdout)
}

fn last_json_line<T: serde::de::DeserializeOwned>(stdout: &[u8]) -> anyhow::Result<T> {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow::anyhow!("no JSON report in the output: {text}"))?;
    Ok(serde_json::from_str(line)?)
}

/// `THINKFL_TORCH_PYTHON`, else the peers cache's venv (`scripts/torch-peer.sh`), else `python3`
/// when it imports torch.
fn find_torch_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("THINKFL_TORCH_PYTHON") {
        return Some(p.into());
    }
    let peers = std::env::var_os("THINKFL_PEERS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/thinkfl/peers"))
        });
    if let Some(py) = peers.map(|p| p.join("torch/bin/python"))
        && py.is_file()
    {
        return Some(py);
    }
    let ok = Command::new("python3")
        .args(["-c", "import torch, transformers, gguf"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then(|| PathBuf::from("python3"))
}
