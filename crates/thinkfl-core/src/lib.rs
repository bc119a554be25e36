//! Plain data types shared by every thinkfl crate: telemetry rows, components, topology, fault
//! cases, root causes, chat messages and trajectories. No I/O lives here.
//!
//! The field names and units follow the AIOps Challenge 2022 data set (see `shared/DESIGN.md`
//! section 4.1): span timestamps in ms, span durations in µs, metric/log/ground-truth timestamps
//! in s.

#![warn(missing_docs)]

pub mod chat;
pub mod component;
pub mod dataset;
pub mod fault;
pub mod telemetry;
pub mod topology;
pub mod trajectory;

pub use chat::{Message, Role, ToolCall};
pub use component::{Component, Level, pod_node_from_container_id, service_of};
pub use dataset::Dataset;
pub use fault::{FaultCase, FaultType, RootCause};
pub use telemetry::{LogRecord, MetricPoint, MetricSource, Span};
pub use topology::{ServiceInfo, Topology};
pub use trajectory::{CallRecord, Timings, TokenCounts, Trajectory};

/// Errors of the core types: parsing of enumerations and names.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A level name other than `node`, `service` or `pod`.
    #[error("unknown level {0:?} (expected node, service or pod)")]
    UnknownLevel(String),
    /// A `failure_type` that is none of [`FaultType::ALL`] in any of its spellings (data name,
    /// English, slug).
    #[error("unknown failure type {0:?}")]
    UnknownFaultType(String),
}
