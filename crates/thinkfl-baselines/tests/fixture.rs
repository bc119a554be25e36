//! The real AIOps 2022 sample: one packet-corruption fault in `recommendationservice`, one trace.

use std::path::PathBuf;
use thinkfl_baselines::{CommonConfig, METHODS, build};
use thinkfl_grader::{Matching, first_match};
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_tools::{AnomalyConfig, case_queries, case_window};

fn fixture() -> TelemetryStore {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/aiops2022-sample");
    TelemetryStore::load(&dir, &LoadOptions::default())
        .expect("fixture loads")
        .0
}

#[test]
fn descent_finds_recommendationservice_in_the_real_sample() {
    let store = fixture();
    let cfg = AnomalyConfig::default();
    let queries = case_queries(&store, 0, &cfg);
    assert_eq!(queries.len(), 1, "the one 13.4 s trace is the query");
    let window = case_window(&store.faults()[0], cfg.default_case_duration_s);
    let methods = build(&store, &["descent"], CommonConfig::default(), 1).unwrap();
    let d = methods[0].diagnose(&store, window, &queries[0]).unwrap();
    let truth = &store.faults()[0];
    let rank = first_match(&d.ranking, truth, Matching::Lenient);
    assert!(rank.is_some_and(|r| r < 3), "ranking {:?}", d.ranking);
    // The descent stopped in the pod whose own span holds the 13.3 s: it leads.
    assert_eq!(d.ranking[0].pod.as_deref(), Some("recommendationservice-1"));
    assert_eq!(d.path.first().map(String::as_str), Some("frontend-2"));
    assert!(d.path.iter().any(|p| p == "recommendationservice-1"));
}

#[test]
fn every_method_answers_on_the_real_sample() {
    let store = fixture();
    let cfg = AnomalyConfig::default();
    let q = &case_queries(&store, 0, &cfg)[0];
    let window = case_window(&store.faults()[0], cfg.default_case_duration_s);
    for m in build(&store, &METHODS, CommonConfig::default(), 1).unwrap() {
        let d = m
            .diagnose(&store, window, q)
            .unwrap_or_else(|e| panic!("{}: {e}", m.name()));
        // No metrics in the sample: the metric methods have nothing to rank; the rest do.
        if !matches!(m.name(), "nsigma" | "baro") {
            assert!(!d.ranking.is_empty(), "{} ranked nothing", m.name());
        }
    }
    assert!(build(&store, &["nope"], CommonConfig::default(), 1).is_err());
}
