//! `--model` specs shared by the subcommands that run a localizer: `default` (SmolLM2-135M,
//! fetched on first use), a path to a GGUF file or Hugging Face directory, `expert` (the scripted
//! expert), or `openai:URL#MODEL` (any OpenAI-compatible server).

use anyhow::{Context, Result};
use std::sync::Arc;
use thinkfl_agent::expert::{ExpertConfig, ExpertPolicy};
use thinkfl_agent::{ActorConfig, PromptSet};
use thinkfl_llm::ChatModel;
use thinkfl_llm::openai::{OpenAiClient, OpenAiConfig};
use thinkfl_store::TelemetryStore;

/// Help text of `--model`.
pub const MODEL_HELP: &str =
    "default | expert | PATH (GGUF file or HF directory) | openai:URL#MODEL";

/// Builds the chat model named by `spec`. The expert needs the store it will be asked about.
pub fn build_model(spec: &str, store: &Arc<TelemetryStore>) -> Result<Arc<dyn ChatModel>> {
    if spec == "expert" {
        return Ok(Arc::new(ExpertPolicy::new(
            store.clone(),
            ExpertConfig::default(),
        )));
    }
    if spec.starts_with("openai:") {
        let cfg = OpenAiConfig::from_spec(spec)?;
        return Ok(Arc::new(OpenAiClient::new(cfg)?));
    }
    let path = thinkfl_candle::fetch::resolve_model(spec, true)?;
    let model = thinkfl_candle::CandleChatModel::load(&path)
        .with_context(|| format!("loading model {}", path.display()))?;
    Ok(Arc::new(model))
}

/// Actor settings from the common flags.
pub fn actor_config(
    prompts: &str,
    d_max: usize,
    temperature: f32,
    seed: u64,
) -> Result<ActorConfig> {
    let set: PromptSet = prompts.parse()?;
    let mut cfg = match set {
        PromptSet::ThinkFl => ActorConfig::thinkfl_compatible(),
        PromptSet::Ours => ActorConfig::default(),
    };
    cfg.d_max = d_max;
    cfg.temperature = temperature;
    cfg.seed = seed;
    cfg.validate()?;
    Ok(cfg)
}
