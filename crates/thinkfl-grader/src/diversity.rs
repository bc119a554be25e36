//! The stage-2 diversity score: per question, a cache of the tool-call sequences already seen.

use crate::{DiversityKey, GraderConfig};
use std::collections::{HashMap, HashSet};
use thinkfl_core::Trajectory;

/// Per question (a fault case and its query span), the deduplicated tool-call sequences seen so
/// far. Rollouts of one question are graded in order: the first to take a path is "new".
#[derive(Debug, Clone, Default)]
pub struct DiversityCache {
    seen: HashMap<String, HashSet<Vec<String>>>,
}

impl DiversityCache {
    /// A cache that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scores a sequence for a question and remembers it: `A` new and correct, `B` new and
    /// incorrect, `C` already seen.
    pub fn observe(
        &mut self,
        cfg: &GraderConfig,
        question: &str,
        sequence: Vec<String>,
        correct: bool,
    ) -> f64 {
        let set = self.seen.entry(question.to_string()).or_default();
        if set.insert(sequence) {
            if correct {
                cfg.diversity_new_correct
            } else {
                cfg.diversity_new_incorrect
            }
        } else {
            cfg.diversity_seen
        }
    }

    /// Distinct sequences seen for a question.
    pub fn distinct(&self, question: &str) -> usize {
        self.seen.get(question).map_or(0, HashSet::len)
    }

    /// Number of questions with at least one sequence.
    pub fn questions(&self) -> usize {
        self.seen.len()
    }

    /// Forgets one question (e.g. when the training set moves on).
    pub fn forget(&mut self, question: &str) {
        self.seen.remove(question);
    }
}

/// The cache key of a trajectory's tool-call sequence.
pub fn sequence_key(traj: &Trajectory, key: DiversityKey) -> Vec<String> {
    match key {
        DiversityKey::Names => traj.call_sequence(),
        DiversityKey::NamesAndArguments => traj
            .calls
            .iter()
            .filter_map(|c| c.call.as_ref())
            .map(|c| {
                let mut s = c.name.clone();
                canonical_json(&c.arguments, &mut s);
                s
            })
            .collect(),
    }
}

/// JSON text with object keys sorted, so that equal arguments give equal keys whatever order the
/// model wrote them in (and whether or not serde_json preserves insertion order in this build).
fn canonical_json(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The question a trajectory answered, as the cache keys it: `case/query_span`.
pub fn question_key(traj: &Trajectory) -> String {
    format!(
        "{}/{}",
        traj.case.map_or_else(|| "-".to_string(), |c| c.to_string()),
        traj.query_span.as_deref().unwrap_or("-")
    )
}
