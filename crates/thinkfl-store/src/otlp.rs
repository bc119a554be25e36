//! Reader of OpenTelemetry OTLP JSON trace exports (the OTLP/JSON encoding of
//! `ExportTraceServiceRequest`, as written by the collector's file exporter:
//! <https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>).
//!
//! Mapping onto the AIOps 2022 span row:
//! - `cmdb_id`: the `k8s.pod.name` attribute (of the span, else of its resource), else the
//!   resource's `service.name`;
//! - `timestamp`: `startTimeUnixNano` in ms (floored); `duration`: end - start in µs (floored);
//! - `type`: `rpc` when the span has `rpc.system`, `db` with `db.system`, `http` with an
//!   `http.*` method or status attribute, else empty (the span `kind` enum is not the data's
//!   `type`);
//! - `status_code`: `rpc.grpc.status_code`, else the HTTP status code attribute, else
//!   `status.code` as `Unset`, `OK` or `Error`;
//! - `operation_name`: `name`; `parent_span`: `parentSpanId` (empty for a root).
//!
//! A `k8s.node.name` attribute gives the pod's placement, kept in the data set's topology.

use crate::json::{IntLike, Item, each, kind_from, normalize_id, parse_doc, with_placement};
use crate::{Error, LoadOptions, LoadReport, Result};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::path::Path;
use thinkfl_core::{Dataset, Span};

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(rename = "resourceSpans", default, borrow)]
    resource_spans: Vec<ResourceSpans<'a>>,
}

#[derive(Deserialize)]
struct ResourceSpans<'a> {
    #[serde(default)]
    resource: Resource,
    #[serde(
        rename = "scopeSpans",
        alias = "instrumentationLibrarySpans",
        default,
        borrow
    )]
    scope_spans: Vec<ScopeSpans<'a>>,
}

#[derive(Deserialize, Default)]
struct Resource {
    #[serde(default)]
    attributes: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct ScopeSpans<'a> {
    #[serde(default, borrow)]
    spans: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct KeyValue {
    key: String,
    #[serde(default)]
    value: AnyValue,
}

#[derive(Deserialize, Default)]
pub(crate) struct AnyValue {
    #[serde(rename = "stringValue")]
    string_value: Option<String>,
    #[serde(rename = "intValue")]
    int_value: Option<IntLike>,
    #[serde(rename = "boolValue")]
    bool_value: Option<bool>,
    #[serde(rename = "doubleValue")]
    double_value: Option<f64>,
}

impl AnyValue {
    fn as_text(&self) -> Option<String> {
        if let Some(s) = &self.string_value {
            return Some(s.clone());
        }
        if let Some(i) = self.int_value.as_ref().and_then(IntLike::get) {
            return Some(i.to_string());
        }
        if let Some(b) = self.bool_value {
            return Some(b.to_string());
        }
        self.double_value.map(|d| d.to_string())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OtlpSpan {
    trace_id: String,
    span_id: String,
    #[serde(default)]
    parent_span_id: String,
    name: String,
    start_time_unix_nano: IntLike,
    end_time_unix_nano: IntLike,
    #[serde(default)]
    attributes: Vec<KeyValue>,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    code: Option<StatusCode>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StatusCode {
    Num(i64),
    Name(String),
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
}

/// Reads an OTLP JSON trace export.
pub fn read_otlp_json(path: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let doc: Doc<'_> = parse_doc(path, &text)?;
    let mut report = LoadReport::default();
    let mut spans = Vec::new();
    let mut placement = BTreeMap::new();
    for (ri, rs) in doc.resource_spans.iter().enumerate() {
        let res = &rs.resource.attributes;
        for (si, ss) in rs.scope_spans.iter().enumerate() {
            for (k, raw) in ss.spans.iter().enumerate() {
                let item = Item {
                    path,
                    text: &text,
                    raw,
                    where_: format!("resourceSpans[{ri}].scopeSpans[{si}].spans[{k}]"),
                };
                each(opts, &mut report, &mut spans, || {
                    let (span, node) = convert(&item, res)?;
                    if let Some(node) = node {
                        placement.insert(span.cmdb_id.clone(), node);
                    }
                    Ok(span)
                })?;
            }
        }
    }
    let ds = Dataset {
        spans,
        ..Dataset::default()
    };
    Ok((with_placement(ds, placement), report))
}

fn convert(item: &Item<'_>, res: &[KeyValue]) -> Result<(Span, Option<String>)> {
    let s: OtlpSpan = item.parse()?;
    let get = |key: &str| {
        attr(&s.attributes, key)
            .or_else(|| attr(res, key))
            .and_then(AnyValue::as_text)
    };
    let cmdb_id = get("k8s.pod.name")
        .or_else(|| get("service.name"))
        .filter(|c| !c.is_empty())
        .ok_or_else(|| item.error("resource", "neither k8s.pod.name nor service.name"))?;
    let trace_id = normalize_id(&s.trace_id, 16)
        .ok_or_else(|| item.error("traceId", format!("not a 16-byte id: {:?}", s.trace_id)))?;
    let span_id = normalize_id(&s.span_id, 8)
        .ok_or_else(|| item.error("spanId", format!("not an 8-byte id: {:?}", s.span_id)))?;
    let parent_span = if s.parent_span_id.is_empty() {
        String::new()
    } else {
        normalize_id(&s.parent_span_id, 8).ok_or_else(|| {
            item.error(
                "parentSpanId",
                format!("not an 8-byte id: {:?}", s.parent_span_id),
            )
        })?
    };
    let start = s
        .start_time_unix_nano
        .get()
        .ok_or_else(|| item.error("startTimeUnixNano", "not an integer"))?;
    let end = s
        .end_time_unix_nano
        .get()
        .ok_or_else(|| item.error("endTimeUnixNano", "not an integer"))?;
    if end < start {
        return Err(item.error("endTimeUnixNano", "ends before it starts"));
    }
    let has = |k: &str| attr(&s.attributes, k).is_some();
    let status_code = get("rpc.grpc.status_code")
        .or_else(|| get("http.status_code"))
        .or_else(|| get("http.response.status_code"))
        .unwrap_or_else(|| {
            match s.status.as_ref().and_then(|st| st.code.as_ref()) {
                Some(StatusCode::Num(1)) => "OK",
                Some(StatusCode::Num(2)) => "Error",
                Some(StatusCode::Name(n)) if n.ends_with("OK") => "OK",
                Some(StatusCode::Name(n)) if n.ends_with("ERROR") => "Error",
                _ => "Unset",
            }
            .to_string()
        });
    let span = Span {
        timestamp: start.div_euclid(1_000_000),
        cmdb_id,
        span_id,
        trace_id,
        duration: (end - start) / 1000,
        kind: kind_from(has).to_string(),
        status_code,
        operation_name: s.name,
        parent_span,
    };
    Ok((span, get("k8s.node.name")))
}
