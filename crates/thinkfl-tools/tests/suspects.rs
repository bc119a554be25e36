//! The global view (`search_anomalous_components`) on hand-made data where each kind of
//! evidence points at a different pod.

use serde_json::json;
use thinkfl_core::{Dataset, LogRecord, MetricPoint, MetricSource, Span};
use thinkfl_store::TelemetryStore;
use thinkfl_tools::suspects::Kind;
use thinkfl_tools::{Baselines, SuspectConfig, ToolEnv, ToolRegistry, ToolsConfig, rank_suspects};

const T: i64 = 1_647_700_000; // the moment asked about, s

/// `front-0` (node-1) calls `back-0` (node-2) once a second for 30 minutes; `db-0` (node-3)
/// has a CPU series; `logs-0` writes logs. `kind` picks what goes wrong from `T - 10` on.
fn data(kind: &str) -> TelemetryStore {
    let mut spans = Vec::new();
    let mut metrics = Vec::new();
    let mut logs = Vec::new();
    let start = T - 1800;
    for (i, t) in (start..T + 300).enumerate() {
        let bad = (T - 10..T + 120).contains(&t);
        // A little jitter so that the reference has a spread.
        let jitter = (i % 7) as i64 * 1_000;
        let back_slow = bad && kind == "latency";
        let back_fail = bad && kind == "errors";
        let back_us = 20_000 + jitter + if back_slow { 2_000_000 } else { 0 };
        let trace = format!("t{i}");
        spans.push(Span {
            timestamp: t * 1000,
            cmdb_id: "front-0".into(),
            span_id: format!("f{i}"),
            trace_id: trace.clone(),
            duration: back_us + 5_000 + jitter,
            kind: "rpc".into(),
            status_code: if back_fail { "500" } else { "0" }.into(),
            operation_name: "GetPage".into(),
            parent_span: String::new(),
        });
        spans.push(Span {
            timestamp: t * 1000 + 1,
            cmdb_id: "back-0".into(),
            span_id: format!("b{i}"),
            trace_id: trace,
            duration: back_us,
            kind: "rpc".into(),
            status_code: if back_fail { "500" } else { "0" }.into(),
            operation_name: "GetItem".into(),
            parent_span: format!("f{i}"),
        });
        if t % 60 == 0 {
            let cpu = 0.2 + (i % 5) as f64 * 0.01 + if bad && kind == "cpu" { 3.0 } else { 0.0 };
            metrics.push(MetricPoint {
                timestamp: t,
                cmdb_id: "node-3.db-0".into(),
                kpi_name: "container_cpu_usage_seconds".into(),
                value: cpu,
                source: MetricSource::Container,
            });
            let disk = 10.0 + (i % 3) as f64 + if bad && kind == "node" { 500.0 } else { 0.0 };
            metrics.push(MetricPoint {
                timestamp: t,
                cmdb_id: "node-2".into(),
                kpi_name: "system.io.w_s".into(),
                value: disk,
                source: MetricSource::Node,
            });
        }
        let burst = bad && kind == "logs";
        if t % 30 == 0 || burst {
            logs.push(LogRecord {
                log_id: format!("l{i}"),
                timestamp: t,
                cmdb_id: "logs-0".into(),
                log_name: "log_logs-0_service".into(),
                value: if burst {
                    "severity: error, message: java.lang.NullPointerException at Cart.get"
                } else {
                    "severity: info, message: served"
                }
                .into(),
            });
        }
    }
    // Placement for every pod (logs-0 has only logs).
    metrics.push(MetricPoint {
        timestamp: start,
        cmdb_id: "node-1.front-0".into(),
        kpi_name: "container_memory_usage_MB".into(),
        value: 100.0,
        source: MetricSource::Container,
    });
    metrics.push(MetricPoint {
        timestamp: start,
        cmdb_id: "node-2.back-0".into(),
        kpi_name: "container_memory_usage_MB".into(),
        value: 100.0,
        source: MetricSource::Container,
    });
    metrics.push(MetricPoint {
        timestamp: start,
        cmdb_id: "node-1.logs-0".into(),
        kpi_name: "container_memory_usage_MB".into(),
        value: 100.0,
        source: MetricSource::Container,
    });
    TelemetryStore::from_dataset(Dataset {
        spans,
        metrics,
        logs,
        faults: Vec::new(),
        topology: None,
    })
}

fn top(store: &TelemetryStore) -> (String, Vec<Kind>) {
    let ranked = rank_suspects(
        store,
        &Baselines::compute(store),
        T,
        &SuspectConfig::default(),
    );
    let first = ranked.first().expect("a suspect");
    (first.pod.clone(), first.own.keys().copied().collect())
}

#[test]
fn self_latency_lands_on_the_callee_not_the_waiting_caller() {
    let store = data("latency");
    let (pod, kinds) = top(&store);
    assert_eq!(pod, "back-0");
    assert!(kinds.contains(&Kind::Latency), "{kinds:?}");
    let ranked = rank_suspects(
        &store,
        &Baselines::compute(&store),
        T,
        &SuspectConfig::default(),
    );
    // The caller's own latency did not move: it is not a latency suspect.
    assert!(
        ranked
            .iter()
            .filter(|s| s.pod == "front-0")
            .all(|s| s.own.get(&Kind::Latency).is_none_or(|d| d.z < 3.0)),
        "{ranked:#?}"
    );
}

#[test]
fn own_errors_land_where_the_failure_starts() {
    let (pod, kinds) = top(&data("errors"));
    assert_eq!(pod, "back-0");
    assert!(kinds.contains(&Kind::Errors), "{kinds:?}");
}

#[test]
fn each_kind_of_evidence_names_its_pod() {
    assert_eq!(top(&data("cpu")).0, "db-0");
    assert_eq!(top(&data("logs")).0, "logs-0");
    // A node's disk: the pod it hosts is the suspect, and its node is named.
    let store = data("node");
    let ranked = rank_suspects(
        &store,
        &Baselines::compute(&store),
        T,
        &SuspectConfig::default(),
    );
    assert_eq!(ranked[0].node.as_deref(), Some("node-2"), "{ranked:#?}");
    assert_eq!(ranked[0].pod, "back-0");
}

#[test]
fn a_quiet_moment_has_no_strong_suspect() {
    let store = data("none");
    let ranked = rank_suspects(
        &store,
        &Baselines::compute(&store),
        T,
        &SuspectConfig::default(),
    );
    assert!(ranked.iter().all(|s| s.score < 2.5), "{ranked:#?}");
}

#[test]
fn the_tool_prints_ranked_rows_and_touches_them() {
    let store = data("cpu");
    let env = ToolEnv::new(&store, ToolsConfig::default());
    let reg = ToolRegistry::standard();
    let out = reg
        .call(
            &env,
            "search_anomalous_components",
            &json!({"timestamp": T}),
        )
        .unwrap();
    let mut lines = out.text.lines();
    assert_eq!(lines.next(), Some("pod,node,service,score,evidence"));
    let first = lines.next().unwrap();
    assert!(
        first.starts_with("db-0,node-3,db,") && first.contains("cpu_usage >99"),
        "{}",
        out.text
    );
    assert_eq!(&out.touched[..2], ["db-0", "node-3"]);
    // Milliseconds are read as such; a bad timestamp is a tool error, not a panic.
    let ms = reg
        .call(
            &env,
            "search_anomalous_components",
            &json!({"timestamp": T * 1000}),
        )
        .unwrap();
    assert_eq!(ms.text, out.text);
    assert!(
        reg.call(
            &env,
            "search_anomalous_components",
            &json!({"timestamp": "soon"})
        )
        .is_err()
    );
    assert!(
        reg.call(&env, "search_anomalous_components", &json!({"when": T}))
            .is_err()
    );
}
