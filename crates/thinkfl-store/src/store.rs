//! [`TelemetryStore`]: spans, metric series and logs in columns, with interned strings and
//! sorted index arrays (DESIGN.md 4.3). Built once by [`StoreBuilder`], immutable afterwards,
//! `Send + Sync`.
//!
//! Every index is a permutation of row numbers sorted by a key and then by (timestamp, row), so a
//! range query is two binary searches and its answer comes out in (timestamp, file order).

use crate::strings::{FxHashMap, Pool, PoolBuilder, StrColumn};
use crate::topology::derive_topology;
use rayon::prelude::*;
use thinkfl_core::{
    Component, Dataset, FaultCase, Level, LogRecord, MetricPoint, MetricSource, Span, Topology,
    pod_node_from_container_id, service_of,
};

/// Index of a span inside the store (dense, `0..span_count()`), in file order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanIdx(pub u32);

/// `parent` code of a span without a parent.
const NO_PARENT: u32 = u32::MAX;
/// Bit set in a `parent` code whose parent span is absent from the data; the rest is the symbol
/// of the parent's id in the name pool.
const ORPHAN: u32 = 1 << 31;

/// Rows of a store being built. Readers push borrowed fields; nothing is allocated per row
/// except when a new distinct string is interned.
#[derive(Debug, Default)]
pub struct StoreBuilder {
    names: PoolBuilder,
    traces: PoolBuilder,
    // spans
    ts: Vec<i64>,
    dur: Vec<i64>,
    cmdb: Vec<u32>,
    kind: Vec<u32>,
    status: Vec<u32>,
    op: Vec<u32>,
    span_id: StrColumn,
    trace: Vec<u32>,
    parent_text: StrColumn,
    // metrics
    series_keys: FxHashMap<(u32, u32, MetricSource), u32>,
    series_list: Vec<(u32, u32, MetricSource)>,
    m_series: Vec<u32>,
    m_ts: Vec<i64>,
    m_val: Vec<f64>,
    // logs
    log_id: StrColumn,
    l_ts: Vec<i64>,
    l_cmdb: Vec<u32>,
    l_name: Vec<u32>,
    l_value: StrColumn,
    faults: Vec<FaultCase>,
    topology: Option<Topology>,
}

/// The fields of one span row, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct SpanFields<'a> {
    pub timestamp: i64,
    pub cmdb_id: &'a str,
    pub span_id: &'a str,
    pub trace_id: &'a str,
    pub duration: i64,
    pub kind: &'a str,
    pub status_code: &'a str,
    pub operation_name: &'a str,
    pub parent_span: &'a str,
}

impl<'a> From<&'a Span> for SpanFields<'a> {
    fn from(s: &'a Span) -> Self {
        SpanFields {
            timestamp: s.timestamp,
            cmdb_id: &s.cmdb_id,
            span_id: &s.span_id,
            trace_id: &s.trace_id,
            duration: s.duration,
            kind: &s.kind,
            status_code: &s.status_code,
            operation_name: &s.operation_name,
            parent_span: &s.parent_span,
        }
    }
}

impl StoreBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves room for `n` more spans.
    pub fn reserve_spans(&mut self, n: usize) {
        self.ts.reserve(n);
        self.dur.reserve(n);
        self.cmdb.reserve(n);
        self.kind.reserve(n);
        self.status.reserve(n);
        self.op.reserve(n);
        self.trace.reserve(n);
    }

    pub fn push_span(&mut self, s: SpanFields<'_>) {
        self.ts.push(s.timestamp);
        self.dur.push(s.duration);
        self.cmdb.push(self.names.intern(s.cmdb_id.as_bytes()));
        self.kind.push(self.names.intern(s.kind.as_bytes()));
        self.status
            .push(self.names.intern(s.status_code.as_bytes()));
        self.op.push(self.names.intern(s.operation_name.as_bytes()));
        self.span_id.push(s.span_id.as_bytes());
        self.trace.push(self.traces.intern(s.trace_id.as_bytes()));
        self.parent_text.push(s.parent_span.as_bytes());
    }

    /// Appends the spans of `other` (a builder that holds spans only), re-interning its
    /// strings.
    pub(crate) fn append_spans(&mut self, other: StoreBuilder) {
        debug_assert!(other.m_ts.is_empty() && other.l_ts.is_empty());
        let names: Vec<u32> = (0..other.names.len() as u32)
            .map(|s| self.names.intern(other.names.get_bytes(s)))
            .collect();
        let traces: Vec<u32> = (0..other.traces.len() as u32)
            .map(|s| self.traces.intern(other.traces.get_bytes(s)))
            .collect();
        let n = other.ts.len();
        let StoreBuilder {
            ts,
            dur,
            cmdb,
            kind,
            status,
            op,
            span_id,
            trace,
            parent_text,
            ..
        } = self;
        // Column by column in parallel: the copies are the cost of a chunked parse.
        rayon::scope(|sc| {
            sc.spawn(|_| {
                ts.reserve_exact(n);
                ts.extend_from_slice(&other.ts);
            });
            sc.spawn(|_| {
                dur.reserve_exact(n);
                dur.extend_from_slice(&other.dur);
            });
            for (dst, src) in [
                (cmdb, &other.cmdb),
                (kind, &other.kind),
                (status, &other.status),
                (op, &other.op),
            ] {
                let names = &names;
                sc.spawn(move |_| {
                    dst.reserve_exact(n);
                    dst.extend(src.iter().map(|&s| names[s as usize]));
                });
            }
            sc.spawn(|_| {
                trace.reserve_exact(n);
                trace.extend(other.trace.iter().map(|&t| traces[t as usize]));
            });
            sc.spawn(|_| span_id.append_owned(other.span_id));
            sc.spawn(|_| parent_text.append_owned(other.parent_text));
        });
    }

    pub fn push_metric(
        &mut self,
        timestamp: i64,
        cmdb_id: &str,
        kpi: &str,
        value: f64,
        source: MetricSource,
    ) {
        let c = self.names.intern(cmdb_id.as_bytes());
        let k = self.names.intern(kpi.as_bytes());
        let next = self.series_list.len() as u32;
        let sid = *self.series_keys.entry((c, k, source)).or_insert(next);
        if sid == next {
            self.series_list.push((c, k, source));
        }
        self.m_series.push(sid);
        self.m_ts.push(timestamp);
        self.m_val.push(value);
    }

    pub fn push_log(
        &mut self,
        log_id: &str,
        timestamp: i64,
        cmdb_id: &str,
        name: &str,
        value: &str,
    ) {
        self.log_id.push(log_id.as_bytes());
        self.l_ts.push(timestamp);
        self.l_cmdb.push(self.names.intern(cmdb_id.as_bytes()));
        self.l_name.push(self.names.intern(name.as_bytes()));
        self.l_value.push(value.as_bytes());
    }

    pub fn push_fault(&mut self, f: FaultCase) {
        self.faults.push(f);
    }

    pub fn set_topology(&mut self, t: Option<Topology>) {
        self.topology = t;
    }

    pub fn span_count(&self) -> usize {
        self.ts.len()
    }

    /// Builds every index.
    pub fn finish(self) -> TelemetryStore {
        let StoreBuilder {
            mut names,
            traces,
            ts,
            dur,
            cmdb,
            kind,
            status,
            op,
            mut span_id,
            trace,
            parent_text,
            series_keys: _,
            series_list,
            m_series,
            m_ts,
            m_val,
            mut log_id,
            l_ts,
            l_cmdb,
            l_name,
            mut l_value,
            mut faults,
            topology,
        } = self;
        let n = ts.len();
        assert!(n < ORPHAN as usize, "too many spans for one store");
        span_id.shrink_to_fit();

        // Time order: (timestamp, row).
        let time: Vec<u32> = if ts.windows(2).all(|w| w[0] <= w[1]) {
            (0..n as u32).collect()
        } else {
            let mut p: Vec<(i64, u32)> = ts.par_iter().copied().zip(0..n as u32).collect();
            p.par_sort_unstable();
            p.into_iter().map(|(_, i)| i).collect()
        };
        // Stable re-sorts of the time order give (key, timestamp, row).
        let by_cmdb = counting_sort(&time, &cmdb, names.len());
        let (by_trace, trace_starts) = {
            let p = counting_sort(&time, &trace, traces.len());
            let mut starts = vec![0u32; traces.len() + 1];
            for &i in &trace {
                starts[i as usize + 1] += 1;
            }
            for k in 1..starts.len() {
                starts[k] += starts[k - 1];
            }
            (p, starts)
        };

        // span_id -> rows sorted by (id bytes, row), and parents resolved to the first row
        // carrying the parent's id.
        let (by_id, parent) = match hex_keys(&span_id) {
            Some(keys) => resolve_hex(
                &keys,
                &parent_text,
                Groups {
                    rows: &by_trace,
                    starts: &trace_starts,
                    of: &trace,
                },
                &mut names,
            ),
            None => resolve_generic(&span_id, &parent_text, &mut names),
        };
        drop(parent_text);
        let names = names.finish();
        let traces = traces.finish();

        // Children: rows with a parent in the data by (parent row, timestamp, row), then rows
        // with a missing parent by (parent id symbol | ORPHAN, timestamp, row).
        let mut by_parent = {
            let resolved: Vec<u32> = time
                .iter()
                .copied()
                .filter(|&i| parent[i as usize] & ORPHAN == 0)
                .collect();
            counting_sort(&resolved, &parent, n)
        };
        let mut orphans: Vec<u32> = time
            .iter()
            .copied()
            .filter(|&i| {
                let p = parent[i as usize];
                p != NO_PARENT && p & ORPHAN != 0
            })
            .collect();
        orphans.sort_by_key(|&i| parent[i as usize]);
        by_parent.extend_from_slice(&orphans);
        let roots: Vec<u32> = time
            .iter()
            .copied()
            .filter(|&i| {
                let p = parent[i as usize];
                p == NO_PARENT || p & ORPHAN != 0
            })
            .collect();

        // Metric series, sorted by (cmdb_id, kpi, source); points by (timestamp, file order).
        let mut order: Vec<u32> = (0..series_list.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (ca, ka, sa) = series_list[a as usize];
            let (cb, kb, sb) = series_list[b as usize];
            (names.get(ca), names.get(ka), sa).cmp(&(names.get(cb), names.get(kb), sb))
        });
        let mut rank = vec![0u32; series_list.len()];
        for (r, &s) in order.iter().enumerate() {
            rank[s as usize] = r as u32;
        }
        let ranked: Vec<u32> = m_series.iter().map(|&s| rank[s as usize]).collect();
        let rows: Vec<u32> = (0..ranked.len() as u32).collect();
        let mut point_rows = counting_sort(&rows, &ranked, series_list.len());
        let mut series = Vec::with_capacity(series_list.len());
        let mut start = 0usize;
        for (r, &s) in order.iter().enumerate() {
            let mut end = start;
            while end < point_rows.len() && ranked[point_rows[end] as usize] == r as u32 {
                end += 1;
            }
            point_rows[start..end].sort_by_key(|&i| m_ts[i as usize]);
            let (c, k, src) = series_list[s as usize];
            series.push(SeriesMeta {
                cmdb: c,
                kpi: k,
                source: src,
                start: start as u32,
                end: end as u32,
            });
            start = end;
        }
        let p_ts: Vec<i64> = point_rows.iter().map(|&i| m_ts[i as usize]).collect();
        let p_val: Vec<f64> = point_rows.iter().map(|&i| m_val[i as usize]).collect();

        // Logs by (cmdb, timestamp, row).
        let mut l_time: Vec<u32> = (0..l_ts.len() as u32).collect();
        l_time.sort_by_key(|&i| l_ts[i as usize]);
        let logs_by_cmdb = counting_sort(&l_time, &l_cmdb, names.len());
        log_id.shrink_to_fit();
        l_value.shrink_to_fit();

        faults.sort_by_key(|f| f.timestamp);

        let mut store = TelemetryStore {
            names,
            traces,
            ts,
            dur,
            cmdb,
            kind,
            status,
            op,
            span_id,
            trace,
            parent,
            by_id,
            time,
            by_cmdb,
            by_trace,
            trace_starts,
            by_parent,
            roots,
            series,
            p_ts,
            p_val,
            log_id,
            l_ts,
            l_cmdb,
            l_name,
            l_value,
            logs_by_cmdb,
            faults,
            topology: Topology::default(),
            topology_derived: topology.is_none(),
        };
        store.topology = match topology {
            Some(t) => t,
            None => derive_topology(&store),
        };
        store
    }
}

/// Every span id as a `u64` when all of them are 16 lowercase hex digits (the data's ids); the
/// keys' order is then the ids' byte order.
fn hex_keys(ids: &StrColumn) -> Option<Vec<u64>> {
    (0..ids.len())
        .into_par_iter()
        .map(|i| hex16(ids.get_bytes(i)))
        .collect()
}

/// Rows grouped by trace: `rows[starts[t]..starts[t + 1]]` are the rows of trace `t`, and
/// `of[row]` is the trace of a row.
#[derive(Clone, Copy)]
struct Groups<'a> {
    rows: &'a [u32],
    starts: &'a [u32],
    of: &'a [u32],
}

/// Traces longer than this resolve parents by binary search rather than by scanning the trace.
const SCAN_LIMIT: usize = 64;

/// [`resolve_generic`] for hex ids, using that a parent is nearly always in its child's trace:
/// one parallel sort of (id, row) for `by_id`, then each span looks for its parent among the
/// spans of its own trace, and only the rest search the whole sorted id list.
fn resolve_hex(
    keys: &[u64],
    parent_text: &StrColumn,
    groups: Groups<'_>,
    names: &mut PoolBuilder,
) -> (Vec<u32>, Vec<u32>) {
    let n = keys.len();
    let mut ids: Vec<(u64, u32)> = keys.par_iter().copied().zip(0..n as u32).collect();
    ids.par_sort_unstable();
    // Ids that occur more than once: their first row, which a trace-local match may not be.
    let mut first_of_dup: FxHashMap<u64, u32> = FxHashMap::default();
    for w in ids.windows(2) {
        if w[0].0 == w[1].0 {
            first_of_dup.entry(w[0].0).or_insert(w[0].1);
        }
    }
    let global = |key: u64| -> Option<u32> {
        let k = ids.partition_point(|&(x, _)| x < key);
        ids.get(k).filter(|&&(x, _)| x == key).map(|&(_, r)| r)
    };
    // Resolved parent per position of `groups.rows`; NO_PARENT for a root, ORPHAN for "look
    // up the text later".
    let local: Vec<u32> = groups
        .rows
        .par_iter()
        .map(|&r| {
            let text = parent_text.get_bytes(r as usize);
            if text.is_empty() {
                return NO_PARENT;
            }
            let Some(pk) = hex16(text) else {
                return ORPHAN; // not an id of the data
            };
            let t = groups.of[r as usize] as usize;
            let members = &groups.rows[groups.starts[t] as usize..groups.starts[t + 1] as usize];
            let found = if members.len() <= SCAN_LIMIT {
                members
                    .iter()
                    .copied()
                    .filter(|&q| keys[q as usize] == pk)
                    .min()
                    .or_else(|| global(pk))
            } else {
                global(pk)
            };
            match found {
                Some(q) if first_of_dup.is_empty() => q,
                Some(q) => first_of_dup.get(&pk).copied().unwrap_or(q),
                None => ORPHAN,
            }
        })
        .collect();
    let mut parent = vec![NO_PARENT; n];
    for (&r, &code) in groups.rows.iter().zip(&local) {
        parent[r as usize] = if code == ORPHAN {
            ORPHAN | names.intern(parent_text.get_bytes(r as usize))
        } else {
            code
        };
    }
    (ids.into_iter().map(|(_, i)| i).collect(), parent)
}

/// Rows sorted by (span id bytes, row), and each row's parent code: the first row carrying the
/// parent's id, [`NO_PARENT`], or [`ORPHAN`] | the interned parent id.
fn resolve_generic(
    span_id: &StrColumn,
    parent_text: &StrColumn,
    names: &mut PoolBuilder,
) -> (Vec<u32>, Vec<u32>) {
    let n = span_id.len();
    let mut by_id: Vec<u32> = (0..n as u32).collect();
    // A stable sort: equal ids stay in row order.
    by_id.par_sort_by(|&a, &b| {
        span_id
            .get_bytes(a as usize)
            .cmp(span_id.get_bytes(b as usize))
    });
    let resolved: Vec<Option<u32>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let p = parent_text.get_bytes(i);
            if p.is_empty() {
                Some(NO_PARENT)
            } else {
                find_first(&by_id, span_id, p)
            }
        })
        .collect();
    let parent = resolved
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| ORPHAN | names.intern(parent_text.get_bytes(i))))
        .collect();
    (by_id, parent)
}

/// Value of each byte as a lowercase hex digit, 0xff for anything else.
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Parses exactly 16 lowercase hex digits. Branch-free over the digits: this runs twice per
/// span in a load.
#[inline]
pub(crate) fn hex16(b: &[u8]) -> Option<u64> {
    let b: &[u8; 16] = b.try_into().ok()?;
    let mut v = 0u64;
    let mut bad = 0u8;
    for &c in b {
        let d = HEX[c as usize];
        bad |= d;
        v = (v << 4) | (d & 0x0f) as u64;
    }
    (bad & 0xf0 == 0).then_some(v)
}

#[cfg(test)]
mod hex_tests {
    #[test]
    fn hex16_takes_exactly_16_lowercase_hex_digits() {
        assert_eq!(
            super::hex16(b"d1b3f238e544e3f0"),
            Some(0xd1b3_f238_e544_e3f0)
        );
        assert_eq!(super::hex16(b"0000000000000000"), Some(0));
        assert_eq!(super::hex16(b"ffffffffffffffff"), Some(u64::MAX));
        for bad in [
            &b"D1b3f238e544e3f0"[..],
            b"d1b3f238e544e3f",
            b"d1b3f238e544e3f0a",
            b"g1b3f238e544e3f0",
            b"",
        ] {
            assert_eq!(super::hex16(bad), None, "{bad:?}");
        }
    }
}

/// First row (lowest row number) whose id is `id`.
fn find_first(by_id: &[u32], ids: &StrColumn, id: &[u8]) -> Option<u32> {
    let k = by_id.partition_point(|&r| ids.get_bytes(r as usize) < id);
    by_id
        .get(k)
        .copied()
        .filter(|&r| ids.get_bytes(r as usize) == id)
}

/// Stable counting sort of `rows` by `key[row]` in `0..buckets`.
fn counting_sort(rows: &[u32], key: &[u32], buckets: usize) -> Vec<u32> {
    let mut starts = vec![0u32; buckets + 1];
    for &r in rows {
        starts[key[r as usize] as usize + 1] += 1;
    }
    for k in 1..starts.len() {
        starts[k] += starts[k - 1];
    }
    let mut out = vec![0u32; rows.len()];
    for &r in rows {
        let slot = &mut starts[key[r as usize] as usize];
        out[*slot as usize] = r;
        *slot += 1;
    }
    out
}

#[derive(Debug, Clone, Copy)]
struct SeriesMeta {
    cmdb: u32,
    kpi: u32,
    source: MetricSource,
    start: u32,
    end: u32,
}

/// The store. See the module documentation.
#[derive(Debug)]
pub struct TelemetryStore {
    names: Pool,
    traces: Pool,
    ts: Vec<i64>,
    dur: Vec<i64>,
    cmdb: Vec<u32>,
    kind: Vec<u32>,
    status: Vec<u32>,
    op: Vec<u32>,
    span_id: StrColumn,
    trace: Vec<u32>,
    /// Row of the parent span, [`NO_PARENT`], or [`ORPHAN`] | symbol of the missing parent's id.
    parent: Vec<u32>,
    by_id: Vec<u32>,
    time: Vec<u32>,
    by_cmdb: Vec<u32>,
    by_trace: Vec<u32>,
    trace_starts: Vec<u32>,
    /// Spans with a parent, by (parent code, timestamp, row).
    by_parent: Vec<u32>,
    roots: Vec<u32>,
    series: Vec<SeriesMeta>,
    p_ts: Vec<i64>,
    p_val: Vec<f64>,
    log_id: StrColumn,
    l_ts: Vec<i64>,
    l_cmdb: Vec<u32>,
    l_name: Vec<u32>,
    l_value: StrColumn,
    logs_by_cmdb: Vec<u32>,
    faults: Vec<FaultCase>,
    topology: Topology,
    topology_derived: bool,
}

/// Borrowed view of one span.
#[derive(Debug, Clone, Copy)]
pub struct SpanRef<'a> {
    store: &'a TelemetryStore,
    i: u32,
}

impl<'a> SpanRef<'a> {
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
    pub fn cmdb_id(&self) -> &'a str {
        self.store.names.get(self.store.cmdb[self.u()])
    }
    pub fn span_id(&self) -> &'a str {
        self.store.span_id.get(self.u())
    }
    pub fn trace_id(&self) -> &'a str {
        self.store.traces.get(self.store.trace[self.u()])
    }
    /// Duration in µs.
    pub fn duration(&self) -> i64 {
        self.store.dur[self.u()]
    }
    pub fn kind(&self) -> &'a str {
        self.store.names.get(self.store.kind[self.u()])
    }
    pub fn status_code(&self) -> &'a str {
        self.store.names.get(self.store.status[self.u()])
    }
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
    pub fn status_ok(&self) -> bool {
        thinkfl_core::telemetry::status_is_ok(self.status_code())
    }
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
    pub fn kpi(&self) -> &'a str {
        self.store.names.get(self.meta.kpi)
    }
    pub fn source(&self) -> MetricSource {
        self.meta.source
    }
    /// Seconds, ascending.
    pub fn timestamps(&self) -> &'a [i64] {
        &self.store.p_ts[self.meta.start as usize..self.meta.end as usize]
    }
    pub fn values(&self) -> &'a [f64] {
        &self.store.p_val[self.meta.start as usize..self.meta.end as usize]
    }
    pub fn len(&self) -> usize {
        (self.meta.end - self.meta.start) as usize
    }
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
    pub fn log_id(&self) -> &'a str {
        self.store.log_id.get(self.i as usize)
    }
    /// Seconds since the epoch.
    pub fn timestamp(&self) -> i64 {
        self.store.l_ts[self.i as usize]
    }
    pub fn cmdb_id(&self) -> &'a str {
        self.store.names.get(self.store.l_cmdb[self.i as usize])
    }
    pub fn log_name(&self) -> &'a str {
        self.store.names.get(self.store.l_name[self.i as usize])
    }
    pub fn value(&self) -> &'a str {
        self.store.l_value.get(self.i as usize)
    }
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

/// The range of `perm` (sorted by (key, timestamp, row)) with `key == k` and timestamp in
/// `[from, to)`.
fn key_time_range(
    perm: &[u32],
    key: &[u32],
    ts: &[i64],
    k: u32,
    from: i64,
    to: i64,
) -> (usize, usize) {
    let lo = perm.partition_point(|&i| (key[i as usize], ts[i as usize]) < (k, from));
    let hi = perm.partition_point(|&i| (key[i as usize], ts[i as usize]) < (k, to));
    (lo, hi.max(lo))
}

impl TelemetryStore {
    /// Builds every index; derives the topology when the data set has none.
    pub fn from_dataset(ds: Dataset) -> Self {
        let mut b = StoreBuilder::new();
        b.reserve_spans(ds.spans.len());
        for s in &ds.spans {
            b.push_span(s.into());
        }
        for m in &ds.metrics {
            b.push_metric(m.timestamp, &m.cmdb_id, &m.kpi_name, m.value, m.source);
        }
        for l in &ds.logs {
            b.push_log(&l.log_id, l.timestamp, &l.cmdb_id, &l.log_name, &l.value);
        }
        for f in ds.faults {
            b.push_fault(f);
        }
        b.set_topology(ds.topology);
        b.finish()
    }

    pub fn span_count(&self) -> usize {
        self.ts.len()
    }

    pub fn trace_count(&self) -> usize {
        self.traces.len()
    }

    pub fn span(&self, i: SpanIdx) -> SpanRef<'_> {
        assert!(
            (i.0 as usize) < self.span_count(),
            "span index out of range"
        );
        SpanRef {
            store: self,
            i: i.0,
        }
    }

    fn sref(&self, i: u32) -> SpanRef<'_> {
        SpanRef { store: self, i }
    }

    /// Every span in file order.
    pub fn spans(&self) -> impl Iterator<Item = SpanRef<'_>> {
        (0..self.span_count() as u32).map(move |i| self.sref(i))
    }

    /// The first span (in file order) with this id.
    pub fn span_by_id(&self, span_id: &str) -> Option<SpanRef<'_>> {
        find_first(&self.by_id, &self.span_id, span_id.as_bytes()).map(|i| self.sref(i))
    }

    /// Every span with this id (ids repeat in some real data), in file order.
    pub fn spans_by_id(&self, span_id: &str) -> impl Iterator<Item = SpanRef<'_>> {
        let id = span_id.as_bytes();
        let lo = self
            .by_id
            .partition_point(|&r| self.span_id.get_bytes(r as usize) < id);
        let hi = self
            .by_id
            .partition_point(|&r| self.span_id.get_bytes(r as usize) <= id);
        self.by_id[lo..hi].iter().map(move |&i| self.sref(i))
    }

    /// Direct children of a span (spans whose `parent_span` is `span_id`), in (timestamp, file
    /// order).
    pub fn children(&self, span_id: &str) -> impl Iterator<Item = SpanRef<'_>> {
        let code = match find_first(&self.by_id, &self.span_id, span_id.as_bytes()) {
            Some(i) => Some(i),
            None => self.names.lookup(span_id).map(|s| s | ORPHAN),
        };
        let range = match code {
            Some(c) => {
                let lo = self
                    .by_parent
                    .partition_point(|&i| self.parent[i as usize] < c);
                let hi = self
                    .by_parent
                    .partition_point(|&i| self.parent[i as usize] <= c);
                lo..hi
            }
            None => 0..0,
        };
        self.by_parent[range].iter().map(move |&i| self.sref(i))
    }

    /// Spans of a trace in (timestamp, file order).
    pub fn trace(&self, trace_id: &str) -> impl Iterator<Item = SpanRef<'_>> {
        let range = match self.traces.lookup(trace_id) {
            Some(t) => {
                self.trace_starts[t as usize] as usize..self.trace_starts[t as usize + 1] as usize
            }
            None => 0..0,
        };
        self.by_trace[range].iter().map(move |&i| self.sref(i))
    }

    /// Trace ids in order of first appearance.
    pub fn trace_ids(&self) -> impl Iterator<Item = &str> {
        (0..self.traces.len() as u32).map(move |t| self.traces.get(t))
    }

    /// Root spans (empty `parent_span`, or parent absent from the data) in time order.
    pub fn roots(&self) -> impl Iterator<Item = SpanRef<'_>> {
        self.roots.iter().map(move |&i| self.sref(i))
    }

    /// Spans emitted by a pod (`cmdb_id` exactly) with timestamp in `[from_ms, to_ms)`.
    pub fn spans_of(
        &self,
        cmdb_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> impl Iterator<Item = SpanRef<'_>> {
        let range = match self.names.lookup(cmdb_id) {
            Some(k) => {
                let (lo, hi) =
                    key_time_range(&self.by_cmdb, &self.cmdb, &self.ts, k, from_ms, to_ms);
                lo..hi
            }
            None => 0..0,
        };
        self.by_cmdb[range].iter().map(move |&i| self.sref(i))
    }

    /// Every span in `[from_ms, to_ms)`, time order.
    pub fn spans_between(&self, from_ms: i64, to_ms: i64) -> impl Iterator<Item = SpanRef<'_>> {
        let lo = self
            .time
            .partition_point(|&i| self.ts[i as usize] < from_ms);
        let hi = self
            .time
            .partition_point(|&i| self.ts[i as usize] < to_ms)
            .max(lo);
        self.time[lo..hi].iter().map(move |&i| self.sref(i))
    }

    /// Distinct (parent span's `cmdb_id`, child span's `cmdb_id`) pairs, sorted.
    pub fn caller_callee_components(&self) -> Vec<(&str, &str)> {
        let pairs: std::collections::HashSet<(u32, u32), crate::strings::FxBuild> = (0..self
            .span_count())
            .into_par_iter()
            .fold(
                std::collections::HashSet::default,
                |mut set: std::collections::HashSet<(u32, u32), crate::strings::FxBuild>, i| {
                    let p = self.parent[i];
                    if p & ORPHAN == 0 {
                        set.insert((self.cmdb[p as usize], self.cmdb[i]));
                    }
                    set
                },
            )
            .reduce(std::collections::HashSet::default, |mut a, b| {
                a.extend(b);
                a
            });
        let mut out: Vec<(&str, &str)> = pairs
            .into_iter()
            .map(|(a, b)| (self.names.get(a), self.names.get(b)))
            .collect();
        out.sort_unstable();
        out
    }

    /// Distinct span `cmdb_id`s, sorted.
    pub fn span_components(&self) -> Vec<&str> {
        let mut seen = vec![false; self.names.len()];
        for &c in &self.cmdb {
            seen[c as usize] = true;
        }
        let mut out: Vec<&str> = (0..seen.len())
            .filter(|&c| seen[c])
            .map(|c| self.names.get(c as u32))
            .collect();
        out.sort_unstable();
        out
    }

    /// One metric series by the `cmdb_id` as written in the data and the kpi name.
    pub fn series(&self, cmdb_id: &str, kpi: &str) -> Option<SeriesRef<'_>> {
        let k = (cmdb_id, kpi);
        let i = self
            .series
            .partition_point(|m| (self.names.get(m.cmdb), self.names.get(m.kpi)) < k);
        self.series
            .get(i)
            .filter(|m| (self.names.get(m.cmdb), self.names.get(m.kpi)) == k)
            .map(|&meta| SeriesRef { store: self, meta })
    }

    /// Every series, sorted by (cmdb_id, kpi, source).
    pub fn all_series(&self) -> impl Iterator<Item = SeriesRef<'_>> {
        self.series
            .iter()
            .map(move |&meta| SeriesRef { store: self, meta })
    }

    /// Every series attached to a component name: a pod (container series `node-X.<pod>`,
    /// istio series whose first segment is the pod, and series with the pod's exact name), a
    /// node (`node-X` rows), or a service (service metrics `<svc>-grpc`/`<svc>` and the series
    /// of its pods). Sorted by (cmdb_id, kpi).
    pub fn series_of(&self, component: &str) -> Vec<SeriesRef<'_>> {
        let c = Component::classify(component);
        self.all_series()
            .filter(|s| series_belongs(s.cmdb_id(), s.source(), &c))
            .collect()
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    pub fn point_count(&self) -> usize {
        self.p_ts.len()
    }

    /// Logs of a pod (exact `cmdb_id`) with timestamp in `[from_s, to_s)`, time order.
    pub fn logs_of(
        &self,
        cmdb_id: &str,
        from_s: i64,
        to_s: i64,
    ) -> impl Iterator<Item = LogRef<'_>> {
        let range = match self.names.lookup(cmdb_id) {
            Some(k) => {
                let (lo, hi) = key_time_range(
                    &self.logs_by_cmdb,
                    &self.l_cmdb,
                    &self.l_ts,
                    k,
                    from_s,
                    to_s,
                );
                lo..hi
            }
            None => 0..0,
        };
        self.logs_by_cmdb[range]
            .iter()
            .map(move |&i| LogRef { store: self, i })
    }

    /// Every log in file order.
    pub fn logs(&self) -> impl Iterator<Item = LogRef<'_>> {
        (0..self.l_ts.len() as u32).map(move |i| LogRef { store: self, i })
    }

    /// Distinct log `cmdb_id`s, sorted.
    pub fn log_components(&self) -> Vec<&str> {
        let mut seen = vec![false; self.names.len()];
        for &c in &self.l_cmdb {
            seen[c as usize] = true;
        }
        let mut out: Vec<&str> = (0..seen.len())
            .filter(|&c| seen[c])
            .map(|c| self.names.get(c as u32))
            .collect();
        out.sort_unstable();
        out
    }

    pub fn log_count(&self) -> usize {
        self.l_ts.len()
    }

    pub fn faults(&self) -> &[FaultCase] {
        &self.faults
    }

    /// Read from `topology.json` or derived from the data.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Whether [`Self::topology`] was derived (no `topology.json`).
    pub fn topology_derived(&self) -> bool {
        self.topology_derived
    }

    /// (min, max) over all rows (spans, metric points, logs, fault cases), in seconds; `None`
    /// for an empty store.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let mut lo = i64::MAX;
        let mut hi = i64::MIN;
        if let (Some(&a), Some(&b)) = (self.time.first(), self.time.last()) {
            lo = lo.min(self.ts[a as usize].div_euclid(1000));
            hi = hi.max(self.ts[b as usize].div_euclid(1000));
        }
        for &t in self.p_ts.iter().chain(&self.l_ts) {
            lo = lo.min(t);
            hi = hi.max(t);
        }
        for f in &self.faults {
            lo = lo.min(f.timestamp);
            hi = hi.max(f.timestamp);
        }
        (lo <= hi).then_some((lo, hi))
    }

    /// The data set back in rows: spans and logs in file order, metrics series by series.
    /// `topology` is `Some` only when it was read, not derived.
    pub fn to_dataset(&self) -> Dataset {
        let mut metrics = Vec::with_capacity(self.point_count());
        for s in self.all_series() {
            for (&t, &v) in s.timestamps().iter().zip(s.values()) {
                metrics.push(MetricPoint {
                    timestamp: t,
                    cmdb_id: s.cmdb_id().to_string(),
                    kpi_name: s.kpi().to_string(),
                    value: v,
                    source: s.source(),
                });
            }
        }
        Dataset {
            spans: self.spans().map(|s| s.to_span()).collect(),
            metrics,
            logs: self.logs().map(|l| l.to_record()).collect(),
            faults: self.faults.clone(),
            topology: (!self.topology_derived).then(|| self.topology.clone()),
        }
    }

    /// Heap bytes held by the store's columns and indexes (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        fn v<T>(x: &Vec<T>) -> usize {
            x.capacity() * std::mem::size_of::<T>()
        }
        self.names.heap_bytes()
            + self.traces.heap_bytes()
            + v(&self.ts)
            + v(&self.dur)
            + v(&self.cmdb)
            + v(&self.kind)
            + v(&self.status)
            + v(&self.op)
            + self.span_id.heap_bytes()
            + v(&self.trace)
            + v(&self.parent)
            + v(&self.by_id)
            + v(&self.time)
            + v(&self.by_cmdb)
            + v(&self.by_trace)
            + v(&self.trace_starts)
            + v(&self.by_parent)
            + v(&self.roots)
            + v(&self.series)
            + v(&self.p_ts)
            + v(&self.p_val)
            + self.log_id.heap_bytes()
            + v(&self.l_ts)
            + v(&self.l_cmdb)
            + v(&self.l_name)
            + self.l_value.heap_bytes()
            + v(&self.logs_by_cmdb)
    }
}

/// Whether a series with this `cmdb_id` belongs to component `c` (see
/// [`TelemetryStore::series_of`]).
pub(crate) fn series_belongs(cmdb_id: &str, source: MetricSource, c: &Component) -> bool {
    let pod_of = |id: &str| -> Option<String> {
        match source {
            MetricSource::Container => pod_node_from_container_id(id).map(|(_, p)| p.to_string()),
            MetricSource::Istio => id.split('.').next().map(str::to_string),
            MetricSource::Node | MetricSource::Service => None,
        }
    };
    match c.level {
        Level::Node => cmdb_id == c.name,
        Level::Pod => cmdb_id == c.name || pod_of(cmdb_id).is_some_and(|p| p == c.name),
        Level::Service => {
            let svc = c.name.as_str();
            if source == MetricSource::Service {
                cmdb_id == svc || cmdb_id.strip_suffix("-grpc") == Some(svc)
            } else {
                cmdb_id == svc || pod_of(cmdb_id).is_some_and(|p| service_of(&p) == svc)
            }
        }
    }
}
