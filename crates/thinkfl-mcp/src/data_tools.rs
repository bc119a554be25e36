//! The typed tools of the MCP server beside the diagnostic ones: `list_incidents` (fault windows
//! and their anomalous traces) and `inspect` (what the data set holds). They implement the same
//! [`Tool`] trait as the tool server's tools, so their schemas and their answers to bad calls
//! come from the same code.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use thinkfl_store::TelemetryStore;
use thinkfl_store::summary::utc;
use thinkfl_tools::{
    AnomalyConfig, Query, Tool, ToolEnv, ToolFailure, ToolOutput, all_case_queries, case_window,
};

impl ToolFailure for crate::Error {
    fn not_found(&self) -> bool {
        matches!(self, crate::Error::NotFound(_))
    }
}

/// The queries (anomalous traces) of each fault case of a store, by case index.
pub(crate) type QueriesByCase = Arc<Vec<Vec<Query>>>;

/// The anomalous traces of every fault case, computed once per store: the detector makes a pass
/// over every entry span, which on a two-hour data set is worth keeping.
#[derive(Debug, Default)]
pub(crate) struct CaseQueries {
    /// The store's address (the key) and its queries per case.
    cached: Mutex<Option<(usize, QueriesByCase)>>,
}

impl CaseQueries {
    pub(crate) fn of(&self, store: &TelemetryStore, cfg: &AnomalyConfig) -> QueriesByCase {
        let key = store as *const TelemetryStore as usize;
        // A poisoned lock only means another call panicked while computing; recompute.
        let mut slot = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, q)) = slot.as_ref()
            && *k == key
        {
            return q.clone();
        }
        let q = Arc::new(all_case_queries(store, cfg));
        *slot = Some((key, q.clone()));
        q
    }
}

/// `list_incidents`: the fault cases of the data set with their windows and anomalous traces.
#[derive(Debug, Default)]
pub struct ListIncidents {
    anomaly: AnomalyConfig,
    queries: Arc<CaseQueries>,
}

impl ListIncidents {
    /// The tool's name.
    pub const NAME: &'static str = "list_incidents";
    /// Most traces listed per case (all are counted).
    pub const MAX_TRACES: usize = 50;
    /// Traces listed per case when the call does not say.
    pub const DEFAULT_TRACES: usize = 3;

    /// The tool with the detector's settings (its own cache of the cases' traces).
    pub fn new(anomaly: AnomalyConfig) -> Self {
        Self {
            anomaly,
            queries: Arc::default(),
        }
    }

    pub(crate) fn with_cache(anomaly: AnomalyConfig, queries: Arc<CaseQueries>) -> Self {
        Self { anomaly, queries }
    }
}

/// Arguments of `list_incidents`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListIncidentsArgs {
    /// Only this fault case (its index, as listed); all cases when absent.
    #[serde(default)]
    pub case: Option<usize>,
    /// Anomalous traces listed per case, from the first in time (at most 50; default 3). All are
    /// counted.
    #[serde(default)]
    pub max_traces: Option<usize>,
    /// Also give each case's labelled root cause (the data set's ground truth, meant for
    /// evaluation; default false, so that an investigation is not told the answer).
    #[serde(default)]
    pub include_truth: Option<bool>,
}

/// The report of fault case `case`: its window, its anomalous traces (the first `max_traces`,
/// with the entry span's pod, operation, start and duration), and its label when `truth`.
pub fn incident_report(
    store: &TelemetryStore,
    anomaly: &AnomalyConfig,
    case: usize,
    queries: &[Query],
    max_traces: usize,
    truth: bool,
) -> Value {
    let Some(fault) = store.faults().get(case) else {
        return Value::Null;
    };
    let w = case_window(fault, anomaly.default_case_duration_s);
    let traces: Vec<Value> = queries
        .iter()
        .take(max_traces)
        .map(|q| {
            let duration_ms = store
                .span_by_id(&q.span_id)
                .map(|s| s.duration() as f64 / 1000.0);
            json!({
                "trace_id": q.trace_id,
                "entry_span_id": q.span_id,
                "pod": q.cmdb_id,
                "operation": q.operation_name,
                "start_ms": q.timestamp_ms,
                "duration_ms": duration_ms,
            })
        })
        .collect();
    let mut v = json!({
        "case": case,
        "window_s": [w.start_s, w.end_s],
        "window_utc": format!("{} .. {}", utc(w.start_s), utc(w.end_s)),
        "anomalous_traces": queries.len(),
        "traces": traces,
    });
    if truth {
        v["truth"] = json!({
            "level": fault.level.as_str(),
            "cmdb_id": fault.cmdb_id,
            "failure_type": fault.display_type(),
        });
    }
    v
}

impl Tool for ListIncidents {
    type Args = ListIncidentsArgs;
    type Output = ToolOutput;
    type Error = crate::Error;

    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn description(&self) -> &'static str {
        "List the fault cases (incidents) of the data set: each case's time window and its \
         anomalous traces (entry spans much slower than their operation's normal duration, or \
         failed), with trace id, entry span id, pod, operation, start (ms) and duration (ms). \
         Start an investigation from a case's entry span (search_traces, localize)."
    }

    fn call(&self, env: &ToolEnv<'_>, args: ListIncidentsArgs) -> Result<ToolOutput, crate::Error> {
        let store = env.store;
        let max_traces = args.max_traces.unwrap_or(Self::DEFAULT_TRACES);
        if max_traces > Self::MAX_TRACES {
            return Err(crate::Error::Argument {
                field: "max_traces",
                msg: format!("at most {}, got {max_traces}", Self::MAX_TRACES),
            });
        }
        let n = store.faults().len();
        let cases: Vec<usize> = match args.case {
            Some(c) if c >= n => {
                return Err(crate::Error::NotFound(no_case_message(c, n)));
            }
            Some(c) => vec![c],
            None => (0..n).collect(),
        };
        let queries = self.queries.of(store, &self.anomaly);
        let truth = args.include_truth.unwrap_or(false);
        let mut out = ToolOutput::default();
        let list: Vec<Value> = cases
            .iter()
            .map(|&c| {
                let qs = &queries[c];
                for q in qs.iter().take(max_traces) {
                    out.touch(&q.cmdb_id);
                }
                incident_report(store, &self.anomaly, c, qs, max_traces, truth)
            })
            .collect();
        out.text = serde_json::to_string_pretty(&json!({ "fault_cases": n, "cases": list }))
            .unwrap_or_default();
        Ok(out)
    }
}

/// "no fault case 7: the data set has 3 (0 to 2)".
pub(crate) fn no_case_message(case: usize, count: usize) -> String {
    match count {
        0 => format!("no fault case {case}: the data set has none"),
        n => format!(
            "no fault case {case}: the data set has {n} (0 to {}); see list_incidents",
            n - 1
        ),
    }
}

/// `inspect`: what the data set holds.
#[derive(Debug)]
pub struct Inspect {
    name: String,
}

impl Inspect {
    /// The tool's name.
    pub const NAME: &'static str = "inspect";

    /// `name` is how the report names the data set (its directory).
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

/// `inspect` takes no arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectArgs {}

impl Tool for Inspect {
    type Args = InspectArgs;
    type Output = ToolOutput;
    type Error = crate::Error;

    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn description(&self) -> &'static str {
        "What the data set holds: its time range (UTC), counts of spans, traces, metric series \
         and logs, its services, pods and nodes, and its fault cases by level and type."
    }

    fn call(&self, env: &ToolEnv<'_>, _args: InspectArgs) -> Result<ToolOutput, crate::Error> {
        Ok(ToolOutput::new(thinkfl_store::summary::render(
            env.store, &self.name,
        )))
    }
}
