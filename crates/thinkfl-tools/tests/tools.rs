//! The tools on the real AIOps 2022 sample and on hand-made data: the paper's plain output byte
//! for byte, the walk down the real trace, the enriched mode, and every kind of bad call.

mod paper_reference;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use thinkfl_core::{Dataset, MetricPoint, MetricSource};
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_tools::{
    AnomalyConfig, OutputMode, ToolEnv, ToolError, ToolRegistry, ToolsConfig, case_queries,
    case_window,
};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/aiops2022-sample")
}

fn fixture() -> TelemetryStore {
    TelemetryStore::load(&fixture_dir(), &LoadOptions::default())
        .expect("the AIOps 2022 sample loads")
        .0
}

fn cfg(mode: OutputMode) -> ToolsConfig {
    ToolsConfig {
        mode,
        ..Default::default()
    }
}

#[test]
fn plain_search_traces_is_the_papers_answer_byte_for_byte() {
    let store = fixture();
    let env = ToolEnv::new(&store, cfg(OutputMode::Plain));
    let reg = ToolRegistry::standard();
    for (parent, expected) in paper_reference::TRACES {
        let out = reg
            .call(&env, "search_traces", &json!({ "parent_span_id": parent }))
            .unwrap_or_else(|e| panic!("{parent}: {e}"));
        assert_eq!(out.text, *expected, "parent {parent}");
    }
}

/// The enriched rows of one search_traces call: (span_id, cmdb_id, operation, duration_ms).
fn enriched_rows(text: &str) -> Vec<(String, String, String, f64)> {
    text.lines()
        .skip(2)
        .filter(|l| !l.starts_with("...") && !l.contains("slow child"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].to_string(),
                f[1].to_string(),
                f[2].to_string(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn search_traces_walks_the_real_tree_to_the_30us_listproducts_span() {
    let store = fixture();
    let env = ToolEnv::new(&store, cfg(OutputMode::Enriched));
    let reg = ToolRegistry::standard();
    // Descend from the entry span always into the slowest child, as an expert would.
    let mut at = "d1b3f238e544e3f0".to_string();
    let mut walk: Vec<(String, String, String, f64)> = Vec::new();
    let mut path: Vec<String> = Vec::new();
    for _ in 0..10 {
        let out = reg
            .call(&env, "search_traces", &json!({ "parent_span_id": at }))
            .unwrap();
        for c in out.touched {
            if !path.contains(&c) {
                path.push(c);
            }
        }
        if out.text.starts_with("no child spans") {
            break;
        }
        let rows = enriched_rows(&out.text);
        let slowest = rows.first().expect("at least one child").clone();
        at = slowest.0.clone();
        walk.push(slowest);
    }
    let ids: Vec<&str> = walk.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        ids,
        [
            "a21065d052ec52ab",
            "af4c664b25ed29e3",
            "125b4bbe94d27a47",
            "025a8665c0c59c04"
        ]
    );
    // frontend-2 calls recommendationservice for 13.3 s ...
    assert_eq!(walk[0].1, "frontend-2");
    assert_eq!(walk[0].3, 13334.0);
    // ... whose ListProducts call (13.33 s) ...
    assert_eq!(walk[2].1, "recommendationservice-1");
    assert_eq!(walk[2].2, "/hipstershop.ProductCatalogService/ListProducts");
    assert_eq!(walk[2].3, 13330.0);
    // ... ends at productcatalogservice-1's 30 µs ListProducts span.
    assert_eq!(walk[3].1, "productcatalogservice-1");
    assert_eq!(walk[3].2, "hipstershop.ProductCatalogService/ListProducts");
    assert_eq!(walk[3].3, 0.03);
    assert_eq!(path.first().map(String::as_str), Some("frontend-2"));
    assert!(
        path.contains(&"recommendationservice-1".to_string()),
        "{path:?}"
    );
    assert!(
        path.contains(&"productcatalogservice-1".to_string()),
        "{path:?}"
    );
}

/// The enriched output's last line names the child that carries the delay; following it from
/// the real sample's entry span stops at recommendationservice-1, the truth of the case, whose
/// 13.3 s ListProducts call waits on a 30 µs answer.
#[test]
fn enriched_search_traces_names_the_slow_child_down_to_the_truth() {
    let store = fixture();
    let env = ToolEnv::new(&store, cfg(OutputMode::Enriched));
    let reg = ToolRegistry::standard();
    let mut at = "d1b3f238e544e3f0".to_string();
    let mut last_lines = Vec::new();
    for _ in 0..10 {
        let out = reg
            .call(&env, "search_traces", &json!({ "parent_span_id": at }))
            .unwrap();
        let last = out.text.lines().last().unwrap().to_string();
        last_lines.push(last.clone());
        match last.strip_prefix("slow child: ") {
            Some(rest) => {
                at = rest.split(' ').next().unwrap().to_string();
                let row = format!("\n{at},");
                assert!(
                    out.text.contains(&row),
                    "{at} is not a row of\n{}",
                    out.text
                );
            }
            None => break,
        }
    }
    assert_eq!(
        last_lines.last().map(String::as_str),
        Some("no slow child: recommendationservice-1 itself holds the delay"),
        "{last_lines:#?}"
    );
    assert!(last_lines.len() >= 3, "{last_lines:#?}");
}

#[test]
fn enriched_search_traces_rows() {
    let store = fixture();
    let env = ToolEnv::new(&store, cfg(OutputMode::Enriched));
    let reg = ToolRegistry::standard();
    let out = reg
        .call(
            &env,
            "search_traces",
            &json!({"parent_span_id": "d1b3f238e544e3f0"}),
        )
        .unwrap();
    let mut lines = out.text.lines();
    assert_eq!(
        lines.next(),
        Some("11 child spans of d1b3f238e544e3f0, slowest first")
    );
    assert_eq!(
        lines.next(),
        Some("span_id,cmdb_id,operation_name,duration_ms,normal_ms,status_code,children")
    );
    // The only RecommendationService call is its own normal; it has one child.
    assert_eq!(
        lines.next(),
        Some(
            "a21065d052ec52ab,frontend-2,hipstershop.RecommendationService/ListRecommendations,13334,13334,0,1"
        )
    );
    // All children of the entry span are frontend-2 client spans.
    assert_eq!(out.touched, ["frontend-2"]);
}

#[test]
fn outputs_are_bounded_with_a_more_rows_line() {
    let store = fixture();
    let reg = ToolRegistry::standard();
    for mode in [OutputMode::Plain, OutputMode::Enriched] {
        let env = ToolEnv::new(
            &store,
            ToolsConfig {
                mode,
                max_rows: 5,
                ..Default::default()
            },
        );
        let out = reg
            .call(
                &env,
                "search_traces",
                &json!({"parent_span_id": "d1b3f238e544e3f0"}),
            )
            .unwrap();
        assert!(
            out.text.lines().any(|l| l == "... 6 more rows"),
            "{mode}: {}",
            out.text
        );
        if mode == OutputMode::Plain {
            assert!(out.text.ends_with("... 6 more rows"), "{}", out.text);
        }
    }
    let env = ToolEnv::new(
        &store,
        ToolsConfig {
            max_rows: 5,
            ..Default::default()
        },
    );
    let out = reg
        .call(
            &env,
            "search_traces",
            &json!({"parent_span_id": "d1b3f238e544e3f0"}),
        )
        .unwrap();
    // Five plain rows, still the paper's JSON for those rows.
    assert_eq!(out.text.matches("\"span_id\"").count(), 5);
}

#[test]
fn anomalous_entry_of_the_sample_is_its_query() {
    let store = fixture();
    assert_eq!(store.faults().len(), 1);
    let w = case_window(&store.faults()[0], 600);
    assert_eq!((w.start_s, w.end_s), (1647747326, 1647747926));
    let qs = case_queries(&store, 0, &AnomalyConfig::default());
    assert_eq!(qs.len(), 1);
    assert_eq!(qs[0].span_id, "d1b3f238e544e3f0");
    assert_eq!(qs[0].cmdb_id, "frontend-2");
    assert_eq!(qs[0].operation_name, "hipstershop.Frontend/Recv.");
    assert_eq!(qs[0].timestamp_ms, 1647747340693);
    assert!(case_queries(&store, 1, &AnomalyConfig::default()).is_empty());
    // A fallback threshold above 13.4 s finds nothing.
    let strict = AnomalyConfig {
        fallback_slow_ms: 20_000.0,
        ..Default::default()
    };
    assert!(case_queries(&store, 0, &strict).is_empty());
}

#[test]
fn search_logs_finds_the_resolution_errors_of_recommendationservice() {
    let store = fixture();
    let env = ToolEnv::new(&store, cfg(OutputMode::Plain));
    let reg = ToolRegistry::standard();
    let out = reg
        .call(
            &env,
            "search_logs",
            &json!({"service_name": "recommendationservice", "timestamp": "1647747340693"}),
        )
        .unwrap();
    let lines: Vec<&str> = out.text.lines().collect();
    assert!(
        lines[0].contains("error/warning log templates"),
        "{}",
        out.text
    );
    assert_eq!(lines[1], "count,level,cmdb_ids,template,example");
    assert!(
        out.text
            .contains("ocket.gaierror: [Errno <NUM>] Name or service not known"),
        "{}",
        out.text
    );
    assert!(
        out.text
            .contains("RROR:opentelemetry.sdk.trace.export:Exception while exporting Span batch.")
    );
    assert_eq!(out.touched[0], "recommendationservice");
    assert!(
        out.touched
            .iter()
            .any(|c| c.starts_with("recommendationservice-"))
    );
    // Frontend's explicit "severity: error" lines are found; its info lines are not.
    let out = reg
        .call(
            &env,
            "search_logs",
            &json!({"service_name": "frontend-1", "timestamp": 1647747400}),
        )
        .unwrap();
    assert!(
        out.text.ends_with(
            "\n8,error,frontend-1,\"severity: error, message: request error\",\"severity: error, message: request error\""
        ),
        "{}",
        out.text
    );
    assert!(!out.text.contains("severity: info"));
    // Deterministic.
    let again = reg
        .call(
            &env,
            "search_logs",
            &json!({"service_name": "frontend-1", "timestamp": 1647747400}),
        )
        .unwrap();
    assert_eq!(out, again);
}

fn paper_metrics_store() -> TelemetryStore {
    let text = include_str!("data/paper_metrics.csv");
    let mut metrics = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        metrics.push(MetricPoint {
            timestamp: f[0].parse().unwrap(),
            cmdb_id: format!("{}.{}", f[1], f[2]),
            kpi_name: f[3].to_string(),
            value: f[4].parse().unwrap(),
            source: MetricSource::Container,
        });
    }
    TelemetryStore::from_dataset(Dataset {
        metrics,
        ..Default::default()
    })
}

#[test]
fn plain_fluctuating_metrics_is_the_papers_table_byte_for_byte() {
    let store = paper_metrics_store();
    let env = ToolEnv::new(&store, cfg(OutputMode::Plain));
    let reg = ToolRegistry::standard();
    for (name, ts, expected) in paper_reference::METRICS {
        let out = reg
            .call(
                &env,
                "search_fluctuating_metrics",
                &json!({"service_name": name, "timestamp": ts}),
            )
            .unwrap_or_else(|e| panic!("{name}@{ts}: {e}"));
        assert_eq!(out.text, *expected, "{name}@{ts}");
    }
    // Touched: the argument, then the node and pod of each row.
    let out = reg
        .call(
            &env,
            "search_fluctuating_metrics",
            &json!({"service_name": "cartservice", "timestamp": 1647747340}),
        )
        .unwrap();
    assert_eq!(
        out.touched,
        [
            "cartservice",
            "node-5",
            "cartservice-1",
            "node-6",
            "cartservice-2"
        ]
    );
}

#[test]
fn enriched_fluctuating_metrics_orders_by_deviation() {
    let store = paper_metrics_store();
    let env = ToolEnv::new(&store, cfg(OutputMode::Enriched));
    let reg = ToolRegistry::standard();
    let out = reg
        .call(
            &env,
            "search_fluctuating_metrics",
            &json!({"service_name": "cartservice", "timestamp": 1647747340}),
        )
        .unwrap();
    let lines: Vec<&str> = out.text.lines().collect();
    assert_eq!(lines[1], "key,regular_mean,current_mean,sigma");
    let sigmas: Vec<f64> = lines[2..]
        .iter()
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(sigmas.len(), 3);
    assert!(sigmas.windows(2).all(|w| w[0] >= w[1]), "{sigmas:?}");
    assert!(sigmas.iter().all(|s| *s > 3.0));
}

fn err(reg: &ToolRegistry, env: &ToolEnv<'_>, name: &str, args: Value) -> ToolError {
    match reg.call(env, name, &args) {
        Ok(o) => panic!("{name} {args} should fail, got {:?}", o.text),
        Err(e) => e,
    }
}

#[test]
fn every_bad_call_is_a_clear_error_text() {
    let store = fixture();
    let env = ToolEnv::new(&store, cfg(OutputMode::Plain));
    let reg = ToolRegistry::standard();
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "search_trace",
            json!({"parent_span_id": "x"}),
            404,
            "unknown tool \"search_trace\". The tools are: search_traces, search_fluctuating_metrics, search_logs, search_anomalous_components, print_results",
        ),
        (
            "search_traces",
            json!("{\"parent_span_id\": "),
            400,
            "arguments are a string that is not valid JSON",
        ),
        (
            "search_traces",
            json!({}),
            400,
            "missing field `parent_span_id`",
        ),
        (
            "search_traces",
            json!({"parent_span_id": "d1b3f238e544e3f0", "depth": 2}),
            400,
            "unknown field `depth`",
        ),
        (
            "search_traces",
            json!({"parent_span_id": 5}),
            400,
            "invalid type: integer `5`, expected a string",
        ),
        (
            "search_traces",
            json!([1, 2]),
            400,
            "arguments must be a JSON object, got an array",
        ),
        (
            "search_traces",
            json!({"parent_span_id": "ffffffffffffffff"}),
            404,
            "no span with span_id \"ffffffffffffffff\"",
        ),
        (
            "search_traces",
            json!({"parent_span_id": "  "}),
            400,
            "parent_span_id is empty",
        ),
        (
            "search_fluctuating_metrics",
            json!({"service_name": "cartservice", "timestamp": "yesterday"}),
            400,
            "bad timestamp \"yesterday\"",
        ),
        (
            "search_fluctuating_metrics",
            json!({"service_name": "cartservice"}),
            400,
            "missing field `timestamp`",
        ),
        (
            "search_fluctuating_metrics",
            json!({"service_name": "nosuchservice", "timestamp": 1647747340}),
            404,
            "no service, pod or node named \"nosuchservice\"",
        ),
        (
            "search_logs",
            json!({"service_name": "", "timestamp": 1647747340}),
            400,
            "service_name is empty",
        ),
        (
            "search_logs",
            json!({"service_name": "frontend", "timestamp": [1]}),
            400,
            "invalid type: sequence, expected a timestamp as a string or a number",
        ),
        (
            "print_results",
            json!({"root_causes": []}),
            400,
            "root_causes is empty",
        ),
        (
            "print_results",
            json!({"root_causes": [{"reason": "slow"}]}),
            400,
            "item 1 names no node, service or pod",
        ),
        (
            "print_results",
            json!({"root_causes": "recommendationservice"}),
            400,
            "invalid type: string \"recommendationservice\", expected a sequence",
        ),
        (
            "print_results",
            json!({"root_causes": [{"service": "a", "confidence": 1}]}),
            400,
            "unknown field `confidence`",
        ),
    ];
    for (name, args, status, needle) in cases {
        let e = err(&reg, &env, name, args.clone());
        let text = e.to_string();
        assert!(text.starts_with("Error: "), "{text}");
        assert!(text.contains(needle), "{name} {args}: {text}");
        assert_eq!(e.http_status(), status, "{name} {args}: {text}");
    }
    // Argument errors remind the model of the expected shape.
    let e = err(&reg, &env, "search_fluctuating_metrics", json!({}));
    assert!(
        e.to_string()
            .ends_with("Expected arguments: {\"service_name\": string, \"timestamp\": string}."),
        "{e}"
    );
}

#[test]
fn arguments_as_a_json_string_and_numbers_are_accepted() {
    let store = fixture();
    let env = ToolEnv::new(&store, cfg(OutputMode::Plain));
    let reg = ToolRegistry::standard();
    let a = reg
        .call(
            &env,
            "search_traces",
            &json!("{\"parent_span_id\": \"125b4bbe94d27a47\"}"),
        )
        .unwrap();
    let b = reg
        .call(
            &env,
            "search_traces",
            &json!({"parent_span_id": " 125b4bbe94d27a47 "}),
        )
        .unwrap();
    assert_eq!(a, b);
    // The fixture has no metrics: a known component answers as the paper's server does.
    let out = reg
        .call(
            &env,
            "search_fluctuating_metrics",
            &json!({"service_name": "recommendationservice", "timestamp": 1647747340693i64}),
        )
        .unwrap();
    assert_eq!(out.text, "{\"message\":\"No matching records found.\"}\n");
}

#[test]
fn print_results_validates_and_touches_nothing() {
    let store = fixture();
    let env = ToolEnv::new(&store, cfg(OutputMode::Plain));
    let reg = ToolRegistry::standard();
    let args = json!({"root_causes": [
        {"service": "recommendationservice", "reason": "13 s calls", "timestamp": "1647747340"},
        {"pod": " recommendationservice-1 "},
        {"node": "node-3", "service": ""}
    ]});
    let out = reg.call(&env, "print_results", &args).unwrap();
    assert_eq!(
        out.text,
        "Recorded 3 root causes, most likely first:\n1. service=recommendationservice (13 s calls)\n2. pod=recommendationservice-1\n3. node=node-3"
    );
    assert!(out.touched.is_empty());
    let parsed = thinkfl_tools::PrintResults::parse(&Value::String(args.to_string())).unwrap();
    assert_eq!(parsed.len(), 3);
    assert_eq!(parsed[1].pod.as_deref(), Some("recommendationservice-1"));
    assert_eq!(parsed[2].service, None);
}

#[test]
fn openai_schemas_snapshot() {
    let reg = ToolRegistry::standard();
    insta::assert_json_snapshot!("openai_tool_schemas", reg.openai_schemas());
}

#[test]
fn fluctuating_metrics_include_the_hosting_node_and_only_it() {
    let t0 = 1647747340i64;
    let mut metrics = Vec::new();
    let series = |metrics: &mut Vec<MetricPoint>, id: &str, kpi: &str, source: MetricSource| {
        for i in 0..41 {
            let t = t0 - 1200 + 60 * i;
            metrics.push(MetricPoint {
                timestamp: t,
                cmdb_id: id.into(),
                kpi_name: kpi.into(),
                value: if t == t0 { 50.0 } else { 1.0 + (i % 2) as f64 },
                source,
            });
        }
    };
    series(
        &mut metrics,
        "node-6.cartservice-2",
        "container_cpu_usage_seconds",
        MetricSource::Container,
    );
    series(
        &mut metrics,
        "node-6",
        "system.cpu.pct_usage",
        MetricSource::Node,
    );
    series(
        &mut metrics,
        "node-5",
        "system.cpu.pct_usage",
        MetricSource::Node,
    );
    series(
        &mut metrics,
        "node-5.cartservice-1",
        "container_cpu_usage_seconds",
        MetricSource::Container,
    );
    let store = TelemetryStore::from_dataset(Dataset {
        metrics,
        ..Default::default()
    });
    let env = ToolEnv::new(&store, cfg(OutputMode::Plain));
    let reg = ToolRegistry::standard();
    let keys = |name: &str| -> Vec<String> {
        let out = reg
            .call(
                &env,
                "search_fluctuating_metrics",
                &json!({"service_name": name, "timestamp": t0}),
            )
            .unwrap();
        out.text
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect()
    };
    // The pod and its node; pandas' groupby order (kpi first).
    assert_eq!(
        keys("cartservice-2"),
        [
            "node-6.cartservice-2.container_cpu_usage_seconds",
            "node-6.system.cpu.pct_usage"
        ]
    );
    // The service: both pods and both nodes.
    assert_eq!(
        keys("cartservice"),
        [
            "node-5.cartservice-1.container_cpu_usage_seconds",
            "node-6.cartservice-2.container_cpu_usage_seconds",
            "node-5.system.cpu.pct_usage",
            "node-6.system.cpu.pct_usage"
        ]
    );
    // A node: its own rows only.
    assert_eq!(keys("node-5"), ["node-5.system.cpu.pct_usage"]);
}
