//! Readers and writers: OTLP/Jaeger twins of an AIOps-layout fixture, round trips, the
//! preprocessed layout, errors that name file/line/column, and lenient loads.

use std::fs;
use std::path::{Path, PathBuf};
use thinkfl_core::{Dataset, FaultCase, Level, LogRecord, MetricPoint, MetricSource, Span};
use thinkfl_store::{
    Error, LoadOptions, TelemetryStore, read_aiops, read_jaeger_json, read_otlp_json, write_aiops,
};

fn fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn sorted(mut v: Vec<Span>) -> Vec<Span> {
    v.sort_by(|a, b| (a.timestamp, &a.span_id).cmp(&(b.timestamp, &b.span_id)));
    v
}

const STRICT: LoadOptions = LoadOptions { lenient: false };

#[test]
fn otlp_and_jaeger_twins_import_to_the_same_spans() {
    let (csv, _) = read_aiops(&fixture("twin"), &STRICT).unwrap();
    let (otlp, r1) = read_otlp_json(&fixture("twin.otlp.json"), &STRICT).unwrap();
    let (jaeger, r2) = read_jaeger_json(&fixture("twin.jaeger.json"), &STRICT).unwrap();
    assert_eq!(csv.spans.len(), 6);
    assert_eq!((r1.skipped_rows, r2.skipped_rows), (0, 0));
    let want = sorted(csv.spans.clone());
    assert_eq!(sorted(otlp.spans.clone()), want);
    assert_eq!(sorted(jaeger.spans.clone()), want);
    // Placement comes from k8s.node.name.
    for ds in [&otlp, &jaeger] {
        let t = ds.topology.as_ref().expect("placement kept");
        assert_eq!(t.node_of("frontend-0"), Some("node-1"));
        assert_eq!(t.node_of("cartservice-1"), Some("node-2"));
        assert_eq!(t.node_of("recommendationservice-0"), None);
        assert!(t.calls.contains(&("frontend".into(), "cartservice".into())));
    }
}

#[test]
fn import_write_import_round_trips() {
    for ds in [
        read_otlp_json(&fixture("twin.otlp.json"), &STRICT)
            .unwrap()
            .0,
        read_jaeger_json(&fixture("twin.jaeger.json"), &STRICT)
            .unwrap()
            .0,
        read_aiops(&fixture("preprocessed"), &STRICT).unwrap().0,
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_aiops(&ds, dir.path()).unwrap();
        let (again, report) = read_aiops(dir.path(), &STRICT).unwrap();
        assert_eq!(report.skipped_rows, 0);
        assert_eq!(again.spans, ds.spans);
        assert_eq!(again.logs, ds.logs);
        assert_eq!(again.faults, ds.faults);
        assert_eq!(again.topology, ds.topology);
        // Metrics come back grouped by file; the store's view is the same.
        assert_eq!(
            TelemetryStore::from_dataset(again).to_dataset(),
            TelemetryStore::from_dataset(ds).to_dataset()
        );
    }
}

#[test]
fn every_metric_source_and_odd_value_survives_the_writer() {
    let m = |ts, id: &str, kpi: &str, value, source| MetricPoint {
        timestamp: ts,
        cmdb_id: id.into(),
        kpi_name: kpi.into(),
        value,
        source,
    };
    let ds = Dataset {
        spans: vec![],
        metrics: vec![
            m(
                10,
                "node-6.adservice2-0",
                "container_cpu_usage_seconds",
                0.1 + 0.2,
                MetricSource::Container,
            ),
            m(
                10,
                "node-1",
                "system.cpu.pct_usage",
                1e-9,
                MetricSource::Node,
            ),
            m(
                10,
                "cartservice-1.source.cartservice.redis-cart",
                "istio_requests.grpc.0.2.0",
                -3.5,
                MetricSource::Istio,
            ),
            m(10, "adservice-grpc", "rr", 99.5, MetricSource::Service),
            m(10, "adservice-grpc", "mrt", 1.25e12, MetricSource::Service),
            m(
                70,
                "adservice-grpc",
                "custom kpi/x",
                7.0,
                MetricSource::Service,
            ),
        ],
        logs: vec![LogRecord {
            log_id: "x".into(),
            timestamp: 5,
            cmdb_id: "frontend-0".into(),
            log_name: "log_frontend".into(),
            value: "a,\"b\"\nc".into(),
        }],
        faults: vec![FaultCase {
            timestamp: 7,
            level: Level::Pod,
            cmdb_id: "frontend-0".into(),
            failure_type: "k8s容器网络延迟".into(),
            duration: Some(300),
        }],
        topology: None,
    };
    let dir = tempfile::tempdir().unwrap();
    write_aiops(&ds, dir.path()).unwrap();
    let (again, _) = read_aiops(dir.path(), &STRICT).unwrap();
    assert_eq!(again.logs, ds.logs);
    assert_eq!(again.faults, ds.faults);
    assert!(again.topology.is_none());
    assert_eq!(
        TelemetryStore::from_dataset(again).to_dataset(),
        TelemetryStore::from_dataset(ds).to_dataset()
    );
}

#[test]
fn preprocessed_layout_groundtruth_dir_and_topology_json() {
    let (store, report) = TelemetryStore::load(&fixture("preprocessed"), &STRICT).unwrap();
    assert_eq!(report.skipped_rows, 0);
    let cpu = store
        .series("node-6.adservice2-0", "container_cpu_usage_seconds")
        .unwrap();
    assert_eq!(cpu.source(), MetricSource::Container);
    assert_eq!(cpu.timestamps(), &[1647747300, 1647747360]);
    assert_eq!(cpu.values(), &[0.52, 0.61]);
    assert_eq!(
        store
            .series("node-6", "system.cpu.pct_usage")
            .unwrap()
            .source(),
        MetricSource::Node
    );
    assert_eq!(
        store.series("adservice-grpc", "mrt").unwrap().source(),
        MetricSource::Service
    );
    let istio = store
        .series(
            "cartservice-1.source.cartservice.redis-cart",
            "istio_requests.grpc.0.2.0",
        )
        .unwrap();
    assert_eq!(istio.source(), MetricSource::Istio);
    let of_ad: Vec<_> = store
        .series_of("adservice")
        .iter()
        .map(|s| s.cmdb_id().to_string())
        .collect();
    assert_eq!(of_ad, ["adservice-grpc", "node-6.adservice2-0"]);
    let of_cart_pod: Vec<_> = store
        .series_of("cartservice-1")
        .iter()
        .map(|s| s.kpi().to_string())
        .collect();
    assert_eq!(
        of_cart_pod,
        ["istio_requests.grpc.0.2.0", "container_memory_usage_MB"]
    );

    let logs: Vec<_> = store.logs_of("cartservice-1", 0, i64::MAX).collect();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0].value(),
        "multi-line\nvalue, with \"quotes\" and commas"
    );
    let ad: Vec<_> = store
        .logs_of("adservice2-0", 0, i64::MAX)
        .map(|l| l.log_id())
        .collect();
    assert_eq!(ad, ["a3", "a1"], "time order");

    // Both ground-truth files, in time order.
    let f = store.faults();
    assert_eq!(f.len(), 2);
    assert_eq!(
        (f[0].level, f[0].cmdb_id.as_str()),
        (Level::Pod, "adservice2-0")
    );
    assert_eq!((f[1].level, f[1].cmdb_id.as_str()), (Level::Node, "node-6"));

    // topology.json wins over derivation.
    assert!(!store.topology_derived());
    assert_eq!(store.topology().node_of("frontend-0"), Some("node-1"));
    assert_eq!(store.topology().nodes, ["node-1", "node-6"]);
}

#[test]
fn derived_topology_places_pods_from_container_ids() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("preprocessed"), dir.path());
    fs::remove_file(dir.path().join("topology.json")).unwrap();
    let (store, _) = TelemetryStore::load(dir.path(), &STRICT).unwrap();
    let t = store.topology();
    assert!(store.topology_derived());
    assert_eq!(t.node_of("adservice2-0"), Some("node-6"));
    assert_eq!(t.node_of("cartservice-1"), Some("node-1"));
    assert_eq!(t.service("adservice").unwrap().pods, ["adservice2-0"]);
    assert_eq!(t.calls, [("frontend".to_string(), "adservice".to_string())]);
    assert!(t.nodes.contains(&"node-6".to_string()));
}

fn copy_dir(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            fs::create_dir_all(&dst).unwrap();
            copy_dir(&e.path(), &dst);
        } else {
            fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// A span file with a bad duration on line 3 and a short row on line 5.
fn bad_spans() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("trace/all");
    fs::create_dir_all(&p).unwrap();
    fs::write(
        p.join("trace_jaeger-span.csv"),
        "timestamp,cmdb_id,span_id,trace_id,duration,type,status_code,operation_name,parent_span\n\
         1,frontend-0,a1,t1,10,rpc,0,op,\n\
         2,frontend-0,a2,t1,ten,rpc,0,op,a1\n\
         3,frontend-0,a3,t1,10,rpc,0,op,a1\n\
         4,frontend-0,a4,t1\n\
         5,frontend-0,a5,t1,10,rpc,0,\"op, with comma\",a1\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_malformed_row_names_file_line_and_column() {
    let dir = bad_spans();
    let err = read_aiops(dir.path(), &STRICT).unwrap_err();
    match &err {
        Error::Parse {
            file,
            line,
            column,
            message,
        } => {
            assert!(file.ends_with("trace/all/trace_jaeger-span.csv"));
            assert_eq!(*line, 3);
            assert_eq!(column, "5 (duration)");
            assert!(message.contains("\"ten\""), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("trace_jaeger-span.csv:3: column 5 (duration)"),
        "{text}"
    );
}

#[test]
fn lenient_skips_bad_rows_and_counts_them() {
    let dir = bad_spans();
    let (ds, report) = read_aiops(dir.path(), &LoadOptions::lenient()).unwrap();
    assert_eq!(report.skipped_rows, 2);
    assert_eq!(report.warnings.len(), 2);
    assert!(report.warnings[1].contains(":5:"), "{:?}", report.warnings);
    let ids: Vec<_> = ds.spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(ids, ["a1", "a3", "a5"]);
    assert_eq!(ds.spans[2].operation_name, "op, with comma");
    let (store, report) = TelemetryStore::load(dir.path(), &LoadOptions::lenient()).unwrap();
    assert_eq!((store.span_count(), report.skipped_rows), (3, 2));
}

#[test]
fn missing_columns_and_empty_directories_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_aiops(dir.path(), &STRICT).unwrap_err().to_string();
    assert!(err.contains("no AIOps 2022 data found"), "{err}");
    fs::create_dir_all(dir.path().join("log/all")).unwrap();
    fs::write(
        dir.path().join("log/all/x.csv"),
        "log_id,timestamp,cmdb_id,value\n",
    )
    .unwrap();
    let err = read_aiops(dir.path(), &STRICT).unwrap_err().to_string();
    assert!(
        err.contains("x.csv") && err.contains("\"log_name\""),
        "{err}"
    );
}

#[test]
fn json_errors_name_line_and_column_and_lenient_skips_the_span() {
    let text = fs::read_to_string(fixture("twin.otlp.json")).unwrap();
    let bad = text.replacen("\"spanId\": \"00f067aa0ba902b7\"", "\"spanId\": \"xyz\"", 1);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.json");
    fs::write(&p, &bad).unwrap();
    let line_of_span = bad.lines().position(|l| l.contains("\"xyz\"")).unwrap() as u64; // the span object opens on the line before its spanId
    match read_otlp_json(&p, &STRICT).unwrap_err() {
        Error::Parse {
            line,
            column,
            message,
            ..
        } => {
            assert_eq!(line, line_of_span - 1);
            assert!(column.contains("spanId"), "{column}");
            assert!(
                message.contains("resourceSpans[0].scopeSpans[0].spans[1]"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let (ds, report) = read_otlp_json(&p, &LoadOptions::lenient()).unwrap();
    assert_eq!((ds.spans.len(), report.skipped_rows), (5, 1));

    // A type error inside a span is located exactly.
    let bad = text.replacen(
        "\"startTimeUnixNano\": 1647747341000000000",
        "\"startTimeUnixNano\": [1]",
        1,
    );
    fs::write(&p, &bad).unwrap();
    let want_line = bad.lines().position(|l| l.contains("[1]")).unwrap() as u64 + 1;
    match read_otlp_json(&p, &STRICT).unwrap_err() {
        Error::Parse { line, .. } => assert_eq!(line, want_line),
        other => panic!("{other:?}"),
    }
    // A syntax error fails the file with its position.
    fs::write(&p, "{\n  \"data\": [\n    {,\n").unwrap();
    match read_jaeger_json(&p, &LoadOptions::lenient()).unwrap_err() {
        Error::Parse { line, .. } => assert_eq!(line, 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn groundtruth_keeps_the_data_sets_four_columns_and_durations_go_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let fault = |t: i64, id: &str, d: Option<i64>| FaultCase {
        timestamp: t,
        level: Level::Pod,
        cmdb_id: id.into(),
        failure_type: "k8s容器cpu负载".into(),
        duration: d,
    };
    let ds = Dataset {
        faults: vec![
            fault(100, "cartservice-1", Some(150)),
            fault(900, "frontend-0", None),
        ],
        ..Default::default()
    };
    thinkfl_store::write_aiops(&ds, dir.path()).unwrap();
    let gt = fs::read_to_string(dir.path().join("groundtruth.csv")).unwrap();
    assert_eq!(
        gt.lines().next(),
        Some("timestamp,level,cmdb_id,failure_type")
    );
    assert_eq!(
        gt.lines().nth(1),
        Some("100,pod,cartservice-1,k8s容器cpu负载")
    );
    let (back, report) = thinkfl_store::read_aiops(dir.path(), &Default::default()).unwrap();
    assert!(report.warnings.is_empty() && report.skipped_rows == 0);
    assert_eq!(back.faults, ds.faults);
}

#[test]
fn code_level_fault_types_round_trip_through_groundtruth() {
    let dir = tempfile::tempdir().unwrap();
    let faults: Vec<FaultCase> = thinkfl_core::FaultType::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| FaultCase {
            timestamp: 1_000 + 300 * i as i64,
            level: if t.is_node_fault() {
                Level::Node
            } else if i % 2 == 0 {
                Level::Service
            } else {
                Level::Pod
            },
            cmdb_id: if t.is_node_fault() {
                "node-1".into()
            } else if i % 2 == 0 {
                "cartservice".into()
            } else {
                "cartservice-1".into()
            },
            failure_type: t.data_name().into(),
            duration: Some(120),
        })
        .collect();
    let ds = Dataset {
        faults,
        ..Default::default()
    };
    thinkfl_store::write_aiops(&ds, dir.path()).unwrap();
    let gt = fs::read_to_string(dir.path().join("groundtruth.csv")).unwrap();
    assert!(
        gt.contains(",service,cartservice,code exception\n")
            || gt.contains(",pod,cartservice-1,code exception\n"),
        "{gt}"
    );
    assert!(gt.contains("error response"), "{gt}");
    let (back, report) = thinkfl_store::read_aiops(dir.path(), &Default::default()).unwrap();
    assert!(report.warnings.is_empty() && report.skipped_rows == 0);
    assert_eq!(back.faults, ds.faults);
    let types: Vec<_> = back
        .faults
        .iter()
        .map(|f| f.fault_type().unwrap())
        .collect();
    assert_eq!(types, thinkfl_core::FaultType::ALL);
    assert_eq!(back.faults[15].display_type(), "code exception");
    assert_eq!(back.faults[16].display_type(), "error response");
}
