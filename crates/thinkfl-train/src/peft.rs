//! Adapters in the layout of Hugging Face PEFT (`adapter_config.json` and
//! `adapter_model.safetensors` with keys `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`),
//! which vLLM and transformers load, and merged weights (`W + (alpha/r) B A`) as safetensors with
//! the Hugging Face names of the base model.

use crate::error::{Error, Result};
use crate::lora::{ALL_TARGETS, LoraConfig, Policy};
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::Path;
use thinkfl_candle::Llama;

pub use thinkfl_candle::adapter::{
    AdapterConfig, CONFIG_FILE, WEIGHTS_FILE, apply_adapter, read_adapter_config,
};

/// The PEFT config of a policy's adapters.
pub fn adapter_config(l: &LoraConfig, base: Option<String>) -> AdapterConfig {
    AdapterConfig::lora(l.rank, l.alpha, l.targets.clone(), base)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    readable(path)
}

/// Temporary files are created owner-only; exported files are meant to be shared.
pub(crate) fn readable(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// Write tensors to a safetensors file atomically (temporary file, then rename).
pub fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .suffix(".safetensors")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    candle_core::safetensors::save(tensors, tmp.path())
        .map_err(|e| Error::file(path, e.to_string()))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    readable(path)
}

/// Write the policy's adapter as a PEFT directory.
pub fn save_adapter(policy: &Policy, dir: &Path, base_model: Option<String>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let cfg = adapter_config(&policy.lora, base_model);
    let json = serde_json::to_vec_pretty(&cfg)?;
    write_atomic(&dir.join(CONFIG_FILE), &json)?;
    let tensors: HashMap<String, Tensor> = policy
        .params
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    save_safetensors(&tensors, &dir.join(WEIGHTS_FILE))
}

/// Load a PEFT adapter as a trainable [`Policy`] (resuming training from an exported adapter).
pub fn policy_from_adapter(mut model: Llama, dir: &Path) -> Result<Policy> {
    let (cfg, params) = apply_adapter(&mut model, dir)?;
    let lora = LoraConfig {
        rank: cfg.r,
        alpha: cfg.lora_alpha,
        targets: cfg
            .target_modules
            .iter()
            .filter(|t| ALL_TARGETS.contains(&t.as_str()))
            .cloned()
            .collect(),
    };
    Ok(Policy {
        model,
        params,
        lora,
    })
}

/// All weights of `model` with its adapters folded in, by Hugging Face name, written as one
/// safetensors file (f32) next to a `config.json` (the model's own exporter, [`Llama::save_hf`]).
pub fn save_merged(model: &Llama, dir: &Path) -> Result<()> {
    model.save_hf(dir, "llama")?;
    readable(&dir.join("config.json"))?;
    readable(&dir.join("model.safetensors"))
}
