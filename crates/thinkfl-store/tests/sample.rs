//! The real AIOps 2022 sample in `shared/fixtures/aiops2022-sample` (one trace of a real
//! packet-corruption fault, its logs and its ground truth) imports as the file says.

use std::path::PathBuf;
use thinkfl_core::{FaultType, Level};
use thinkfl_store::{LoadOptions, TelemetryStore, read_aiops, write_aiops};

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/aiops2022-sample")
}

#[test]
fn sample_imports_with_its_tree_fault_and_logs() {
    let (store, report) = TelemetryStore::load(&sample(), &LoadOptions::default()).unwrap();
    assert_eq!(report.skipped_rows, 0);
    assert_eq!(store.span_count(), 26);
    assert_eq!(store.trace_count(), 1);

    let roots: Vec<_> = store.roots().collect();
    assert_eq!(roots.len(), 1);
    let entry = roots[0];
    assert_eq!(entry.span_id(), "d1b3f238e544e3f0");
    assert_eq!(entry.duration(), 13_385_835);
    assert_eq!(entry.cmdb_id(), "frontend-2");
    assert_eq!(entry.trace_id(), "ae265c5b07acfe6cb3548eb855aa1357");

    // The tree as in the file: 11 children of the entry span, the slow recommendation call
    // chain below it.
    let kids: Vec<_> = store.children("d1b3f238e544e3f0").collect();
    assert_eq!(kids.len(), 11);
    assert!(kids.iter().all(|k| k.cmdb_id() == "frontend-2"));
    assert!(
        kids.windows(2)
            .all(|w| w[0].timestamp() <= w[1].timestamp())
    );
    let rec = store.span_by_id("a21065d052ec52ab").unwrap();
    assert_eq!(rec.parent_span(), "d1b3f238e544e3f0");
    let chain: Vec<_> = store.children("a21065d052ec52ab").collect();
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].cmdb_id(), "recommendationservice-1");
    assert_eq!(chain[0].kind(), "", "empty type is kept");
    let db = store.span_by_id("687bd3fd6f9ba94b").unwrap();
    assert_eq!(db.status_code(), "Ok");
    assert!(db.status_ok());
    assert_eq!(db.parent().unwrap().status_code(), "200");
    assert_eq!(
        store.span_by_id("6bd44260603f2742").unwrap().status_code(),
        "OK"
    );
    // Every span but the entry has its parent in the data.
    assert_eq!(store.spans().filter(|s| s.parent().is_some()).count(), 25);
    assert_eq!(store.trace("ae265c5b07acfe6cb3548eb855aa1357").count(), 26);

    let faults = store.faults();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].level, Level::Service);
    assert_eq!(faults[0].cmdb_id, "recommendationservice");
    assert_eq!(
        faults[0].fault_type(),
        Some(FaultType::ContainerPacketCorruption)
    );
    assert_eq!(faults[0].timestamp, 1647747326);

    assert_eq!(store.log_count(), 14434);
    assert_eq!(
        store.logs_of("cartservice-1", i64::MIN, i64::MAX).count(),
        2241
    );
    assert_eq!(store.logs_of("redis-cart-0", i64::MIN, i64::MAX).count(), 5);
    let rec_logs: Vec<_> = store
        .logs_of("recommendationservice-1", 1647747326, 1647747400)
        .collect();
    assert!(!rec_logs.is_empty());
    assert!(
        rec_logs
            .windows(2)
            .all(|w| w[0].timestamp() <= w[1].timestamp())
    );
    assert!(
        rec_logs
            .iter()
            .all(|l| (1647747326..1647747400).contains(&l.timestamp()))
    );
    assert_eq!(store.series_count(), 0);

    let t = store.topology();
    assert!(store.topology_derived());
    let rec_svc = t.service("recommendationservice").unwrap();
    assert!(
        rec_svc
            .pods
            .contains(&"recommendationservice-1".to_string())
    );
    assert!(
        t.calls
            .contains(&("frontend".to_string(), "recommendationservice".to_string()))
    );
    assert!(t.calls.contains(&(
        "recommendationservice".to_string(),
        "productcatalogservice".to_string()
    )));
    assert_eq!(store.time_range(), Some((1647747220, 1647747460)));
}

#[test]
fn sample_round_trips_through_the_writer() {
    let (ds, _) = read_aiops(&sample(), &LoadOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_aiops(&ds, dir.path()).unwrap();
    let (again, report) = read_aiops(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(report.skipped_rows, 0);
    assert_eq!(again, ds);
    let a = TelemetryStore::from_dataset(ds).to_dataset();
    let b = TelemetryStore::load(dir.path(), &LoadOptions::default())
        .unwrap()
        .0
        .to_dataset();
    assert_eq!(a, b);
}
