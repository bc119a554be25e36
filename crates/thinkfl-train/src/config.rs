//! The training config: one TOML file with the LoRA, optimizer and GRPO settings and the list of
//! stages (DESIGN.md section 7): stage 0 supervised priming on rejection-sampled expert
//! trajectories, then GRPO stages 1 (recall + format, hot sampling), 2 (recall + diversity,
//! questions duplicated) and 3 (the full multi-factor score).

use crate::error::{Error, Result};
use crate::lora::LoraConfig;
use crate::loss::GrpoConfig;
use crate::optim::OptimConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a stage optimizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    /// Cross-entropy on the expert's tokens.
    Sft,
    /// GRPO with the grader's stage reward.
    Grpo,
}

/// Which assistant tokens the loss is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossTokens {
    /// Every token of the assistant's messages.
    #[default]
    All,
    /// The tokens the turn's grammar did not force.
    Free,
}

// The reward lives in the grader, so that the environment server grades exactly as training
// does without depending on the model stack.
pub use thinkfl_grader::{Reward, RewardName};

/// One stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// The stage's name, in logs and reports.
    pub name: String,
    /// SFT or GRPO.
    pub kind: StageKind,
    /// What a GRPO stage rewards: the grader's stage score (1, 2 or 3) or `"mrr"`; GRPO only.
    #[serde(default)]
    pub reward: Option<Reward>,
    /// Optimizer updates (SFT) or rollout batches (GRPO).
    pub steps: usize,
    /// Sequences per update (SFT) or questions per batch (GRPO).
    #[serde(default = "StageConfig::default_batch")]
    pub batch: usize,
    /// Rollouts per question (`G`).
    #[serde(default = "StageConfig::default_group")]
    pub group: usize,
    /// Groups of `G` per question in one batch (stage 2 duplicates questions so that the
    /// diversity cache sees the same question several times).
    #[serde(default = "StageConfig::default_duplicate")]
    pub duplicate: usize,
    /// Learning rate of the stage's updates.
    pub lr: f64,
    /// Sampling temperature of rollouts.
    #[serde(default = "StageConfig::default_temperature")]
    pub temperature: f32,
    /// Most tool-call rounds of an episode (`D_max`).
    #[serde(default = "StageConfig::default_d_max")]
    pub d_max: usize,
    /// SFT with the scripted expert as oracle: its final ranking puts each training case's
    /// truth first where the episode showed it (hindsight relabelling,
    /// `ExpertPolicy::with_hindsight`), so that stage 0 teaches the decisions the evidence
    /// supports rather than the expert's misses. Off by default (plain rejection sampling).
    #[serde(default)]
    pub hindsight: bool,
}

impl StageConfig {
    fn default_batch() -> usize {
        1
    }
    fn default_group() -> usize {
        4
    }
    fn default_duplicate() -> usize {
        1
    }
    fn default_temperature() -> f32 {
        1.0
    }
    fn default_d_max() -> usize {
        6
    }

    /// Checks the stage's fields (`i` is its index, for the message).
    pub fn validate(&self, i: usize) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("stage {i} ({}): {m}", self.name)));
        if self.steps == 0 || self.batch == 0 {
            return bad("steps and batch must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr must be positive".into());
        }
        if self.d_max == 0 {
            return bad("d_max must be at least 1".into());
        }
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature must be >= 0".into());
        }
        match self.kind {
            StageKind::Sft if self.reward.is_some() => bad("an sft stage has no reward".into()),
            StageKind::Grpo if self.hindsight => {
                bad("hindsight is for an sft stage's oracle; a grpo stage has none".into())
            }
            StageKind::Grpo => {
                if !matches!(
                    self.reward,
                    Some(Reward::Stage(1..=3) | Reward::Named(RewardName::Mrr))
                ) {
                    return bad("a grpo stage needs reward = 1, 2, 3 or \"mrr\"".into());
                }
                if self.group < 2 {
                    return bad("group (G) must be at least 2: advantages compare rollouts".into());
                }
                if self.duplicate == 0 {
                    return bad("duplicate must be at least 1".into());
                }
                Ok(())
            }
            StageKind::Sft => Ok(()),
        }
    }
}

/// Settings of the episodes that training runs (the rest of the actor's settings keep their
/// defaults; a stage sets temperature and `D_max`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpisodeConfig {
    /// Rows per tool result (short contexts for small models).
    #[serde(default = "EpisodeConfig::default_max_rows")]
    pub max_rows: usize,
    /// Bytes at most of one tool result.
    #[serde(default = "EpisodeConfig::default_max_tool_output_bytes")]
    pub max_tool_output_bytes: usize,
    /// Tokens at most of one assistant turn.
    #[serde(default = "EpisodeConfig::default_max_tokens_per_turn")]
    pub max_tokens_per_turn: usize,
    /// Nucleus sampling of rollouts; 1 keeps every token.
    #[serde(default = "EpisodeConfig::default_top_p")]
    pub top_p: f32,
    /// Constrained decoding of rollouts: `calls` (the default, as at inference: train as the
    /// model will be used), `final` or `off` (the model must learn the call format by itself;
    /// the format reward F then has something to score).
    #[serde(default = "EpisodeConfig::default_constrain")]
    pub constrain: String,
}

impl EpisodeConfig {
    fn default_max_rows() -> usize {
        8
    }
    fn default_max_tool_output_bytes() -> usize {
        1024
    }
    fn default_max_tokens_per_turn() -> usize {
        160
    }
    fn default_top_p() -> f32 {
        1.0
    }
    fn default_constrain() -> String {
        "calls".into()
    }
}

impl Default for EpisodeConfig {
    fn default() -> Self {
        EpisodeConfig {
            max_rows: Self::default_max_rows(),
            max_tool_output_bytes: Self::default_max_tool_output_bytes(),
            max_tokens_per_turn: Self::default_max_tokens_per_turn(),
            top_p: Self::default_top_p(),
            constrain: Self::default_constrain(),
        }
    }
}

/// The whole training config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed of every random choice: split, adapter init, batches, rollouts.
    #[serde(default)]
    pub seed: u64,
    /// Share of fault cases held out of training (for evaluation).
    #[serde(default = "TrainConfig::default_held_out")]
    pub held_out_fraction: f64,
    /// Anomalous-trace queries used per training case.
    #[serde(default = "TrainConfig::default_queries_per_case")]
    pub queries_per_case: usize,
    /// Longest tokenized trajectory trained on; longer ones are cut (their tail is dropped).
    #[serde(default = "TrainConfig::default_max_seq_tokens")]
    pub max_seq_tokens: usize,
    /// Checkpoint every N optimizer steps (and at the end of each stage).
    #[serde(default = "TrainConfig::default_checkpoint_every")]
    pub checkpoint_every: usize,
    /// Which assistant tokens the loss sees: `all` of them, or only those the turn's grammar
    /// left `free` (the model's choices: tool, span, pod, item count, reasons), so that the
    /// bytes constrained decoding forces anyway do not dilute the decisions (see
    /// [`crate::free`]).
    #[serde(default)]
    pub loss_tokens: LossTokens,
    /// The adapters.
    #[serde(default)]
    pub lora: LoraConfig,
    /// AdamW.
    #[serde(default)]
    pub optim: OptimConfig,
    /// The GRPO objective.
    #[serde(default)]
    pub grpo: GrpoConfig,
    /// The episodes training runs.
    #[serde(default)]
    pub episode: EpisodeConfig,
    /// The stages, in order (`[[stage]]` tables).
    #[serde(rename = "stage")]
    pub stages: Vec<StageConfig>,
}

impl TrainConfig {
    fn default_held_out() -> f64 {
        0.3
    }
    fn default_queries_per_case() -> usize {
        2
    }
    fn default_max_seq_tokens() -> usize {
        2048
    }
    fn default_checkpoint_every() -> usize {
        10
    }

    /// Checks every section and stage.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.held_out_fraction) {
            return Err(Error::Config("held_out_fraction must be in [0, 1)".into()));
        }
        if self.queries_per_case == 0 || self.max_seq_tokens < 16 || self.checkpoint_every == 0 {
            return Err(Error::Config(
                "queries_per_case and checkpoint_every must be >= 1, max_seq_tokens >= 16".into(),
            ));
        }
        if let Err(e) = self.episode.constrain.parse::<thinkfl_agent::Constrain>() {
            return Err(Error::Config(format!("[episode] {e}")));
        }
        if self.stages.is_empty() {
            return Err(Error::Config("no [[stage]]".into()));
        }
        self.lora.validate()?;
        self.optim.validate()?;
        self.grpo.validate()?;
        for (i, s) in self.stages.iter().enumerate() {
            s.validate(i)?;
        }
        Ok(())
    }

    /// Parse and validate TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let cfg: TrainConfig =
            toml::from_str(text).map_err(|e| Error::file(origin, e.to_string()))?;
        cfg.validate()
            .map_err(|e| Error::file(origin, e.to_string()))?;
        Ok(cfg)
    }

    /// Reads and checks the config at `path`; returns it with its text (kept in checkpoints).
    pub fn load(path: &Path) -> Result<(Self, String)> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Ok((Self::from_toml(&text, path)?, text))
    }
}

/// Split fault-case indices `0..n` into (train, held-out) by `seed`: a seeded shuffle, the first
/// `round(n * fraction)` held out (at least one when `n >= 2` and `fraction > 0`).
pub fn split_cases(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ SPLIT_SALT);
    idx.shuffle(&mut rng);
    let mut k = (n as f64 * fraction).round() as usize;
    if fraction > 0.0 && n >= 2 {
        k = k.clamp(1, n - 1);
    }
    let mut held: Vec<usize> = idx[..k].to_vec();
    let mut train: Vec<usize> = idx[k..].to_vec();
    held.sort_unstable();
    train.sort_unstable();
    (train, held)
}

/// A fixed salt so that the split differs from other uses of the same seed.
const SPLIT_SALT: u64 = 0x5EED_0F5B_1175_0001;
