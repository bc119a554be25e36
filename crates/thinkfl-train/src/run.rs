//! A whole training run on a data set with ground truth: the train/held-out split, oracle
//! trajectories from the scripted expert (rejection-sampled: right answers only) for stage 0,
//! and GRPO stages whose G rollouts per question run as one lockstep batch of the actor on the
//! policy's own generation engine (quantized base + f32 adapters), graded by `thinkfl-grader`.

use crate::config::{LossTokens, StageConfig, TrainConfig, split_cases};
use crate::error::{Error, Result};
use crate::log::StepLog;
use crate::loss::{Sequence, group_advantages};
use crate::trainer::{Rollout, Trainer};
use rand::Rng;
use std::sync::Arc;
use thinkfl_agent::{Actor, ActorConfig, Recorded};
use thinkfl_candle::{CandleChatModel, ChatTemplate, EngineConfig, LoadedModel, Tok};
use thinkfl_core::Trajectory;
use thinkfl_grader::{DiversityCache, GraderConfig, grade, grade_with_diversity_for};
use thinkfl_store::TelemetryStore;
use thinkfl_tools::{AnomalyConfig, Baselines, Query, all_case_queries};

/// The data of a run: store, baselines, and the queries of the training cases.
#[derive(Debug)]
pub struct RunData {
    /// The training data set.
    pub store: Arc<TelemetryStore>,
    /// Its normal durations (one pass over its spans, shared by every episode).
    pub baselines: Baselines,
    /// Fault cases trained on.
    pub train_cases: Vec<usize>,
    /// Fault cases held out.
    pub held_out_cases: Vec<usize>,
    /// Queries of the training cases only (held-out cases never appear here).
    pub train_queries: Vec<Query>,
}

impl RunData {
    /// One data set split into training and held-out cases by `held_out_fraction`.
    pub fn new(store: Arc<TelemetryStore>, cfg: &TrainConfig) -> Result<Self> {
        let n = store.faults().len();
        if n < 2 {
            return Err(Error::Data(format!(
                "the data set has {n} fault cases; training needs at least 2"
            )));
        }
        let (train_cases, held_out_cases) = split_cases(n, cfg.held_out_fraction, cfg.seed);
        Self::with_cases(store, cfg, train_cases, held_out_cases)
    }

    /// A data set of a corpus whose every case is for training (the corpus holds out whole
    /// data sets: other seeds, another topology).
    pub fn all_train(store: Arc<TelemetryStore>, cfg: &TrainConfig) -> Result<Self> {
        let n = store.faults().len();
        Self::with_cases(store, cfg, (0..n).collect(), Vec::new())
    }

    fn with_cases(
        store: Arc<TelemetryStore>,
        cfg: &TrainConfig,
        train_cases: Vec<usize>,
        held_out_cases: Vec<usize>,
    ) -> Result<Self> {
        let all = all_case_queries(&store, &AnomalyConfig::default());
        let train_queries: Vec<Query> = train_cases
            .iter()
            .flat_map(|&c| all[c].iter().take(cfg.queries_per_case).cloned())
            .collect();
        if train_queries.is_empty() {
            return Err(Error::NoQueries);
        }
        let baselines = Baselines::compute(&store);
        Ok(RunData {
            store,
            baselines,
            train_cases,
            held_out_cases,
            train_queries,
        })
    }
}

/// The actor settings of a stage.
pub fn actor_config(cfg: &TrainConfig, stage: &StageConfig, seed: u64) -> ActorConfig {
    episode_config(cfg, stage.d_max, stage.temperature, seed)
}

/// Greedy episodes with the run's episode settings, as inference plays them (the oracle's
/// trajectories, the watch).
fn greedy_actor_config(cfg: &TrainConfig, d_max: usize) -> ActorConfig {
    episode_config(cfg, d_max, 0.0, cfg.seed)
}

fn episode_config(cfg: &TrainConfig, d_max: usize, temperature: f32, seed: u64) -> ActorConfig {
    ActorConfig {
        d_max,
        temperature,
        top_p: cfg.episode.top_p,
        max_tokens_per_turn: cfg.episode.max_tokens_per_turn,
        max_rows: cfg.episode.max_rows,
        max_tool_output_bytes: cfg.episode.max_tool_output_bytes,
        // Checked by TrainConfig::validate.
        constrain: cfg.episode.constrain.parse().unwrap_or_default(),
        seed,
        ..ActorConfig::default()
    }
}

/// Tokens and assistant mask of a trajectory, as the policy's template renders it.
pub fn tokenize(
    template: &ChatTemplate,
    tok: &Tok,
    traj: &Trajectory,
    max: usize,
) -> Result<Sequence> {
    let (ids, mask) = template.render_with_mask(tok, &traj.messages, &[])?;
    Ok(Sequence { ids, mask }.truncated(max))
}

/// [`tokenize`] a recorded episode for the loss: with `loss_tokens = "free"`, only the tokens
/// its turns' grammars left free are targets.
pub fn tokenize_recorded(
    cfg: &TrainConfig,
    parts: &ModelParts,
    template: &ChatTemplate,
    rec: &Recorded,
) -> Result<Sequence> {
    let mut seq = tokenize(
        template,
        &parts.tokenizer,
        &rec.trajectory,
        cfg.max_seq_tokens,
    )?;
    if cfg.loss_tokens == LossTokens::Free {
        crate::free::keep_free_tokens(&mut seq, &rec.grammars, &parts.token_bytes);
    }
    Ok(seq)
}

/// Oracle trajectories of any chat model (the scripted expert, or a large model behind an
/// OpenAI-compatible server) on the training queries, greedy, kept where the answer is right
/// (rejection sampling); returns them and how many were run.
pub fn oracle_trajectories(
    data: &RunData,
    cfg: &TrainConfig,
    d_max: usize,
    oracle: Arc<dyn thinkfl_llm::ChatModel>,
) -> Result<(Vec<Recorded>, usize)> {
    let actor = Actor::new(oracle, greedy_actor_config(cfg, d_max))?;
    let seeds: Vec<u64> = (0..data.train_queries.len() as u64).collect();
    let trajs =
        actor.run_batch_recorded(&data.store, &data.baselines, &data.train_queries, &seeds)?;
    let gcfg = GraderConfig::default();
    let n = trajs.len();
    let kept = trajs
        .into_iter()
        .filter(|r| {
            let t = &r.trajectory;
            t.case
                .is_some_and(|c| grade(&gcfg, t, &data.store.faults()[c]).rank == Some(0))
        })
        .collect();
    Ok((kept, n))
}

/// The parts of a loaded model that rollouts need besides the weights.
#[derive(Debug)]
pub struct ModelParts {
    /// The model's tokenizer.
    pub tokenizer: Tok,
    /// Its chat template's source.
    pub template_source: String,
    /// Its name.
    pub name: String,
    /// The bytes of each token id ([`Tok::token_bytes`]), to match tokens against grammars.
    pub token_bytes: Vec<Option<Vec<u8>>>,
}

impl ModelParts {
    /// The parts of `loaded`.
    pub fn of(loaded: &LoadedModel) -> Self {
        ModelParts {
            token_bytes: loaded.tokenizer.token_bytes(),
            tokenizer: loaded.tokenizer.clone(),
            template_source: loaded.template.source().to_string(),
            name: loaded.name.clone(),
        }
    }
    /// The chat template, compiled.
    pub fn template(&self) -> Result<ChatTemplate> {
        Ok(ChatTemplate::new(&self.template_source, &self.tokenizer)?)
    }
}

/// A chat model over the trainer's current weights: the clone shares the adapter `Var`s, so
/// optimizer updates reach it (its prefix cache must be cleared after each update).
pub fn rollout_model(trainer: &Trainer, parts: &ModelParts) -> Result<Arc<CandleChatModel>> {
    let loaded = LoadedModel {
        architecture: thinkfl_candle::Architecture::Llama,
        model: trainer.policy.model.clone(),
        tokenizer: parts.tokenizer.clone(),
        template: parts.template()?,
        source: Default::default(),
        name: parts.name.clone(),
    };
    let engine = EngineConfig {
        max_batch: 16,
        ..EngineConfig::default()
    };
    Ok(Arc::new(CandleChatModel::from_loaded(loaded, engine)?))
}

/// Starts the policy from a PEFT adapter (a finished stage of another run): its tensors replace
/// the fresh adapters, which must have the same rank, scale and targets.
pub fn init_from_adapter(trainer: &mut Trainer, dir: &std::path::Path) -> Result<()> {
    let cfg = crate::peft::read_adapter_config(dir)?;
    let lora = &trainer.cfg.lora;
    if cfg.r != lora.rank || (cfg.lora_alpha - lora.alpha).abs() > 1e-9 {
        return Err(Error::file(
            dir,
            format!(
                "adapter r = {}, alpha = {}; the config trains r = {}, alpha = {}",
                cfg.r, cfg.lora_alpha, lora.rank, lora.alpha
            ),
        ));
    }
    let wpath = dir.join("adapter_model.safetensors");
    let tensors = candle_core::safetensors::load(&wpath, trainer.policy.model.device())
        .map_err(|e| Error::file(&wpath, e.to_string()))?;
    if tensors.len() != trainer.policy.params.len() {
        return Err(Error::file(
            &wpath,
            format!(
                "{} tensors; the config's targets make {}",
                tensors.len(),
                trainer.policy.params.len()
            ),
        ));
    }
    for (name, var) in &trainer.policy.params {
        let t = tensors
            .get(name)
            .ok_or_else(|| Error::file(&wpath, format!("no tensor {name}")))?
            .to_dtype(candle_core::DType::F32)?;
        if t.dims() != var.as_tensor().dims() {
            return Err(Error::file(
                &wpath,
                format!(
                    "{name}: {:?}, expected {:?}",
                    t.dims(),
                    var.as_tensor().dims()
                ),
            ));
        }
        var.set(&t)?;
    }
    Ok(())
}

/// Run (or continue) GRPO stage `stage`.
pub fn run_grpo_stage(
    trainer: &mut Trainer,
    stage: usize,
    sets: &[RunData],
    parts: &ModelParts,
    mut on_step: impl FnMut(&Trainer, &mut StepLog) -> Result<()>,
) -> Result<()> {
    let sc = trainer.cfg.stages[stage].clone();
    let reward = sc
        .reward
        .ok_or_else(|| Error::Config(format!("stage {stage} ({}): no reward", sc.name)))?;
    let model = rollout_model(trainer, parts)?;
    let template = parts.template()?;
    let gcfg = GraderConfig::default();
    let mut cache = DiversityCache::new();
    // Every training query of every data set, as (set, query).
    let all: Vec<(usize, usize)> = sets
        .iter()
        .enumerate()
        .flat_map(|(d, s)| (0..s.train_queries.len()).map(move |q| (d, q)))
        .collect();
    if all.is_empty() {
        return Err(Error::Data("no training queries".into()));
    }
    while trainer.state.stage == stage {
        let t0 = std::time::Instant::now();
        let mut log = StepLog::new(
            stage,
            &sc,
            trainer.state.stage_step + 1,
            trainer.state.global_step + 1,
        );
        let mut rollouts = Vec::new();
        let mut all_adv = Vec::new();
        // Draw questions until `batch` groups disagree, or `max_draws` batches were drawn.
        while log.groups_used < sc.batch && log.draws < trainer.cfg.grpo.max_draws {
            log.draws += 1;
            let k = (sc.batch - log.groups_used).min(all.len());
            let picked: Vec<(usize, usize)> =
                rand::seq::index::sample(&mut trainer.rng, all.len(), k)
                    .into_iter()
                    .map(|i| all[i])
                    .collect();
            // Groups: (question, copy); G rollouts each. Rollouts of one data set run as one
            // lockstep batch.
            let mut queries = Vec::new();
            let mut origin = Vec::new();
            let mut seeds = Vec::new();
            for &(d, q) in &picked {
                for _ in 0..sc.duplicate * sc.group {
                    queries.push(sets[d].train_queries[q].clone());
                    origin.push(d);
                    seeds.push(trainer.rng.random::<u64>());
                }
            }
            let actor = Actor::new(model.clone(), actor_config(&trainer.cfg, &sc, 0))?;
            let mut trajs: Vec<Option<Recorded>> = vec![None; queries.len()];
            for (d, set) in sets.iter().enumerate() {
                let idx: Vec<usize> = (0..queries.len()).filter(|&i| origin[i] == d).collect();
                if idx.is_empty() {
                    continue;
                }
                let qs: Vec<_> = idx.iter().map(|&i| queries[i].clone()).collect();
                let ss: Vec<u64> = idx.iter().map(|&i| seeds[i]).collect();
                for (i, t) in idx.into_iter().zip(actor.run_batch_recorded(
                    &set.store,
                    &set.baselines,
                    &qs,
                    &ss,
                )?) {
                    trajs[i] = Some(t);
                }
            }
            let recorded: Vec<Recorded> = trajs.into_iter().flatten().collect();
            // Every rollout is kept for inspection (what the policy wrote, what the grader saw).
            let rpath = trainer.run_dir.join("rollouts.jsonl");
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&rpath)
                .map_err(|e| Error::io(&rpath, e))?;
            thinkfl_agent::write_trajectories(
                std::io::BufWriter::new(f),
                recorded.iter().map(|r| &r.trajectory),
            )
            .map_err(|e| Error::io(&rpath, e))?;
            for (g, chunk) in recorded.chunks(sc.group).enumerate() {
                let set = &sets[origin[g * sc.group]];
                let question = format!(
                    "{}#{}#{}",
                    origin[g * sc.group],
                    queries[g * sc.group].case,
                    queries[g * sc.group].span_id
                );
                let mut rewards = Vec::with_capacity(chunk.len());
                for r in chunk {
                    let t = &r.trajectory;
                    let truth = &set.store.faults()[t.case.unwrap_or(queries[g * sc.group].case)];
                    let b = if reward.needs_diversity() {
                        grade_with_diversity_for(&gcfg, t, truth, &mut cache, &question)
                    } else {
                        grade(&gcfg, t, truth)
                    };
                    let score = reward.of(&b);
                    log.add_rollout(&b, score, t);
                    rewards.push(score);
                }
                match group_advantages(&rewards, trainer.cfg.grpo.adv_eps) {
                    None => log.groups_skipped += 1,
                    Some(adv) => {
                        log.groups_used += 1;
                        for (r, a) in chunk.iter().zip(adv) {
                            let seq = tokenize_recorded(&trainer.cfg, parts, &template, r)?;
                            all_adv.push(a);
                            rollouts.push(Rollout { seq, advantage: a });
                        }
                    }
                }
            }
        }
        let rollout_s = t0.elapsed().as_secs_f64();
        log.rollout_seconds = rollout_s;
        log.set_advantages(&all_adv);
        if rollouts.iter().any(|r| r.seq.num_targets() > 0) {
            let stats = trainer.grpo_update(&rollouts, sc.lr)?;
            model.engine.clear_prefix_cache();
            log.set_update(&stats);
        }
        trainer.finish_step()?;
        log.finish();
        on_step(trainer, &mut log)?;
    }
    Ok(())
}

/// Questions the watch replays at every look: a store, its baselines and fixed queries.
#[derive(Debug)]
pub struct WatchSet {
    /// The data set the questions come from.
    pub store: Arc<TelemetryStore>,
    /// Its normal durations.
    pub baselines: Baselines,
    /// The questions.
    pub queries: Vec<Query>,
}

impl WatchSet {
    /// `n` training questions of a run's data set, spread over it.
    pub fn of_training(data: &RunData, n: usize) -> Self {
        let queries = crate::watch::spread(data.train_queries.len(), n)
            .into_iter()
            .map(|i| data.train_queries[i].clone())
            .collect();
        WatchSet {
            store: data.store.clone(),
            baselines: data.baselines.clone(),
            queries,
        }
    }

    /// The first question of `n` cases of a held-out data set, spread over it.
    pub fn of_held_out(store: Arc<TelemetryStore>, n: usize) -> Self {
        let all = all_case_queries(&store, &AnomalyConfig::default());
        let firsts: Vec<Query> = all
            .into_iter()
            .filter_map(|q| q.into_iter().next())
            .collect();
        let queries = crate::watch::spread(firsts.len(), n)
            .into_iter()
            .map(|i| firsts[i].clone())
            .collect();
        let baselines = Baselines::compute(&store);
        WatchSet {
            store,
            baselines,
            queries,
        }
    }
}

/// Plays the watch questions with the current policy (greedy, constrained as at inference) and
/// with the scripted expert, and compares their decisions (see [`crate::watch`]).
pub fn watch(
    trainer: &Trainer,
    parts: &ModelParts,
    sets: &[WatchSet],
) -> Result<crate::watch::Agreement> {
    let model = rollout_model(trainer, parts)?;
    let acfg = greedy_actor_config(&trainer.cfg, ActorConfig::DEFAULT_D_MAX);
    let mut parts_out = Vec::new();
    for set in sets.iter().filter(|s| !s.queries.is_empty()) {
        let seeds: Vec<u64> = (0..set.queries.len() as u64).collect();
        let policy = Actor::new(model.clone(), acfg.clone())?.run_batch(
            &set.store,
            &set.baselines,
            &set.queries,
            &seeds,
        )?;
        let expert = thinkfl_agent::ExpertPolicy::with_baselines(
            set.store.clone(),
            set.baselines.clone(),
            Default::default(),
        );
        let teacher = Actor::new(expert, acfg.clone())?.run_batch(
            &set.store,
            &set.baselines,
            &set.queries,
            &seeds,
        )?;
        parts_out.push(crate::watch::agreement(&set.store, &policy, &teacher));
    }
    Ok(crate::watch::Agreement::pool(&parts_out))
}
