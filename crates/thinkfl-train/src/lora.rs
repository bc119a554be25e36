//! LoRA adapters on the project's llama forward (Hu et al., "LoRA", arXiv 2106.09685) and the
//! policy that training updates: the frozen base plus the adapter `Var`s. The base stays a plain
//! tensor (never a `Var`), so a backward pass reaches only the adapters; switching the adapters
//! off gives the reference policy of the KL term for free.

use crate::error::{Error, Result};
use candle_core::Var;
use serde::{Deserialize, Serialize};
use thinkfl_candle::Llama;

/// The projections LoRA can attach to, by their Hugging Face suffix.
pub const ALL_TARGETS: [&str; 7] = Llama::PROJECTIONS;

/// Settings of the adapters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r` of each update.
    #[serde(default = "LoraConfig::default_rank")]
    pub rank: usize,
    /// `alpha`; the update is scaled by `alpha / r`.
    #[serde(default = "LoraConfig::default_alpha")]
    pub alpha: f64,
    /// Projection suffixes to adapt (a subset of [`ALL_TARGETS`]).
    #[serde(default = "LoraConfig::default_targets")]
    pub targets: Vec<String>,
}

impl LoraConfig {
    /// Default [`LoraConfig::rank`].
    pub const DEFAULT_RANK: usize = 8;
    /// Default [`LoraConfig::alpha`]: an update scale `alpha / r` of 2 at the default rank.
    pub const DEFAULT_ALPHA: f64 = 16.0;
    fn default_rank() -> usize {
        Self::DEFAULT_RANK
    }
    fn default_alpha() -> f64 {
        Self::DEFAULT_ALPHA
    }
    fn default_targets() -> Vec<String> {
        ALL_TARGETS.iter().map(|s| s.to_string()).collect()
    }

    /// Checks rank, alpha and targets.
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(Error::Config("lora.rank must be at least 1".into()));
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(Error::Config("lora.alpha must be a positive number".into()));
        }
        if self.targets.is_empty() {
            return Err(Error::Config("lora.targets is empty".into()));
        }
        for t in &self.targets {
            if !ALL_TARGETS.contains(&t.as_str()) {
                return Err(Error::Config(format!(
                    "lora.targets: unknown module `{t}` (known: {})",
                    ALL_TARGETS.join(", ")
                )));
            }
        }
        Ok(())
    }
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            rank: Self::DEFAULT_RANK,
            alpha: Self::DEFAULT_ALPHA,
            targets: Self::default_targets(),
        }
    }
}

/// The model being trained and its trainable parameters.
#[derive(Debug)]
pub struct Policy {
    /// The model, adapters attached.
    pub model: Llama,
    /// Adapter parameters by PEFT name (`base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`),
    /// in a fixed order (layer, projection, A before B).
    pub params: Vec<(String, Var)>,
    /// The adapters' settings.
    pub lora: LoraConfig,
}

impl Policy {
    /// Attach fresh adapters (`A` random from `seed`, `B` zero: the identity) to `model`.
    pub fn new(mut model: Llama, lora: LoraConfig, seed: u64) -> Result<Self> {
        lora.validate()?;
        let targets: Vec<&str> = lora.targets.iter().map(String::as_str).collect();
        let params = model.add_lora(lora.rank, lora.alpha, &targets, seed)?;
        Ok(Policy {
            model,
            params,
            lora,
        })
    }

    /// Number of trainable scalars.
    pub fn num_trainable(&self) -> usize {
        self.params
            .iter()
            .map(|(_, v)| v.as_tensor().elem_count())
            .sum()
    }

    /// Run `f` on the reference policy (adapters off), then switch them back on.
    pub fn with_reference<T>(&mut self, f: impl FnOnce(&Llama) -> Result<T>) -> Result<T> {
        self.model.set_lora_enabled(false);
        let out = f(&self.model);
        self.model.set_lora_enabled(true);
        out
    }
}
