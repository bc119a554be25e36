//! Reciprocal-rank fusion of the rankings a method gives for the queries of one fault case.
//!
//! Reference: Gordon V. Cormack, Charles L. A. Clarke, Stefan Büttcher, "Reciprocal Rank Fusion
//! Outperforms Condorcet and Individual Rank Learning Methods", SIGIR 2009. With `offset` 0 an
//! item scores the sum of its reciprocal ranks; the paper's `k = 60` flattens the head.

use std::collections::HashMap;
use thinkfl_core::RootCause;

/// What makes two items the same item: the components they name, the reason aside.
fn key(r: &RootCause) -> [Option<&str>; 3] {
    [
        r.node.as_deref().map(str::trim),
        r.service.as_deref().map(str::trim),
        r.pod.as_deref().map(str::trim),
    ]
}

/// Fuses rankings: an item scores `sum 1 / (offset + rank)` over the rankings it appears in
/// (1-based rank of its first appearance there); ties go to the better best rank, then to the
/// earlier first appearance (query order, then position). A single ranking comes back
/// deduplicated in its own order.
pub fn fuse(rankings: &[Vec<RootCause>], offset: f64) -> Vec<RootCause> {
    struct Acc<'a> {
        item: &'a RootCause,
        score: f64,
        best: usize,
        first: (usize, usize),
    }
    let mut acc: Vec<Acc<'_>> = Vec::new();
    let mut index: HashMap<[Option<&str>; 3], usize> = HashMap::new();
    for (q, ranking) in rankings.iter().enumerate() {
        let mut seen_here: Vec<usize> = Vec::new();
        for (pos, item) in ranking.iter().enumerate() {
            let k = key(item);
            let i = *index.entry(k).or_insert_with(|| {
                acc.push(Acc {
                    item,
                    score: 0.0,
                    best: usize::MAX,
                    first: (q, pos),
                });
                acc.len() - 1
            });
            if seen_here.contains(&i) {
                continue;
            }
            seen_here.push(i);
            acc[i].score += 1.0 / (offset + (pos + 1) as f64);
            acc[i].best = acc[i].best.min(pos);
        }
    }
    acc.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.best.cmp(&b.best))
            .then(a.first.cmp(&b.first))
    });
    acc.into_iter().map(|a| a.item.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str) -> RootCause {
        RootCause {
            service: Some(name.into()),
            ..Default::default()
        }
    }

    #[test]
    fn worked_fusion() {
        // a: 1 + 1/3 = 1.333; b: 1/2 + 1 = 1.5; c: 1/3 + 1/2 = 0.833; d: 1/3 (third list).
        let r = fuse(
            &[
                vec![s("a"), s("b"), s("c")],
                vec![s("b"), s("c"), s("a")],
                vec![s("x"), s("y"), s("d")],
            ],
            0.0,
        );
        let names: Vec<&str> = r.iter().map(|i| i.service.as_deref().unwrap()).collect();
        // b 1.5, a 1.333, x 1.0, c 0.833, y 0.5, d 0.333.
        assert_eq!(names, ["b", "a", "x", "c", "y", "d"]);
    }

    #[test]
    fn single_ranking_is_kept_and_deduplicated() {
        let mut a2 = s("a");
        a2.reason = Some("again".into());
        let r = fuse(&[vec![s("a"), s("b"), a2, s("c")]], 0.0);
        assert_eq!(r, vec![s("a"), s("b"), s("c")]);
        assert!(fuse(&[], 0.0).is_empty());
    }

    #[test]
    fn ties_go_to_the_better_best_rank_then_the_earlier() {
        // With offset 60 and two lists: a at 1 and 4 vs b at 2 and 2: 1/61 + 1/64 vs 2/62.
        let r = fuse(
            &[vec![s("a"), s("b")], vec![s("c"), s("b"), s("d"), s("a")]],
            60.0,
        );
        assert_eq!(r[0], s("b"));
        // Exact tie: x and y each once at rank 1 in different lists: the earlier list wins.
        let r = fuse(&[vec![s("x")], vec![s("y")]], 0.0);
        assert_eq!(r, vec![s("x"), s("y")]);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// Quadratic reference: score every distinct item by scanning every list.
    fn naive(rankings: &[Vec<RootCause>], offset: f64) -> Vec<RootCause> {
        let mut items: Vec<(RootCause, f64, usize, (usize, usize))> = Vec::new();
        for (q, r) in rankings.iter().enumerate() {
            for (p, it) in r.iter().enumerate() {
                if items.iter().any(|x| key(&x.0) == key(it)) {
                    continue;
                }
                let mut score = 0.0;
                let mut best = usize::MAX;
                for r2 in rankings {
                    if let Some(pos) = r2.iter().position(|o| key(o) == key(it)) {
                        score += 1.0 / (offset + (pos + 1) as f64);
                        best = best.min(pos);
                    }
                }
                items.push((it.clone(), score, best, (q, p)));
            }
        }
        items.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)));
        items.into_iter().map(|x| x.0).collect()
    }

    proptest! {
        #[test]
        fn fusion_matches_a_naive_scan(
            lists in proptest::collection::vec(proptest::collection::vec(0u8..8, 0..8), 0..4),
            offset in prop_oneof![Just(0.0), Just(60.0)],
        ) {
            let rankings: Vec<Vec<RootCause>> = lists
                .iter()
                .map(|l| l.iter().map(|i| RootCause { service: Some(format!("s{i}")), ..Default::default() }).collect())
                .collect();
            prop_assert_eq!(fuse(&rankings, offset), naive(&rankings, offset));
        }
    }
}
