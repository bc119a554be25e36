//! [`StoreBuilder`]: rows in, indexes out.

use super::index::{Groups, counting_sort, hex_keys, resolve_generic, resolve_hex};
use super::{NO_PARENT, ORPHAN, SeriesMeta, TelemetryStore};
use crate::strings::{FxHashMap, PoolBuilder, StrColumn};
use crate::topology::Observed;
use rayon::prelude::*;
use thinkfl_core::{Dataset, FaultCase, MetricSource, Span, Topology};

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
    /// Start, ms since the epoch.
    pub timestamp: i64,
    /// The pod that emitted the span.
    pub cmdb_id: &'a str,
    /// The span's id.
    pub span_id: &'a str,
    /// The trace's id.
    pub trace_id: &'a str,
    /// Duration in µs.
    pub duration: i64,
    /// `http`, `rpc`, `db`... as in the data.
    pub kind: &'a str,
    /// The status code as written.
    pub status_code: &'a str,
    /// The operation name.
    pub operation_name: &'a str,
    /// The parent's span id; empty for a root.
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
    /// An empty builder.
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

    /// Appends one span row, interning its strings.
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

    /// Whether nothing was pushed yet.
    fn is_empty(&self) -> bool {
        self.names.len() == 0
            && self.traces.len() == 0
            && self.ts.is_empty()
            && self.m_ts.is_empty()
            && self.l_ts.is_empty()
            && self.faults.is_empty()
            && self.topology.is_none()
    }

    /// Appends every row of `other` after this builder's own, re-interning its strings, so
    /// that the result is the builder that would have taken both's rows in turn.
    pub(crate) fn append(&mut self, other: StoreBuilder) {
        if self.is_empty() {
            *self = other;
            return;
        }
        let names: Vec<u32> = (0..other.names.len() as u32)
            .map(|s| self.names.intern(other.names.get_bytes(s)))
            .collect();
        let traces: Vec<u32> = (0..other.traces.len() as u32)
            .map(|s| self.traces.intern(other.traces.get_bytes(s)))
            .collect();
        let series: Vec<u32> = other
            .series_list
            .iter()
            .map(|&(c, k, src)| {
                let key = (names[c as usize], names[k as usize], src);
                let next = self.series_list.len() as u32;
                let sid = *self.series_keys.entry(key).or_insert(next);
                if sid == next {
                    self.series_list.push(key);
                }
                sid
            })
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
            m_series,
            m_ts,
            m_val,
            log_id,
            l_ts,
            l_cmdb,
            l_name,
            l_value,
            faults,
            topology,
            ..
        } = self;
        let remap = |dst: &mut Vec<u32>, src: &[u32], map: &[u32]| {
            dst.reserve_exact(src.len());
            dst.extend(src.iter().map(|&s| map[s as usize]));
        };
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
                sc.spawn(move |_| remap(dst, src, names));
            }
            sc.spawn(|_| remap(trace, &other.trace, &traces));
            sc.spawn(|_| span_id.append_owned(other.span_id));
            sc.spawn(|_| parent_text.append_owned(other.parent_text));
            sc.spawn(|_| {
                remap(m_series, &other.m_series, &series);
                m_ts.extend_from_slice(&other.m_ts);
                m_val.extend_from_slice(&other.m_val);
            });
            sc.spawn(|_| {
                log_id.append_owned(other.log_id);
                l_ts.extend_from_slice(&other.l_ts);
                remap(l_cmdb, &other.l_cmdb, &names);
                remap(l_name, &other.l_name, &names);
                l_value.append_owned(other.l_value);
            });
        });
        faults.extend(other.faults);
        if other.topology.is_some() {
            *topology = other.topology;
        }
    }

    /// Appends one metric sample; the series (cmdb_id, kpi, source) is created on its first
    /// sample. Samples need not arrive in time order: `finish` sorts each series.
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

    /// Appends one log line.
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

    /// Appends one ground-truth row (the store keeps them sorted by time).
    pub fn push_fault(&mut self, f: FaultCase) {
        self.faults.push(f);
    }

    /// Sets the data set's topology; `None` makes [`StoreBuilder::finish`] derive one from the
    /// spans, metrics and logs.
    pub fn set_topology(&mut self, t: Option<Topology>) {
        self.topology = t;
    }

    /// Spans pushed so far.
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
            ts: ts.into(),
            dur: dur.into(),
            cmdb: cmdb.into(),
            kind: kind.into(),
            status: status.into(),
            op: op.into(),
            span_id,
            trace: trace.into(),
            parent: parent.into(),
            by_id: by_id.into(),
            time: time.into(),
            by_cmdb: by_cmdb.into(),
            by_trace: by_trace.into(),
            trace_starts: trace_starts.into(),
            by_parent: by_parent.into(),
            roots: roots.into(),
            series,
            p_ts: p_ts.into(),
            p_val: p_val.into(),
            log_id,
            l_ts: l_ts.into(),
            l_cmdb: l_cmdb.into(),
            l_name: l_name.into(),
            l_value,
            logs_by_cmdb: logs_by_cmdb.into(),
            faults,
            topology: Topology::default(),
            topology_derived: topology.is_none(),
            mapped: 0,
        };
        store.topology = match topology {
            Some(t) => t,
            None => derive_topology(&store),
        };
        store
    }
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
}

/// The topology of a store without `topology.json`, from its components (see
/// [`crate::topology`]).
fn derive_topology(store: &TelemetryStore) -> Topology {
    let mut o = Observed::new();
    for name in store.span_components() {
        o.component(name);
    }
    for name in store.log_components() {
        o.component(name);
    }
    for s in store.all_series() {
        o.series(s.cmdb_id(), s.source());
    }
    for f in store.faults() {
        o.fault(f);
    }
    for (caller, callee) in store.caller_callee_components() {
        o.call(caller, callee);
    }
    o.finish()
}
