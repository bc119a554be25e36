//! The `Diagnoser` contract: what the RoT actor and every baseline implement, and how a fault case
//! becomes questions (DESIGN.md sections 5.2 and 8).
//!
//! A diagnoser sees the store, the case's time window and one query (the entry span of an
//! anomalous trace); the ground truth is never passed to it.

use crate::anomaly::{AnomalyConfig, AnomalyDetector};
use thinkfl_core::{FaultCase, RootCause, TokenCounts, Trajectory};
use thinkfl_store::TelemetryStore;

/// One question: the entry span of an anomalous trace of a fault case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// Index of the fault case in `store.faults()`.
    pub case: usize,
    /// The trace of the entry span.
    pub trace_id: String,
    /// The entry span the actor starts from.
    pub span_id: String,
    /// Start of the entry span, ms since the epoch.
    pub timestamp_ms: i64,
    /// The pod that emitted the entry span.
    pub cmdb_id: String,
    /// The entry span's operation.
    pub operation_name: String,
}

impl Query {
    /// `case` of a query that belongs to no fault case (asked from a span or trace by hand).
    pub const NO_CASE: usize = usize::MAX;

    /// The question of one span, outside any fault case; `None` when the data has no such span.
    pub fn of_span(store: &TelemetryStore, span_id: &str) -> Option<Query> {
        let s = store.span_by_id(span_id.trim())?;
        Some(Query {
            case: Self::NO_CASE,
            trace_id: s.trace_id().into(),
            span_id: s.span_id().into(),
            timestamp_ms: s.timestamp(),
            cmdb_id: s.cmdb_id().into(),
            operation_name: s.operation_name().into(),
        })
    }

    /// The question of a trace: its entry span (a root, or the first span whose parent the data
    /// lacks, as in traces cut by dropped spans); `None` when the data has no such trace.
    pub fn of_trace(store: &TelemetryStore, trace_id: &str) -> Option<Query> {
        let entry = store
            .trace(trace_id.trim())
            .find(|s| s.parent_span().is_empty() || store.span_by_id(s.parent_span()).is_none())?;
        let id = entry.span_id().to_string();
        Self::of_span(store, &id)
    }
}

/// The time window of a fault case, in seconds, half-open `[start_s, end_s)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaseWindow {
    /// First second of the window.
    pub start_s: i64,
    /// First second after the window.
    pub end_s: i64,
}

impl CaseWindow {
    /// Whether a span timestamp (ms) falls in the window.
    pub fn contains_ms(&self, timestamp_ms: i64) -> bool {
        timestamp_ms >= self.start_s.saturating_mul(1000)
            && timestamp_ms < self.end_s.saturating_mul(1000)
    }
}

/// What a diagnoser answers for one query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnosis {
    /// Ranked root causes, most likely first.
    pub ranking: Vec<RootCause>,
    /// The reasoning path: components touched, in order of first appearance.
    pub path: Vec<String>,
    /// The episode, for model-based diagnosers.
    pub trajectory: Option<Trajectory>,
    /// Tokens spent (zero for diagnosers without a model).
    pub tokens: TokenCounts,
    /// Wall time of the diagnosis, ms.
    pub elapsed_ms: f64,
}

/// The error of a diagnosis: anything a diagnoser's backend can fail with (a model, a
/// server), boxed.
pub type DiagnoseError = Box<dyn std::error::Error + Send + Sync>;

/// A root-cause localizer: the RoT actor and every baseline. The evaluation runs each over the
/// same queries and grades their rankings alike.
pub trait Diagnoser: Send + Sync {
    /// The name reports and result files list the diagnoser under.
    fn name(&self) -> &str;
    /// The ground truth is never passed: only the case's time window and one query.
    fn diagnose(
        &self,
        store: &TelemetryStore,
        window: CaseWindow,
        query: &Query,
    ) -> Result<Diagnosis, DiagnoseError>;
}

/// The window of a fault case: from its start for its duration, or `default_duration_s` when the
/// data does not say (the AIOps 2022 ground truth gives only the start).
pub fn case_window(case: &FaultCase, default_duration_s: i64) -> CaseWindow {
    let duration = case.duration.unwrap_or(default_duration_s).max(0);
    CaseWindow {
        start_s: case.timestamp,
        end_s: case.timestamp.saturating_add(duration),
    }
}

/// The queries of fault case `case_index`: the anomalous traces (see [`crate::anomaly`]) whose
/// entry span starts inside the case window, in time order (ties in store order). Empty when the
/// index is out of range.
pub fn case_queries(store: &TelemetryStore, case_index: usize, cfg: &AnomalyConfig) -> Vec<Query> {
    if case_index >= store.faults().len() {
        return Vec::new();
    }
    queries_of_case(&AnomalyDetector::new(store, cfg.clone()), store, case_index)
}

/// The queries of every fault case, with one detector (one pass over the roots).
pub fn all_case_queries(store: &TelemetryStore, cfg: &AnomalyConfig) -> Vec<Vec<Query>> {
    let det = AnomalyDetector::new(store, cfg.clone());
    (0..store.faults().len())
        .map(|i| queries_of_case(&det, store, i))
        .collect()
}

/// The queries of one case with an existing detector.
pub fn queries_of_case(
    det: &AnomalyDetector<'_>,
    store: &TelemetryStore,
    case_index: usize,
) -> Vec<Query> {
    let Some(case) = store.faults().get(case_index) else {
        return Vec::new();
    };
    let cfg = det.config();
    let window = case_window(case, cfg.default_case_duration_s);
    let mut queries: Vec<Query> = det
        .entries(
            window.start_s.saturating_mul(1000),
            window.end_s.saturating_mul(1000),
        )
        .into_iter()
        .map(|a| Query {
            case: case_index,
            trace_id: a.trace_id,
            span_id: a.span_id,
            timestamp_ms: a.timestamp_ms,
            cmdb_id: a.cmdb_id,
            operation_name: a.operation_name,
        })
        .collect();
    if let Some(max) = cfg.max_queries_per_case {
        queries.truncate(max);
    }
    queries
}
