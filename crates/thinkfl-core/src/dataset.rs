//! A whole data set in rows: what importers produce, what the simulator generates and what the
//! writer writes.

use crate::{FaultCase, LogRecord, MetricPoint, Span, Topology};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub spans: Vec<Span>,
    pub metrics: Vec<MetricPoint>,
    pub logs: Vec<LogRecord>,
    /// Ground truth, in time order.
    pub faults: Vec<FaultCase>,
    /// Present when the data set ships `topology.json`; otherwise derived by the store.
    pub topology: Option<Topology>,
}
