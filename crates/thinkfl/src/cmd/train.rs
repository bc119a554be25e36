//! `thinkfl train --config configs/stages.toml --data DATASET --model default --out RUN`:
//! LoRA training of the localizer, stage 0 (supervised priming on the expert's right answers)
//! then the GRPO stages of the config (DESIGN.md section 7). Writes `RUN/train.jsonl` (one line
//! per step), `RUN/split.json`, checkpoints under `RUN/checkpoints/`, the PEFT adapter after each
//! stage (`RUN/adapter-<stage>/`) and the final one (`RUN/adapter/`).

use anyhow::{Context as _, bail};
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::Arc;
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_train::config::{StageKind, TrainConfig};
use thinkfl_train::log::{LogWriter, StepLog};
use thinkfl_train::run::{ModelParts, RunData, oracle_trajectories, run_grpo_stage, tokenize};
use thinkfl_train::trainer::Trainer;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The stages file (TOML).
    #[arg(long, default_value = "configs/stages.toml")]
    pub config: PathBuf,
    /// A data set with ground truth (AIOps 2022 layout; `thinkfl simulate` writes one).
    #[arg(long)]
    pub data: PathBuf,
    /// Base model: `default` (SmolLM2-135M-Instruct), a GGUF file or a Hugging Face directory.
    #[arg(long, default_value = "default")]
    pub model: String,
    /// Who writes the stage-0 trajectories: `expert` (the scripted expert) or
    /// `openai:URL#MODEL` (a model behind an OpenAI-compatible server); only right answers are kept.
    #[arg(long, default_value = "expert")]
    pub oracle: String,
    /// Run directory (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the latest checkpoint in `--out`.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this stage index (0 = the SFT stage only).
    #[arg(long)]
    pub until_stage: Option<usize>,
    /// Also write the merged weights (`RUN/merged/model.safetensors`, f32).
    #[arg(long)]
    pub merged: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn bar(quiet: bool, len: u64, name: &str) -> ProgressBar {
    let b = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    b.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {prefix} {bar:30} {pos}/{len} {msg}",
        )
        .expect("a valid template"),
    );
    b.set_prefix(name.to_string());
    b
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (cfg, text) = TrainConfig::load(&args.config)?;
    if args.oracle != "expert" && !args.oracle.starts_with("openai:") {
        bail!(
            "--oracle {}: expected `expert` or `openai:URL#MODEL`",
            args.oracle
        );
    }
    let ckpt = thinkfl_train::checkpoint::latest(&args.out)?;
    if ckpt.is_some() && !args.resume {
        bail!(
            "{} already holds checkpoints; pass --resume to continue it or choose another --out",
            args.out.display()
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let (store, load) = TelemetryStore::load(&args.data, &LoadOptions::default())
        .with_context(|| format!("loading {}", args.data.display()))?;
    for w in &load.warnings {
        eprintln!("warning: {w}");
    }
    let data = RunData::new(Arc::new(store), &cfg)?;
    let split = serde_json::json!({
        "data": args.data.display().to_string(),
        "seed": cfg.seed,
        "held_out_fraction": cfg.held_out_fraction,
        "train_cases": data.train_cases,
        "held_out_cases": data.held_out_cases,
        "train_queries": data.train_queries.len(),
    });
    std::fs::write(
        args.out.join("split.json"),
        serde_json::to_string_pretty(&split)?,
    )?;
    std::fs::write(args.out.join("config.toml"), &text)?;

    let path = thinkfl_candle::fetch::resolve_model(&args.model, true)?;
    let loaded = thinkfl_candle::load(&path, &thinkfl_candle::LoadOptions::training())
        .with_context(|| format!("loading {}", path.display()))?;
    let parts = ModelParts::of(&loaded);
    // PEFT and vLLM find the base by its Hugging Face id.
    let base_name = Some(match args.model.as_str() {
        "default" => "HuggingFaceTB/SmolLM2-135M-Instruct".to_string(),
        other => other.to_string(),
    });
    let mut trainer = Trainer::new(cfg.clone(), text, loaded.model, &args.out)?;
    if args.resume && trainer.resume()? {
        eprintln!(
            "resumed at step {} (stage {}, step {})",
            trainer.state.global_step, trainer.state.stage, trainer.state.stage_step
        );
    }
    eprintln!(
        "{} train / {} held-out fault cases, {} training queries; {} trainable parameters (LoRA r={} on {})",
        data.train_cases.len(),
        data.held_out_cases.len(),
        data.train_queries.len(),
        trainer.policy.num_trainable(),
        cfg.lora.rank,
        cfg.lora.targets.join(",")
    );
    let mut log = LogWriter::append(&args.out.join("train.jsonl"))?;
    let last = args
        .until_stage
        .unwrap_or(usize::MAX)
        .min(cfg.stages.len() - 1);
    while trainer.state.stage <= last {
        let stage = trainer.state.stage;
        let sc = cfg.stages[stage].clone();
        let pb = bar(
            args.quiet,
            sc.steps as u64,
            &format!("stage {stage} {}", sc.name),
        );
        pb.set_position(trainer.state.stage_step as u64);
        match sc.kind {
            StageKind::Sft => {
                pb.set_message(format!(
                    "running the oracle ({}) for trajectories",
                    args.oracle
                ));
                let oracle = super::models::build_model(&args.oracle, None, &data.store)?;
                let (kept, ran) = oracle_trajectories(&data, &cfg, sc.d_max, oracle)?;
                let template = parts.template()?;
                let seqs = kept
                    .iter()
                    .map(|t| tokenize(&template, &parts.tokenizer, t, cfg.max_seq_tokens))
                    .collect::<Result<Vec<_>, _>>()?;
                let tokens: usize = seqs.iter().map(|s| s.ids.len()).sum();
                eprintln!(
                    "stage {stage}: {} of {ran} oracle ({}) trajectories right (rejection sampling), {tokens} tokens, {} trained",
                    seqs.len(),
                    args.oracle,
                    seqs.iter().map(|s| s.num_targets()).sum::<usize>()
                );
                let mut step = trainer.state.stage_step;
                let pb2 = pb.clone();
                trainer.run_sft_stage(stage, &seqs, |t, s| {
                    step += 1;
                    let mut rec = StepLog::new(stage, &sc, step, t.state.global_step);
                    rec.set_update(s);
                    rec.finish();
                    pb2.set_position(step as u64);
                    pb2.set_message(format!(
                        "loss {:.4}  {:.0} tok/s",
                        s.loss,
                        s.tokens_per_second()
                    ));
                    log.write(&rec)
                })?;
            }
            StageKind::Grpo => {
                let pb2 = pb.clone();
                run_grpo_stage(&mut trainer, stage, &data, &parts, |rec| {
                    pb2.set_position(rec.stage_step as u64);
                    pb2.set_message(format!(
                        "reward {:.3}  R@1 {:.2}  skipped {}/{}  {:.0} tok/s",
                        rec.reward.unwrap_or(0.0),
                        rec.r_at_1.unwrap_or(0.0),
                        rec.groups_skipped,
                        rec.groups_used + rec.groups_skipped,
                        rec.tokens_per_second
                    ));
                    log.write(rec)
                })?;
            }
        }
        pb.finish_and_clear();
        let dir = args.out.join(format!("adapter-{stage}-{}", sc.name));
        thinkfl_train::peft::save_adapter(&trainer.policy, &dir, base_name.clone())?;
        eprintln!(
            "stage {stage} ({}) done at step {}; adapter in {}",
            sc.name,
            trainer.state.global_step,
            dir.display()
        );
    }
    let dir = args.out.join("adapter");
    thinkfl_train::peft::save_adapter(&trainer.policy, &dir, base_name)?;
    println!("adapter written to {}", dir.display());
    if args.merged {
        let m = args.out.join("merged");
        thinkfl_train::peft::save_merged(&trainer.policy.model, &m)?;
        println!("merged weights written to {}", m.display());
    }
    Ok(())
}
