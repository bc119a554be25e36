//! A whole data set in rows: what importers produce, what the simulator generates and what the
//! writer writes.

use crate::{FaultCase, LogRecord, MetricPoint, Span, Topology};
use serde::{Deserialize, Serialize};

/// Telemetry, ground truth and topology of one data set, as plain rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Every span (traces), in no particular order.
    pub spans: Vec<Span>,
    /// Every metric sample, of every [`MetricSource`](crate::MetricSource).
    pub metrics: Vec<MetricPoint>,
    /// Every log line.
    pub logs: Vec<LogRecord>,
    /// Ground truth, in time order.
    pub faults: Vec<FaultCase>,
    /// Present when the data set ships `topology.json`; otherwise derived by the store.
    pub topology: Option<Topology>,
}
