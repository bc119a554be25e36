//! Chat messages and tool calls exchanged with a language model.

use serde::{Deserialize, Serialize};

/// Who wrote a [`Message`]; serialized in lowercase, as chat templates and OpenAI-style APIs
/// spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The instructions that open a conversation.
    System,
    /// The question, and anything else the caller says.
    User,
    /// The model's turn: reasoning and tool calls.
    Assistant,
    /// A tool's answer to a call of the assistant.
    Tool,
}

impl Role {
    /// The lowercase name a chat template expects (`"assistant"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// A tool call as a model writes it: `{"name": ..., "arguments": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The tool's name (`search_traces`, `print_results`...).
    pub name: String,
    /// Always a JSON value here; parsers turn string-encoded arguments into objects.
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// One turn of a conversation with a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote the turn.
    pub role: Role,
    /// The text of the turn; for a text backend, tool calls are inside it.
    pub content: String,
    /// Structured tool calls of an assistant message (OpenAI-style backends); text backends
    /// keep them inside `content`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the tool it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            name: None,
        }
    }
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    /// An assistant message without structured tool calls.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
    /// A tool message answering a call of tool `name`.
    pub fn tool(name: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::new(Role::Tool, content)
        }
    }
}
