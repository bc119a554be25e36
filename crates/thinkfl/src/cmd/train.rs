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
use thinkfl_agent::expert::{ExpertConfig, ExpertPolicy};
use thinkfl_store::LoadOptions;
use thinkfl_train::config::{StageKind, TrainConfig};
use thinkfl_train::log::{LogWriter, StepLog};
use thinkfl_train::run::{
    ModelParts, RunData, WatchSet, oracle_trajectories, run_grpo_stage, tokenize_recorded, watch,
};
use thinkfl_train::trainer::Trainer;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The stages file (TOML).
    #[arg(long, default_value = "configs/stages.toml")]
    pub config: PathBuf,
    /// Data sets with ground truth (AIOps 2022 layout; `thinkfl simulate` writes one); each is
    /// split into training and held-out cases by the config's `held_out_fraction`.
    #[arg(long, num_args = 1.., required_unless_present = "corpus")]
    pub data: Vec<PathBuf>,
    /// A corpus manifest (`thinkfl corpus build` writes `corpus.json`): every case of its
    /// `train` data sets is trained on; its `held_out` sets are never loaded.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Start the adapters from this PEFT adapter directory (e.g. a finished stage of another
    /// run) instead of fresh ones; its rank and alpha must match the config.
    #[arg(long)]
    pub init_adapter: Option<PathBuf>,
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
    /// Held-out data sets the watch replays (see `--watch-every`); never trained on.
    #[arg(long, num_args = 1..)]
    pub watch: Vec<PathBuf>,
    /// Every this many steps, the policy plays a few training and held-out questions greedily
    /// beside the scripted expert, and the log records how often it made the expert's decisions
    /// (first tool, spans, top pod, node, item count) and was right. 0 turns it off.
    #[arg(long, default_value_t = 10)]
    pub watch_every: u64,
    /// Questions per watch on each side (training, held-out), spread over the data sets.
    #[arg(long, default_value_t = 6)]
    pub watch_questions: usize,
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
            "{spinner} [{elapsed_precise}] {prefix} {bar:30} {pos}/{len} (ETA {eta}) {msg}",
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
    let mut sets: Vec<RunData> = Vec::new();
    let mut split_sets = Vec::new();
    let mut sources: Vec<(PathBuf, bool)> = args.data.iter().map(|d| (d.clone(), false)).collect();
    if let Some(c) = &args.corpus {
        sources.extend(corpus_train_sets(c)?.into_iter().map(|d| (d, true)));
    }
    for (dir, all_train) in &sources {
        let (store, load) = super::open_store(dir, &LoadOptions::default())
            .with_context(|| format!("loading {}", dir.display()))?;
        for w in &load.warnings {
            eprintln!("warning: {}: {w}", dir.display());
        }
        let store = Arc::new(store);
        let data = match if *all_train {
            RunData::all_train(store, &cfg)
        } else {
            RunData::new(store, &cfg)
        } {
            // A corpus data set may have nothing to ask about (an excerpt whose traces are all
            // under the detector's threshold); the corpus trains without it.
            Err(thinkfl_train::Error::NoQueries) if *all_train => {
                eprintln!(
                    "warning: {}: no anomalous-trace queries in its fault cases; skipped",
                    dir.display()
                );
                continue;
            }
            r => r.with_context(|| format!("data set {}", dir.display()))?,
        };
        split_sets.push(serde_json::json!({
            "data": dir.display().to_string(),
            "train_cases": data.train_cases,
            "held_out_cases": data.held_out_cases,
            "train_queries": data.train_queries.len(),
        }));
        sets.push(data);
    }
    // One data set keeps the old flat layout of split.json (`eval --held-out` reads it).
    let split = if split_sets.len() == 1 {
        let mut one = split_sets.remove(0);
        one["seed"] = cfg.seed.into();
        one["held_out_fraction"] = cfg.held_out_fraction.into();
        one
    } else {
        serde_json::json!({
            "seed": cfg.seed,
            "held_out_fraction": cfg.held_out_fraction,
            "corpus": args.corpus.as_ref().map(|c| c.display().to_string()),
            "sets": split_sets,
        })
    };
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
    if let Some(dir) = &args.init_adapter {
        thinkfl_train::run::init_from_adapter(&mut trainer, dir)
            .with_context(|| format!("--init-adapter {}", dir.display()))?;
        eprintln!("adapters start from {}", dir.display());
    }
    if args.resume && trainer.resume()? {
        eprintln!(
            "resumed at step {} (stage {}, step {})",
            trainer.state.global_step, trainer.state.stage, trainer.state.stage_step
        );
    }
    eprintln!(
        "{} data sets: {} train / {} held-out fault cases, {} training queries; {} trainable parameters (LoRA r={} on {})",
        sets.len(),
        sets.iter().map(|d| d.train_cases.len()).sum::<usize>(),
        sets.iter().map(|d| d.held_out_cases.len()).sum::<usize>(),
        sets.iter().map(|d| d.train_queries.len()).sum::<usize>(),
        trainer.policy.num_trainable(),
        cfg.lora.rank,
        cfg.lora.targets.join(",")
    );
    let mut log = LogWriter::append(&args.out.join("train.jsonl"))?;
    let watch_sets = if args.watch_every > 0 {
        let per = |n_sets: usize| args.watch_questions.div_ceil(n_sets.max(1));
        let train: Vec<WatchSet> = sets
            .iter()
            .map(|d| WatchSet::of_training(d, per(sets.len())))
            .collect();
        let mut held = Vec::new();
        for dir in &args.watch {
            let (store, _) = super::open_store(dir, &LoadOptions::default())
                .with_context(|| format!("loading --watch {}", dir.display()))?;
            held.push(WatchSet::of_held_out(
                Arc::new(store),
                per(args.watch.len()),
            ));
        }
        Some((train, held))
    } else {
        None
    };
    // The watch after a step: training questions, then held-out ones.
    let look = |t: &Trainer, rec: &mut StepLog, pb: &ProgressBar| -> anyhow::Result<()> {
        let Some((train, held)) = &watch_sets else {
            return Ok(());
        };
        if !t.state.global_step.is_multiple_of(args.watch_every) {
            return Ok(());
        }
        pb.set_message("watch: replaying questions beside the expert");
        let a = watch(t, &parts, train)?;
        pb.println(format!(
            "step {} watch, train: {}",
            t.state.global_step,
            a.summary()
        ));
        rec.watch_train = Some(a);
        if !held.is_empty() {
            let a = watch(t, &parts, held)?;
            pb.println(format!(
                "step {} watch, held-out: {}",
                t.state.global_step,
                a.summary()
            ));
            rec.watch_held_out = Some(a);
        }
        Ok(())
    };
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
        pb.enable_steady_tick(std::time::Duration::from_millis(500));
        {
            let pb = pb.clone();
            let update_start = std::sync::Mutex::new(std::time::Instant::now());
            trainer.progress = thinkfl_train::trainer::ProgressHook::new(move |p| {
                // The update's own clock restarts with its first sequence.
                let mut start = update_start.lock().unwrap_or_else(|e| e.into_inner());
                if p.done == 0 {
                    *start = std::time::Instant::now();
                }
                let secs = start.elapsed().as_secs_f64().max(1e-9);
                pb.set_message(format!(
                    "update: sequence {}/{} ({} tokens, {:.0} tok/s)",
                    p.done + 1,
                    p.total,
                    p.tokens,
                    p.tokens as f64 / secs
                ));
            });
        }
        match sc.kind {
            StageKind::Sft => {
                pb.set_message(format!(
                    "running the oracle ({}) for trajectories",
                    args.oracle
                ));
                let mut kept = Vec::new();
                let mut ran = 0;
                if sc.hindsight && args.oracle != "expert" {
                    bail!(
                        "stage {stage} ({}): hindsight needs the scripted expert as oracle, not {}",
                        sc.name,
                        args.oracle
                    );
                }
                for data in &sets {
                    // The expert reuses the run's baselines (a pass over every span) rather
                    // than computing them again.
                    let oracle: Arc<dyn thinkfl_llm::ChatModel> =
                        if args.oracle == "expert" {
                            let expert = ExpertPolicy::with_baselines(
                                data.store.clone(),
                                data.baselines.clone(),
                                ExpertConfig::default(),
                            );
                            Arc::new(if sc.hindsight {
                                expert.with_hindsight(data.train_queries.iter().map(|q| {
                                    (q.span_id.clone(), data.store.faults()[q.case].clone())
                                }))
                            } else {
                                expert
                            })
                        } else {
                            super::models::build_model(&args.oracle, None, &data.store)?
                        };
                    let (k, r) = oracle_trajectories(data, &cfg, sc.d_max, oracle)?;
                    kept.extend(k);
                    ran += r;
                }
                let template = parts.template()?;
                let seqs = kept
                    .iter()
                    .map(|r| tokenize_recorded(&cfg, &parts, &template, r))
                    .collect::<Result<Vec<_>, _>>()?;
                let tokens: usize = seqs.iter().map(|s| s.ids.len()).sum();
                eprintln!(
                    "stage {stage}: {} of {ran} oracle ({}{}) trajectories right (rejection sampling), {tokens} tokens, {} trained",
                    seqs.len(),
                    args.oracle,
                    if sc.hindsight { ", hindsight" } else { "" },
                    seqs.iter().map(|s| s.num_targets()).sum::<usize>()
                );
                let mut step = trainer.state.stage_step;
                let pb2 = pb.clone();
                trainer.run_sft_stage(stage, &seqs, |t, s| {
                    step += 1;
                    let mut rec = StepLog::new(stage, &sc, step, t.state.global_step);
                    rec.set_update(s);
                    rec.finish();
                    look(t, &mut rec, &pb2).map_err(thinkfl_train::Error::hook)?;
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
                run_grpo_stage(&mut trainer, stage, &sets, &parts, |t, rec| {
                    look(t, rec, &pb2).map_err(thinkfl_train::Error::hook)?;
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

/// The `train` data sets of a corpus manifest, as paths (relative ones are relative to it).
fn corpus_train_sets(manifest: &std::path::Path) -> anyhow::Result<Vec<PathBuf>> {
    let out: Vec<PathBuf> = corpus_sets(manifest)?
        .into_iter()
        .filter(|(_, role)| role == "train")
        .map(|(p, _)| p)
        .collect();
    if out.is_empty() {
        bail!("{}: no data set with role \"train\"", manifest.display());
    }
    Ok(out)
}

/// Every data set of a corpus manifest with its role (`train` or `held_out`), as paths
/// (relative ones are relative to it).
pub(crate) fn corpus_sets(manifest: &std::path::Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", manifest.display()))?;
    let base = manifest.parent().unwrap_or(std::path::Path::new("."));
    let list = v["datasets"]
        .as_array()
        .with_context(|| format!("{}: no `datasets` array", manifest.display()))?;
    let mut out = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let path = d["path"]
            .as_str()
            .with_context(|| format!("{}: datasets[{i}].path missing", manifest.display()))?;
        let role = d["role"]
            .as_str()
            .with_context(|| format!("{}: datasets[{i}].role missing", manifest.display()))?;
        out.push((base.join(path), role.to_string()));
    }
    Ok(out)
}
