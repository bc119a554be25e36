//! The record of one localization episode, which the grader scores and training learns from.

use crate::{Message, RootCause, ToolCall};
use serde::{Deserialize, Serialize};

/// One tool call of an episode and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The call as parsed; `None` when the model's text could not be parsed into a call at all.
    pub call: Option<ToolCall>,
    /// The raw text of the call as the model wrote it.
    pub raw: String,
    /// Whether the call named a known tool with valid arguments.
    pub valid: bool,
    /// The error text returned to the model, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Tokens spent by an episode, summed over its model calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCounts {
    /// Prompt tokens, summed over calls (a prompt is counted again at each round).
    pub prompt: u64,
    /// Of `prompt`, the tokens served from the backend's prefix cache: prompt tokens that cost
    /// compute are `prompt - cached`.
    #[serde(default)]
    pub cached: u64,
    /// Tokens the model generated.
    pub completion: u64,
}

/// Where an episode's time went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Time in model calls, summed.
    pub model_ms: f64,
    /// Time in tool calls, summed.
    pub tool_ms: f64,
    /// `model_ms + tool_ms` for an episode run alone; for an episode of a batch (`Actor` running
    /// several at once) the wall time of the whole batch, since model calls were shared.
    pub total_ms: f64,
}

/// The record of one localization episode: conversation, calls, path, answer and costs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// Which question (fault case index, query span) this episode answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<usize>,
    /// The span id of the question, when the question is a query span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_span: Option<String>,
    /// The conversation, system prompt first, tool answers included.
    pub messages: Vec<Message>,
    /// Every tool call in order, `print_results` included.
    pub calls: Vec<CallRecord>,
    /// The reasoning path: components the episode touched, in order of first appearance.
    pub path: Vec<String>,
    /// The final ranked list; `None` when the episode never printed a valid answer.
    pub prediction: Option<Vec<RootCause>>,
    /// Whether the final answer came from the forced print after `D_max` rounds.
    #[serde(default)]
    pub forced_final: bool,
    /// Tokens spent.
    pub tokens: TokenCounts,
    /// Time spent.
    pub timings: Timings,
}

impl Trajectory {
    /// The tool-call names in order, the key of the diversity cache.
    pub fn call_sequence(&self) -> Vec<String> {
        self.calls
            .iter()
            .filter_map(|c| c.call.as_ref().map(|c| c.name.clone()))
            .collect()
    }

    /// Appends `component` to the path unless it is already there.
    pub fn touch(&mut self, component: &str) {
        if !component.is_empty() && !self.path.iter().any(|p| p == component) {
            self.path.push(component.to_string());
        }
    }
}
