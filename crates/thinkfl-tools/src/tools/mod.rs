//! The diagnostic tools: the paper's four, and the global view of our prompt set.

pub mod print_results;
pub mod search_anomalous_components;
pub mod search_fluctuating_metrics;
pub mod search_logs;
pub mod search_traces;

pub use print_results::{PrintResults, PrintResultsArgs, PrintedResults, RootCauseItem};
pub use search_anomalous_components::{SearchAnomalousComponents, SearchAnomalousComponentsArgs};
pub use search_fluctuating_metrics::{SearchFluctuatingMetrics, SearchFluctuatingMetricsArgs};
pub use search_logs::{SearchLogs, SearchLogsArgs};
pub use search_traces::{SearchTraces, SearchTracesArgs};

/// Formats a duration in µs as ms with at most three decimals ("13334.4", "0.03", "5").
pub(crate) fn ms(us: f64) -> String {
    if !us.is_finite() {
        return "-".into();
    }
    // About three significant digits: every digit is a token for the small models that read
    // these rows, and "3341.527" says no more than "3342" about which child is slow.
    let v = us / 1000.0;
    let decimals = match v.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        a if a >= 1.0 => 2,
        _ => 3,
    };
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// "... N more rows" when `total` rows were cut to `shown`.
pub(crate) fn more_rows(total: usize, shown: usize) -> Option<String> {
    (total > shown).then(|| format!("... {} more rows", total - shown))
}

use thinkfl_core::component::is_node_name;
use thinkfl_core::{Level, pod_node_from_container_id, service_of};
use thinkfl_store::TelemetryStore;

/// A component named in a tool argument, with what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub name: String,
    pub level: Level,
    /// The pods it covers: itself for a pod, its pods for a service, those placed on a node.
    pub pods: Vec<String>,
    /// The nodes hosting it (a node hosts itself).
    pub nodes: Vec<String>,
}

/// Resolves a `service_name` argument (a service, a pod or a node), trying it as written and
/// lower-cased. `None` when the data knows no such component.
pub(crate) fn resolve_component(store: &TelemetryStore, raw: &str) -> Option<Resolved> {
    let trimmed = raw.trim();
    let lower = trimmed.to_ascii_lowercase();
    [trimmed, lower.as_str()]
        .into_iter()
        .filter(|n| !n.is_empty())
        .find_map(|n| resolve_exact(store, n))
}

fn resolve_exact(store: &TelemetryStore, name: &str) -> Option<Resolved> {
    let topo = store.topology();
    let sorted_nodes = |pods: &[String]| {
        let mut nodes: Vec<String> = pods
            .iter()
            .filter_map(|p| topo.node_of(p))
            .map(str::to_string)
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    };
    if is_node_name(name) {
        let known = topo.nodes.iter().any(|n| n == name)
            || topo.placement.values().any(|n| n == name)
            || !store.series_of(name).is_empty();
        return known.then(|| Resolved {
            name: name.to_string(),
            level: Level::Node,
            pods: topo.pods_on(name).into_iter().map(str::to_string).collect(),
            nodes: vec![name.to_string()],
        });
    }
    if let Some(svc) = topo.service(name) {
        let pods = svc.pods.clone();
        let nodes = sorted_nodes(&pods);
        return Some(Resolved {
            name: name.to_string(),
            level: Level::Service,
            pods,
            nodes,
        });
    }
    let is_pod = topo.placement.contains_key(name)
        || topo
            .services
            .iter()
            .any(|s| s.pods.iter().any(|p| p == name));
    if is_pod {
        let pods = vec![name.to_string()];
        let nodes = sorted_nodes(&pods);
        return Some(Resolved {
            name: name.to_string(),
            level: Level::Pod,
            pods,
            nodes,
        });
    }
    // Known only from metrics (e.g. a service without spans).
    if !store.series_of(name).is_empty() {
        let level = thinkfl_core::Component::classify(name).level;
        let pods = if level == Level::Pod {
            vec![name.to_string()]
        } else {
            Vec::new()
        };
        return Some(Resolved {
            name: name.to_string(),
            level,
            pods,
            nodes: Vec::new(),
        });
    }
    None
}

/// The components a metric series id names: `node-6.cartservice-2` -> node-6, cartservice-2;
/// `cartservice-1.source.cartservice.redis-cart` -> cartservice-1; `adservice-grpc` -> adservice;
/// `node-1` -> node-1.
pub(crate) fn series_components(cmdb_id: &str) -> Vec<&str> {
    if let Some((node, pod)) = pod_node_from_container_id(cmdb_id) {
        return vec![node, pod];
    }
    if is_node_name(cmdb_id) {
        return vec![cmdb_id];
    }
    if let Some((first, _)) = cmdb_id.split_once('.') {
        return vec![first];
    }
    if let Some(svc) = cmdb_id.strip_suffix("-grpc") {
        return vec![svc];
    }
    vec![service_of(cmdb_id)]
}

/// The message for a component the data does not know.
pub(crate) fn unknown_component(store: &TelemetryStore, raw: &str) -> String {
    let mut names: Vec<&str> = store
        .topology()
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    names.truncate(12);
    format!(
        "no service, pod or node named {raw:?} in this data set; services are: {}",
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    )
}

impl crate::tool::ToolRegistry {
    /// Every tool: `search_traces`, `search_fluctuating_metrics`, `search_logs`,
    /// `search_anomalous_components`, `print_results`.
    pub fn standard() -> Self {
        let mut r = Self::new();
        r.register(SearchTraces);
        r.register(SearchFluctuatingMetrics);
        r.register(SearchLogs);
        r.register(SearchAnomalousComponents);
        r.register(PrintResults);
        r
    }
}
