//! When a predicted root cause "is" the ground truth, and where the ground truth sits in a
//! reasoning path.

use serde::{Deserialize, Serialize};
use thinkfl_core::{FaultCase, Level, RootCause, service_of};

/// How strictly a predicted item must name the ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Matching {
    /// The item's field for the fault's level equals the faulty component (DESIGN.md section 6).
    #[default]
    Strict,
    /// Service level: for a service or pod fault, the item names the faulty service, or a pod of
    /// it, in its `service` or `pod` field; for a node fault it is the strict match (a node has no
    /// service to fall back to).
    Lenient,
}

impl Matching {
    /// The name configs and reports use: `strict` or `lenient`.
    pub fn as_str(self) -> &'static str {
        match self {
            Matching::Strict => "strict",
            Matching::Lenient => "lenient",
        }
    }
}

fn eq(field: Option<&str>, want: &str) -> bool {
    field.is_some_and(|f| f.trim() == want)
}

/// Whether one predicted item matches the ground truth.
pub fn item_matches(item: &RootCause, truth: &FaultCase, matching: Matching) -> bool {
    let want = truth.cmdb_id.trim();
    match (matching, truth.level) {
        (Matching::Strict, level) => eq(item.at(level), want),
        (Matching::Lenient, Level::Node) => eq(item.node.as_deref(), want),
        (Matching::Lenient, Level::Service | Level::Pod) => {
            let svc = service_of(want);
            eq(item.service.as_deref().map(service_of), svc)
                || eq(item.pod.as_deref().map(|p| service_of(p.trim())), svc)
        }
    }
}

/// The 0-based rank of the first item matching the ground truth.
pub fn first_match(
    prediction: &[RootCause],
    truth: &FaultCase,
    matching: Matching,
) -> Option<usize> {
    prediction
        .iter()
        .position(|item| item_matches(item, truth, matching))
}

/// Whether a reasoning-path entry stands for the faulty component: the component itself, or for a
/// service fault a pod of that service.
pub fn path_entry_is_truth(entry: &str, truth: &FaultCase) -> bool {
    let entry = entry.trim();
    let want = truth.cmdb_id.trim();
    entry == want || (truth.level == Level::Service && service_of(entry) == want)
}

/// The 1-based position of the first path entry standing for the ground truth.
pub fn path_position(path: &[String], truth: &FaultCase) -> Option<usize> {
    path.iter()
        .position(|e| path_entry_is_truth(e, truth))
        .map(|i| i + 1)
}

/// Whether a component named by a prediction was touched by the episode. A service counts as
/// touched when it, or any pod of it, is in the path (spans are emitted by pods); a node or pod
/// only when it is there itself.
pub fn named_in_path(component: &str, level: Level, path: &[String]) -> bool {
    let c = component.trim();
    match level {
        Level::Service => path.iter().any(|e| {
            let e = e.trim();
            e == c || service_of(e) == c
        }),
        Level::Node | Level::Pod => path.iter().any(|e| e.trim() == c),
    }
}
