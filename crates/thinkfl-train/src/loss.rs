//! Losses: supervised cross-entropy on the assistant's tokens, and the GRPO objective
//! (Shao et al., "DeepSeekMath", arXiv 2402.03300) with the token-level normalization and
//! clip-higher of DAPO (Yu et al., arXiv 2503.14476) and the k3 KL estimator (Schulman,
//! "Approximating KL divergence", 2020).
//!
//! Sequences are processed one at a time and their gradients summed (the sum of per-sequence
//! losses normalized by the batch's token count equals the batch loss), which bounds memory by
//! the longest sequence instead of the batch.

use crate::error::{Error, Result};
use candle_core::{D, Tensor};
use serde::{Deserialize, Serialize};
use thinkfl_candle::{Llama, Mode};

/// One tokenized conversation: ids and, per token, whether the loss sees it (the model's own
/// tokens; prompts and tool outputs are masked out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Per token, whether the loss sees it.
    pub mask: Vec<bool>,
}

impl Sequence {
    /// Positions `j >= 1` whose token is trained (predicted from position `j - 1`).
    pub fn targets(&self) -> Vec<usize> {
        (1..self.ids.len()).filter(|&j| self.mask[j]).collect()
    }
    /// How many tokens are trained ([`Sequence::targets`]).
    pub fn num_targets(&self) -> usize {
        self.targets().len()
    }
    /// Keep at most `max` tokens (the tail is dropped).
    pub fn truncated(mut self, max: usize) -> Self {
        self.ids.truncate(max);
        self.mask.truncate(max);
        self
    }
}

/// Log-probabilities `[n]` of the target tokens of `seq` under `model` (f32, differentiable in
/// the adapters). Only the hidden states before a target go through the vocabulary projection,
/// and the forward stops at the last target.
///
/// This keeps the whole graph (memory grows with blocks x T^2); training uses
/// [`checkpointed_backward`] and [`token_logprobs_detached`], and tests check them against this.
pub fn token_logprobs(model: &Llama, seq: &Sequence) -> Result<Tensor> {
    let (targets, ids, positions) = inputs(model, seq)?;
    let ctx = model.layer_context(&positions, None)?;
    let mut x = model.embed_ids(&ids)?;
    for li in 0..model.layers.len() {
        x = model.forward_block(li, &x, &ctx, None, Mode::Train)?;
    }
    head_logprobs(model, &x, seq, &targets)
}

/// The targets of `seq` and its ids and positions `[1, t]` up to the last target.
fn inputs(model: &Llama, seq: &Sequence) -> Result<(Vec<usize>, Tensor, Tensor)> {
    if seq.ids.len() != seq.mask.len() {
        return Err(Error::Batch(format!(
            "sequence of {} ids with a mask of {}",
            seq.ids.len(),
            seq.mask.len()
        )));
    }
    let targets = seq.targets();
    let Some(&last) = targets.last() else {
        return Err(Error::Batch("sequence without trained tokens".into()));
    };
    let dev = model.device();
    let t = last + 1;
    let ids = Tensor::new(&seq.ids[..t], dev)?.unsqueeze(0)?;
    let positions = Tensor::new((0..t as u32).collect::<Vec<_>>(), dev)?.unsqueeze(0)?;
    Ok((targets, ids, positions))
}

/// Final norm, vocabulary projection of the rows before each target, and the targets'
/// log-probabilities. `x`: the last block's output `[1, t, hidden]`.
fn head_logprobs(model: &Llama, x: &Tensor, seq: &Sequence, targets: &[usize]) -> Result<Tensor> {
    let dev = model.device();
    let hidden = model.final_norm(x, Mode::Train)?;
    let rows: Vec<u32> = targets.iter().map(|&j| (j - 1) as u32).collect();
    let hidden = hidden
        .squeeze(0)?
        .index_select(&Tensor::new(rows, dev)?, 0)?; // [n, h]
    let logits = model.logits(&hidden, Mode::Train)?; // [n, vocab]
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let tgt: Vec<u32> = targets.iter().map(|&j| seq.ids[j]).collect();
    let n = tgt.len();
    Ok(logp
        .gather(&Tensor::from_vec(tgt, (n, 1), dev)?, 1)?
        .squeeze(1)?)
}

/// The input of every block and the last block's output, each detached: a forward whose memory
/// is one block's activations, not all of them (attention alone is `heads x T^2` floats a block;
/// at T = 2,048 the whole graph of SmolLM2-135M needed over 20 GB).
fn block_inputs(
    model: &Llama,
    ids: &Tensor,
    ctx: &thinkfl_candle::LayerContext,
) -> Result<Vec<Tensor>> {
    let mut xs = Vec::with_capacity(model.layers.len() + 1);
    xs.push(model.embed_ids(ids)?.detach());
    for li in 0..model.layers.len() {
        let x = model.forward_block(li, &xs[li], ctx, None, Mode::Train)?;
        xs.push(x.detach());
    }
    Ok(xs)
}

/// The targets' log-probabilities without a graph (old and reference policies of GRPO).
pub fn token_logprobs_detached(model: &Llama, seq: &Sequence) -> Result<Vec<f32>> {
    let (targets, ids, positions) = inputs(model, seq)?;
    let ctx = model.layer_context(&positions, None)?;
    let xs = block_inputs(model, &ids, &ctx)?;
    let last = xs.last().expect("embedding plus one entry per block");
    Ok(head_logprobs(model, last, seq, &targets)?.to_vec1::<f32>()?)
}

/// Gradients of `loss_of(log-probabilities of seq)` added to `acc`, by gradient checkpointing
/// at block boundaries (Chen et al., "Training Deep Nets with Sublinear Memory Cost", arXiv
/// 1604.06174): one forward keeps only the block inputs, then, from the last block down, each
/// block is recomputed with its graph and backpropagated from the gradient of its output. Costs
/// one extra forward; peak memory is one block's graph. Returns the loss.
pub fn checkpointed_backward(
    model: &Llama,
    seq: &Sequence,
    params: &[(String, candle_core::Var)],
    acc: &mut crate::optim::GradAccum,
    loss_of: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<f64> {
    let (targets, ids, positions) = inputs(model, seq)?;
    let ctx = model.layer_context(&positions, None)?;
    let xs = block_inputs(model, &ids, &ctx)?;
    let n = model.layers.len();
    let top = candle_core::Var::from_tensor(&xs[n])?;
    let loss = loss_of(&head_logprobs(model, top.as_tensor(), seq, &targets)?)?;
    let value = loss.to_scalar::<f32>()? as f64;
    let store = loss.backward()?;
    acc.add(&store, params)?;
    let mut grad = store
        .get(top.as_tensor())
        .ok_or_else(|| Error::Batch("the loss does not depend on the hidden states".into()))?
        .detach();
    drop(store);
    for li in (0..n).rev() {
        let input = candle_core::Var::from_tensor(&xs[li])?;
        let out = model.forward_block(li, input.as_tensor(), &ctx, None, Mode::Train)?;
        // d(sum(out * g))/dθ = g^T dout/dθ: the chain rule through this block.
        let store = (out * &grad)?.sum_all()?.backward()?;
        acc.add(&store, params)?;
        grad = match store.get(input.as_tensor()) {
            Some(g) => g.detach(),
            None => break,
        };
    }
    Ok(value)
}

/// Activations one block keeps for a sequence of `t` tokens when its graph is kept on the
/// training kernels, in bytes (an upper estimate: about ten hidden-wide, four key/value-wide and
/// four intermediate-wide f32 rows a token). `None` when the model runs candle's operations,
/// whose attention keeps `heads x t x t` per block.
pub fn block_graph_bytes(model: &Llama, t: usize) -> Option<usize> {
    let c = &model.config;
    let kv = c.num_kv_heads() * c.head_dim();
    let per_token = 4 * (10 * c.hidden_size + 4 * kv + 4 * c.intermediate_size);
    model.fused_train().then(|| t * per_token)
}

/// Default of [`Trainer::max_graph_bytes`](crate::trainer::Trainer::max_graph_bytes): 1.5 GiB,
/// the whole graph of SmolLM2-135M up to about T = 1,300 tokens; past that the first blocks are
/// checkpointed.
pub const DEFAULT_MAX_GRAPH_BYTES: usize = 3 << 29;

/// Gradients of `loss_of(log-probabilities of seq)` added to `acc`; returns the loss.
///
/// The last blocks keep their graphs from the forward, as many as [`block_graph_bytes`] fits in
/// `max_graph_bytes` (all of them for short sequences: one forward and one backward); the blocks
/// below them are checkpointed as in [`checkpointed_backward`] (recomputed one at a time during
/// the backward: one more forward over them, memory of one block). With `max_graph_bytes = 0`
/// (or on candle's operations) this is [`checkpointed_backward`]. Same loss and gradients either
/// way, up to summation order.
pub fn sequence_backward(
    model: &Llama,
    seq: &Sequence,
    params: &[(String, candle_core::Var)],
    acc: &mut crate::optim::GradAccum,
    max_graph_bytes: usize,
    loss_of: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<f64> {
    let (targets, ids, positions) = inputs(model, seq)?;
    let n = model.layers.len();
    let kept = match block_graph_bytes(model, ids.dim(1)?) {
        Some(b) => (max_graph_bytes / b.max(1)).min(n),
        None => 0,
    };
    let first_kept = n - kept;
    let ctx = model.layer_context(&positions, None)?;
    // Inputs of the checkpointed blocks, detached, then the kept blocks with their graph.
    let mut xs = Vec::with_capacity(first_kept + 1);
    xs.push(model.embed_ids(&ids)?.detach());
    for li in 0..first_kept {
        let x = model.forward_block(li, &xs[li], &ctx, None, Mode::Train)?;
        xs.push(x.detach());
    }
    let cut = candle_core::Var::from_tensor(&xs[first_kept])?;
    let mut x = cut.as_tensor().clone();
    for li in first_kept..n {
        x = model.forward_block(li, &x, &ctx, None, Mode::Train)?;
    }
    let loss = loss_of(&head_logprobs(model, &x, seq, &targets)?)?;
    drop(x);
    let value = loss.to_scalar::<f32>()? as f64;
    let store = loss.backward()?;
    drop(loss);
    acc.add(&store, params)?;
    let Some(g) = store.get(cut.as_tensor()) else {
        return Ok(value);
    };
    let mut grad = g.detach();
    drop(store);
    for li in (0..first_kept).rev() {
        let input = candle_core::Var::from_tensor(&xs[li])?;
        let out = model.forward_block(li, input.as_tensor(), &ctx, None, Mode::Train)?;
        let store = (out * &grad)?.sum_all()?.backward()?;
        acc.add(&store, params)?;
        grad = match store.get(input.as_tensor()) {
            Some(g) => g.detach(),
            None => break,
        };
    }
    Ok(value)
}

/// Supervised loss of one sequence's log-probabilities: `-sum(logp) / norm` (`norm` = trained
/// tokens of the whole batch).
pub fn sft_loss(logp: &Tensor, norm: usize) -> Result<Tensor> {
    Ok((logp.sum_all()?.neg()? / norm.max(1) as f64)?)
}

/// Settings of the GRPO objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoConfig {
    /// Lower clip of the ratio: `1 - eps_low`.
    #[serde(default = "GrpoConfig::default_eps_low")]
    pub eps_low: f64,
    /// Upper clip of the ratio: `1 + eps_high` (clip-higher keeps rare tokens explorable).
    #[serde(default = "GrpoConfig::default_eps_high")]
    pub eps_high: f64,
    /// Weight of the k3 KL term to the reference policy; 0 switches it off (and skips the
    /// reference forward).
    #[serde(default = "GrpoConfig::default_beta")]
    pub beta: f64,
    /// Added to the group's standard deviation.
    #[serde(default = "GrpoConfig::default_adv_eps")]
    pub adv_eps: f64,
    /// Optimizer updates per batch of rollouts (`mu`); old log-probs are computed once before the
    /// first, so the ratio and its clip matter from the second on.
    #[serde(default = "GrpoConfig::default_updates_per_batch")]
    pub updates_per_batch: usize,
    /// Most batches of questions a step draws to fill its `batch` groups with ones whose
    /// rollouts disagree (DAPO's dynamic sampling). A group whose rollouts all score the same
    /// has no advantage and teaches nothing; once the policy is primed most groups are like
    /// that, and a rollout costs a fraction of an update. 1 draws once.
    #[serde(default = "GrpoConfig::default_max_draws")]
    pub max_draws: usize,
}

impl GrpoConfig {
    /// Default [`GrpoConfig::eps_low`].
    pub const DEFAULT_EPS_LOW: f64 = 0.2;
    /// Default [`GrpoConfig::eps_high`] (clip-higher: above `eps_low`).
    pub const DEFAULT_EPS_HIGH: f64 = 0.28;
    /// Default [`GrpoConfig::beta`].
    pub const DEFAULT_BETA: f64 = 0.001;
    /// Default [`GrpoConfig::adv_eps`].
    pub const DEFAULT_ADV_EPS: f64 = 1e-6;
    /// Default [`GrpoConfig::updates_per_batch`].
    pub const DEFAULT_UPDATES_PER_BATCH: usize = 1;
    /// Default [`GrpoConfig::max_draws`].
    pub const DEFAULT_MAX_DRAWS: usize = 4;
    fn default_eps_low() -> f64 {
        Self::DEFAULT_EPS_LOW
    }
    fn default_eps_high() -> f64 {
        Self::DEFAULT_EPS_HIGH
    }
    fn default_beta() -> f64 {
        Self::DEFAULT_BETA
    }
    fn default_adv_eps() -> f64 {
        Self::DEFAULT_ADV_EPS
    }
    fn default_updates_per_batch() -> usize {
        Self::DEFAULT_UPDATES_PER_BATCH
    }
    fn default_max_draws() -> usize {
        Self::DEFAULT_MAX_DRAWS
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        if !((0.0..1.0).contains(&self.eps_low)
            && self.eps_high >= 0.0
            && self.eps_high.is_finite())
        {
            return Err(Error::Config(
                "grpo.eps_low must be in [0, 1) and grpo.eps_high >= 0".into(),
            ));
        }
        if !(self.beta >= 0.0 && self.beta.is_finite()) {
            return Err(Error::Config("grpo.beta must be >= 0".into()));
        }
        if self.adv_eps.is_nan() || self.adv_eps <= 0.0 {
            return Err(Error::Config("grpo.adv_eps must be > 0".into()));
        }
        if self.updates_per_batch == 0 || self.max_draws == 0 {
            return Err(Error::Config(
                "grpo.updates_per_batch and grpo.max_draws must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl Default for GrpoConfig {
    fn default() -> Self {
        GrpoConfig {
            eps_low: Self::DEFAULT_EPS_LOW,
            eps_high: Self::DEFAULT_EPS_HIGH,
            beta: Self::DEFAULT_BETA,
            adv_eps: Self::DEFAULT_ADV_EPS,
            updates_per_batch: Self::DEFAULT_UPDATES_PER_BATCH,
            max_draws: Self::DEFAULT_MAX_DRAWS,
        }
    }
}

/// Group-normalized advantages `(r_i - mean) / (std + eps)` (population std, as in the paper's
/// formula); `None` when every reward of the group is equal (the group teaches nothing).
pub fn group_advantages(rewards: &[f64], eps: f64) -> Option<Vec<f64>> {
    if rewards.len() < 2 {
        return None;
    }
    let n = rewards.len() as f64;
    let mean = rewards.iter().sum::<f64>() / n;
    if rewards.iter().all(|r| (r - rewards[0]).abs() < 1e-12) {
        return None;
    }
    let std = (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    Some(rewards.iter().map(|r| (r - mean) / (std + eps)).collect())
}

/// Per-sequence statistics of the GRPO term.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GrpoTerms {
    /// Tokens whose objective took the clipped branch.
    pub clipped: usize,
    /// Sum over tokens of the k3 estimate.
    pub kl_sum: f64,
    /// Sum over tokens of the surrogate objective (before the minus sign).
    pub objective_sum: f64,
}

/// The GRPO loss of one sequence, normalized by `norm` (the trained tokens of the batch):
/// `-(1/norm) sum_t [min(rho_t A, clip(rho_t, 1-eps_low, 1+eps_high) A) - beta k3_t]`
/// with `rho_t = exp(logp_t - old_t)` and `k3_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1`.
///
/// The branch of the `min` is chosen on detached values: on the clipped branch the term is a
/// constant (no gradient), on the other it is `rho_t A`; value and gradient are those of the
/// `min`/`clip` formula (PyTorch's `torch.min` and `torch.clamp` give the same).
pub fn grpo_loss(
    logp: &Tensor,
    old: &[f32],
    reference: Option<&[f32]>,
    advantage: f64,
    norm: usize,
    cfg: &GrpoConfig,
) -> Result<(Tensor, GrpoTerms)> {
    let n = logp.dim(0)?;
    if old.len() != n || reference.is_some_and(|r| r.len() != n) {
        return Err(Error::Batch(format!(
            "{n} log-probs, {} old, reference {:?}",
            old.len(),
            reference.map(<[f32]>::len)
        )));
    }
    let dev = logp.device();
    let cur: Vec<f32> = logp.to_vec1()?;
    let (lo, hi) = (1.0 - cfg.eps_low, 1.0 + cfg.eps_high);
    let mut keep = vec![0f32; n];
    let mut constant = 0.0f64;
    let mut terms = GrpoTerms::default();
    for t in 0..n {
        let rho = ((cur[t] - old[t]) as f64).exp();
        let unclipped = rho * advantage;
        let clipped = rho.clamp(lo, hi) * advantage;
        if clipped < unclipped {
            constant += clipped;
            terms.clipped += 1;
            terms.objective_sum += clipped;
        } else {
            keep[t] = 1.0;
            terms.objective_sum += unclipped;
        }
    }
    let old_t = Tensor::new(old, dev)?;
    let rho = (logp - &old_t)?.exp()?;
    let keep_t = Tensor::new(keep, dev)?;
    let surrogate = ((rho * &keep_t)?.sum_all()? * advantage)?;
    let surrogate = (surrogate + constant)?;
    let mut loss = surrogate.neg()?;
    if let (Some(r), true) = (reference, cfg.beta > 0.0) {
        let d = (Tensor::new(r, dev)? - logp)?; // ref - logp
        let k3 = ((d.exp()? - &d)? - 1.0)?;
        terms.kl_sum = k3.sum_all()?.to_scalar::<f32>()? as f64;
        loss = (loss + (k3.sum_all()? * cfg.beta)?)?;
    }
    Ok(((loss / norm.max(1) as f64)?, terms))
}
