//! `search_logs(service_name, timestamp)`: the error and warning log templates of a service, pod
//! or node (the pods placed on it) within `±log_window_s` of the time, with counts and one
//! example each. The paper's server has no such endpoint; the output is the same in both modes.
//!
//! A line's severity comes from an explicit `severity:`/`level` field when there is one, else from
//! keywords (error, exception, fatal, panic, traceback, warn). Templates mask the variable parts of
//! a line: numbers, dates and addresses become `<NUM>`, hex ids and UUIDs `<HEX>`, long mixed ids
//! `<ID>` (a fixed-rule variant of the masking step of Drain, He et al., ICWS 2017).

use super::{more_rows, resolve_component, unknown_component};
use crate::env::ToolEnv;
use crate::pyfmt::push_csv_field;
pub use crate::severity::{Severity, severity};
use crate::timestamp::{BadTimestamp, TimestampArg};
use crate::tool::{Tool, ToolFailure, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

/// The `search_logs` tool: error and warning logs of a component around a moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchLogs;

// No doc comment: schemars would put it into the schema the model reads as a description,
// which the paper's schemas do not have.
#[allow(missing_docs)]
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchLogsArgs {
    /// The service_name (service, pod or node) whose logs are queried.
    pub service_name: String,
    /// The timestamp to be queried.
    pub timestamp: TimestampArg,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogsError {
    #[error(
        "service_name is empty; pass a service (recommendationservice), a pod (recommendationservice-1) or a node (node-1)"
    )]
    /// No component named.
    Empty,
    /// A name that is no service, pod or node of the data; the message lists services.
    #[error("{0}")]
    UnknownComponent(String),
    /// The timestamp argument is not a time.
    #[error(transparent)]
    Timestamp(#[from] BadTimestamp),
}

impl ToolFailure for LogsError {
    fn not_found(&self) -> bool {
        matches!(self, LogsError::UnknownComponent(_))
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '+' | '-' | '/')
}

fn mask_word(w: &str) -> &str {
    if !w.bytes().any(|b| b.is_ascii_digit()) {
        return w;
    }
    let core = w.trim_end_matches(['.', ':']);
    if core
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b':' | b'-' | b'+' | b'/'))
    {
        return "<NUM>";
    }
    if core.len() >= 8 && core.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return "<HEX>";
    }
    let letters = core.bytes().filter(u8::is_ascii_alphabetic).count();
    if core.len() >= 16 && letters > 0 {
        return "<ID>";
    }
    w
}

/// The template of a line: variable words masked, whitespace collapsed.
pub fn template(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut word = String::new();
    let mut last_space = false;
    let flush = |out: &mut String, word: &mut String| {
        if !word.is_empty() {
            out.push_str(mask_word(word));
            word.clear();
        }
    };
    for c in line.chars() {
        if is_word_char(c) {
            word.push(c);
            last_space = false;
        } else {
            flush(&mut out, &mut word);
            if c.is_whitespace() {
                if !last_space && !out.is_empty() {
                    out.push(' ');
                }
                last_space = true;
            } else {
                out.push(c);
                last_space = false;
            }
        }
    }
    flush(&mut out, &mut word);
    out.trim_end().to_string()
}

/// Keeps a row on one line; commas and quotes are left to CSV quoting.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

struct Group<'s> {
    severity: Severity,
    count: usize,
    pods: BTreeSet<&'s str>,
    first_ts: i64,
    example: &'s str,
}

impl Tool for SearchLogs {
    type Args = SearchLogsArgs;
    type Output = ToolOutput;
    type Error = LogsError;

    fn name(&self) -> &'static str {
        "search_logs"
    }

    fn description(&self) -> &'static str {
        "Get the error and warning log templates of the input service_name around the input timestamp, with counts"
    }

    fn call(&self, env: &ToolEnv<'_>, args: Self::Args) -> Result<ToolOutput, LogsError> {
        if args.service_name.trim().is_empty() {
            return Err(LogsError::Empty);
        }
        let t = args.timestamp.seconds()?;
        let store = env.store;
        let c = resolve_component(store, &args.service_name).ok_or_else(|| {
            LogsError::UnknownComponent(unknown_component(store, &args.service_name))
        })?;
        let w = env.config.log_window_s;
        let (from, to) = (t.saturating_sub(w), t.saturating_add(w).saturating_add(1));
        let mut pods: Vec<&str> = c.pods.iter().map(String::as_str).collect();
        if pods.is_empty() {
            pods.push(&c.name);
        }
        let mut groups: HashMap<(Severity, String), Group<'_>> = HashMap::new();
        let mut scanned = 0usize;
        for pod in &pods {
            for l in store.logs_of(pod, from, to) {
                scanned += 1;
                let value = l.value();
                let Some(sev) = severity(value) else { continue };
                let g = groups
                    .entry((sev, template(value)))
                    .or_insert_with(|| Group {
                        severity: sev,
                        count: 0,
                        pods: BTreeSet::new(),
                        first_ts: l.timestamp(),
                        example: value,
                    });
                g.count += 1;
                g.pods.insert(l.cmdb_id());
                if l.timestamp() < g.first_ts {
                    g.first_ts = l.timestamp();
                    g.example = value;
                }
            }
        }
        let mut out = ToolOutput::default();
        out.touch(&c.name);
        if groups.is_empty() {
            out.text = format!(
                "no error or warning logs of {} within ±{w} s of {t} ({scanned} log lines in the window)",
                c.name
            );
            return Ok(out);
        }
        let mut rows: Vec<((Severity, String), Group<'_>)> = groups.into_iter().collect();
        rows.sort_by(|a, b| {
            b.1.count
                .cmp(&a.1.count)
                .then(a.0.0.cmp(&b.0.0))
                .then_with(|| a.0.1.cmp(&b.0.1))
        });
        let max = env.config.max_rows;
        for (_, g) in rows.iter().take(max) {
            for p in &g.pods {
                out.touch(p);
            }
        }
        let total_lines: usize = rows.iter().map(|r| r.1.count).sum();
        let text = &mut out.text;
        let _ = writeln!(
            text,
            "{} error/warning log templates ({total_lines} lines) of {} within ±{w} s of {t}, most frequent first",
            rows.len(),
            c.name
        );
        text.push_str("count,level,cmdb_ids,template,example\n");
        let max_chars = env.config.max_log_example_chars;
        for ((_, tpl), g) in rows.iter().take(max) {
            let pods: Vec<&str> = g.pods.iter().copied().collect();
            let _ = write!(
                text,
                "{},{},{},",
                g.count,
                g.severity.as_str(),
                pods.join("|")
            );
            let tpl: String = tpl.chars().take(max_chars).collect();
            push_csv_field(text, &one_line(&tpl));
            text.push(',');
            let ex: String = g.example.chars().take(max_chars).collect();
            push_csv_field(text, &one_line(&ex));
            text.push('\n');
        }
        if let Some(m) = more_rows(rows.len(), max) {
            text.push_str(&m);
        } else {
            text.pop();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_of_real_lines() {
        assert_eq!(
            severity("severity: error, message: request error"),
            Some(Severity::Error)
        );
        assert_eq!(severity("severity: info, message: request error"), None);
        assert_eq!(
            severity("severity: warning, message: slow"),
            Some(Severity::Warning)
        );
        assert_eq!(
            severity("RROR:opentelemetry.sdk.trace.export:Exception while exporting Span batch."),
            Some(Severity::Error)
        );
        assert_eq!(
            severity("ocket.gaierror: [Errno -2] Name or service not known"),
            Some(Severity::Error)
        );
        assert_eq!(
            severity("{\"level\":\"warn\",\"msg\":\"retry\"}"),
            Some(Severity::Warning)
        );
        assert_eq!(severity("level=info msg=\"error budget ok\""), None);
        assert_eq!(
            severity("severity: info, message: conversion request successful"),
            None
        );
    }

    #[test]
    fn templates_mask_variable_parts() {
        assert_eq!(
            template("ocket.gaierror: [Errno -2] Name or service not known"),
            "ocket.gaierror: [Errno <NUM>] Name or service not known"
        );
        assert_eq!(
            template("ocket.gaierror: [Errno -3] Temporary failure"),
            "ocket.gaierror: [Errno <NUM>] Temporary failure"
        );
        assert_eq!(
            template(
                "conn to 10.0.0.12:6379 failed after 1500ms id=deadbeef12 trace 550e8400-e29b-41d4-a716-446655440000"
            ),
            "conn to <NUM> failed after 1500ms id=<HEX> trace <HEX>"
        );
        assert_eq!(
            template("pod cartservice-2   restarted"),
            "pod cartservice-2 restarted"
        );
        assert_eq!(
            template("request I-JkpX8BDiVcQfZwfC0Q done"),
            "request <ID> done"
        );
    }
}
