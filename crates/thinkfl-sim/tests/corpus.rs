//! The training corpus on a small scale: seeded (same seed, identical files), the manifest
//! agrees with the data sets it lists, held-out sets share no seed with training ones, and one
//! topology is only held out.

mod common;

use std::collections::BTreeSet;
use thinkfl_sim::corpus::{self, MANIFEST, Manifest, Role, Scale};
use thinkfl_store::{LoadOptions, TelemetryStore};

#[test]
fn same_seed_same_corpus_and_the_manifest_matches_the_files() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    let m = corpus::build(a.path(), 4, Scale::Small, &mut |p| {
        seen.push((p.done, p.total, p.entry.path.clone()));
    })
    .unwrap();
    corpus::build(b.path(), 4, Scale::Small, &mut |_| {}).unwrap();
    assert_eq!(common::hash_dir(a.path()), common::hash_dir(b.path()));
    // Progress once per simulated data set, in order.
    assert_eq!(
        seen.len(),
        m.datasets.iter().filter(|e| e.excerpt_of.is_none()).count()
    );
    assert!(
        seen.iter()
            .enumerate()
            .all(|(i, s)| s.0 == i + 1 && s.1 == seen.len())
    );

    let back = Manifest::read(a.path()).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.seed, 4);
    assert_eq!(back.scale, Scale::Small);
    assert_eq!(back.held_out_topologies, ["train-ticket"]);
    let train: Vec<_> = back.of(Role::Train).collect();
    let held: Vec<_> = back.of(Role::HeldOut).collect();
    assert_eq!(back.train.datasets, train.len());
    assert_eq!(back.held_out.datasets, held.len());
    assert_eq!(
        back.train.cases,
        train.iter().map(|e| e.faults).sum::<usize>()
    );
    let seeds = |v: &[&corpus::Entry]| -> BTreeSet<u64> { v.iter().map(|e| e.seed).collect() };
    assert!(seeds(&train).is_disjoint(&seeds(&held)));
    let topos = |v: &[&corpus::Entry]| -> BTreeSet<String> {
        v.iter().map(|e| e.topology.clone()).collect()
    };
    assert!(!topos(&train).contains("train-ticket"));
    assert!(topos(&held).contains("train-ticket"));
    for role in [&train, &held] {
        let d: BTreeSet<&str> = role.iter().map(|e| e.difficulty.as_str()).collect();
        assert_eq!(d.len(), 3);
    }
    // Each listed data set loads, with the fault count the manifest gives.
    for e in &back.datasets {
        let dir = a.path().join(&e.path);
        let (store, report) = TelemetryStore::load(&dir, &LoadOptions::default())
            .unwrap_or_else(|err| panic!("{}: {err}", e.path));
        assert_eq!(report.skipped_rows, 0, "{}", e.path);
        assert_eq!(store.faults().len(), e.faults, "{}", e.path);
        assert_eq!(store.span_count() as u64, e.spans, "{}", e.path);
        assert_eq!(e.fault_types.values().sum::<usize>(), e.faults);
        assert!(e.faults > 0);
    }
    // Excerpts: beside their source, same role, a subset of its faults, no metrics and no
    // topology (the shape of a real incident export).
    let excerpts: Vec<_> = back
        .datasets
        .iter()
        .filter(|e| e.excerpt_of.is_some())
        .collect();
    assert!(!excerpts.is_empty());
    for x in &excerpts {
        let src = back
            .datasets
            .iter()
            .find(|e| Some(&e.name) == x.excerpt_of.as_ref())
            .unwrap_or_else(|| panic!("{}: no source", x.name));
        assert_eq!(
            (x.role, &x.topology, x.difficulty),
            (src.role, &src.topology, src.difficulty)
        );
        assert_eq!(x.path, format!("{}-excerpt", src.path));
        assert!(x.faults <= src.faults && x.spans < src.spans && x.metrics == 0);
        let dir = a.path().join(&x.path);
        assert!(!dir.join("metric").exists() && !dir.join("topology.json").exists());
    }
    // Over the corpus, code-level faults are among the cases.
    let code: usize = back
        .datasets
        .iter()
        .map(|e| {
            e.fault_types.get("code-exception").unwrap_or(&0)
                + e.fault_types.get("error-response").unwrap_or(&0)
        })
        .sum();
    assert!(code > 0, "no code-level fault in the corpus");
    // A corpus is not written over another.
    let err = corpus::build(a.path(), 4, Scale::Small, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("already holds a corpus"), "{err}");
    assert!(a.path().join(MANIFEST).exists());
}

#[test]
fn another_seed_gives_another_corpus() {
    let a = corpus::plan(4, Scale::Small);
    let b = corpus::plan(5, Scale::Small);
    assert_eq!(a.len(), b.len());
    let sa: BTreeSet<u64> = a.iter().map(|s| s.config.seed).collect();
    let sb: BTreeSet<u64> = b.iter().map(|s| s.config.seed).collect();
    assert!(sa.is_disjoint(&sb));
    let pa = thinkfl_sim::plan(&a[0].config).unwrap();
    let pb = thinkfl_sim::plan(&b[0].config).unwrap();
    assert_ne!(pa.faults, pb.faults);
}
