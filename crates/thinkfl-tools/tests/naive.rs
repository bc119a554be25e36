//! The indexed tool paths against naive scans (property tests): children from the store's parent
//! index versus a scan of every span in file order; the windowed n-sigma rule versus filtering
//! every point.

use proptest::prelude::*;
use serde_json::json;
use thinkfl_core::{Dataset, Span};
use thinkfl_store::TelemetryStore;
use thinkfl_tools::anomaly::classify_entry;
use thinkfl_tools::nsigma::{NSigmaConfig, fluctuation};
use thinkfl_tools::pyfmt::{pandas_mean, pandas_std};
use thinkfl_tools::{
    AnomalyConfig, AnomalyDetector, OutputMode, ToolEnv, ToolRegistry, ToolsConfig,
};

fn span_strategy() -> impl Strategy<Value = Vec<Span>> {
    // Small id pools so that parents, repeats and orphans all occur.
    prop::collection::vec(
        (
            0u8..12,
            prop::option::of(0u8..14),
            0i64..50,
            0i64..10_000,
            0u8..4,
            0u8..3,
        ),
        1..40,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .map(|(id, parent, ts, dur, pod, kind)| Span {
                timestamp: 1_000_000 + ts,
                cmdb_id: format!("svc{}-{}", pod % 2, pod),
                span_id: format!("s{id:02}"),
                trace_id: "t1".into(),
                duration: dur,
                kind: ["rpc", "", "http"][kind as usize].into(),
                status_code: "0".into(),
                operation_name: format!("op{}", pod % 3),
                parent_span: parent.map(|p| format!("s{p:02}")).unwrap_or_default(),
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn search_traces_rows_equal_a_scan(spans in span_strategy(), query in 0u8..14) {
        let store = TelemetryStore::from_dataset(Dataset { spans: spans.clone(), ..Default::default() });
        let reg = ToolRegistry::standard();
        let env = ToolEnv::new(&store, ToolsConfig { mode: OutputMode::Plain, ..Default::default() });
        let id = format!("s{query:02}");
        let expected: Vec<&Span> = spans.iter().filter(|s| s.parent_span == id).collect();
        let known = spans.iter().any(|s| s.span_id == id) || !expected.is_empty();
        let res = reg.call(&env, "search_traces", &json!({"parent_span_id": id}));
        if !known {
            prop_assert!(res.is_err());
            return Ok(());
        }
        let out = res.unwrap();
        if expected.is_empty() {
            let leaf = out.text.starts_with("{\"message\":\"No trace with parent_span");
            prop_assert!(leaf, "leaf answer: {}", out.text);
        } else {
            // One row per child, in file order, each with its own fields.
            let rows: Vec<&str> = out.text.trim_end().trim_start_matches('[').trim_end_matches(']').split("},{").collect();
            prop_assert_eq!(rows.len(), expected.len());
            for (row, s) in rows.iter().zip(&expected) {
                let span_id_field = format!("\"span_id\":\"{}\"", s.span_id);
                let duration_field = format!("\"duration\":{},", s.duration);
                let ts_field = format!("\"timestamp\":{},", s.timestamp);
                prop_assert!(row.contains(&span_id_field));
                prop_assert!(row.contains(&duration_field));
                prop_assert!(row.contains(&ts_field));
            }
        }
        // Touched: the parent's pod (first span with that id), then the children's pods.
        let mut touched: Vec<String> = Vec::new();
        let parent_pod = spans.iter().find(|s| s.span_id == id).map(|s| s.cmdb_id.clone());
        for c in parent_pod.into_iter().chain(expected.iter().map(|s| s.cmdb_id.clone())) {
            if !touched.contains(&c) {
                touched.push(c);
            }
        }
        prop_assert_eq!(out.touched, touched);
    }

    #[test]
    fn fluctuation_equals_filtering_every_point(
        points in prop::collection::vec((0i64..4000, -50.0f64..50.0), 0..80),
        t in 0i64..4000,
        n_sigma in 0.5f64..3.5,
    ) {
        let mut points = points;
        points.sort_by_key(|p| p.0);
        let ts: Vec<i64> = points.iter().map(|p| p.0).collect();
        let vs: Vec<f64> = points.iter().map(|p| p.1).collect();
        let cfg = NSigmaConfig { n_sigma, ..Default::default() };
        let got = fluctuation(&ts, &vs, t, &cfg);
        let regular: Vec<f64> = points.iter().filter(|p| (p.0 - t).abs() <= 1200).map(|p| p.1).collect();
        let current: Vec<f64> = points.iter().filter(|p| (p.0 - t).abs() <= 600).map(|p| p.1).collect();
        let (m, s) = (pandas_mean(&regular), pandas_std(&regular));
        let want = !m.is_nan() && !s.is_nan() && current.iter().any(|v| *v < m - n_sigma * s || *v > m + n_sigma * s);
        prop_assert_eq!(got.is_some(), want);
        if let Some(f) = got {
            prop_assert_eq!(f.regular_mean.to_bits(), m.to_bits());
            prop_assert_eq!(f.regular_std.to_bits(), s.to_bits());
            prop_assert_eq!(f.current_mean.to_bits(), pandas_mean(&current).to_bits());
        }
    }

    #[test]
    fn detector_window_equals_a_scan_of_the_roots(
        spans in span_strategy(),
        from in 999_990i64..1_000_060,
        len in 0i64..60,
        min_samples in 1usize..4,
    ) {
        let store = TelemetryStore::from_dataset(Dataset { spans, ..Default::default() });
        let cfg = AnomalyConfig { slow_factor: 1.5, min_baseline_samples: min_samples, fallback_slow_ms: 5.0, ..Default::default() };
        let det = AnomalyDetector::new(&store, cfg.clone());
        let got: Vec<String> = det.entries(from, from + len).into_iter().map(|a| a.span_id).collect();
        // Naive: the entry of each trace is its root, or, without one, its earliest span whose
        // parent is absent; baselines from a scan of the entries, then every entry in the window
        // in time order.
        let all: Vec<_> = store.roots().collect();
        let roots: Vec<_> = all
            .iter()
            .filter(|r| {
                r.parent_span().is_empty()
                    || (!all.iter().any(|o| o.trace_id() == r.trace_id() && o.parent_span().is_empty())
                        && all
                            .iter()
                            .filter(|o| o.trace_id() == r.trace_id())
                            .all(|o| (o.timestamp(), o.idx().0) >= (r.timestamp(), r.idx().0)))
            })
            .copied()
            .collect();
        let mut want: Vec<(i64, u32, String)> = Vec::new();
        for r in &roots {
            if r.timestamp() < from || r.timestamp() >= from + len {
                continue;
            }
            let mut d: Vec<i64> = roots
                .iter()
                .filter(|o| thinkfl_core::service_of(o.cmdb_id()) == thinkfl_core::service_of(r.cmdb_id()) && o.operation_name() == r.operation_name())
                .map(|o| o.duration())
                .collect();
            let n = d.len();
            let median = thinkfl_tools::baseline::median_in_place(&mut d);
            if classify_entry(r.duration(), r.status_ok(), Some((median, n)), &cfg).is_some() {
                want.push((r.timestamp(), r.idx().0, r.span_id().to_string()));
            }
        }
        want.sort();
        prop_assert_eq!(got, want.into_iter().map(|w| w.2).collect::<Vec<_>>());
    }
}
