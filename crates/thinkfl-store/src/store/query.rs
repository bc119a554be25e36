//! The store's queries: spans by id, parent, trace, pod and time; series by component; logs
//! by pod and time; and the data set back in rows.

use super::index::{find_first, key_time_range};
use super::{LogRef, ORPHAN, SeriesRef, SpanIdx, SpanRef, TelemetryStore};
use rayon::prelude::*;
use thinkfl_core::{
    Component, Dataset, FaultCase, Level, MetricPoint, MetricSource, Topology,
    pod_node_from_container_id, service_of,
};

impl TelemetryStore {
    /// Spans in the store.
    pub fn span_count(&self) -> usize {
        self.ts.len()
    }

    /// Distinct trace ids.
    pub fn trace_count(&self) -> usize {
        self.traces.len()
    }

    /// The span at `i`.
    ///
    /// # Panics
    ///
    /// If `i` is not an index of this store.
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

    /// Series that belong to `component` (a name, classified by
    /// [`Component::classify`]): a node's own series; a pod's container and istio series; a
    /// service's `metric_service` rows (`<service>` or `<service>-grpc`) and the container and istio
    /// series of its pods.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Distinct metric series.
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

    /// Log lines in the store.
    pub fn log_count(&self) -> usize {
        self.l_ts.len()
    }

    /// Ground truth, sorted by fault start.
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
        self.names.heap_bytes()
            + self.traces.heap_bytes()
            + self.ts.heap_bytes()
            + self.dur.heap_bytes()
            + self.cmdb.heap_bytes()
            + self.kind.heap_bytes()
            + self.status.heap_bytes()
            + self.op.heap_bytes()
            + self.span_id.heap_bytes()
            + self.trace.heap_bytes()
            + self.parent.heap_bytes()
            + self.by_id.heap_bytes()
            + self.time.heap_bytes()
            + self.by_cmdb.heap_bytes()
            + self.by_trace.heap_bytes()
            + self.trace_starts.heap_bytes()
            + self.by_parent.heap_bytes()
            + self.roots.heap_bytes()
            + self.series.capacity() * std::mem::size_of::<super::SeriesMeta>()
            + self.p_ts.heap_bytes()
            + self.p_val.heap_bytes()
            + self.log_id.heap_bytes()
            + self.l_ts.heap_bytes()
            + self.l_cmdb.heap_bytes()
            + self.l_name.heap_bytes()
            + self.l_value.heap_bytes()
            + self.logs_by_cmdb.heap_bytes()
    }
}

/// Whether a series with this `cmdb_id` belongs to component `c` (see
/// [`TelemetryStore::series_of`]).
fn series_belongs(cmdb_id: &str, source: MetricSource, c: &Component) -> bool {
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
