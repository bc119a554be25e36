//! The diagnostic tools a model calls (DESIGN.md section 5.1): `search_traces`,
//! `search_fluctuating_metrics`, `search_logs` and `print_results`, on a [`TelemetryStore`];
//! the typed [`Tool`] trait with its object-safe form [`DynTool`], the [`ToolRegistry`] and the
//! OpenAI function schemas derived from the argument types; anomalous-trace detection
//! ([`anomaly`]) and the [`Diagnoser`] contract that the actor and the baselines implement.
//!
//! The plain output mode reproduces the paper's tool server (LLM4AIOps/ThinkFL,
//! `tool_server_all.py`) byte for byte on the same rows ([`pyfmt`] holds its Python arithmetic
//! and formatting); the enriched mode gives small models compact rows with millisecond durations
//! and the normal duration of each operation. Every output is bounded and deterministic.
//!
//! [`TelemetryStore`]: thinkfl_store::TelemetryStore

#![warn(missing_docs)]

pub mod anomaly;
pub mod baseline;
pub mod descent;
pub mod diagnoser;
pub mod env;
pub mod nsigma;
pub mod pyfmt;
pub mod severity;
pub mod suspects;
pub mod timestamp;
pub mod tool;
pub mod tools;

pub use anomaly::{
    AnomalousEntry, AnomalyConfig, AnomalyDetector, AnomalyReason, anomalous_entries,
};
pub use baseline::{Baselines, OpStats};
pub use descent::DescentRule;
pub use diagnoser::{
    CaseWindow, DiagnoseError, Diagnoser, Diagnosis, Query, all_case_queries, case_queries,
    case_window, queries_of_case,
};
pub use env::{OutputMode, ToolEnv, ToolsConfig};
pub use nsigma::{Fluctuation, NSigmaConfig};
pub use suspects::{Suspect, SuspectConfig, rank_suspects};
pub use tool::{
    DynTool, Tool, ToolError, ToolFailure, ToolOutput, ToolRegistry, parameters_schema,
    parse_arguments,
};
pub use tools::{
    PrintResults, SearchAnomalousComponents, SearchFluctuatingMetrics, SearchLogs, SearchTraces,
};

/// Errors of this crate outside tool calls (tool calls answer with [`ToolError`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A setting out of its range.
    #[error("invalid config field `{field}`: {msg}")]
    Config {
        /// The field's name.
        field: &'static str,
        /// What its range is and what it was.
        msg: String,
    },
    /// An output mode other than `plain` or `enriched`.
    #[error("unknown output mode {0:?} (expected plain or enriched)")]
    UnknownMode(String),
}
