//! Qwen2 / Qwen2.5 (Yang et al., "Qwen2 Technical Report", arXiv 2407.10671; Hugging Face
//! `modeling_qwen2.py`).
//!
//! The Qwen2 decoder is the llama decoder of [`crate::llama`] with biases on the q, k and v
//! projections (`attention_bias`, set for `model_type: qwen2`), a larger rotary base and usually
//! tied embeddings; GGUF files of qwen2 keep the Hugging Face row order of q and k (llama.cpp
//! applies its "neox" rotary kernel to them), so no row permutation is undone on load. The
//! forward is therefore shared; this module names the configuration differences in one place.

use crate::config::{Architecture, LlamaConfig};

/// Whether `cfg` describes a Qwen2-style decoder (q/k/v biases).
pub fn is_qwen2(arch: Architecture, cfg: &LlamaConfig) -> bool {
    arch == Architecture::Qwen2 && cfg.attention_bias
}
