//! `search_traces(parent_span_id)`: the direct child spans of a span.
//!
//! Plain mode is the paper's server: Flask's `jsonify` of the matching rows of
//! `trace_jaeger-span.csv` in file order (`[{"cmdb_id":...,"type":...}]`, keys sorted, empty
//! cells as pandas' `NaN`), and `{"message":"No trace with parent_span = '<id>'\u3002"}` for a
//! span without children. Enriched mode writes compact CSV rows, slowest first, with durations in
//! ms (about three significant digits) beside the median duration of the same operation, and each
//! child's number of children, then one line naming the child that carries the parent's delay
//! (or saying that none does), by the rule the scripted expert descends by
//! ([`crate::descent::DescentRule`]).
//!
//! Unlike the paper's server, a span id that is absent from the data is an error (the paper
//! answers as for a leaf), so that a model learns it typed a wrong id.

use super::{more_rows, ms};
use crate::env::{OutputMode, ToolEnv};
use crate::pyfmt::push_py_json_str;
use crate::tool::{Tool, ToolFailure, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use std::fmt::Write;
use thinkfl_store::SpanRef;

/// The `search_traces` tool: the child spans of a span.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchTraces;

// No doc comment: schemars would put it into the schema the model reads as a description,
// which the paper's schemas do not have.
#[allow(missing_docs)]
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchTracesArgs {
    /// The parent span_id to be queried.
    pub parent_span_id: String,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchTracesError {
    #[error(
        "parent_span_id is empty; pass the span_id of a span from the question or an earlier result"
    )]
    /// No span id given.
    Empty,
    #[error(
        "no span with span_id {0:?} in this data set; pass a span_id from the question or an earlier result"
    )]
    /// No span with that id in the data.
    UnknownSpan(String),
}

impl ToolFailure for SearchTracesError {
    fn not_found(&self) -> bool {
        matches!(self, SearchTracesError::UnknownSpan(_))
    }
}

/// Appends one span row as Flask's `jsonify` writes a pandas record (keys sorted).
fn push_plain_row(out: &mut String, s: &SpanRef<'_>) {
    let str_or_nan = |out: &mut String, v: &str| {
        if v.is_empty() {
            out.push_str("NaN")
        } else {
            push_py_json_str(out, v)
        }
    };
    out.push_str("{\"cmdb_id\":");
    str_or_nan(out, s.cmdb_id());
    let _ = write!(out, ",\"duration\":{}", s.duration());
    out.push_str(",\"operation_name\":");
    str_or_nan(out, s.operation_name());
    out.push_str(",\"parent_span\":");
    str_or_nan(out, s.parent_span());
    out.push_str(",\"span_id\":");
    str_or_nan(out, s.span_id());
    out.push_str(",\"status_code\":");
    str_or_nan(out, s.status_code());
    let _ = write!(out, ",\"timestamp\":{}", s.timestamp());
    out.push_str(",\"trace_id\":");
    str_or_nan(out, s.trace_id());
    out.push_str(",\"type\":");
    str_or_nan(out, s.kind());
    out.push('}');
}

/// The paper's answer for a span without children.
pub fn plain_no_children(parent: &str) -> String {
    let mut out = String::from("{\"message\":");
    push_py_json_str(
        &mut out,
        &format!("No trace with parent_span = '{parent}'。"),
    );
    out.push_str("}\n");
    out
}

impl Tool for SearchTraces {
    type Args = SearchTracesArgs;
    type Output = ToolOutput;
    type Error = SearchTracesError;

    fn name(&self) -> &'static str {
        "search_traces"
    }

    fn description(&self) -> &'static str {
        "Get all traces with the input span_id as the parent"
    }

    fn call(
        &self,
        env: &ToolEnv<'_>,
        args: SearchTracesArgs,
    ) -> Result<ToolOutput, SearchTracesError> {
        let id = args.parent_span_id.trim();
        if id.is_empty() {
            return Err(SearchTracesError::Empty);
        }
        let store = env.store;
        let parent = store.span_by_id(id);
        // File order, as the paper's pandas filter returns the rows.
        let mut children: Vec<SpanRef<'_>> = store.children(id).collect();
        children.sort_by_key(|s| s.idx());
        if parent.is_none() && children.is_empty() {
            return Err(SearchTracesError::UnknownSpan(id.to_string()));
        }
        let mut out = ToolOutput::default();
        if let Some(p) = &parent {
            out.touch(p.cmdb_id());
        }
        for c in &children {
            out.touch(c.cmdb_id());
        }
        let max = env.config.max_rows;
        let total = children.len();
        let text = &mut out.text;
        match env.mode() {
            OutputMode::Plain => {
                if children.is_empty() {
                    *text = plain_no_children(id);
                } else {
                    text.reserve(256 * total.min(max));
                    text.push('[');
                    for (i, c) in children.iter().take(max).enumerate() {
                        if i > 0 {
                            text.push(',');
                        }
                        push_plain_row(text, c);
                    }
                    text.push_str("]\n");
                    if let Some(m) = more_rows(total, max) {
                        text.push_str(&m);
                    }
                }
            }
            OutputMode::Enriched => {
                if children.is_empty() {
                    let _ = write!(text, "no child spans of {id}: it is a leaf");
                } else {
                    let baselines = env.baselines();
                    // Slowest first, so that a cut keeps the interesting rows.
                    children.sort_by(|a, b| {
                        b.duration().cmp(&a.duration()).then(a.idx().cmp(&b.idx()))
                    });
                    let _ = writeln!(text, "{total} child spans of {id}, slowest first");
                    // No timestamp column: the question gives the time in seconds, and thirteen digits a
                    // row are a third of the row's tokens.
                    text.push_str("span_id,cmdb_id,operation_name,duration_ms,normal_ms,status_code,children\n");
                    for c in children.iter().take(max) {
                        let normal = baselines
                            .get(c.cmdb_id(), c.operation_name())
                            .map(|b| ms(b.median_us))
                            .unwrap_or_else(|| "-".into());
                        let grandchildren = store.children(c.span_id()).count();
                        let _ = writeln!(
                            text,
                            "{},{},{},{},{},{},{}",
                            c.span_id(),
                            c.cmdb_id(),
                            csv_safe(c.operation_name()),
                            ms(c.duration() as f64),
                            normal,
                            if c.status_code().is_empty() {
                                "-"
                            } else {
                                c.status_code()
                            },
                            grandchildren
                        );
                    }
                    if let Some(m) = more_rows(total, max) {
                        text.push_str(&m);
                        if !text.ends_with('\n') {
                            text.push('\n');
                        }
                    }
                    if let Some(p) = &parent {
                        let rule = &env.config.descent;
                        match rule.slow_child(store, baselines, p) {
                            Some(c) => {
                                let why = if c.status_ok() {
                                    format!("+{} ms", ms(rule.excess_us(baselines, &c)))
                                } else {
                                    "failed".to_string()
                                };
                                let _ = write!(
                                    text,
                                    "slow child: {} ({}, {why})",
                                    c.span_id(),
                                    c.cmdb_id()
                                );
                            }
                            None if rule.excess_us(baselines, p) > 0.0 => {
                                let _ = write!(
                                    text,
                                    "no slow child: {} itself holds the delay",
                                    p.cmdb_id()
                                );
                            }
                            None => text.push_str("no slow child"),
                        }
                    } else {
                        text.pop();
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Replaces the CSV separators of free text so that one row stays one line of fixed columns.
pub(crate) fn csv_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '\n', '\r']) {
        std::borrow::Cow::Owned(s.replace([',', '\n', '\r'], " "))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}
