//! Where the readers put rows, and the span file's header: shared by the `csv`-crate readers
//! (`aiops`) and the hand-split fast path (`fastspans`), neither of which owns the other.

use crate::store::SpanFields;
use crate::{LoadOptions, LoadReport, Result};
use std::path::Path;
use thinkfl_core::{FaultCase, MetricSource, Topology};

/// The header of a span file.
pub const SPAN_HEADER: [&str; 9] = [
    "timestamp",
    "cmdb_id",
    "span_id",
    "trace_id",
    "duration",
    "type",
    "status_code",
    "operation_name",
    "parent_span",
];

/// Where readers put rows: a [`Dataset`] (owned strings) or a [`StoreBuilder`] (interned).
pub(crate) trait RowSink {
    fn span(&mut self, s: SpanFields<'_>);
    fn metric(&mut self, ts: i64, cmdb_id: &str, kpi: &str, value: f64, source: MetricSource);
    fn log(&mut self, log_id: &str, ts: i64, cmdb_id: &str, name: &str, value: &str);
    fn fault(&mut self, f: FaultCase);
    fn topology(&mut self, t: Topology);
    /// Appends the rows of `part` (a fresh sink that took the rows of one piece of a parallel
    /// read) after this sink's own.
    fn join(&mut self, part: Self)
    where
        Self: Sized;
    /// Reads a whole span file by the fast path (`fastspans`); `Ok(false)`, with nothing read,
    /// when the file has quotes or invalid UTF-8 and needs the `csv` crate.
    fn span_bytes(
        &mut self,
        path: &Path,
        buf: &[u8],
        opts: &LoadOptions,
        report: &mut LoadReport,
    ) -> Result<bool>
    where
        Self: Sized;
}
