//! Adapters in the layout of Hugging Face PEFT (`adapter_config.json` and
//! `adapter_model.safetensors` with keys `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`),
//! which vLLM and transformers load, and merged weights (`W + (alpha/r) B A`) as safetensors with
//! the Hugging Face names of the base model.

use crate::error::{Error, Result};
use crate::lora::{ALL_TARGETS, LoraConfig, Policy};
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use thinkfl_candle::{Llama, LoraDelta};

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// The fields of PEFT's `adapter_config.json` that we write and read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    pub peft_type: String,
    pub task_type: String,
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    pub target_modules: Vec<String>,
    #[serde(default = "AdapterConfig::default_bias")]
    pub bias: String,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub inference_mode: bool,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
}

impl AdapterConfig {
    fn default_bias() -> String {
        "none".into()
    }
    pub fn from_lora(l: &LoraConfig, base: Option<String>) -> Self {
        AdapterConfig {
            peft_type: "LORA".into(),
            task_type: "CAUSAL_LM".into(),
            r: l.rank,
            lora_alpha: l.alpha,
            lora_dropout: 0.0,
            target_modules: l.targets.clone(),
            bias: "none".into(),
            base_model_name_or_path: base,
            fan_in_fan_out: false,
            inference_mode: true,
            use_rslora: false,
            modules_to_save: None,
        }
    }
    /// The scale of the update.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }
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
    let cfg = AdapterConfig::from_lora(&policy.lora, base_model);
    let json = serde_json::to_vec_pretty(&cfg).map_err(|e| Error::Other(e.to_string()))?;
    write_atomic(&dir.join(CONFIG_FILE), &json)?;
    let tensors: HashMap<String, Tensor> = policy
        .params
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    save_safetensors(&tensors, &dir.join(WEIGHTS_FILE))
}

/// Read `adapter_config.json` of a PEFT directory.
pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig> {
    let p = dir.join(CONFIG_FILE);
    let s = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let cfg: AdapterConfig = serde_json::from_str(&s)
        .map_err(|e| Error::file(&p, format!("line {}, column {}: {e}", e.line(), e.column())))?;
    if cfg.peft_type != "LORA" {
        return Err(Error::file(
            &p,
            format!(
                "peft_type {:?}: only LORA adapters are supported",
                cfg.peft_type
            ),
        ));
    }
    if cfg.fan_in_fan_out {
        return Err(Error::file(&p, "fan_in_fan_out adapters are not supported"));
    }
    Ok(cfg)
}

/// Load a PEFT LoRA adapter directory onto `model` (replacing any adapters it had) and return
/// its config and the adapter `Var`s by name. This is how `localize`/`eval` run a trained model:
/// `let mut m = thinkfl_candle::load(path, &opts)?; thinkfl_train::peft::apply_adapter(&mut m.model, dir)?;`
/// then `CandleChatModel::from_loaded(m, EngineConfig::default())`.
pub fn apply_adapter(model: &mut Llama, dir: &Path) -> Result<(AdapterConfig, Vec<(String, Var)>)> {
    let cfg = read_adapter_config(dir)?;
    let wpath = dir.join(WEIGHTS_FILE);
    let mut tensors = candle_core::safetensors::load(&wpath, model.device())
        .map_err(|e| Error::file(&wpath, e.to_string()))?;
    let scale = cfg.scale();
    let mut out = Vec::new();
    for (i, blk) in model.layers.iter_mut().enumerate() {
        for (name, lin) in blk.projections_mut() {
            let base = format!("base_model.model.model.layers.{i}.{name}");
            let (ka, kb) = (
                format!("{base}.lora_A.weight"),
                format!("{base}.lora_B.weight"),
            );
            let (a, b) = match (tensors.remove(&ka), tensors.remove(&kb)) {
                (Some(a), Some(b)) => (a, b),
                (None, None) => {
                    lin.lora = None;
                    continue;
                }
                _ => {
                    return Err(Error::file(
                        &wpath,
                        format!("{base} has only one of lora_A and lora_B"),
                    ));
                }
            };
            let (a, b) = (
                a.to_dtype(candle_core::DType::F32)?,
                b.to_dtype(candle_core::DType::F32)?,
            );
            if a.dims() != [cfg.r, lin.in_features()] || b.dims() != [lin.out_features(), cfg.r] {
                return Err(Error::file(
                    &wpath,
                    format!(
                        "{base}: lora_A {:?}, lora_B {:?} do not fit a [{}, {}] projection with r = {}",
                        a.dims(),
                        b.dims(),
                        lin.out_features(),
                        lin.in_features(),
                        cfg.r
                    ),
                ));
            }
            let (a, b) = (Var::from_tensor(&a)?, Var::from_tensor(&b)?);
            out.push((ka, a.clone()));
            out.push((kb, b.clone()));
            lin.lora = Some(LoraDelta {
                a,
                b,
                scale,
                enabled: true,
            });
        }
    }
    if let Some(k) = tensors.keys().next() {
        return Err(Error::file(
            &wpath,
            format!(
                "tensor {k} names no projection of this model ({} layers)",
                model.layers.len()
            ),
        ));
    }
    if out.is_empty() {
        return Err(Error::file(&wpath, "no LoRA tensors"));
    }
    Ok((cfg, out))
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
/// safetensors file (f32) next to a `config.json`.
pub fn save_merged(model: &Llama, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut out: HashMap<String, Tensor> = HashMap::new();
    out.insert(
        "model.embed_tokens.weight".into(),
        model.embed_tokens.clone(),
    );
    out.insert("model.norm.weight".into(), model.norm.clone());
    let mut blocks = model.layers.clone();
    for (i, blk) in blocks.iter_mut().enumerate() {
        let p = format!("model.layers.{i}");
        out.insert(
            format!("{p}.input_layernorm.weight"),
            blk.input_layernorm.clone(),
        );
        out.insert(
            format!("{p}.post_attention_layernorm.weight"),
            blk.post_attention_layernorm.clone(),
        );
        for (name, lin) in blk.projections_mut() {
            let w = lin.weight.clone().ok_or_else(|| {
                Error::Other(format!("{p}.{name} has no f32 weight; load with keep_f32"))
            })?;
            let w = match &lin.lora {
                Some(l) => (w + (l.b.as_tensor().matmul(l.a.as_tensor())? * l.scale)?)?,
                None => w,
            };
            out.insert(format!("{p}.{name}.weight"), w);
            if let Some(b) = &lin.bias {
                out.insert(format!("{p}.{name}.bias"), b.clone());
            }
        }
    }
    if !model.config.tie_word_embeddings {
        let w = model
            .lm_head
            .weight
            .clone()
            .ok_or_else(|| Error::Other("lm_head has no f32 weight".into()))?;
        out.insert("lm_head.weight".into(), w);
    }
    let mut cfg = serde_json::to_value(&model.config).map_err(|e| Error::Other(e.to_string()))?;
    cfg["model_type"] = "llama".into();
    cfg["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
    cfg["torch_dtype"] = "float32".into();
    write_atomic(
        &dir.join("config.json"),
        &serde_json::to_vec_pretty(&cfg).map_err(|e| Error::Other(e.to_string()))?,
    )?;
    save_safetensors(&out, &dir.join("model.safetensors"))
}
