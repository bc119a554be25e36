//! `--model` specs shared by the subcommands that run a localizer: `default` (SmolLM2-135M,
//! fetched on first use), a path to a GGUF file or Hugging Face directory, `expert` (the scripted
//! expert), or `openai:URL#MODEL` (any OpenAI-compatible server).

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::sync::Arc;
use thinkfl_agent::expert::{ExpertConfig, ExpertPolicy};
use thinkfl_agent::{ActorConfig, PromptSet};
use thinkfl_llm::ChatModel;
use thinkfl_llm::openai::{OpenAiClient, OpenAiConfig};
use thinkfl_store::TelemetryStore;

/// Help text of `--model`.
pub const MODEL_HELP: &str = "default | expert | PATH (GGUF file or HF directory) | openai:URL#MODEL (append #grammar to send the actor's grammars to a llama.cpp server as GBNF)";

/// Help text of `--adapter`.
pub const ADAPTER_HELP: &str = "A LoRA adapter directory (PEFT layout, as `thinkfl train` writes) for a local model; `none` for the base model. Default: with `--model default`, the adapter trained for it (models/thinkfl-smollm2-135m-lora)";

/// The adapter trained for the default model, committed with the sources (its README says how it
/// was made).
pub fn bundled_adapter() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/thinkfl-smollm2-135m-lora")
}

/// `--adapter` as given (`None`: not given) to the adapter to apply: `none` is the base model;
/// not given means the bundled adapter for `default` when the checkout has it.
pub fn resolve_adapter(spec: &str, adapter: Option<&Path>) -> Option<std::path::PathBuf> {
    match adapter {
        Some(p) if p == Path::new("none") => None,
        Some(p) => Some(p.to_path_buf()),
        None if spec == "default" && bundled_adapter().join("adapter_config.json").is_file() => {
            Some(bundled_adapter())
        }
        None => None,
    }
}

/// Builds the chat model named by `spec`, with a PEFT LoRA `adapter` (a directory with
/// `adapter_config.json` and `adapter_model.safetensors`, as `thinkfl train` exports) on local
/// models. The expert needs the store it will be asked about.
pub fn build_model(
    spec: &str,
    adapter: Option<&Path>,
    store: &Arc<TelemetryStore>,
) -> Result<Arc<dyn ChatModel>> {
    let adapter = resolve_adapter(spec, adapter);
    let adapter = adapter.as_deref();
    if adapter.is_some() && (spec == "expert" || spec.starts_with("openai:")) {
        bail!("--adapter applies to local models only (default or a model path), not {spec}");
    }
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
    let mut loaded = thinkfl_candle::load(&path, &thinkfl_candle::LoadOptions::inference())
        .with_context(|| format!("loading model {}", path.display()))?;
    if let Some(dir) = adapter {
        thinkfl_candle::adapter::apply_adapter(&mut loaded.model, dir)
            .with_context(|| format!("applying adapter {}", dir.display()))?;
        loaded.name = format!(
            "{}+{}",
            loaded.name,
            dir.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    let model = thinkfl_candle::CandleChatModel::from_loaded(
        loaded,
        thinkfl_candle::EngineConfig::default(),
    )?;
    Ok(Arc::new(model))
}

/// Help of the `--constrain` flag.
pub const CONSTRAIN_HELP: &str = "Decode the model's turns under a grammar of the admissible tool calls (local models): \
`calls` (every turn: spans seen and not yet queried, components of the data, a short final list), \
`final` (only the final print) or `off`";

/// Actor settings from the common flags.
pub fn actor_config(
    prompts: &str,
    d_max: usize,
    temperature: f32,
    seed: u64,
    constrain: &str,
) -> Result<ActorConfig> {
    let set: PromptSet = prompts.parse()?;
    let mut cfg = match set {
        PromptSet::ThinkFl => ActorConfig::thinkfl_compatible(),
        PromptSet::Ours => ActorConfig::default(),
    };
    cfg.d_max = d_max;
    cfg.temperature = temperature;
    cfg.seed = seed;
    cfg.constrain = constrain.parse()?;
    cfg.validate()?;
    Ok(cfg)
}
