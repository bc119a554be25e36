//! Recall@k, MRR and latency summaries.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Ranking quality over a set of cases at one matching level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Cases counted.
    pub cases: usize,
    /// k -> share of cases whose first match is within the top k.
    pub recall: BTreeMap<usize, f64>,
    /// Mean of `1 / (rank + 1)`, 0 for a case without a match.
    pub mrr: f64,
}

impl Metrics {
    /// From the 0-based ranks of the first match of each case.
    pub fn from_ranks(ranks: &[Option<usize>], ks: &[usize]) -> Self {
        let n = ranks.len();
        let share = |f: &dyn Fn(&Option<usize>) -> f64| {
            if n == 0 {
                0.0
            } else {
                ranks.iter().map(f).sum::<f64>() / n as f64
            }
        };
        Self {
            cases: n,
            recall: ks
                .iter()
                .map(|&k| (k, share(&|r| r.is_some_and(|r| r < k) as u8 as f64)))
                .collect(),
            mrr: share(&|r| r.map_or(0.0, |r| 1.0 / (r + 1) as f64)),
        }
    }

    /// Recall@k, 0 for a k that was not computed.
    pub fn recall_at(&self, k: usize) -> f64 {
        self.recall.get(&k).copied().unwrap_or(0.0)
    }
}

/// Strict (ground-truth level) and lenient (service level) metrics side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// With [`Matching::Strict`](thinkfl_grader::Matching::Strict): the item's field at the
    /// fault's level names the faulty component.
    pub strict: Metrics,
    /// With [`Matching::Lenient`](thinkfl_grader::Matching::Lenient): the faulty service or a pod
    /// of it will do (a node fault still needs the node).
    pub lenient: Metrics,
}

/// Wall time per case, ms.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Latency {
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 95th percentile (absent, read as 0, in reports written before it was added).
    #[serde(default)]
    pub p95_ms: f64,
    /// Slowest case.
    pub max_ms: f64,
    /// Sum over the cases.
    pub total_ms: f64,
}

impl Latency {
    /// Summary of per-case wall times; a percentile is the sorted value at the nearest position
    /// (`round(p * (n - 1))`); all zero for no case.
    pub fn from_ms(v: &[f64]) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let q = |p: f64| s[((p * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)];
        let total: f64 = s.iter().sum();
        Self {
            mean_ms: total / s.len() as f64,
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p95_ms: q(0.95),
            max_ms: s[s.len() - 1],
            total_ms: total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_metrics() {
        // Ranks 0, 2, none, 9, 0 over five cases.
        let m = Metrics::from_ranks(
            &[Some(0), Some(2), None, Some(9), Some(0)],
            &[1, 2, 3, 5, 10],
        );
        assert_eq!(m.recall_at(1), 0.4);
        assert_eq!(m.recall_at(2), 0.4);
        assert_eq!(m.recall_at(3), 0.6);
        assert_eq!(m.recall_at(5), 0.6);
        assert_eq!(m.recall_at(10), 0.8);
        assert!((m.mrr - (1.0 + 1.0 / 3.0 + 0.0 + 0.1 + 1.0) / 5.0).abs() < 1e-12);
        let empty = Metrics::from_ranks(&[], &[1]);
        assert_eq!((empty.cases, empty.mrr, empty.recall_at(1)), (0, 0.0, 0.0));
    }

    #[test]
    fn latency_quantiles() {
        let l = Latency::from_ms(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(
            (l.mean_ms, l.p50_ms, l.max_ms, l.total_ms),
            (3.0, 3.0, 5.0, 15.0)
        );
        assert_eq!(l.p90_ms, 5.0);
        let twenty: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        let l = Latency::from_ms(&twenty);
        assert_eq!((l.p50_ms, l.p90_ms, l.p95_ms), (11.0, 18.0, 19.0));
    }
}
