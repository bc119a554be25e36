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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCounts {
    pub prompt: u64,
    /// Of `prompt`, the tokens served from the backend's prefix cache: prompt tokens that cost
    /// compute are `prompt - cached`.
    #[serde(default)]
    pub cached: u64,
    pub completion: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub model_ms: f64,
    pub tool_ms: f64,
    pub total_ms: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// Which question (fault case index, query span) this episode answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_span: Option<String>,
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
    pub tokens: TokenCounts,
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
