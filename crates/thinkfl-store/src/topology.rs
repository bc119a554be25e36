//! Derives a [`Topology`] from the data when no `topology.json` comes with it, by the naming
//! rules of DESIGN.md 4.1: pods are the replica-suffixed `cmdb_id`s of spans, logs and container
//! metrics; a pod's service is [`service_of`]; placement comes from container metric ids
//! (`node-6.cartservice-2`); the call graph from parent/child spans of different services.
//!
//! The derivation reads components, not a store: [`Observed`] takes them one by one, so the
//! store feeds it from its indexes and a trace importer from its rows, without building a store
//! just to read its topology.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use thinkfl_core::{
    Component, FaultCase, Level, MetricSource, ServiceInfo, Span, Topology,
    pod_node_from_container_id, service_of,
};

/// The components seen in a data set, collected into a [`Topology`] by [`Observed::finish`].
/// The result does not depend on the order in which components are added.
#[derive(Debug, Default)]
pub struct Observed {
    services: BTreeMap<String, BTreeSet<String>>,
    nodes: BTreeSet<String>,
    placement: BTreeMap<String, String>,
    calls: BTreeSet<(String, String)>,
}

impl Observed {
    /// Nothing observed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A `cmdb_id` of a span or a log: a node, a service or a pod by its name.
    pub fn component(&mut self, name: &str) {
        let c = Component::classify(name);
        self.level(c.level, c.name);
    }

    fn level(&mut self, level: Level, name: String) {
        match level {
            Level::Node => {
                self.nodes.insert(name);
            }
            Level::Service => {
                self.services.entry(name).or_default();
            }
            Level::Pod => {
                self.services
                    .entry(service_of(&name).to_string())
                    .or_default()
                    .insert(name);
            }
        }
    }

    /// The `cmdb_id` of a metric series of this source.
    pub fn series(&mut self, cmdb_id: &str, source: MetricSource) {
        match source {
            MetricSource::Container => {
                if let Some((node, pod)) = pod_node_from_container_id(cmdb_id) {
                    self.component(pod);
                    self.nodes.insert(node.to_string());
                    self.placement.insert(pod.to_string(), node.to_string());
                }
            }
            MetricSource::Node => {
                self.nodes.insert(cmdb_id.to_string());
            }
            MetricSource::Service => {
                let svc = cmdb_id.strip_suffix("-grpc").unwrap_or(cmdb_id);
                self.services.entry(svc.to_string()).or_default();
            }
            // Istio ids name both ends of a connection; their pods also appear in spans.
            MetricSource::Istio => {}
        }
    }

    /// A fault case's component, at the level the ground truth gives it.
    pub fn fault(&mut self, f: &FaultCase) {
        self.level(f.level, f.cmdb_id.clone());
    }

    /// A parent span of `caller` with a child span of `callee` (both `cmdb_id`s); calls inside
    /// one service are not edges of the call graph.
    pub fn call(&mut self, caller: &str, callee: &str) {
        let (a, b) = (service_of(caller), service_of(callee));
        if a != b {
            self.calls.insert((a.to_string(), b.to_string()));
        }
    }

    /// Every span's component, and a call per span whose parent is in `spans` (the first span
    /// carrying the parent's id, as the store resolves parents).
    pub fn spans(&mut self, spans: &[Span]) {
        let mut first: HashMap<&str, &str> = HashMap::with_capacity(spans.len());
        for s in spans {
            first
                .entry(s.span_id.as_str())
                .or_insert(s.cmdb_id.as_str());
        }
        let mut seen = BTreeSet::new();
        for s in spans {
            if seen.insert(s.cmdb_id.as_str()) {
                self.component(&s.cmdb_id);
            }
            if s.parent_span.is_empty() {
                continue;
            }
            if let Some(caller) = first.get(s.parent_span.as_str()) {
                self.call(caller, &s.cmdb_id);
            }
        }
    }

    /// The topology of everything observed, normalized.
    pub fn finish(self) -> Topology {
        let mut t = Topology {
            services: self
                .services
                .into_iter()
                .map(|(name, pods)| ServiceInfo {
                    name,
                    pods: pods.into_iter().collect(),
                })
                .collect(),
            nodes: self.nodes.into_iter().collect(),
            placement: self.placement,
            calls: self.calls.into_iter().collect(),
        };
        t.normalize();
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TelemetryStore;
    use thinkfl_core::Dataset;

    fn span(id: &str, parent: &str, cmdb: &str) -> Span {
        Span {
            timestamp: 0,
            cmdb_id: cmdb.into(),
            span_id: id.into(),
            trace_id: "t".into(),
            duration: 1,
            kind: String::new(),
            status_code: "OK".into(),
            operation_name: "op".into(),
            parent_span: parent.into(),
        }
    }

    /// Rows and the store derive the same topology, duplicate ids and missing parents included.
    #[test]
    fn spans_derive_what_the_store_derives() {
        let spans = vec![
            span("a", "", "frontend-0"),
            span("b", "a", "cartservice-1"),
            span("b", "", "adservice-0"),
            span("c", "b", "redis-cart-0"),
            span("d", "zz", "checkoutservice-2"),
            span("e", "d", "checkoutservice-0"),
            span("f", "e", "node-3"),
        ];
        let mut o = Observed::new();
        o.spans(&spans);
        let rows = o.finish();
        let store = TelemetryStore::from_dataset(Dataset {
            spans,
            ..Dataset::default()
        });
        assert_eq!(&rows, store.topology());
        assert!(
            rows.calls
                .contains(&("cartservice".into(), "redis-cart".into()))
        );
        assert!(!rows.calls.iter().any(|(a, _)| a == "adservice"));
    }
}
