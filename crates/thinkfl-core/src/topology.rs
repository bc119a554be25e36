//! The shape of a microservice system: services, their pods, nodes, placement and call graph.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One service and its pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// The service name (`cartservice`).
    pub name: String,
    /// Its pods (sorted by [`Topology::normalize`]).
    pub pods: Vec<String>,
}

/// `topology.json`: written by the simulator, derived from the data otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Every service (sorted by name by [`Topology::normalize`]).
    pub services: Vec<ServiceInfo>,
    /// Every node name (sorted by [`Topology::normalize`]).
    pub nodes: Vec<String>,
    /// pod -> node.
    pub placement: BTreeMap<String, String>,
    /// Directed service call graph: (caller, callee), sorted and unique.
    pub calls: Vec<(String, String)>,
}

impl Topology {
    /// The node a pod runs on.
    pub fn node_of(&self, pod: &str) -> Option<&str> {
        self.placement.get(pod).map(String::as_str)
    }

    /// Pods placed on `node`, sorted.
    pub fn pods_on(&self, node: &str) -> Vec<&str> {
        self.placement
            .iter()
            .filter(|(_, n)| n.as_str() == node)
            .map(|(p, _)| p.as_str())
            .collect()
    }

    /// The service named `name`, if the topology has it.
    pub fn service(&self, name: &str) -> Option<&ServiceInfo> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Services that `svc` calls.
    pub fn callees<'a>(&'a self, svc: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.calls
            .iter()
            .filter(move |(a, _)| a == svc)
            .map(|(_, b)| b.as_str())
    }

    /// Services that call `svc`.
    pub fn callers<'a>(&'a self, svc: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.calls
            .iter()
            .filter(move |(_, b)| b == svc)
            .map(|(a, _)| a.as_str())
    }

    /// Sorts every list and removes duplicates, so that equal topologies compare equal.
    pub fn normalize(&mut self) {
        self.services.sort_by(|a, b| a.name.cmp(&b.name));
        self.services.dedup_by(|a, b| a.name == b.name);
        for s in &mut self.services {
            s.pods.sort();
            s.pods.dedup();
        }
        let nodes: BTreeSet<String> = self.nodes.drain(..).collect();
        self.nodes = nodes.into_iter().collect();
        self.calls.sort();
        self.calls.dedup();
    }
}
