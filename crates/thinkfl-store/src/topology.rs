//! Derives a [`Topology`] from the data when no `topology.json` comes with it, by the naming
//! rules of DESIGN.md 4.1: pods are the replica-suffixed `cmdb_id`s of spans, logs and container
//! metrics; a pod's service is [`service_of`]; placement comes from container metric ids
//! (`node-6.cartservice-2`); the call graph from parent/child spans of different services.

use crate::TelemetryStore;
use std::collections::{BTreeMap, BTreeSet};
use thinkfl_core::{
    Component, Level, MetricSource, ServiceInfo, Topology, pod_node_from_container_id, service_of,
};

/// See the module documentation.
pub fn derive_topology(store: &TelemetryStore) -> Topology {
    let mut services: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut nodes: BTreeSet<String> = BTreeSet::new();
    let mut placement: BTreeMap<String, String> = BTreeMap::new();
    let add = |name: &str,
               services: &mut BTreeMap<String, BTreeSet<String>>,
               nodes: &mut BTreeSet<String>| {
        let c = Component::classify(name);
        match c.level {
            Level::Node => {
                nodes.insert(c.name);
            }
            Level::Service => {
                services.entry(c.name).or_default();
            }
            Level::Pod => {
                services
                    .entry(service_of(&c.name).to_string())
                    .or_default()
                    .insert(c.name);
            }
        }
    };
    for name in store.span_components() {
        add(name, &mut services, &mut nodes);
    }
    for name in store.log_components() {
        add(name, &mut services, &mut nodes);
    }
    for s in store.all_series() {
        match s.source() {
            MetricSource::Container => {
                if let Some((node, pod)) = pod_node_from_container_id(s.cmdb_id()) {
                    add(pod, &mut services, &mut nodes);
                    nodes.insert(node.to_string());
                    placement.insert(pod.to_string(), node.to_string());
                }
            }
            MetricSource::Node => {
                nodes.insert(s.cmdb_id().to_string());
            }
            MetricSource::Service => {
                let id = s.cmdb_id();
                let svc = id.strip_suffix("-grpc").unwrap_or(id);
                services.entry(svc.to_string()).or_default();
            }
            // Istio ids name both ends of a connection; their pods also appear in spans.
            MetricSource::Istio => {}
        }
    }
    for f in store.faults() {
        match f.level {
            Level::Node => {
                nodes.insert(f.cmdb_id.clone());
            }
            Level::Service => {
                services.entry(f.cmdb_id.clone()).or_default();
            }
            Level::Pod => {
                services
                    .entry(service_of(&f.cmdb_id).to_string())
                    .or_default()
                    .insert(f.cmdb_id.clone());
            }
        }
    }
    let calls: BTreeSet<(String, String)> = store
        .caller_callee_components()
        .into_iter()
        .map(|(a, b)| (service_of(a), service_of(b)))
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let mut t = Topology {
        services: services
            .into_iter()
            .map(|(name, pods)| ServiceInfo {
                name,
                pods: pods.into_iter().collect(),
            })
            .collect(),
        nodes: nodes.into_iter().collect(),
        placement,
        calls: calls.into_iter().collect(),
    };
    t.normalize();
    t
}
