//! Language models as thinkfl sees them: the [`ChatModel`] trait that the local candle models and
//! OpenAI-compatible servers implement, sampling parameters, and the parsing of tool calls out of
//! model text.

pub mod grammar;
pub mod openai;
pub mod parse;

use serde::{Deserialize, Serialize};
pub use thinkfl_core::{Message, Role, ToolCall};

/// The longest prefix of `s` of at most `max_bytes` bytes that ends on a character boundary:
/// model text and server bodies are quoted in error messages and records, bounded.
pub fn prefix_at_most(s: &str, max_bytes: usize) -> &str {
    let mut end = s.len().min(max_bytes);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Errors of a model backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("model backend: {0}")]
    Backend(String),
    #[error("request: {0}")]
    Request(String),
    #[error("prompt of {prompt} tokens leaves no room in a context of {context}")]
    ContextOverflow { prompt: usize, context: usize },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// How to sample a completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// Nucleus sampling mass; 1 disables it.
    pub top_p: f32,
    /// Most new tokens to generate.
    pub max_tokens: usize,
    /// Generation stops after any of these strings (which are kept in the text).
    pub stop: Vec<String>,
    /// Seed of the sampler; with the same seed and prompt a local backend repeats itself.
    pub seed: u64,
    /// Constrains the completion to strings of this grammar (constrained decoding). Local
    /// backends enforce it token by token, and the grammar, not `stop`, ends the text;
    /// OpenAI-compatible backends send it where configured (`grammar_field`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<grammar::Grammar>,
}

impl SamplingParams {
    pub const DEFAULT_MAX_TOKENS: usize = 256;

    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            max_tokens,
            stop: Vec::new(),
            seed: 0,
            grammar: None,
        }
    }
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self::greedy(Self::DEFAULT_MAX_TOKENS)
    }
}

/// One chat completion request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    /// OpenAI function schemas (`{"type":"function","function":{...}}`) of the tools the model
    /// may call. Text backends render them into the prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<serde_json::Value>,
    pub params: SamplingParams,
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model emitted an end-of-turn token.
    EndOfTurn,
    /// One of the stop strings appeared.
    StopString(String),
    /// `max_tokens` was reached.
    Length,
}

/// One chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub text: String,
    /// Tool calls the backend returned in structured form (OpenAI `tool_calls`); text backends
    /// leave this empty and the caller parses `text` with [`parse::parse_tool_calls`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    pub stop: StopReason,
    pub prompt_tokens: usize,
    /// Prompt tokens the backend served from its cache of earlier prompts (the local prefix
    /// cache; OpenAI's `usage.prompt_tokens_details.cached_tokens`), 0 where it does not say.
    #[serde(default)]
    pub cached_prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Log-probability of each generated token under the sampling distribution, where the
    /// backend has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<f32>>,
    /// The generated token ids, where the backend has them (local models; training needs them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ids: Option<Vec<u32>>,
}

/// A chat model. Implementations are shared across threads; a backend that needs mutable state
/// (a KV cache) keeps it behind its own lock.
pub trait ChatModel: Send + Sync {
    /// A short name for reports (`smollm2-135m`, `openai:qwen2.5-3b`).
    fn name(&self) -> &str;

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse>;

    /// Several independent requests; backends that batch override this. The default runs them
    /// one after another, which is also the reference the batched paths are tested against.
    fn chat_batch(&self, requests: &[ChatRequest]) -> Result<Vec<ChatResponse>> {
        requests.iter().map(|r| self.chat(r)).collect()
    }
}

impl<T: ChatModel + ?Sized> ChatModel for std::sync::Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        (**self).chat(request)
    }
    fn chat_batch(&self, requests: &[ChatRequest]) -> Result<Vec<ChatResponse>> {
        (**self).chat_batch(requests)
    }
}
