//! Simulated data sets the baselines must cope with. The hard difficulty's messy traces (dropped
//! spans, fire-and-forget children, clock skew, statusless services) with every fault type,
//! code-level ones included: the store loads them, the anomaly detector finds queries, the tools
//! answer and every baseline ranks without an error. And the code-level faults, which move no
//! resource metric: trace-based methods find them, metric-only ones mostly do not.

use serde_json::json;
use thinkfl_baselines::{CommonConfig, METHODS, build};
use thinkfl_core::FaultType;
use thinkfl_grader::{Matching, first_match};
use thinkfl_sim::{Difficulty, SimConfig, simulate_to_dir};
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_tools::{
    AnomalyConfig, ToolEnv, ToolRegistry, ToolsConfig, all_case_queries, case_window,
};

#[test]
fn queries_tools_and_baselines_run_on_hard_messy_data() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        seed: 41,
        duration_s: 7_200,
        faults: 17,
        fault_types: FaultType::ALL.to_vec(),
        difficulty: Difficulty::Hard,
        ..SimConfig::default()
    };
    assert!(!cfg.trace_noise().is_none(), "hard means messy traces");
    let out = simulate_to_dir(&cfg, dir.path(), &mut |_, _| {}).unwrap();
    assert!(out.stats.dropped_spans > 0);
    let (store, report) = TelemetryStore::load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(report.skipped_rows, 0);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(store.faults().len(), 17);

    let acfg = AnomalyConfig::default();
    let queries = all_case_queries(&store, &acfg);
    assert_eq!(queries.len(), store.faults().len());
    let with_queries = queries.iter().filter(|q| !q.is_empty()).count();
    assert!(
        with_queries * 10 >= store.faults().len() * 6,
        "only {with_queries} of {} cases have queries",
        store.faults().len()
    );
    // Queries start at entry spans: the inner spans cut off by a dropped parent are not.
    for q in queries.iter().flatten() {
        let s = store
            .trace(&q.trace_id)
            .find(|s| s.span_id() == q.span_id)
            .unwrap();
        assert!(s.parent_span().is_empty(), "query at an inner span: {q:?}");
    }
    let code_with_queries = store
        .faults()
        .iter()
        .zip(&queries)
        .filter(|(f, q)| f.fault_type().is_some_and(FaultType::is_code_fault) && !q.is_empty())
        .count();
    assert!(code_with_queries >= 1, "no code-level case has a query");

    let env = ToolEnv::new(&store, ToolsConfig::default());
    let reg = ToolRegistry::standard();
    let methods = build(&store, &METHODS, CommonConfig::default(), 1).unwrap();
    let mut hits = vec![0usize; methods.len()];
    for (case, qs) in store.faults().iter().zip(&queries) {
        let Some(q) = qs.first() else { continue };
        // The tools answer on the query's span, its component and the faulty component.
        let traces = reg
            .call(
                &env,
                "search_traces",
                &json!({ "parent_span_id": q.span_id }),
            )
            .unwrap_or_else(|e| panic!("search_traces {q:?}: {e}"));
        assert!(!traces.text.is_empty());
        reg.call(
            &env,
            "search_fluctuating_metrics",
            &json!({ "service_name": q.cmdb_id, "timestamp": q.timestamp_ms }),
        )
        .unwrap_or_else(|e| panic!("search_fluctuating_metrics {q:?}: {e}"));
        let logs = reg
            .call(
                &env,
                "search_logs",
                &json!({ "service_name": case.cmdb_id, "timestamp": case.timestamp + 60 }),
            )
            .unwrap_or_else(|e| panic!("search_logs {case:?}: {e}"));
        if case.fault_type().is_some_and(FaultType::is_code_fault) {
            assert!(
                logs.text.contains("error"),
                "{case:?}: the code fault's error lines\n{}",
                logs.text
            );
        }
        reg.call(
            &env,
            "search_anomalous_components",
            &json!({ "timestamp": q.timestamp_ms }),
        )
        .unwrap_or_else(|e| panic!("search_anomalous_components {q:?}: {e}"));
        let window = case_window(case, acfg.default_case_duration_s);
        for (i, m) in methods.iter().enumerate() {
            let d = m
                .diagnose(&store, window, q)
                .unwrap_or_else(|e| panic!("{} on {case:?}: {e}", m.name()));
            if first_match(&d.ranking, case, Matching::Lenient).is_some_and(|r| r < 5) {
                hits[i] += 1;
            }
        }
    }
    // Figures to read, not to assert: who finds what on messy data.
    for (m, h) in methods.iter().zip(&hits) {
        eprintln!("{}: {h} of {with_queries} cases in the top 5", m.name());
    }
}

#[test]
fn code_faults_need_trace_evidence() {
    let mut n = 0;
    // (R@3 hits) of tracerca, nsigma, baro.
    let mut hits = [0usize; 3];
    for seed in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SimConfig {
            seed,
            faults: 20,
            fault_types: FaultType::CODE_LEVEL.to_vec(),
            ..SimConfig::default()
        };
        simulate_to_dir(&cfg, dir.path(), &mut |_, _| {}).unwrap();
        let (store, _) = TelemetryStore::load(dir.path(), &LoadOptions::default()).unwrap();
        let acfg = AnomalyConfig::default();
        let queries = all_case_queries(&store, &acfg);
        let methods = build(
            &store,
            &["tracerca", "nsigma", "baro"],
            CommonConfig::default(),
            1,
        )
        .unwrap();
        for (case, qs) in store.faults().iter().zip(&queries) {
            let Some(q) = qs.first() else { continue };
            n += 1;
            let window = case_window(case, acfg.default_case_duration_s);
            for (h, m) in hits.iter_mut().zip(&methods) {
                let d = m.diagnose(&store, window, q).unwrap();
                if first_match(&d.ranking, case, Matching::Strict).is_some_and(|r| r < 3) {
                    *h += 1;
                }
            }
        }
    }
    eprintln!(
        "{n} code-level cases, R@3: tracerca {}, nsigma {}, baro {}",
        hits[0], hits[1], hits[2]
    );
    assert!(n >= 25, "{n} code-level cases with queries");
    assert!(hits[0] * 10 >= n * 7, "tracerca finds {} of {n}", hits[0]);
    for (name, h) in [("nsigma", hits[1]), ("baro", hits[2])] {
        assert!(
            h * 2 <= n && h * 2 <= hits[0],
            "{name} finds {h} of {n} code-level faults from metrics (tracerca {})",
            hits[0]
        );
    }
}
