//! Language models as thinkfl sees them: the [`ChatModel`] trait that the local candle models and
//! OpenAI-compatible servers implement, sampling parameters, and the parsing of tool calls out of
//! model text.

#![warn(missing_docs)]

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
    /// The backend failed: a local model's error, or a server's answer.
    #[error("model backend: {source}")]
    Backend {
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A request the backend cannot send or serve (its settings, its body).
    #[error("request: {0}")]
    Request(String),
    /// A prompt that fills the model's context.
    #[error("prompt of {prompt} tokens leaves no room in a context of {context}")]
    ContextOverflow {
        /// Tokens of the prompt.
        prompt: usize,
        /// Tokens the model's context holds.
        context: usize,
    },
    /// Reading or writing a file or socket.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A sampling parameter no sampler can follow.
    #[error("sampling parameter {field} = {value}: {expected}")]
    InvalidParams {
        /// The parameter, as `SamplingParams` names it.
        field: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
}

impl Error {
    /// A backend failure from its cause (an error, or a message).
    pub fn backend(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Backend {
            source: source.into(),
        }
    }
}

/// What the backends return.
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
    /// `max_tokens` of [`SamplingParams::default`].
    pub const DEFAULT_MAX_TOKENS: usize = 256;

    /// Checks what a sampler relies on: a finite temperature of at least 0, `top_p` in (0, 1],
    /// at least one new token. Backends call it before they sample, so that a NaN or an empty
    /// nucleus is an error here instead of a panic or a silent greedy choice there.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, value: String, expected| {
            Err(Error::InvalidParams {
                field,
                value,
                expected,
            })
        };
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad(
                "temperature",
                self.temperature.to_string(),
                "a finite number >= 0 (0 is greedy)",
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", self.top_p.to_string(), "in (0, 1]");
        }
        if self.max_tokens == 0 {
            return bad("max_tokens", "0".into(), "at least 1");
        }
        Ok(())
    }

    /// Greedy decoding (temperature 0, no nucleus) of at most `max_tokens` tokens.
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
    /// The conversation so far, system prompt first.
    pub messages: Vec<Message>,
    /// OpenAI function schemas (`{"type":"function","function":{...}}`) of the tools the model
    /// may call. Text backends render them into the prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<serde_json::Value>,
    /// How to sample the completion.
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
    /// The completion's text.
    pub text: String,
    /// Tool calls the backend returned in structured form (OpenAI `tool_calls`); text backends
    /// leave this empty and the caller parses `text` with [`parse::parse_tool_calls`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Why generation ended.
    pub stop: StopReason,
    /// Tokens of the prompt as the backend counted them.
    pub prompt_tokens: usize,
    /// Prompt tokens the backend served from its cache of earlier prompts (the local prefix
    /// cache; OpenAI's `usage.prompt_tokens_details.cached_tokens`), 0 where it does not say.
    #[serde(default)]
    pub cached_prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Log-probability of each generated token under the sampling distribution, where the
    /// backend has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<f32>>,
    /// The generated token ids, where the backend has them (local models; training needs them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ids: Option<Vec<u32>>,
}

impl ChatResponse {
    /// A finished turn of text alone, without token counts, log-probabilities or ids: what a
    /// scripted policy or a reply replayed from elsewhere (an RL engine's) gives the actor.
    pub fn from_text(text: impl Into<String>) -> Self {
        ChatResponse {
            text: text.into(),
            tool_calls: Vec::new(),
            stop: StopReason::EndOfTurn,
            prompt_tokens: 0,
            cached_prompt_tokens: 0,
            completion_tokens: 0,
            logprobs: None,
            token_ids: None,
        }
    }
}

/// A chat model. Implementations are shared across threads; a backend that needs mutable state
/// (a KV cache) keeps it behind its own lock.
pub trait ChatModel: Send + Sync {
    /// A short name for reports (`smollm2-135m`, `openai:qwen2.5-3b`).
    fn name(&self) -> &str;

    /// One completion of `request`.
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

#[cfg(test)]
mod params_tests {
    use super::*;

    fn field_of(p: SamplingParams) -> &'static str {
        match p.validate() {
            Err(Error::InvalidParams { field, .. }) => field,
            other => panic!("expected InvalidParams, got {other:?}"),
        }
    }

    #[test]
    fn validate_names_the_bad_parameter() {
        assert!(SamplingParams::default().validate().is_ok());
        let sampled = SamplingParams {
            temperature: 0.7,
            top_p: 0.9,
            ..SamplingParams::default()
        };
        assert!(sampled.validate().is_ok());
        for t in [f32::NAN, f32::INFINITY, -0.5] {
            let p = SamplingParams {
                temperature: t,
                ..SamplingParams::default()
            };
            assert_eq!(field_of(p), "temperature", "{t}");
        }
        for top_p in [0.0, -1.0, 1.5, f32::NAN] {
            let p = SamplingParams {
                top_p,
                ..SamplingParams::default()
            };
            assert_eq!(field_of(p), "top_p", "{top_p}");
        }
        assert_eq!(field_of(SamplingParams::greedy(0)), "max_tokens");
    }
}
