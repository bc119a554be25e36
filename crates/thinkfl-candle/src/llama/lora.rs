//! LoRA adapters on the projections (Hu et al., "LoRA", arXiv 2106.09685), and full fine-tuning.

use super::{Llama, LoraDelta};
use crate::error::{Error, Result};
use candle_core::{DType, Tensor, Var};

impl Llama {
    /// Turn every f32 weight into a trainable `Var` (full fine-tuning); returns them by name.
    pub fn make_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        let mut out = Vec::new();
        let mut var = |name: String, t: &mut Tensor| -> Result<()> {
            let v = Var::from_tensor(t)?;
            *t = v.as_tensor().clone();
            out.push((name, v));
            Ok(())
        };
        var("model.embed_tokens.weight".into(), &mut self.embed_tokens)?;
        for (i, blk) in self.layers.iter_mut().enumerate() {
            var(
                format!("model.layers.{i}.input_layernorm.weight"),
                &mut blk.input_layernorm,
            )?;
            var(
                format!("model.layers.{i}.post_attention_layernorm.weight"),
                &mut blk.post_attention_layernorm,
            )?;
            for (name, lin) in blk.projections_mut() {
                let w = lin
                    .weight
                    .as_mut()
                    .ok_or_else(|| Error::Unsupported(format!("{name} has no f32 weight")))?;
                var(format!("model.layers.{i}.{name}.weight"), w)?;
                if let Some(b) = lin.bias.as_mut() {
                    var(format!("model.layers.{i}.{name}.bias"), b)?;
                }
                lin.quantized = None;
                // Stale once the Var is trained.
                lin.packed = None;
            }
        }
        var("model.norm.weight".into(), &mut self.norm)?;
        if !self.config.tie_word_embeddings {
            if let Some(w) = self.lm_head.weight.as_mut() {
                var("lm_head.weight".into(), w)?;
            }
        } else {
            // Tied: the head reads the same Var as the embedding.
            self.lm_head.weight = Some(self.embed_tokens.clone());
        }
        self.lm_head.quantized = None;
        self.lm_head.packed = None;
        Ok(out)
    }

    /// The projection suffixes LoRA adapters attach to (`targets` of [`Llama::add_lora`]), as
    /// Hugging Face and PEFT name them.
    pub const PROJECTIONS: [&'static str; 7] = [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ];

    /// Add LoRA adapters of `rank` to the projections whose names end with one of `targets`
    /// (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`, `down_proj`). `A` is
    /// Kaiming-uniform-like from `seed`, `B` is zero. Returns the adapter Vars by PEFT name
    /// (`...q_proj.lora_A.weight`).
    pub fn add_lora(
        &mut self,
        rank: usize,
        alpha: f64,
        targets: &[&str],
        seed: u64,
    ) -> Result<Vec<(String, Var)>> {
        use rand::{Rng, SeedableRng};
        if rank == 0 {
            return Err(Error::Options("LoRA rank must be positive".into()));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let device = self.device.clone();
        let mut out = Vec::new();
        for (i, blk) in self.layers.iter_mut().enumerate() {
            for (name, lin) in blk.projections_mut() {
                if !targets.iter().any(|t| name.ends_with(t)) {
                    continue;
                }
                let (o, n) = (lin.out_features(), lin.in_features());
                let bound = 1.0 / (n as f32).sqrt();
                let a: Vec<f32> = (0..rank * n)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                let a = Var::from_tensor(&Tensor::from_vec(a, (rank, n), &device)?)?;
                let b = Var::from_tensor(&Tensor::zeros((o, rank), DType::F32, &device)?)?;
                let base = format!("base_model.model.model.layers.{i}.{name}");
                out.push((format!("{base}.lora_A.weight"), a.clone()));
                out.push((format!("{base}.lora_B.weight"), b.clone()));
                lin.lora = Some(LoraDelta {
                    a,
                    b,
                    scale: alpha / rank as f64,
                    enabled: true,
                });
            }
        }
        Ok(out)
    }

    /// Switch every adapter on or off (off = the base model).
    pub fn set_lora_enabled(&mut self, enabled: bool) {
        for blk in &mut self.layers {
            for (_, lin) in blk.projections_mut() {
                if let Some(l) = lin.lora.as_mut() {
                    l.enabled = enabled;
                }
            }
        }
    }
}
