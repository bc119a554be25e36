//! The traces of the `hard` difficulty as a real tracing pipeline delivers them: spans dropped by
//! the exporter, fire-and-forget children that start after their parent ended, server spans
//! that outlive their caller, per-host clock skew, and services whose spans carry no status. The
//! `easy` and `standard` levels keep clean traces.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use thinkfl_core::{Dataset, FaultType, Span};
use thinkfl_sim::{
    Difficulty, MemorySink, SimConfig, TraceNoise, simulate, simulate_dataset, simulate_to_dir,
};
use thinkfl_store::{LoadOptions, TelemetryStore};

fn hard(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        duration_s: 3600,
        faults: 8,
        difficulty: Difficulty::Hard,
        fault_types: FaultType::ALL.to_vec(),
        ..SimConfig::default()
    }
}

fn by_id(ds: &Dataset) -> HashMap<&str, &Span> {
    ds.spans.iter().map(|s| (s.span_id.as_str(), s)).collect()
}

#[test]
fn hard_traces_miss_spans_and_keep_every_root() {
    let cfg = hard(31);
    let mut sink = MemorySink::default();
    let out = simulate(&cfg, &mut sink, &mut |_, _| {}).unwrap();
    let ds = sink.dataset;
    assert_eq!(
        out.stats.spans,
        ds.spans.len() as u64,
        "stats count written spans"
    );
    let total = out.stats.spans + out.stats.dropped_spans;
    let share = out.stats.dropped_spans as f64 / total as f64;
    assert!(
        (0.01..0.03).contains(&share),
        "{share}: about TraceNoise::HARD.drop_span of the non-root spans dropped"
    );
    let ids = by_id(&ds);
    let orphans = ds
        .spans
        .iter()
        .filter(|s| !s.is_root() && !ids.contains_key(s.parent_span.as_str()))
        .count();
    assert!(
        orphans > 0,
        "children of dropped spans point at a missing parent"
    );
    // Roots are never dropped: one per trace.
    let traces: BTreeSet<&str> = ds.spans.iter().map(|s| s.trace_id.as_str()).collect();
    let roots = ds.spans.iter().filter(|s| s.is_root()).count();
    assert_eq!(roots, traces.len());
}

#[test]
fn hard_traces_have_async_children_and_clock_skew() {
    let ds = simulate_dataset(&hard(32)).unwrap();
    let ids = by_id(&ds);
    let mut starts_after_end = 0;
    let mut outlives = 0;
    let mut cross_host_early = 0;
    let mut same_pod_early = 0;
    for s in &ds.spans {
        let Some(p) = ids.get(s.parent_span.as_str()) else {
            continue;
        };
        let (s0, s1) = (s.timestamp * 1000, s.end_us());
        let (p0, p1) = (p.timestamp * 1000, p.end_us());
        if p.cmdb_id == s.cmdb_id {
            // One host, one clock: a child never starts before its parent.
            same_pod_early += usize::from(s0 < p0);
            continue;
        }
        starts_after_end += usize::from(s0 > p1 + 5_000);
        outlives += usize::from(s1 > p1 + 2_000);
        cross_host_early += usize::from(s0 + 2_000 < p0);
    }
    assert_eq!(same_pod_early, 0);
    assert!(
        starts_after_end > 0,
        "no child starts after its parent ended"
    );
    assert!(outlives > starts_after_end, "no child outlives its parent");
    assert!(
        cross_host_early > 0,
        "no skew: a server span never starts before its client"
    );
    // The skew is per host: the offsets of client->server pairs between two nodes cluster.
    let topo = ds.topology.as_ref().unwrap();
    let mut gaps: BTreeMap<(&str, &str), Vec<i64>> = BTreeMap::new();
    for s in &ds.spans {
        if let Some(p) = ids.get(s.parent_span.as_str())
            && p.cmdb_id != s.cmdb_id
        {
            let (a, b) = (
                topo.node_of(&p.cmdb_id).unwrap(),
                topo.node_of(&s.cmdb_id).unwrap(),
            );
            gaps.entry((a, b))
                .or_default()
                .push(s.timestamp - p.timestamp);
        }
    }
    let medians: Vec<i64> = gaps
        .values_mut()
        .filter(|v| v.len() > 100)
        .map(|v| {
            v.sort_unstable();
            v[v.len() / 2]
        })
        .collect();
    let lo = *medians.iter().min().unwrap();
    let hi = *medians.iter().max().unwrap();
    assert!(hi - lo >= 10, "node pairs' median offsets {lo}..{hi} ms");
    // Spans are still written in time order (of the clock that stamped them).
    assert!(
        ds.spans
            .windows(2)
            .all(|w| w[0].timestamp <= w[1].timestamp)
    );
}

#[test]
fn some_services_export_no_status_and_fail_only_in_logs() {
    // Every non-entry service without status codes, one code exception after another.
    let cfg = SimConfig {
        seed: 33,
        duration_s: 3600,
        faults: 6,
        difficulty: Difficulty::Standard,
        fault_types: vec![FaultType::CodeException],
        confounders: false,
        trace_noise: Some(TraceNoise {
            statusless_services: 1.0,
            ..TraceNoise::NONE
        }),
        ..SimConfig::default()
    };
    let ds = simulate_dataset(&cfg).unwrap();
    let topo = ds.topology.as_ref().unwrap();
    let mut codes: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in &ds.spans {
        codes
            .entry(thinkfl_core::service_of(&s.cmdb_id))
            .or_default()
            .insert(s.status_code.as_str());
    }
    // The entry service keeps its codes, and its failures show.
    assert!(codes["frontend"].len() > 1, "{:?}", codes["frontend"]);
    let statusless: Vec<&&str> = codes
        .iter()
        .filter(|(_, c)| c.len() == 1)
        .map(|(s, _)| s)
        .collect();
    assert!(statusless.len() >= 5, "{codes:?}");
    assert!(
        codes.values().any(|c| c.len() == 1 && c.contains("")),
        "{codes:?}"
    );
    let checked = ds
        .faults
        .iter()
        .filter(|f| thinkfl_core::service_of(&f.cmdb_id) != "frontend");
    let mut n = 0;
    for f in checked {
        n += 1;
        let pods: Vec<String> = common::fault_components(f, topo).0;
        let window =
            |ts_s: i64| ts_s >= f.timestamp && ts_s < f.timestamp + f.duration.unwrap() + 30;
        let failed_own = ds
            .spans
            .iter()
            .filter(|s| pods.contains(&s.cmdb_id) && window(s.timestamp / 1000))
            .filter(|s| !s.status_ok())
            .count();
        let errors = ds
            .logs
            .iter()
            .filter(|l| pods.contains(&l.cmdb_id) && window(l.timestamp))
            .filter(|l| {
                l.value.contains("Exception")
                    || l.value.contains("panic")
                    || l.value.contains("Error:")
            })
            .count();
        assert_eq!(failed_own, 0, "{f:?}: its spans carry no status");
        assert!(errors > 0, "{f:?}: the exception is in its logs");
    }
    assert!(n >= 3, "{n} faults outside the entry service");
}

#[test]
fn hard_metrics_stay_one_point_a_minute_and_logs_are_untouched() {
    let ds = simulate_dataset(&hard(34)).unwrap();
    assert!(ds.metrics.iter().all(|m| m.timestamp % 60 == 0));
    let clean = simulate_dataset(&SimConfig {
        trace_noise: Some(TraceNoise {
            async_call: 0.0,
            ..TraceNoise::HARD
        }),
        ..hard(34)
    })
    .unwrap();
    let clean_all = simulate_dataset(&SimConfig {
        trace_noise: Some(TraceNoise::NONE),
        ..hard(34)
    })
    .unwrap();
    // Without fire-and-forget calls the noise is the exporter's alone: the system behaves the
    // same (metrics and logs identical), only the spans differ.
    assert!(clean.metrics == clean_all.metrics);
    assert!(clean.logs == clean_all.logs);
    assert!(clean.spans != clean_all.spans);
}

#[test]
fn hard_is_deterministic_and_loads_into_the_store() {
    let cfg = hard(35);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let out = simulate_to_dir(&cfg, a.path(), &mut |_, _| {}).unwrap();
    simulate_to_dir(&cfg, b.path(), &mut |_, _| {}).unwrap();
    assert_eq!(common::hash_dir(a.path()), common::hash_dir(b.path()));
    let (store, report) = TelemetryStore::load(a.path(), &LoadOptions::default()).unwrap();
    assert_eq!(report.skipped_rows, 0);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(store.span_count() as u64, out.stats.spans);
    assert_eq!(store.faults(), out.faults.as_slice());
    // Roots of the store: true roots and the orphans of dropped spans.
    assert!(store.roots().count() > store.trace_count());
}

#[test]
fn easy_and_standard_traces_are_clean() {
    for difficulty in [Difficulty::Easy, Difficulty::Standard] {
        let cfg = SimConfig {
            duration_s: 1200,
            faults: 2,
            warmup_s: 300,
            traces_per_minute: 40.0,
            difficulty,
            ..SimConfig::default()
        };
        assert!(cfg.trace_noise().is_none());
        let mut sink = MemorySink::default();
        let out = simulate(&cfg, &mut sink, &mut |_, _| {}).unwrap();
        assert_eq!(out.stats.dropped_spans, 0);
        let ds = sink.dataset;
        let ids = by_id(&ds);
        assert!(
            ds.spans
                .iter()
                .all(|s| s.is_root() || ids.contains_key(s.parent_span.as_str()))
        );
        assert!(ds.spans.iter().all(|s| !s.status_code.is_empty()));
    }
}
