//! The model's weights in the Hugging Face layout, LoRA deltas merged in.

use super::{Linear, Llama};
use crate::error::{Error, Result};
use candle_core::Tensor;

impl Llama {
    /// The f32 weights by Hugging Face name, with LoRA deltas merged in where adapters are
    /// enabled (the "merged weights" export). Projections held only quantized are an error.
    pub fn hf_tensors(&self) -> Result<std::collections::HashMap<String, Tensor>> {
        let mut out = std::collections::HashMap::new();
        out.insert(
            "model.embed_tokens.weight".to_string(),
            self.embed_tokens.detach(),
        );
        out.insert("model.norm.weight".to_string(), self.norm.detach());
        let merged = |name: &str, lin: &Linear| -> Result<Tensor> {
            let w = lin
                .weight
                .as_ref()
                .ok_or_else(|| Error::Unsupported(format!("{name} has no f32 weight")))?;
            Ok(match &lin.lora {
                Some(l) if l.enabled => {
                    (w + (l.b.as_tensor().matmul(l.a.as_tensor())? * l.scale)?)?.detach()
                }
                _ => w.detach(),
            })
        };
        for (i, blk) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            out.insert(
                format!("{p}.input_layernorm.weight"),
                blk.input_layernorm.detach(),
            );
            out.insert(
                format!("{p}.post_attention_layernorm.weight"),
                blk.post_attention_layernorm.detach(),
            );
            let mut blk = blk.clone();
            for (name, lin) in blk.projections_mut() {
                out.insert(format!("{p}.{name}.weight"), merged(name, lin)?);
                if let Some(b) = &lin.bias {
                    out.insert(format!("{p}.{name}.bias"), b.detach());
                }
            }
        }
        if !self.config.tie_word_embeddings {
            out.insert(
                "lm_head.weight".to_string(),
                merged("lm_head", &self.lm_head)?,
            );
        }
        Ok(out)
    }

    /// Write `config.json` and `model.safetensors` (Hugging Face layout, f32, enabled adapters
    /// folded in) into `dir`. Each file is written under a temporary name and renamed, so a
    /// failure leaves no half-written or empty file where a loader would read it.
    pub fn save_hf(&self, dir: &std::path::Path, model_type: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut cfg = serde_json::to_value(&self.config)?;
        cfg["model_type"] = serde_json::Value::from(model_type);
        if model_type == "llama" {
            cfg["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
        }
        cfg["torch_dtype"] = "float32".into();
        let text = serde_json::to_vec_pretty(&cfg)?;
        let tensors = self.hf_tensors()?;
        let tmp = |name: &str| dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let (cfg_tmp, st_tmp) = (tmp("config.json"), tmp("model.safetensors"));
        let written = std::fs::write(&cfg_tmp, &text)
            .map_err(|e| Error::io(&cfg_tmp, e))
            .and_then(|()| candle_core::safetensors::save(&tensors, &st_tmp).map_err(Error::from))
            .and_then(|()| {
                let st = dir.join("model.safetensors");
                std::fs::rename(&st_tmp, &st).map_err(|e| Error::io(&st, e))
            })
            .and_then(|()| {
                let c = dir.join("config.json");
                std::fs::rename(&cfg_tmp, &c).map_err(|e| Error::io(&c, e))
            });
        if written.is_err() {
            let _ = std::fs::remove_file(&cfg_tmp);
            let _ = std::fs::remove_file(&st_tmp);
        }
        written
    }
}
