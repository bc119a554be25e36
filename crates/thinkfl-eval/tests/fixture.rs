//! The real AIOps 2022 sample through the whole evaluation.

use std::path::PathBuf;
use thinkfl_baselines::{CommonConfig, build};
use thinkfl_eval::{EvalConfig, evaluate};
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_tools::Diagnoser;

#[test]
fn descent_puts_recommendationservice_in_the_top_three() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/aiops2022-sample");
    let (store, _) = TelemetryStore::load(&dir, &LoadOptions::default()).unwrap();
    let methods = build(&store, &["descent", "random"], CommonConfig::default(), 1).unwrap();
    let refs: Vec<&dyn Diagnoser> = methods.iter().map(|m| m.as_ref()).collect();
    let r = evaluate(
        &store,
        &refs,
        &EvalConfig::default(),
        "aiops2022-sample",
        1,
        &(),
    )
    .unwrap();
    let d = r.method("descent").unwrap();
    assert_eq!(d.cases.len(), 1);
    let case = &d.cases[0];
    assert_eq!(case.queries, 1);
    assert!(!case.fallback_query);
    assert!(
        case.lenient_rank.is_some_and(|k| k < 3),
        "top: {:?}",
        case.top
    );
    assert_eq!(d.overall.lenient.recall_at(3), 1.0);
    let dir = tempfile::tempdir().unwrap();
    r.write_all(dir.path()).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("descent") && !html.contains("<script"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["methods"][0]["method"], "descent");
}
