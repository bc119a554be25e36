//! [`TelemetryStore`]: spans, metric series and logs in columns, with interned strings and
//! sorted index arrays (DESIGN.md 4.3). Built once by [`StoreBuilder`], immutable afterwards,
//! `Send + Sync`.
//!
//! Every index is a permutation of row numbers sorted by a key and then by (timestamp, row), so a
//! range query is two binary searches and its answer comes out in (timestamp, file order).
//!
//! The store in three parts: `builder` takes rows and builds the indexes (with `index`'s sorts
//! and parent resolution), `query` answers from them; this module holds the columns and the
//! borrowed row views.

mod builder;
mod check;
mod index;
mod query;
pub(crate) mod snapshot;

pub use builder::{SpanFields, StoreBuilder};

use crate::col::Col;
use crate::strings::{Pool, StrColumn};
use thinkfl_core::{FaultCase, LogRecord, MetricSource, Span, Topology};

/// Index of a span inside the store (dense, `0..span_count()`), in file order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanIdx(pub u32);

/// `parent` code of a span without a parent.
const NO_PARENT: u32 = u32::MAX;
/// Bit set in a `parent` code whose parent span is absent from the data; the rest is the symbol
/// of the parent's id in the name pool.
const ORPHAN: u32 = 1 << 31;

#[derive(Debug, Clone, Copy)]
pub(crate) struct SeriesMeta {
    cmdb: u32,
    kpi: u32,
    source: MetricSource,
    start: u32,
    end: u32,
}

/// The store. See the module documentation.
///
/// ```
/// use thinkfl_core::{Dataset, Span};
/// use thinkfl_store::TelemetryStore;
///
/// let span = |id: &str, parent: &str, pod: &str, ts: i64| Span {
///     timestamp: ts,
///     cmdb_id: pod.into(),
///     span_id: id.into(),
///     trace_id: "t1".into(),
///     duration: 1_000,
///     kind: "rpc".into(),
///     status_code: "0".into(),
///     operation_name: "op".into(),
///     parent_span: parent.into(),
/// };
/// let store = TelemetryStore::from_dataset(Dataset {
///     spans: vec![
///         span("a", "", "frontend-0", 1_000),
///         span("b", "a", "cartservice-1", 1_002),
///         span("c", "a", "redis-cart-0", 1_001),
///     ],
///     ..Dataset::default()
/// });
/// // Children of a span in time order, whatever the file order.
/// let children: Vec<&str> = store.children("a").map(|s| s.cmdb_id()).collect();
/// assert_eq!(children, ["redis-cart-0", "cartservice-1"]);
/// assert_eq!(store.span_by_id("b").and_then(|s| s.parent()).map(|p| p.span_id()), Some("a"));
/// // Without topology.json the topology is derived from the data.
/// assert!(store.topology_derived());
/// assert!(store.topology().calls.contains(&("frontend".into(), "cartservice".into())));
/// ```
///
/// Loading a data set from disk: the real AIOps 2022 sample of the repository's fixtures (one
/// anomalous trace of a packet-corruption fault in `recommendationservice`, and the service logs
/// around it).
///
/// ```
/// use std::path::Path;
/// use thinkfl_store::{LoadOptions, TelemetryStore, read_aiops};
///
/// let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/aiops2022-sample");
/// let (dataset, report) = read_aiops(&dir, &LoadOptions::default())?;
/// assert_eq!(report.skipped_rows, 0);
/// let store = TelemetryStore::from_dataset(dataset);
///
/// // The entry span of the anomalous trace: 13.4 s at the frontend.
/// let entry = store.span_by_id("d1b3f238e544e3f0").expect("entry span");
/// assert_eq!((entry.cmdb_id(), entry.duration()), ("frontend-2", 13_385_835));
/// assert!(entry.parent().is_none());
/// assert!(store.children(entry.span_id()).count() > 0);
///
/// // Its logs: of a pod, in a time window (seconds).
/// let t = entry.timestamp() / 1000;
/// assert!(store.logs_of("recommendationservice-1", t - 120, t + 120).count() > 0);
///
/// // The ground truth.
/// assert_eq!(store.faults()[0].cmdb_id, "recommendationservice");
/// # Ok::<(), thinkfl_store::Error>(())
/// ```
#[derive(Debug)]
pub struct TelemetryStore {
    names: Pool,
    traces: Pool,
    ts: Col<i64>,
    dur: Col<i64>,
    cmdb: Col<u32>,
    kind: Col<u32>,
    status: Col<u32>,
    op: Col<u32>,
    span_id: StrColumn,
    trace: Col<u32>,
    /// Row of the parent span, [`NO_PARENT`], or [`ORPHAN`] | symbol of the missing parent's id.
    parent: Col<u32>,
    by_id: Col<u32>,
    time: Col<u32>,
    by_cmdb: Col<u32>,
    by_trace: Col<u32>,
    trace_starts: Col<u32>,
    /// Spans with a parent, by (parent code, timestamp, row).
    by_parent: Col<u32>,
    roots: Col<u32>,
    series: Vec<SeriesMeta>,
    p_ts: Col<i64>,
    p_val: Col<f64>,
    log_id: StrColumn,
    l_ts: Col<i64>,
    l_cmdb: Col<u32>,
    l_name: Col<u32>,
    l_value: StrColumn,
    logs_by_cmdb: Col<u32>,
    faults: Vec<FaultCase>,
    topology: Topology,
    topology_derived: bool,
    /// Bytes of the snapshot file the columns are views of; 0 when built from rows.
    mapped: usize,
}

/// Borrowed view of one span.
#[derive(Debug, Clone, Copy)]
pub struct SpanRef<'a> {
    store: &'a TelemetryStore,
    i: u32,
}

impl<'a> SpanRef<'a> {
    /// The span's index in the store.
    pub fn idx(&self) -> SpanIdx {
        SpanIdx(self.i)
    }
    fn u(&self) -> usize {
        self.i as usize
    }
    /// Start, ms since the epoch.
    pub fn timestamp(&self) -> i64 {
        self.store.ts[self.u()]
    }
    /// The pod that emitted the span.
    pub fn cmdb_id(&self) -> &'a str {
        self.store.names.get(self.store.cmdb[self.u()])
    }
    /// The span's id.
    pub fn span_id(&self) -> &'a str {
        self.store.span_id.get(self.u())
    }
    /// The trace's id.
    pub fn trace_id(&self) -> &'a str {
        self.store.traces.get(self.store.trace[self.u()])
    }
    /// Duration in µs.
    pub fn duration(&self) -> i64 {
        self.store.dur[self.u()]
    }
    /// `http`, `rpc`, `db`, `telemetry` or empty, as in the data.
    pub fn kind(&self) -> &'a str {
        self.store.names.get(self.store.kind[self.u()])
    }
    /// The status code as written (see [`SpanRef::status_ok`]).
    pub fn status_code(&self) -> &'a str {
        self.store.names.get(self.store.status[self.u()])
    }
    /// The operation name.
    pub fn operation_name(&self) -> &'a str {
        self.store.names.get(self.store.op[self.u()])
    }
    /// The parent's span id as written in the data; empty for a root.
    pub fn parent_span(&self) -> &'a str {
        let p = self.store.parent[self.u()];
        if p == NO_PARENT {
            ""
        } else if p & ORPHAN != 0 {
            self.store.names.get(p & !ORPHAN)
        } else {
            self.store.span_id.get(p as usize)
        }
    }
    /// The parent span when it is in the data.
    pub fn parent(&self) -> Option<SpanRef<'a>> {
        let p = self.store.parent[self.u()];
        (p != NO_PARENT && p & ORPHAN == 0).then_some(SpanRef {
            store: self.store,
            i: p,
        })
    }
    /// Whether the status code means success (see [`Span::status_ok`]).
    pub fn status_ok(&self) -> bool {
        thinkfl_core::telemetry::status_is_ok(self.status_code())
    }
    /// The span as an owned row.
    pub fn to_span(&self) -> Span {
        Span {
            timestamp: self.timestamp(),
            cmdb_id: self.cmdb_id().to_string(),
            span_id: self.span_id().to_string(),
            trace_id: self.trace_id().to_string(),
            duration: self.duration(),
            kind: self.kind().to_string(),
            status_code: self.status_code().to_string(),
            operation_name: self.operation_name().to_string(),
            parent_span: self.parent_span().to_string(),
        }
    }
}

/// Borrowed view of one metric series.
#[derive(Debug, Clone, Copy)]
pub struct SeriesRef<'a> {
    store: &'a TelemetryStore,
    meta: SeriesMeta,
}

impl<'a> SeriesRef<'a> {
    /// The `cmdb_id` as written in the data (`node-6.adservice2-0`, `adservice-grpc`...).
    pub fn cmdb_id(&self) -> &'a str {
        self.store.names.get(self.meta.cmdb)
    }
    /// The KPI's name.
    pub fn kpi(&self) -> &'a str {
        self.store.names.get(self.meta.kpi)
    }
    /// The file family of the series.
    pub fn source(&self) -> MetricSource {
        self.meta.source
    }
    /// Seconds, ascending.
    pub fn timestamps(&self) -> &'a [i64] {
        &self.store.p_ts[self.meta.start as usize..self.meta.end as usize]
    }
    /// The values, one per timestamp of [`SeriesRef::timestamps`].
    pub fn values(&self) -> &'a [f64] {
        &self.store.p_val[self.meta.start as usize..self.meta.end as usize]
    }
    /// Samples in the series.
    pub fn len(&self) -> usize {
        (self.meta.end - self.meta.start) as usize
    }
    /// Whether the series has no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Borrowed view of one log record.
#[derive(Debug, Clone, Copy)]
pub struct LogRef<'a> {
    store: &'a TelemetryStore,
    i: u32,
}

impl<'a> LogRef<'a> {
    /// The row's id.
    pub fn log_id(&self) -> &'a str {
        self.store.log_id.get(self.i as usize)
    }
    /// Seconds since the epoch.
    pub fn timestamp(&self) -> i64 {
        self.store.l_ts[self.i as usize]
    }
    /// The pod that wrote the line.
    pub fn cmdb_id(&self) -> &'a str {
        self.store.names.get(self.store.l_cmdb[self.i as usize])
    }
    /// The log's name (`log_cartservice-service_application`...).
    pub fn log_name(&self) -> &'a str {
        self.store.names.get(self.store.l_name[self.i as usize])
    }
    /// The line itself.
    pub fn value(&self) -> &'a str {
        self.store.l_value.get(self.i as usize)
    }
    /// The log as an owned row.
    pub fn to_record(&self) -> LogRecord {
        LogRecord {
            log_id: self.log_id().to_string(),
            timestamp: self.timestamp(),
            cmdb_id: self.cmdb_id().to_string(),
            log_name: self.log_name().to_string(),
            value: self.value().to_string(),
        }
    }
}
