//! Random: every pod, service and node of the system in a seeded random order. The floor every
//! method must clear; its expected reciprocal rank is known in closed form (see
//! [`expected_reciprocal_rank`]), which checks the evaluation itself.
//!
//! Reference: the random baseline of the RCAEval benchmark (Luan Pham et al., "RCAEval: A
//! Benchmark for Root Cause Analysis of Microservice Systems with Telemetry Data", WWW 2025
//! companion).

use crate::common::Context;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use thinkfl_core::RootCause;
use thinkfl_store::TelemetryStore;
use thinkfl_tools::{CaseWindow, DiagnoseError, Diagnoser, Diagnosis, Query};

/// See the module documentation.
#[derive(Debug)]
pub struct RandomRanker {
    candidates: Vec<RootCause>,
    seed: u64,
}

impl RandomRanker {
    /// A ranker of every candidate of `ctx`, shuffled with `seed`.
    pub fn new(ctx: Arc<Context>, seed: u64) -> Self {
        Self {
            candidates: ctx.candidates(),
            seed,
        }
    }

    /// The items it shuffles: every pod, service and node, one field each.
    pub fn candidates(&self) -> &[RootCause] {
        &self.candidates
    }
}

impl Diagnoser for RandomRanker {
    fn name(&self) -> &str {
        "random"
    }

    /// One permutation per case window (whatever the query), so that fusing the queries of a
    /// case keeps it a uniformly random order; seeded by the seed and the window alone, so that
    /// the order of evaluation does not matter.
    fn diagnose(
        &self,
        _store: &TelemetryStore,
        window: CaseWindow,
        _query: &Query,
    ) -> Result<Diagnosis, DiagnoseError> {
        let t0 = std::time::Instant::now();
        let mix = (window.start_s as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (window.end_s as u64).rotate_left(32);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ mix);
        let mut ranking = self.candidates.clone();
        ranking.shuffle(&mut rng);
        Ok(Diagnosis {
            ranking,
            elapsed_ms: t0.elapsed().as_secs_f64() * 1e3,
            ..Default::default()
        })
    }
}

/// Expected reciprocal rank of the first of `m` matching items in a uniformly random order of
/// `n` items: `sum_r P(first match at r) / r` with `P(first at r) = C(n-r, m-1) / C(n, m)`.
/// For `m = 1` this is `H_n / n`. 0 when nothing matches.
pub fn expected_reciprocal_rank(n: usize, m: usize) -> f64 {
    reciprocal_rank_moments(n, m).0
}

/// Mean and second moment of the reciprocal rank of the first of `m` matching items among `n`
/// in random order (the second gives the standard error of an observed mean).
pub fn reciprocal_rank_moments(n: usize, m: usize) -> (f64, f64) {
    if m == 0 || n == 0 || m > n {
        return (0.0, 0.0);
    }
    let mut p_miss_so_far = 1.0;
    let (mut e1, mut e2) = (0.0, 0.0);
    for r in 1..=n - m + 1 {
        let p_hit = m as f64 / (n - r + 1) as f64;
        let p = p_miss_so_far * p_hit;
        e1 += p / r as f64;
        e2 += p / (r * r) as f64;
        p_miss_so_far *= 1.0 - p_hit;
    }
    (e1, e2)
}

/// Probability that the first of `m` matching items is within the top `k` of `n` random items.
pub fn expected_recall_at(n: usize, m: usize, k: usize) -> f64 {
    if m == 0 || n == 0 || m > n {
        return 0.0;
    }
    // 1 - C(n-m, k) / C(n, k)
    let k = k.min(n);
    let mut miss = 1.0;
    for i in 0..k {
        if i >= n - m {
            return 1.0;
        }
        miss *= (n - m - i) as f64 / (n - i) as f64;
    }
    1.0 - miss
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms() {
        // m = 1: H_n / n.
        let h4 = 1.0 + 0.5 + 1.0 / 3.0 + 0.25;
        assert!((expected_reciprocal_rank(4, 1) - h4 / 4.0).abs() < 1e-12);
        // n = 3, m = 2: first at 1 w.p. 2/3, at 2 w.p. 1/3: 2/3 + 1/6.
        assert!((expected_reciprocal_rank(3, 2) - (2.0 / 3.0 + 1.0 / 6.0)).abs() < 1e-12);
        assert_eq!(expected_reciprocal_rank(5, 5), 1.0);
        assert_eq!(expected_reciprocal_rank(5, 0), 0.0);
        assert!((expected_recall_at(10, 1, 3) - 0.3).abs() < 1e-12);
        // n = 4, m = 2, k = 1: 1/2; k = 3: 1 - 0 = 1.
        assert!((expected_recall_at(4, 2, 1) - 0.5).abs() < 1e-12);
        assert!((expected_recall_at(4, 2, 3) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn closed_form_matches_enumeration() {
        // All 5! orders of 5 items, 2 of which match.
        fn perms(v: &mut Vec<usize>, k: usize, out: &mut Vec<Vec<usize>>) {
            if k == v.len() {
                out.push(v.clone());
                return;
            }
            for i in k..v.len() {
                v.swap(k, i);
                perms(v, k + 1, out);
                v.swap(k, i);
            }
        }
        let mut all = Vec::new();
        perms(&mut (0..5).collect(), 0, &mut all);
        let mean: f64 = all
            .iter()
            .map(|p| 1.0 / (p.iter().position(|&x| x < 2).unwrap() + 1) as f64)
            .sum::<f64>()
            / all.len() as f64;
        assert!((mean - expected_reciprocal_rank(5, 2)).abs() < 1e-12);
    }
}
