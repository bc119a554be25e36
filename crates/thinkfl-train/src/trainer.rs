//! The optimizer-side loops: one SFT update on a batch of sequences, one GRPO update on a batch
//! of rollouts with their advantages, stage bookkeeping, checkpoints and resume. Rollouts and
//! rewards come from [`crate::run`]; this part needs only a model, so tests drive it on a tiny
//! random model.

use crate::checkpoint::{self, TrainState};
use crate::config::{StageKind, TrainConfig};
use crate::error::{Error, Result};
use crate::lora::Policy;
use crate::loss::{
    DEFAULT_MAX_GRAPH_BYTES, GrpoTerms, Sequence, grpo_loss, sequence_backward, sft_loss,
    token_logprobs_detached,
};
use crate::optim::{AdamW, GradAccum};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use thinkfl_candle::Llama;

/// Statistics of one optimizer update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// Loss of the update, as its objective computes it (SFT: the mean cross-entropy over the
    /// batch's trained tokens).
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens through the forward and backward (each sequence up to its last trained token).
    pub tokens: usize,
    /// Tokens the loss was computed on.
    pub trained_tokens: usize,
    /// Wall time of the forward and backward passes and the optimizer step.
    pub seconds: f64,
    /// Mean k3 KL per trained token (GRPO with beta > 0).
    pub kl: f64,
    /// Share of trained tokens whose objective took the clipped branch (GRPO).
    pub clip_fraction: f64,
}

impl UpdateStats {
    /// `tokens` per second of `seconds`; 0 when no time was measured.
    pub fn tokens_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.tokens as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// One rollout ready for the loss.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// The tokenized episode.
    pub seq: Sequence,
    /// Its group-normalized advantage.
    pub advantage: f64,
}

/// Where an update stands: sequences through forward and backward, of how many, and tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateProgress {
    /// Sequences finished.
    pub done: usize,
    /// Sequences in the update.
    pub total: usize,
    /// Tokens through forward and backward so far.
    pub tokens: usize,
}

/// Called after each sequence of an update: one update on a CPU takes minutes, and a user
/// should see it move.
#[derive(Clone, Default)]
pub struct ProgressHook(Option<std::sync::Arc<dyn Fn(UpdateProgress) + Send + Sync>>);

impl ProgressHook {
    /// A hook that calls `f`.
    pub fn new(f: impl Fn(UpdateProgress) + Send + Sync + 'static) -> Self {
        Self(Some(std::sync::Arc::new(f)))
    }
    fn report(&self, p: UpdateProgress) {
        if let Some(f) = &self.0 {
            f(p)
        }
    }
}

impl std::fmt::Debug for ProgressHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ProgressHook(set)"
        } else {
            "ProgressHook(none)"
        })
    }
}

/// Model, adapters, optimizer, RNG and counters of a run.
#[derive(Debug)]
pub struct Trainer {
    /// The run's config.
    pub cfg: TrainConfig,
    /// Model and adapters.
    pub policy: Policy,
    /// The optimizer and its moments.
    pub opt: AdamW,
    /// The RNG of batch draws and rollout seeds (checkpoints save its position).
    pub rng: ChaCha8Rng,
    /// Steps, stage and RNG position, as checkpoints save them.
    pub state: TrainState,
    /// Where checkpoints go.
    pub run_dir: PathBuf,
    /// Told after each sequence of an update.
    pub progress: ProgressHook,
    /// Largest activation graph a sequence may keep whole (one forward and one backward);
    /// longer sequences are checkpointed at block boundaries (one more forward, memory of one
    /// block). See [`sequence_backward`].
    pub max_graph_bytes: usize,
}

impl Trainer {
    /// A fresh run: adapters on `model` from the config's seed.
    pub fn new(
        cfg: TrainConfig,
        config_text: String,
        model: Llama,
        run_dir: &Path,
    ) -> Result<Self> {
        cfg.validate()?;
        let policy = Policy::new(model, cfg.lora.clone(), cfg.seed.wrapping_add(1))?;
        let opt = AdamW::new(cfg.optim.clone(), &policy.params)?;
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(2));
        let (rng_seed, rng_stream, rng_word_pos) = TrainState::capture_rng(&rng);
        let state = TrainState {
            global_step: 0,
            stage: 0,
            stage_step: 0,
            adam_t: 0,
            rng_seed,
            rng_stream,
            rng_word_pos,
            config: config_text,
        };
        Ok(Trainer {
            cfg,
            policy,
            opt,
            rng,
            state,
            run_dir: run_dir.to_path_buf(),
            progress: ProgressHook::default(),
            max_graph_bytes: DEFAULT_MAX_GRAPH_BYTES,
        })
    }

    /// Continue from the run's latest checkpoint; `false` when there is none.
    pub fn resume(&mut self) -> Result<bool> {
        let Some(dir) = checkpoint::latest(&self.run_dir)? else {
            return Ok(false);
        };
        let state = checkpoint::restore(&dir, &self.policy, &mut self.opt)?;
        if state.stage > self.cfg.stages.len() {
            return Err(Error::file(
                &dir,
                format!(
                    "stage {} but the config has {} stages",
                    state.stage,
                    self.cfg.stages.len()
                ),
            ));
        }
        self.rng = state.rng()?;
        self.state = state;
        // A config whose current stage has since been shortened: that stage is done.
        while self.state.stage < self.cfg.stages.len()
            && self.state.stage_step >= self.cfg.stages[self.state.stage].steps
        {
            self.state.stage += 1;
            self.state.stage_step = 0;
        }
        Ok(true)
    }

    /// Saves a checkpoint now (adapters, optimizer, state); returns its directory.
    pub fn checkpoint(&mut self) -> Result<PathBuf> {
        let (s, st, w) = TrainState::capture_rng(&self.rng);
        self.state.rng_seed = s;
        self.state.rng_stream = st;
        self.state.rng_word_pos = w;
        self.state.adam_t = self.opt.t;
        checkpoint::save(&self.run_dir, &self.policy, &self.opt, &self.state)
    }

    /// Count a finished update; checkpoint when due.
    pub fn finish_step(&mut self) -> Result<()> {
        self.state.global_step += 1;
        self.state.stage_step += 1;
        let stage_done = self.state.stage_step >= self.cfg.stages[self.state.stage].steps;
        if stage_done {
            self.state.stage += 1;
            self.state.stage_step = 0;
        }
        if stage_done
            || self
                .state
                .global_step
                .is_multiple_of(self.cfg.checkpoint_every as u64)
        {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// One supervised update on `batch`: mean cross-entropy over all trained tokens.
    pub fn sft_update(&mut self, batch: &[Sequence], lr: f64) -> Result<UpdateStats> {
        let t0 = Instant::now();
        let norm: usize = batch.iter().map(Sequence::num_targets).sum();
        if norm == 0 {
            return Err(Error::Batch("SFT batch without trained tokens".into()));
        }
        let mut acc = GradAccum::new();
        let mut stats = UpdateStats {
            trained_tokens: norm,
            ..Default::default()
        };
        let total = batch.iter().filter(|s| s.num_targets() > 0).count();
        for (done, s) in batch.iter().filter(|s| s.num_targets() > 0).enumerate() {
            self.progress.report(UpdateProgress {
                done,
                total,
                tokens: stats.tokens,
            });
            stats.loss += sequence_backward(
                &self.policy.model,
                s,
                &self.policy.params,
                &mut acc,
                self.max_graph_bytes,
                |logp| sft_loss(logp, norm),
            )?;
            stats.tokens += s.targets().last().map_or(0, |&j| j + 1);
        }
        stats.grad_norm = self.opt.step(&self.policy.params, &acc, lr)?;
        stats.seconds = t0.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// GRPO updates (`grpo.updates_per_batch` of them) on rollouts with their advantages. Old
    /// log-probs come from this same f32 forward before the first update; reference log-probs
    /// from the same forward with the adapters off.
    pub fn grpo_update(&mut self, rollouts: &[Rollout], lr: f64) -> Result<UpdateStats> {
        let t0 = Instant::now();
        let rollouts: Vec<&Rollout> = rollouts
            .iter()
            .filter(|r| r.seq.num_targets() > 0)
            .collect();
        let norm: usize = rollouts.iter().map(|r| r.seq.num_targets()).sum();
        if norm == 0 {
            return Err(Error::Batch("GRPO batch without trained tokens".into()));
        }
        let cfg = self.cfg.grpo.clone();
        let mut old: Vec<Option<Vec<f32>>> = Vec::with_capacity(rollouts.len());
        let mut reference = Vec::with_capacity(rollouts.len());
        let mut tokens = 0usize;
        // With one update per batch the old policy is the current one: its log-probabilities are
        // the update's own (detached), so the separate forward is skipped.
        let old_is_current = cfg.updates_per_batch == 1;
        for r in &rollouts {
            let len = r.seq.targets().last().map_or(0, |&j| j + 1);
            if old_is_current {
                old.push(None);
            } else {
                tokens += len;
                old.push(Some(token_logprobs_detached(&self.policy.model, &r.seq)?));
            }
            reference.push(if cfg.beta > 0.0 {
                tokens += len;
                Some(
                    self.policy
                        .with_reference(|m| token_logprobs_detached(m, &r.seq))?,
                )
            } else {
                None
            });
        }
        let mut stats = UpdateStats {
            trained_tokens: norm,
            ..Default::default()
        };
        for _ in 0..cfg.updates_per_batch {
            let mut acc = GradAccum::new();
            let mut loss_sum = 0.0;
            let mut terms = GrpoTerms::default();
            for (i, r) in rollouts.iter().enumerate() {
                self.progress.report(UpdateProgress {
                    done: i,
                    total: rollouts.len(),
                    tokens,
                });
                // A rollout scored at its group's mean has no advantage: without a KL term its
                // loss is a constant (candle drops the graph of a product with 0), so there is
                // nothing to backpropagate. Its tokens still count in the normalization.
                if r.advantage == 0.0 && cfg.beta == 0.0 {
                    continue;
                }
                let mut t = GrpoTerms::default();
                loss_sum += sequence_backward(
                    &self.policy.model,
                    &r.seq,
                    &self.policy.params,
                    &mut acc,
                    self.max_graph_bytes,
                    |logp| {
                        let current;
                        let old_i = match &old[i] {
                            Some(o) => o,
                            None => {
                                current = logp.to_vec1::<f32>()?;
                                &current
                            }
                        };
                        let (loss, terms) = grpo_loss(
                            logp,
                            old_i,
                            reference[i].as_deref(),
                            r.advantage,
                            norm,
                            &cfg,
                        )?;
                        t = terms;
                        Ok(loss)
                    },
                )?;
                terms.clipped += t.clipped;
                terms.kl_sum += t.kl_sum;
                tokens += r.seq.targets().last().map_or(0, |&j| j + 1);
            }
            stats.grad_norm = self.opt.step(&self.policy.params, &acc, lr)?;
            // Statistics of the last update.
            stats.loss = loss_sum;
            stats.kl = terms.kl_sum / norm as f64;
            stats.clip_fraction = terms.clipped as f64 / norm as f64;
        }
        stats.tokens = tokens;
        stats.seconds = t0.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// Run (or continue) SFT stage `stage` on `examples`, `batch` sequences drawn per step with
    /// the trainer's RNG; `on_step` sees each update's statistics.
    pub fn run_sft_stage(
        &mut self,
        stage: usize,
        examples: &[Sequence],
        mut on_step: impl FnMut(&Trainer, &UpdateStats) -> Result<()>,
    ) -> Result<()> {
        let sc = self.cfg.stages[stage].clone();
        if sc.kind != StageKind::Sft {
            return Err(Error::Config(format!("stage {stage} is not an sft stage")));
        }
        if examples.is_empty() {
            return Err(Error::Data(format!(
                "stage {stage} ({}): no training sequences",
                sc.name
            )));
        }
        while self.state.stage == stage {
            let k = sc.batch.min(examples.len());
            let idx = rand::seq::index::sample(&mut self.rng, examples.len(), k);
            let batch: Vec<Sequence> = idx.iter().map(|i| examples[i].clone()).collect();
            let stats = self.sft_update(&batch, sc.lr)?;
            self.finish_step()?;
            on_step(self, &stats)?;
        }
        Ok(())
    }
}
