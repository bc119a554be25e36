//! Same seed, byte-identical files; different seeds, different incidents; independent streams.

mod common;

use common::hash_dir;
use thinkfl_core::Dataset;
use thinkfl_sim::{Preset, SimConfig, plan, simulate_dataset, simulate_to_dir};
use thinkfl_store::{LoadOptions, TelemetryStore};

fn small(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        duration_s: 3600,
        faults: 5,
        ..SimConfig::default()
    }
}

#[test]
fn same_seed_writes_byte_identical_files() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let cfg = small(7);
    simulate_to_dir(&cfg, a.path(), &mut |_, _| {}).unwrap();
    simulate_to_dir(&cfg, b.path(), &mut |_, _| {}).unwrap();
    let ha = hash_dir(a.path());
    let hb = hash_dir(b.path());
    for f in [
        "trace/all/trace_jaeger-span.csv",
        "log/all/log_filebeat-testbed-log-service.csv",
        "metric/node/kpi_node.csv",
        "metric/service/metric_service.csv",
        "groundtruth.csv",
        "topology.json",
    ] {
        assert!(
            ha.contains_key(f),
            "{f} written: {:?}",
            ha.keys().collect::<Vec<_>>()
        );
    }
    assert!(ha.keys().any(|k| k.starts_with("metric/container/")));
    assert!(ha.keys().any(|k| k.starts_with("metric/istio/")));
    assert_eq!(ha, hb);
    let other = tempfile::tempdir().unwrap();
    simulate_to_dir(&small(8), other.path(), &mut |_, _| {}).unwrap();
    let hc = hash_dir(other.path());
    assert_ne!(
        ha["trace/all/trace_jaeger-span.csv"],
        hc["trace/all/trace_jaeger-span.csv"]
    );
    assert_ne!(ha["groundtruth.csv"], hc["groundtruth.csv"]);
}

#[test]
fn different_seeds_give_different_incidents() {
    let plans: Vec<_> = (1..=5).map(|s| plan(&small(s)).unwrap()).collect();
    for i in 0..plans.len() {
        for j in i + 1..plans.len() {
            assert_ne!(
                plans[i].faults,
                plans[j].faults,
                "seeds {} and {}",
                i + 1,
                j + 1
            );
        }
    }
    // The plan is the run's schedule.
    let ds = simulate_dataset(&small(3)).unwrap();
    assert_eq!(ds.faults, plans[2].faults);
}

#[test]
fn streams_are_independent_logs_do_not_change_traces() {
    let with = simulate_dataset(&small(5)).unwrap();
    let without = simulate_dataset(&SimConfig {
        logs: false,
        ..small(5)
    })
    .unwrap();
    assert!(without.logs.is_empty());
    assert!(with.spans == without.spans, "spans differ");
    assert!(with.metrics == without.metrics, "metrics differ");
}

#[test]
fn every_preset_is_deterministic_in_memory() {
    for (preset, services) in [
        (Preset::OnlineBoutique, 0),
        (Preset::TrainTicket, 0),
        (Preset::Synthetic, 120),
    ] {
        let cfg = SimConfig {
            preset,
            services,
            duration_s: 1200,
            faults: 2,
            warmup_s: 300,
            traces_per_minute: 30.0,
            ..SimConfig::default()
        };
        let a: Dataset = simulate_dataset(&cfg).unwrap();
        let b: Dataset = simulate_dataset(&cfg).unwrap();
        assert!(!a.spans.is_empty());
        assert!(a == b, "{preset} differs between two runs");
    }
}

#[test]
fn output_imports_into_the_store_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        faults: 8,
        ..small(21)
    };
    let out = simulate_to_dir(&cfg, dir.path(), &mut |_, _| {}).unwrap();
    let (store, report) = TelemetryStore::load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(report.skipped_rows, 0);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(store.span_count() as u64, out.stats.spans);
    assert_eq!(store.log_count() as u64, out.stats.logs);
    assert_eq!(store.point_count() as u64, out.stats.metrics);
    assert_eq!(store.faults(), out.faults.as_slice());
    assert_eq!(store.topology(), &out.topology);
    assert_eq!(store.trace_count() as u64, store.roots().count() as u64);
    // Every fault's component is known to the store's topology.
    for f in store.faults() {
        assert!(
            store.topology().nodes.contains(&f.cmdb_id)
                || store.topology().service(&f.cmdb_id).is_some()
                || store.topology().placement.contains_key(&f.cmdb_id)
        );
    }
}
