//! `print_results(root_causes)`: the final answer, a ranked list of root causes. The tool only
//! validates and records; the episode ends when it is called. The components it names do not
//! join the reasoning path (the grader's hallucination score compares them with the path).

use super::more_rows;
use crate::env::ToolEnv;
use crate::tool::{DynTool, Tool, ToolError, ToolFailure, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use std::fmt::Write;
use thinkfl_core::RootCause;

/// The `print_results` tool: validates the final answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrintResults;

/// Most items accepted in one answer.
pub const MAX_ROOT_CAUSES: usize = 100;

// No doc comment: schemars would put it into the schema the model reads as a description,
// which the paper's schemas do not have.
#[allow(missing_docs)]
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrintResultsArgs {
    /// An array of potential root causes ordered by likelihood, most likely first.
    pub root_causes: Vec<RootCauseItem>,
}

// No doc comment: schemars would put it into the schema the model reads as a description,
// which the paper's schemas do not have.
#[allow(missing_docs)]
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RootCauseItem {
    /// The root cause node (e.g. node-1).
    #[serde(default)]
    pub node: Option<String>,
    /// The root cause service (e.g. recommendationservice).
    #[serde(default)]
    pub service: Option<String>,
    /// The root cause pod (e.g. recommendationservice-0).
    #[serde(default)]
    pub pod: Option<String>,
    /// The corresponding reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// Accepted and ignored: one published schema of the paper asks for it.
    #[serde(default)]
    #[schemars(skip)]
    pub timestamp: Option<serde_json::Value>,
}

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrintResultsError {
    #[error(
        "root_causes is empty; give at least one {{\"node\"|\"service\"|\"pod\": ...}} item, most likely first"
    )]
    /// No item.
    Empty,
    /// More than [`MAX_ROOT_CAUSES`] items.
    #[error("root_causes has {0} items; give at most {MAX_ROOT_CAUSES}")]
    TooMany(usize),
    #[error(
        "root_causes item {0} names no node, service or pod; each item needs at least one of them"
    )]
    /// An item (0-based index) that names no component.
    NoComponent(usize),
}

impl ToolFailure for PrintResultsError {}

/// The validated answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintedResults {
    /// The items, trimmed, empty fields dropped, in the order given.
    pub root_causes: Vec<RootCause>,
}

fn clean(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Validates an answer into root causes.
pub fn validate(args: PrintResultsArgs) -> Result<Vec<RootCause>, PrintResultsError> {
    if args.root_causes.is_empty() {
        return Err(PrintResultsError::Empty);
    }
    if args.root_causes.len() > MAX_ROOT_CAUSES {
        return Err(PrintResultsError::TooMany(args.root_causes.len()));
    }
    args.root_causes
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let rc = RootCause {
                node: clean(item.node),
                service: clean(item.service),
                pod: clean(item.pod),
                reason: clean(item.reason),
            };
            if rc.components().next().is_none() {
                return Err(PrintResultsError::NoComponent(i + 1));
            }
            Ok(rc)
        })
        .collect()
}

impl PrintResults {
    /// Parses and validates `print_results` arguments as a model wrote them (an object or a
    /// string holding one) into the typed list. Its errors are the tool's kinds (bad arguments,
    /// an invalid list) with the same validation as a call, but it does not go through the
    /// erased call ([`crate::DynTool::call_json`]): a bad shape is worded by serde here, not by
    /// the tool's schema.
    pub fn parse(args: &serde_json::Value) -> Result<Vec<RootCause>, ToolError> {
        // Only the typed list is needed, not the output text: parse here instead of calling.
        let normalized = match args {
            serde_json::Value::String(s) => {
                serde_json::from_str(s.trim()).map_err(|e| ToolError::BadArguments {
                    tool: "print_results".into(),
                    message: format!("arguments are a string that is not valid JSON ({e})"),
                    expected: "{\"root_causes\": array}".into(),
                })?
            }
            other => other.clone(),
        };
        let typed: PrintResultsArgs =
            serde_json::from_value(normalized).map_err(|e| ToolError::BadArguments {
                tool: "print_results".into(),
                message: e.to_string(),
                expected: "{\"root_causes\": array}".into(),
            })?;
        validate(typed).map_err(|e| ToolError::Invalid {
            tool: "print_results".into(),
            message: e.to_string(),
        })
    }

    /// The schema as `DynTool` publishes it (handy for prompts).
    pub fn schema(&self) -> serde_json::Value {
        DynTool::openai_schema(self)
    }
}

impl From<PrintedResults> for ToolOutput {
    fn from(p: PrintedResults) -> Self {
        let mut text = String::new();
        let total = p.root_causes.len();
        let _ = write!(text, "Recorded {total} root causes, most likely first:");
        for (i, rc) in p.root_causes.iter().enumerate().take(20) {
            let _ = write!(text, "\n{}.", i + 1);
            for (k, v) in [
                ("node", &rc.node),
                ("service", &rc.service),
                ("pod", &rc.pod),
            ] {
                if let Some(v) = v {
                    let _ = write!(text, " {k}={v}");
                }
            }
            if let Some(r) = &rc.reason {
                let r: String = r.chars().take(120).collect();
                let _ = write!(text, " ({r})");
            }
        }
        if let Some(m) = more_rows(total, total.min(20)) {
            let _ = write!(text, "\n{m}");
        }
        ToolOutput {
            text,
            touched: Vec::new(),
        }
    }
}

impl Tool for PrintResults {
    type Args = PrintResultsArgs;
    type Output = PrintedResults;
    type Error = PrintResultsError;

    fn name(&self) -> &'static str {
        "print_results"
    }

    fn description(&self) -> &'static str {
        "Print the root cause node/service/pod and corresponding reason."
    }

    fn call(
        &self,
        _env: &ToolEnv<'_>,
        args: PrintResultsArgs,
    ) -> Result<PrintedResults, PrintResultsError> {
        validate(args).map(|root_causes| PrintedResults { root_causes })
    }
}
