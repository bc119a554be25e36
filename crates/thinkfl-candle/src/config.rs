//! Model configuration, with the field names of Hugging Face `config.json` for the llama and
//! qwen2 families, built either from that file or from GGUF metadata (`{arch}.block_count`,
//! `{arch}.embedding_length`, ... as written by llama.cpp's `convert_hf_to_gguf.py`).

use crate::error::{Error, Result};
use candle_core::quantized::gguf_file;
use serde::{Deserialize, Serialize};

/// Which forward a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Llama and its descendants (SmolLM2): no projection biases.
    Llama,
    /// Qwen2 (Qwen2.5): biases on the q, k, v projections.
    Qwen2,
}

impl Architecture {
    /// From a GGUF `general.architecture` (`llama`, `qwen2`) or a `config.json`
    /// `architectures` entry (`LlamaForCausalLM`, `Qwen2ForCausalLM`).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "llama" | "LlamaForCausalLM" => Ok(Architecture::Llama),
            "qwen2" | "Qwen2ForCausalLM" => Ok(Architecture::Qwen2),
            other => Err(Error::Config(format!(
                "unsupported architecture `{other}` (supported: llama, qwen2)"
            ))),
        }
    }
}

/// The configuration of a llama-family decoder. Field names are those of `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Width of the residual stream (the embedding size); GGUF `embedding_length`.
    pub hidden_size: usize,
    /// Inner width of each MLP (gate and up projections); GGUF `feed_forward_length`.
    pub intermediate_size: usize,
    /// Decoder blocks; GGUF `block_count`.
    pub num_hidden_layers: usize,
    /// Query heads; `hidden_size / num_attention_heads` is the head dimension. GGUF
    /// `attention.head_count`.
    pub num_attention_heads: usize,
    /// Grouped-query attention: heads of keys and values (defaults to `num_attention_heads`).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Epsilon added to the mean square in every RMSNorm.
    #[serde(default = "LlamaConfig::default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// Base of the rotary position embedding's frequencies.
    #[serde(default = "LlamaConfig::default_rope_theta")]
    pub rope_theta: f64,
    /// Rows of the embedding and of the output head.
    pub vocab_size: usize,
    /// Longest context the model was trained for: the rotary tables cover it, and a prompt
    /// that reaches it is refused.
    #[serde(default = "LlamaConfig::default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    /// The output head reuses the embedding matrix (no `lm_head.weight`); from GGUF, true when
    /// the file has no `output.weight`.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Biases on the q, k, v projections (qwen2 has them, llama does not).
    #[serde(default)]
    pub attention_bias: bool,
    /// Beginning-of-sequence token id, when the config names one.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token id: a number or a list of them, as `config.json` writes it (see
    /// [`LlamaConfig::eos_ids`]).
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
}

impl LlamaConfig {
    /// Default [`LlamaConfig::rms_norm_eps`] when the config omits it.
    pub const DEFAULT_RMS_NORM_EPS: f64 = 1e-5;
    /// Default [`LlamaConfig::rope_theta`] when the config omits it (Hugging Face's llama
    /// default).
    pub const DEFAULT_ROPE_THETA: f64 = 10_000.0;
    /// Default [`LlamaConfig::max_position_embeddings`] when the config omits it.
    pub const DEFAULT_MAX_POSITION_EMBEDDINGS: usize = 4096;
    fn default_rms_norm_eps() -> f64 {
        Self::DEFAULT_RMS_NORM_EPS
    }
    fn default_rope_theta() -> f64 {
        Self::DEFAULT_ROPE_THETA
    }
    fn default_max_position_embeddings() -> usize {
        Self::DEFAULT_MAX_POSITION_EMBEDDINGS
    }

    /// Key and value heads: `num_key_value_heads`, else one per query head.
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Checks that the shapes fit together: positive sizes, heads dividing the width, an even
    /// head dimension (rotary embeddings rotate pairs), query heads a multiple of key-value heads.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.hidden_size == 0 || self.num_attention_heads == 0 || self.num_hidden_layers == 0 {
            return bad(
                "hidden_size, num_attention_heads and num_hidden_layers must be positive".into(),
            );
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "head dimension {} must be even for rotary embeddings",
                self.head_dim()
            ));
        }
        let kv = self.num_kv_heads();
        if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {kv}",
                self.num_attention_heads
            ));
        }
        if self.vocab_size == 0 || self.intermediate_size == 0 {
            return bad("vocab_size and intermediate_size must be positive".into());
        }
        Ok(())
    }

    /// From GGUF metadata of a `llama` or `qwen2` file.
    pub fn from_gguf(ct: &gguf_file::Content) -> Result<(Architecture, Self)> {
        let get = |k: &str| ct.metadata.get(k);
        let arch_s = get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .ok_or_else(|| Error::Config("GGUF metadata has no general.architecture".into()))?
            .clone();
        let arch = Architecture::parse(&arch_s)?;
        let key = |k: &str| format!("{arch_s}.{k}");
        let req_u = |k: &str| -> Result<usize> {
            let full = key(k);
            get(&full)
                .and_then(|v| v.to_u64().ok().or_else(|| v.to_u32().ok().map(u64::from)))
                .map(|v| v as usize)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "GGUF metadata field {full} is missing or not an integer"
                    ))
                })
        };
        let opt_f = |k: &str| get(&key(k)).and_then(|v| v.to_f32().ok()).map(f64::from);
        let hidden_size = req_u("embedding_length")?;
        let vocab_size = match req_u("vocab_size") {
            Ok(v) => v,
            Err(_) => get("tokenizer.ggml.tokens")
                .and_then(|v| v.to_vec().ok())
                .map(|v| v.len())
                .ok_or_else(|| {
                    Error::Config("GGUF has neither vocab_size nor tokenizer.ggml.tokens".into())
                })?,
        };
        let id = |k: &str| get(k).and_then(|v| v.to_u32().ok());
        let cfg = LlamaConfig {
            hidden_size,
            intermediate_size: req_u("feed_forward_length")?,
            num_hidden_layers: req_u("block_count")?,
            num_attention_heads: req_u("attention.head_count")?,
            num_key_value_heads: req_u("attention.head_count_kv").ok(),
            rms_norm_eps: opt_f("attention.layer_norm_rms_epsilon")
                .unwrap_or(Self::DEFAULT_RMS_NORM_EPS),
            rope_theta: opt_f("rope.freq_base").unwrap_or(Self::DEFAULT_ROPE_THETA),
            vocab_size,
            max_position_embeddings: req_u("context_length")
                .unwrap_or(Self::DEFAULT_MAX_POSITION_EMBEDDINGS),
            tie_word_embeddings: !ct.tensor_infos.contains_key("output.weight"),
            attention_bias: ct.tensor_infos.contains_key("blk.0.attn_q.bias"),
            bos_token_id: id("tokenizer.ggml.bos_token_id"),
            eos_token_id: id("tokenizer.ggml.eos_token_id").map(serde_json::Value::from),
        };
        cfg.validate()?;
        Ok((arch, cfg))
    }

    /// End-of-sequence ids named by the config (`eos_token_id` may be a number or a list).
    pub fn eos_ids(&self) -> Vec<u32> {
        match &self.eos_token_id {
            Some(serde_json::Value::Number(n)) => {
                n.as_u64().map(|v| vec![v as u32]).unwrap_or_default()
            }
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as u32)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A small random-model configuration for tests.
    pub fn tiny(vocab_size: usize) -> Self {
        LlamaConfig {
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            vocab_size,
            max_position_embeddings: 256,
            tie_word_embeddings: false,
            attention_bias: false,
            bos_token_id: None,
            eos_token_id: None,
        }
    }
}
