//! Property tests: every index query of the store returns exactly what a naive scan of the rows
//! returns (DESIGN.md 4.3).

use proptest::prelude::*;
use thinkfl_core::{Dataset, LogRecord, MetricPoint, MetricSource, Span};
use thinkfl_store::snapshot::Fingerprint;
use thinkfl_store::{LoadReport, TelemetryStore};

const PODS: [&str; 6] = [
    "frontend-0",
    "frontend2-0",
    "cartservice-1",
    "redis-cart-0",
    "node-1",
    "checkout",
];
/// Span ids: few, so that ids repeat and parents are sometimes absent. All 16 lowercase hex
/// digits in the first 6 (the store's `u64` path when only those occur), others after.
const IDS: [&str; 8] = [
    "00000000000000a1",
    "00000000000000b2",
    "00000000000000c3",
    "00000000000000d4",
    "f6f6f6f6f6f6f6f6",
    "0000000000000007",
    "e5",
    "A8",
];

fn span(ids: usize) -> impl Strategy<Value = Span> {
    (
        0i64..40,
        0usize..PODS.len(),
        0usize..ids,
        0usize..4,
        0i64..1000,
        prop_oneof![Just(""), Just("rpc"), Just("http")],
        prop_oneof![Just("0"), Just("OK"), Just("500"), Just("")],
        0usize..IDS.len() + 4,
    )
        .prop_map(|(ts, pod, id, tr, dur, kind, st, par)| Span {
            timestamp: ts,
            cmdb_id: PODS[pod].into(),
            span_id: IDS[id].into(),
            trace_id: format!("trace{tr}"),
            duration: dur,
            kind: kind.into(),
            status_code: st.into(),
            operation_name: format!("op{}", dur % 3),
            parent_span: match par {
                p if p < IDS.len() => IDS[p].into(),
                p if p == IDS.len() => "missing0000000001".into(),
                p if p == IDS.len() + 1 => "00000000000000ff".into(),
                _ => String::new(),
            },
        })
}

const METRIC_IDS: [&str; 7] = [
    "node-1",
    "node-2.frontend-0",
    "node-1.cartservice-1",
    "cartservice-1.source.cartservice.redis-cart",
    "frontend-grpc",
    "cartservice",
    "node-2.redis-cart-0",
];

fn metric() -> impl Strategy<Value = MetricPoint> {
    (
        0i64..30,
        0usize..METRIC_IDS.len(),
        0usize..3,
        -5.0f64..5.0,
        0usize..4,
    )
        .prop_map(|(ts, id, kpi, value, src)| MetricPoint {
            timestamp: ts,
            cmdb_id: METRIC_IDS[id].into(),
            kpi_name: ["cpu", "mem", "rr"][kpi].into(),
            value,
            source: MetricSource::ALL[src],
        })
}

fn log() -> impl Strategy<Value = LogRecord> {
    (0i64..30, 0usize..PODS.len(), 0u32..1000).prop_map(|(ts, pod, n)| LogRecord {
        log_id: format!("id{n}"),
        timestamp: ts,
        cmdb_id: PODS[pod].into(),
        log_name: "log_x".into(),
        value: format!("line, \"{n}\"\nmore"),
    })
}

fn dataset() -> impl Strategy<Value = Dataset> {
    (
        prop_oneof![
            prop::collection::vec(span(IDS.len()), 0..60),
            // Long enough for traces over the store's scan limit (64 spans).
            prop::collection::vec(span(6), 0..200),
        ],
        prop::collection::vec(metric(), 0..60),
        prop::collection::vec(log(), 0..40),
    )
        .prop_map(|(spans, metrics, logs)| Dataset {
            spans,
            metrics,
            logs,
            faults: vec![],
            topology: None,
        })
}

/// Indices of `rows` passing `keep`, in (timestamp, index) order.
fn naive<T>(rows: &[T], ts: impl Fn(&T) -> i64, keep: impl Fn(&T) -> bool) -> Vec<usize> {
    let mut v: Vec<usize> = (0..rows.len()).filter(|&i| keep(&rows[i])).collect();
    v.sort_by_key(|&i| (ts(&rows[i]), i));
    v
}

/// Naive reading of `series_of`, written from the contract's words.
fn naive_belongs(cmdb: &str, source: MetricSource, component: &str) -> bool {
    let is_node = component.starts_with("node-")
        && component[5..].chars().all(|c| c.is_ascii_digit())
        && component.len() > 5;
    let pod = match source {
        MetricSource::Container => cmdb.split_once('.').map(|(_, p)| p),
        MetricSource::Istio => cmdb.split('.').next(),
        _ => None,
    };
    if is_node {
        return cmdb == component;
    }
    let is_pod = thinkfl_core::service_of(component) != component;
    if is_pod {
        return cmdb == component || pod == Some(component);
    }
    match source {
        MetricSource::Service => cmdb == component || cmdb == format!("{component}-grpc"),
        _ => cmdb == component || pod.is_some_and(|p| thinkfl_core::service_of(p) == component),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_index_query_equals_a_naive_scan(ds in dataset(), from in -2i64..45, len in 0i64..30) {
        let store = TelemetryStore::from_dataset(ds.clone());
        check(&store, &ds, from, len)?;
        // The same store written to a snapshot and opened from it (its columns are views of
        // the mapped file then).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.snap");
        let fp = Fingerprint { files: vec![], lenient: false };
        store.write_snapshot(&path, &fp, &LoadReport::default()).unwrap();
        drop(store);
        let mapped = TelemetryStore::from_snapshot(&path).unwrap();
        check(&mapped, &ds, from, len)?;
    }
}

fn check(store: &TelemetryStore, ds: &Dataset, from: i64, len: i64) -> Result<(), TestCaseError> {
    {
        let sp = &ds.spans;
        let to = from + len;
        prop_assert_eq!(store.span_count(), sp.len());
        let idx = |it: Box<dyn Iterator<Item = thinkfl_store::SpanRef<'_>> + '_>| {
            it.map(|s| s.idx().0 as usize).collect::<Vec<_>>()
        };
        for (i, s) in sp.iter().enumerate() {
            prop_assert_eq!(&store.span(thinkfl_store::SpanIdx(i as u32)).to_span(), s);
        }
        for id in IDS
            .iter()
            .copied()
            .chain(["missing0000000001", "00000000000000ff", "nope", ""])
        {
            let first = sp.iter().position(|s| s.span_id == id);
            prop_assert_eq!(store.span_by_id(id).map(|s| s.idx().0 as usize), first);
            let all: Vec<usize> = (0..sp.len()).filter(|&i| sp[i].span_id == id).collect();
            prop_assert_eq!(
                store
                    .spans_by_id(id)
                    .map(|s| s.idx().0 as usize)
                    .collect::<Vec<_>>(),
                all
            );
            let kids = naive(
                sp,
                |s| s.timestamp,
                |s| !id.is_empty() && s.parent_span == id,
            );
            prop_assert_eq!(idx(Box::new(store.children(id))), kids);
        }
        let traces: std::collections::BTreeSet<&str> =
            sp.iter().map(|s| s.trace_id.as_str()).collect();
        prop_assert_eq!(store.trace_count(), traces.len());
        for t in ["trace0", "trace1", "trace2", "trace3", "x"] {
            prop_assert_eq!(
                idx(Box::new(store.trace(t))),
                naive(sp, |s| s.timestamp, |s| s.trace_id == t)
            );
        }
        let roots = naive(
            sp,
            |s| s.timestamp,
            |s| s.parent_span.is_empty() || !sp.iter().any(|p| p.span_id == s.parent_span),
        );
        prop_assert_eq!(idx(Box::new(store.roots())), roots);
        for pod in PODS.iter().copied().chain(["ghost-0"]) {
            prop_assert_eq!(
                idx(Box::new(store.spans_of(pod, from, to))),
                naive(
                    sp,
                    |s| s.timestamp,
                    |s| s.cmdb_id == pod && s.timestamp >= from && s.timestamp < to
                )
            );
            let logs: Vec<&LogRecord> = store
                .logs_of(pod, from, to)
                .map(|l| l.to_record())
                .collect::<Vec<_>>()
                .iter()
                .map(|r| ds.logs.iter().find(|x| *x == r).unwrap())
                .collect();
            let want: Vec<&LogRecord> = naive(
                &ds.logs,
                |l| l.timestamp,
                |l| l.cmdb_id == pod && l.timestamp >= from && l.timestamp < to,
            )
            .into_iter()
            .map(|i| &ds.logs[i])
            .collect();
            prop_assert_eq!(logs, want);
        }
        prop_assert_eq!(
            idx(Box::new(store.spans_between(from, to))),
            naive(
                sp,
                |s| s.timestamp,
                |s| s.timestamp >= from && s.timestamp < to
            )
        );

        // Metric series: key (cmdb, kpi, source); `series` answers the first source.
        let mut keys: Vec<(String, String, MetricSource)> = ds
            .metrics
            .iter()
            .map(|m| (m.cmdb_id.clone(), m.kpi_name.clone(), m.source))
            .collect();
        keys.sort();
        keys.dedup();
        prop_assert_eq!(store.series_count(), keys.len());
        prop_assert_eq!(store.point_count(), ds.metrics.len());
        for id in METRIC_IDS {
            for kpi in ["cpu", "mem", "rr", "zz"] {
                let src = keys.iter().find(|k| k.0 == id && k.1 == kpi).map(|k| k.2);
                let got = store.series(id, kpi);
                prop_assert_eq!(got.map(|s| s.source()), src);
                if let (Some(s), Some(src)) = (got, src) {
                    let want = naive(
                        &ds.metrics,
                        |m| m.timestamp,
                        |m| m.cmdb_id == id && m.kpi_name == kpi && m.source == src,
                    );
                    let ts: Vec<i64> = want.iter().map(|&i| ds.metrics[i].timestamp).collect();
                    let vs: Vec<f64> = want.iter().map(|&i| ds.metrics[i].value).collect();
                    prop_assert_eq!(s.timestamps(), &ts[..]);
                    prop_assert_eq!(s.values(), &vs[..]);
                }
            }
        }
        for comp in [
            "node-1",
            "node-2",
            "frontend-0",
            "frontend",
            "cartservice",
            "cartservice-1",
            "redis-cart",
            "redis-cart-0",
        ] {
            let got: Vec<(String, String, MetricSource)> = store
                .series_of(comp)
                .iter()
                .map(|s| (s.cmdb_id().to_string(), s.kpi().to_string(), s.source()))
                .collect();
            let want: Vec<_> = keys
                .iter()
                .filter(|k| naive_belongs(&k.0, k.2, comp))
                .cloned()
                .collect();
            prop_assert_eq!(got, want, "component {}", comp);
        }

        let all_ts = sp
            .iter()
            .map(|s| s.timestamp.div_euclid(1000))
            .chain(ds.metrics.iter().map(|m| m.timestamp))
            .chain(ds.logs.iter().map(|l| l.timestamp));
        let range = all_ts.fold(None, |acc: Option<(i64, i64)>, t| {
            Some(match acc {
                None => (t, t),
                Some((a, b)) => (a.min(t), b.max(t)),
            })
        });
        prop_assert_eq!(store.time_range(), range);

        let back = store.to_dataset();
        prop_assert_eq!(&back.spans, &ds.spans);
        prop_assert_eq!(&back.logs, &ds.logs);
        let key = |m: &MetricPoint| {
            (
                m.cmdb_id.clone(),
                m.kpi_name.clone(),
                m.source,
                m.timestamp,
                m.value.to_bits(),
            )
        };
        let mut a: Vec<_> = back.metrics.iter().map(key).collect();
        let mut b: Vec<_> = ds.metrics.iter().map(key).collect();
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
    }
    Ok(())
}
