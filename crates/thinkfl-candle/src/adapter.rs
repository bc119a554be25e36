//! LoRA adapters in the layout of Hugging Face PEFT (`adapter_config.json` and
//! `adapter_model.safetensors` with keys `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`),
//! which vLLM and transformers load: reading them and applying them to a loaded model. Inference
//! needs this and nothing of the trainer; `thinkfl-train` writes adapters in the same layout.

use crate::error::{Error, Result};
use crate::llama::{Llama, LoraDelta};
use candle_core::{DType, Var};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The adapter's configuration in an adapter directory (PEFT's file name).
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The adapter's weights in an adapter directory (PEFT's file name).
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// The fields of PEFT's `adapter_config.json` that we write and read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    /// `LORA`, the only adapter type [`read_adapter_config`] accepts.
    pub peft_type: String,
    /// `CAUSAL_LM`.
    pub task_type: String,
    /// Rank of the update `B A`.
    pub r: usize,
    /// Scale numerator: the update is `lora_alpha / r * B A` (or `/ sqrt(r)` with
    /// `use_rslora`).
    pub lora_alpha: f64,
    /// Dropout on the adapter's input while training; inference ignores it.
    #[serde(default)]
    pub lora_dropout: f64,
    /// Projections adapted (`q_proj`, ..., `down_proj`).
    pub target_modules: Vec<String>,
    /// Which biases were trained (`none`, `all`, `lora_only`); bias weights are not read.
    #[serde(default = "AdapterConfig::default_bias")]
    pub bias: String,
    /// The base model the adapter was trained on, as its trainer named it.
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// Whether the base weights are stored `[in, out]` (GPT-2's Conv1D); such adapters are
    /// refused (llama's weights are `[out, in]`).
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// Whether PEFT loads the adapter frozen.
    #[serde(default)]
    pub inference_mode: bool,
    /// Rank-stabilized LoRA: scale `lora_alpha / sqrt(r)` instead of `lora_alpha / r`.
    #[serde(default)]
    pub use_rslora: bool,
    /// Modules saved whole beside the adapter (fully trained layers).
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
}

impl AdapterConfig {
    fn default_bias() -> String {
        "none".into()
    }
    /// A LoRA adapter of rank `r` and scale numerator `alpha` on `targets`, as PEFT writes it.
    pub fn lora(r: usize, alpha: f64, targets: Vec<String>, base: Option<String>) -> Self {
        AdapterConfig {
            peft_type: "LORA".into(),
            task_type: "CAUSAL_LM".into(),
            r,
            lora_alpha: alpha,
            lora_dropout: 0.0,
            target_modules: targets,
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

/// Read `adapter_config.json` of a PEFT directory.
pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig> {
    let p = dir.join(CONFIG_FILE);
    let s = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let cfg: AdapterConfig = serde_json::from_str(&s).map_err(|e| {
        Error::adapter(&p, format!("line {}, column {}: {e}", e.line(), e.column()))
    })?;
    if cfg.peft_type != "LORA" {
        return Err(Error::adapter(
            &p,
            format!(
                "peft_type {:?}: only LORA adapters are supported",
                cfg.peft_type
            ),
        ));
    }
    if cfg.fan_in_fan_out {
        return Err(Error::adapter(
            &p,
            "fan_in_fan_out adapters are not supported",
        ));
    }
    Ok(cfg)
}

/// Load a PEFT LoRA adapter directory onto `model` (replacing any adapters it had) and return
/// its config and the adapter `Var`s by name. This is how `localize`/`eval` run a trained model:
/// `let mut m = thinkfl_candle::load(path, &opts)?; thinkfl_candle::adapter::apply_adapter(&mut m.model, dir)?;`
/// then `CandleChatModel::from_loaded(m, EngineConfig::default())`. The trainer starts from the
/// same `Var`s to continue training an exported adapter.
pub fn apply_adapter(model: &mut Llama, dir: &Path) -> Result<(AdapterConfig, Vec<(String, Var)>)> {
    let cfg = read_adapter_config(dir)?;
    let wpath = dir.join(WEIGHTS_FILE);
    let mut tensors = candle_core::safetensors::load(&wpath, model.device())
        .map_err(|e| Error::adapter(&wpath, e.to_string()))?;
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
                    return Err(Error::adapter(
                        &wpath,
                        format!("{base} has only one of lora_A and lora_B"),
                    ));
                }
            };
            let (a, b) = (a.to_dtype(DType::F32)?, b.to_dtype(DType::F32)?);
            if a.dims() != [cfg.r, lin.in_features()] || b.dims() != [lin.out_features(), cfg.r] {
                return Err(Error::adapter(
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
        return Err(Error::adapter(
            &wpath,
            format!(
                "tensor {k} names no projection of this model ({} layers)",
                model.layers.len()
            ),
        ));
    }
    if out.is_empty() {
        return Err(Error::adapter(&wpath, "no LoRA tensors"));
    }
    Ok((cfg, out))
}
