//! The four per-trajectory factors of DESIGN.md section 6, each a pure function.

use crate::GraderConfig;
use crate::matching::{named_in_path, path_position};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use thinkfl_core::{CallRecord, FaultCase, Level, RootCause};

/// Recall `R = 1 - r / r_max` for a first match at 0-based rank `r < r_max`; 0 at or past `r_max`
/// and with no match. (The paper gives `1 / r_max` past `r_max`; 0 keeps a miss from outscoring a
/// late hit.)
pub fn recall(cfg: &GraderConfig, rank: Option<usize>) -> f64 {
    match rank {
        Some(r) if r < cfg.r_max => 1.0 - r as f64 / cfg.r_max as f64,
        _ => 0.0,
    }
}

/// Route `P`: with the ground truth at 1-based position `i` of a path of length `L`,
/// `min(i / max(L - mu, 1), 1)`, which rewards an episode that ends its search where the fault
/// is; otherwise `min(L / D_max, 1)`, credit for the effort of a path that missed it.
pub fn route(cfg: &GraderConfig, path: &[String], truth: &FaultCase) -> f64 {
    let len = path.len() as f64;
    match path_position(path, truth) {
        Some(i) => (i as f64 / (len - cfg.route_mu).max(1.0)).min(1.0),
        None => (len / cfg.d_max as f64).min(1.0),
    }
}

/// How a prediction list fares against the reasoning path.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct HallucinationCounts {
    /// `N`: items in the list.
    pub items: usize,
    /// `N_inv`: items naming nothing, or naming a component absent from the path.
    pub invalid: usize,
    /// `N_dup`: items equal (node, service and pod; the reason aside) to an earlier item.
    pub duplicate: usize,
}

/// Counts `N`, `N_inv`, `N_dup` of a prediction against a reasoning path.
pub fn hallucination_counts(prediction: &[RootCause], path: &[String]) -> HallucinationCounts {
    let mut seen: HashSet<[Option<&str>; 3]> = HashSet::new();
    let mut c = HallucinationCounts {
        items: prediction.len(),
        ..Default::default()
    };
    for item in prediction {
        let fields = [
            (Level::Node, item.node.as_deref()),
            (Level::Service, item.service.as_deref()),
            (Level::Pod, item.pod.as_deref()),
        ];
        let named: Vec<(Level, &str)> = fields
            .iter()
            .filter_map(|&(l, f)| f.map(str::trim).filter(|f| !f.is_empty()).map(|f| (l, f)))
            .collect();
        if named.is_empty() || named.iter().any(|&(l, f)| !named_in_path(f, l, path)) {
            c.invalid += 1;
        }
        let key = fields.map(|(_, f)| f.map(str::trim).filter(|f| !f.is_empty()));
        if !seen.insert(key) {
            c.duplicate += 1;
        }
    }
    c
}

/// Hallucination `H = l1 * N_inv / N + l2 * N_dup / N`; 0 for an empty list.
pub fn hallucination(cfg: &GraderConfig, counts: &HallucinationCounts) -> f64 {
    if counts.items == 0 {
        return 0.0;
    }
    let n = counts.items as f64;
    cfg.lambda_invalid * counts.invalid as f64 / n
        + cfg.lambda_duplicate * counts.duplicate as f64 / n
}

/// Format `F`: 0 without a final answer; otherwise the share of tool calls that parsed to a known
/// tool with valid arguments (1 when every call did, and for an answer given with no calls at all).
pub fn format(calls: &[CallRecord], has_final_answer: bool) -> f64 {
    if !has_final_answer {
        return 0.0;
    }
    if calls.is_empty() {
        return 1.0;
    }
    calls.iter().filter(|c| c.valid).count() as f64 / calls.len() as f64
}
