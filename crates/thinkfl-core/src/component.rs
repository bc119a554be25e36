//! Components of a microservice system and the naming rules of the AIOps 2022 data set.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The level a fault (or a root cause) is reported at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A host machine (`node-6`).
    Node,
    /// A service, all its pods together (`cartservice`).
    Service,
    /// One replica of a service (`cartservice-2`).
    Pod,
}

impl Level {
    /// Every level, in the order node, service, pod.
    pub const ALL: [Level; 3] = [Level::Node, Level::Service, Level::Pod];

    /// The lowercase name used in ground truth and tool arguments (`"pod"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Node => "node",
            Level::Service => "service",
            Level::Pod => "pod",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "node" => Ok(Level::Node),
            "service" => Ok(Level::Service),
            "pod" => Ok(Level::Pod),
            _ => Err(crate::Error::UnknownLevel(s.to_string())),
        }
    }
}

/// A named component at a level: `node-6`, `cartservice`, `cartservice-2`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Component {
    /// The level the name is at.
    pub level: Level,
    /// The name as the data writes it.
    pub name: String,
}

impl Component {
    /// A component `name` at `level`, taken as given (see [`Component::classify`] to infer the
    /// level from a name).
    pub fn new(level: Level, name: impl Into<String>) -> Self {
        Self {
            level,
            name: name.into(),
        }
    }

    /// Classifies a bare `cmdb_id` by the data set's naming rules: `node-N` is a node, a name with
    /// a replica suffix (`-N` or `2-N`) is a pod, anything else a service.
    pub fn classify(cmdb_id: &str) -> Self {
        if is_node_name(cmdb_id) {
            Self::new(Level::Node, cmdb_id)
        } else if service_of(cmdb_id) != cmdb_id {
            Self::new(Level::Pod, cmdb_id)
        } else {
            Self::new(Level::Service, cmdb_id)
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level, self.name)
    }
}

/// `node-1`, `node-12`: the data set's node names.
pub fn is_node_name(s: &str) -> bool {
    s.strip_prefix("node-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The service a pod belongs to: `cartservice-2` and `cartservice2-0` belong to `cartservice`;
/// `redis-cart-0` to `redis-cart`. A name without a replica suffix is returned unchanged, as is a
/// node name.
pub fn service_of(pod: &str) -> &str {
    if is_node_name(pod) {
        return pod;
    }
    let Some((head, tail)) = pod.rsplit_once('-') else {
        return pod;
    };
    if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_digit()) || head.is_empty() {
        return pod;
    }
    // The AIOps 2022 second deployment names pods `<service>2-<n>`.
    match head.strip_suffix('2') {
        Some(svc) if !svc.is_empty() && !svc.ends_with(|c: char| c.is_ascii_digit()) => svc,
        _ => head,
    }
}

/// Splits a container metric id such as `node-6.adservice2-0` into `(node, pod)`.
pub fn pod_node_from_container_id(cmdb_id: &str) -> Option<(&str, &str)> {
    let (node, pod) = cmdb_id.split_once('.')?;
    (is_node_name(node) && !pod.is_empty()).then_some((node, pod))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_map_to_services() {
        assert_eq!(service_of("cartservice-2"), "cartservice");
        assert_eq!(service_of("cartservice2-0"), "cartservice");
        assert_eq!(service_of("redis-cart-0"), "redis-cart");
        assert_eq!(service_of("redis-cart2-0"), "redis-cart");
        assert_eq!(service_of("recommendationservice"), "recommendationservice");
        assert_eq!(service_of("node-3"), "node-3");
        assert_eq!(service_of("ts-order-service-1"), "ts-order-service");
        assert_eq!(service_of("svc-12-0"), "svc-12");
    }

    #[test]
    fn classify_follows_naming_rules() {
        assert_eq!(Component::classify("node-6").level, Level::Node);
        assert_eq!(Component::classify("frontend-2").level, Level::Pod);
        assert_eq!(Component::classify("frontend").level, Level::Service);
        assert_eq!(Component::classify("node-x").level, Level::Service);
    }

    #[test]
    fn container_ids_split() {
        assert_eq!(
            pod_node_from_container_id("node-6.adservice2-0"),
            Some(("node-6", "adservice2-0"))
        );
        assert_eq!(pod_node_from_container_id("cartservice-1.source.x"), None);
        assert_eq!(pod_node_from_container_id("adservice"), None);
    }
}
