//! Reader of Jaeger JSON trace exports (the query service's `/api/traces` answer and the UI's
//! "Download JSON": `{"data": [{"traceID", "spans": [...], "processes": {"p1": {...}}}]}`,
//! <https://www.jaegertracing.io/docs/latest/apis/>).
//!
//! Mapping onto the AIOps 2022 span row:
//! - `cmdb_id`: the `k8s.pod.name` tag (of the span, else of its process), else the process's
//!   `serviceName`;
//! - `timestamp`: `startTime` (µs) in ms, floored; `duration`: `duration` (µs);
//! - `parent_span`: the first `CHILD_OF` reference (else the first reference, else
//!   `parentSpanID`), empty for a root;
//! - `type`: as for OTLP, from `rpc.system`, `db.system`/`db.type`, `http.*` tags;
//! - `status_code`: `rpc.grpc.status_code`, else `http.status_code`, else `Error` when the
//!   `error` tag is true, else `otel.status_code` (`OK`, `ERROR` as `Error`), else `Unset`.
//!
//! A `k8s.node.name` tag gives the pod's placement, kept in the data set's topology.

use crate::json::{Item, each, kind_from, parse_doc, with_placement};
use crate::{Error, LoadOptions, LoadReport, Result};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use thinkfl_core::{Dataset, Span};

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(borrow)]
    data: Vec<Trace<'a>>,
}

#[derive(Deserialize)]
struct Trace<'a> {
    #[serde(default, borrow)]
    spans: Vec<&'a RawValue>,
    #[serde(default)]
    processes: HashMap<String, Process>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Process {
    service_name: String,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize, Clone)]
struct Tag {
    key: String,
    #[serde(default)]
    value: Value,
}

#[derive(Deserialize)]
struct JSpan {
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
    #[serde(rename = "operationName")]
    operation_name: String,
    #[serde(default)]
    references: Vec<Reference>,
    #[serde(rename = "parentSpanID", default)]
    parent_span_id: Option<String>,
    #[serde(rename = "startTime")]
    start_time: i64,
    duration: i64,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(rename = "processID", default)]
    process_id: Option<String>,
    #[serde(default)]
    process: Option<Process>,
}

#[derive(Deserialize)]
struct Reference {
    #[serde(rename = "refType")]
    ref_type: String,
    #[serde(rename = "spanID")]
    span_id: String,
}

fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a Value> {
    tags.iter().find(|t| t.key == key).map(|t| &t.value)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn hex_id(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| s.to_ascii_lowercase())
}

/// Reads a Jaeger JSON trace export.
pub fn read_jaeger_json(path: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport)> {
    let text_in = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let doc: Doc<'_> = parse_doc(path, &text_in)?;
    let mut report = LoadReport::default();
    let mut spans = Vec::new();
    let mut placement = BTreeMap::new();
    for (ti, tr) in doc.data.iter().enumerate() {
        for (k, raw) in tr.spans.iter().enumerate() {
            let item = Item {
                path,
                text: &text_in,
                raw,
                where_: format!("data[{ti}].spans[{k}]"),
            };
            each(opts, &mut report, &mut spans, || {
                let (span, node) = convert(&item, &tr.processes)?;
                if let Some(node) = node {
                    placement.insert(span.cmdb_id.clone(), node);
                }
                Ok(span)
            })?;
        }
    }
    let ds = Dataset {
        spans,
        ..Dataset::default()
    };
    Ok((with_placement(ds, placement), report))
}

fn convert(
    item: &Item<'_>,
    processes: &HashMap<String, Process>,
) -> Result<(Span, Option<String>)> {
    let s: JSpan = item.parse()?;
    let process = match (&s.process, &s.process_id) {
        (Some(p), _) => p.clone(),
        (None, Some(id)) => processes
            .get(id)
            .cloned()
            .ok_or_else(|| item.error("processID", format!("no process {id:?} in the trace")))?,
        (None, None) => return Err(item.error("processID", "missing")),
    };
    let get = |key: &str| {
        tag(&s.tags, key)
            .or_else(|| tag(&process.tags, key))
            .and_then(text)
    };
    let cmdb_id = get("k8s.pod.name")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| process.service_name.clone());
    if cmdb_id.is_empty() {
        return Err(item.error("process", "no serviceName"));
    }
    let trace_id = hex_id(&s.trace_id)
        .ok_or_else(|| item.error("traceID", format!("not a hex id: {:?}", s.trace_id)))?;
    let span_id = hex_id(&s.span_id)
        .ok_or_else(|| item.error("spanID", format!("not a hex id: {:?}", s.span_id)))?;
    let parent_raw = s
        .references
        .iter()
        .find(|r| r.ref_type == "CHILD_OF")
        .or_else(|| s.references.first())
        .map(|r| r.span_id.clone())
        .or(s.parent_span_id.clone())
        .unwrap_or_default();
    let parent_span = if parent_raw.is_empty() || parent_raw.bytes().all(|b| b == b'0') {
        String::new()
    } else {
        hex_id(&parent_raw)
            .ok_or_else(|| item.error("references", format!("not a hex id: {parent_raw:?}")))?
    };
    if s.duration < 0 {
        return Err(item.error("duration", "negative"));
    }
    let has = |k: &str| tag(&s.tags, k).is_some();
    let error = matches!(tag(&s.tags, "error"), Some(Value::Bool(true)))
        || matches!(tag(&s.tags, "error"), Some(Value::String(v)) if v == "true");
    let status_code = get("rpc.grpc.status_code")
        .or_else(|| get("http.status_code"))
        .or_else(|| error.then(|| "Error".to_string()))
        .or_else(|| get("otel.status_code").map(|c| if c == "ERROR" { "Error".into() } else { c }))
        .unwrap_or_else(|| "Unset".to_string());
    let span = Span {
        timestamp: s.start_time.div_euclid(1000),
        cmdb_id,
        span_id,
        trace_id,
        duration: s.duration,
        kind: kind_from(has).to_string(),
        status_code,
        operation_name: s.operation_name,
        parent_span,
    };
    Ok((span, get("k8s.node.name")))
}
