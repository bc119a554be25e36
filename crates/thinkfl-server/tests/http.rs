//! The tool server over loopback: the paper's endpoints, /v1/tools, data set selection, every
//! kind of bad request answered with a 4xx JSON error, and 1,000 concurrent connections with
//! malformed requests mixed in, all answered correctly.

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use thinkfl_core::{Dataset, MetricPoint, MetricSource};
use thinkfl_server::loadgen::{self, LoadConfig, Probe, send_once};
use thinkfl_server::{LoadedDataset, ToolServer, ToolServerConfig, serve};
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_tools::{OutputMode, ToolEnv, ToolRegistry, ToolsConfig};

const ENTRY: &str = "d1b3f238e544e3f0";

fn sample() -> LoadedDataset {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/aiops2022-sample");
    LoadedDataset::load(&dir, &LoadOptions::default()).expect("sample loads")
}

/// A second data set: one fluctuating container series of cartservice-2.
fn metrics_only() -> LoadedDataset {
    let t0 = 1647747340;
    let metrics = (0..41)
        .map(|i| {
            let t = t0 - 1200 + 60 * i;
            MetricPoint {
                timestamp: t,
                cmdb_id: "node-6.cartservice-2".into(),
                kpi_name: "container_cpu_usage_seconds".into(),
                value: if t == t0 + 60 {
                    9.0
                } else {
                    0.4 + (i % 3) as f64 * 0.01
                },
                source: MetricSource::Container,
            }
        })
        .collect();
    LoadedDataset::new(
        "metrics-only",
        TelemetryStore::from_dataset(Dataset {
            metrics,
            ..Default::default()
        }),
    )
}

async fn start(
    datasets: Vec<LoadedDataset>,
    config: ToolServerConfig,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let server = Arc::new(ToolServer::new(datasets, config.clone()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let limits = config.limits.clone();
    tokio::spawn(async move {
        serve(listener, server.router(), &limits, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (addr, tx)
}

async fn get(addr: SocketAddr, path: &str) -> loadgen::Response {
    send_once(addr, &Probe::get(path, 0).raw, Duration::from_secs(10))
        .await
        .unwrap()
}

async fn post(addr: SocketAddr, path: &str, ct: &str, body: &str) -> loadgen::Response {
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    send_once(addr, raw.as_bytes(), Duration::from_secs(10))
        .await
        .unwrap()
}

fn json_error(r: &loadgen::Response) -> String {
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/json"),
        "{}: {}",
        r.status,
        r.text()
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()));
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {v}"))
        .to_string()
}

/// What the in-process tool answers, for comparison.
fn in_process(ds: &LoadedDataset, name: &str, args: Value, mode: OutputMode) -> String {
    let env = ToolEnv::new(
        &ds.store,
        ToolsConfig {
            mode,
            ..Default::default()
        },
    );
    ToolRegistry::standard()
        .call(&env, name, &args)
        .unwrap()
        .text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_endpoints_answer_like_the_tools() {
    let (addr, _stop) = start(vec![sample(), metrics_only()], ToolServerConfig::default()).await;
    let ds = sample();

    let r = get(
        addr,
        &format!("/search_traces?parent_span_id={ENTRY}&cloudbed_id=aiops2022-sample"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        r.text(),
        in_process(
            &ds,
            "search_traces",
            json!({"parent_span_id": ENTRY}),
            OutputMode::Plain
        )
    );

    let r = get(
        addr,
        &format!(
            "/search_traces?parent_span_id={ENTRY}&cloudbed_id=aiops2022-sample&mode=enriched"
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.text().starts_with("11 child spans of d1b3f238e544e3f0"),
        "{}",
        r.text()
    );

    let r = get(addr, "/search_fluctuating_metrics?service_name=cartservice-2&timestamp=1647747340693&cloudbed_id=metrics-only").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().starts_with("key,regular_mean,regular_std_dev,current_mean,current_std_dev\nnode-6.cartservice-2.container_cpu_usage_seconds,"), "{}", r.text());

    let r = get(addr, "/search_logs?service_name=recommendationservice&timestamp=1647747340&cloudbed_id=aiops2022-sample").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("gaierror"), "{}", r.text());

    let r = get(addr, &format!("/check_trace?span_id={ENTRY}")).await;
    assert_eq!((r.status, r.text()), (200, "{\"exists\":true}".to_string()));
    let r = get(addr, "/check_trace?span_id=0000000000000000").await;
    assert_eq!(
        (r.status, r.text()),
        (404, "{\"exists\":false}".to_string())
    );

    let r = get(addr, "/v1/tools").await;
    assert_eq!(r.status, 200);
    let tools: Value = serde_json::from_slice(&r.body).unwrap();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "search_traces",
            "search_fluctuating_metrics",
            "search_logs",
            "search_anomalous_components",
            "print_results"
        ]
    );

    let r = post(
        addr,
        "/v1/tools/call",
        "application/json",
        &json!({"name": "search_traces", "arguments": {"parent_span_id": "125b4bbe94d27a47"}, "cloudbed_id": "aiops2022-sample"}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["touched"],
        json!(["recommendationservice-1", "productcatalogservice-1"])
    );
    assert!(v["output"].as_str().unwrap().contains("\"duration\":30,"));
    // Arguments as a JSON string, the way models write them.
    let r = post(
        addr,
        "/v1/tools/call",
        "application/json",
        &json!({"name": "search_traces", "arguments": "{\"parent_span_id\": \"125b4bbe94d27a47\"}", "cloudbed_id": "aiops2022-sample"}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_json_errors() {
    let mut config = ToolServerConfig::default();
    config.limits.max_body_bytes = 4096;
    let (addr, _stop) = start(vec![sample(), metrics_only()], config).await;
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("/search_traces?parent_span_id={ENTRY}"), 400, "cloudbed_id is required when several data sets are loaded"),
        (format!("/search_traces?parent_span_id={ENTRY}&cloudbed_id=2022-03-20-cloudbed9"), 404, "unknown cloudbed_id \"2022-03-20-cloudbed9\""),
        ("/search_traces?cloudbed_id=aiops2022-sample".to_string(), 400, "missing field `parent_span_id`"),
        ("/search_traces?parent_span_id=ffff&cloudbed_id=aiops2022-sample".to_string(), 404, "no span with span_id \"ffff\""),
        ("/search_traces?parent_span_id=a&parent_span_id=b&cloudbed_id=aiops2022-sample".to_string(), 400, "given twice"),
        (format!("/search_traces?parent_span_id={ENTRY}&cloudbed_id=aiops2022-sample&depth=3"), 400, "unknown field `depth`"),
        (format!("/search_traces?parent_span_id={ENTRY}&cloudbed_id=aiops2022-sample&mode=fancy"), 400, "unknown output mode \"fancy\""),
        ("/search_fluctuating_metrics?service_name=cartservice-2&timestamp=noon&cloudbed_id=metrics-only".to_string(), 400, "bad timestamp \"noon\""),
        ("/search_fluctuating_metrics?service_name=zzz&timestamp=1647747340&cloudbed_id=metrics-only".to_string(), 404, "no service, pod or node named \"zzz\""),
        ("/search_logs?timestamp=1647747340&cloudbed_id=aiops2022-sample".to_string(), 400, "missing field `service_name`"),
        ("/check_trace".to_string(), 400, "span_id is missing"),
        ("/search_traces?parent_span_id=%ZZ&cloudbed_id=aiops2022-sample".to_string(), 404, "no span with span_id"),
        ("/nope".to_string(), 404, "no such endpoint"),
        ("/v1/tools/call".to_string(), 405, "method not allowed"),
    ];
    for (path, status, needle) in cases {
        let r = get(addr, &path).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        let e = json_error(&r);
        assert!(e.contains(needle), "{path}: {e}");
    }
    let posts: Vec<(&str, String, u16, &str)> = vec![
        ("application/json", "{\"name\": \"search_traces\", ".into(), 400, "Failed to parse the request body as JSON"),
        ("text/plain", "{}".into(), 415, "Content-Type"),
        ("application/json", json!({"name": "search_trace", "arguments": {}, "cloudbed_id": "aiops2022-sample"}).to_string(), 404, "unknown tool \"search_trace\""),
        ("application/json", json!({"name": "search_traces", "args": {}}).to_string(), 422, "unknown field `args`"),
        ("application/json", json!({"arguments": {}}).to_string(), 422, "missing field `name`"),
        ("application/json", json!({"name": "print_results", "arguments": {"root_causes": []}, "cloudbed_id": "metrics-only"}).to_string(), 400, "root_causes is empty"),
        ("application/json", json!({"name": "search_traces", "arguments": {"parent_span_id": "x".repeat(5000)}}).to_string(), 413, "length limit"),
    ];
    for (ct, body, status, needle) in posts {
        let r = post(addr, "/v1/tools/call", ct, &body).await;
        assert_eq!(
            r.status,
            status,
            "{}: {}",
            &body[..body.len().min(80)],
            r.text()
        );
        let e = json_error(&r);
        assert!(e.contains(needle), "{}: {e}", &body[..body.len().min(80)]);
    }
    // Not HTTP at all: hyper answers 400 and closes.
    let r = send_once(addr, b"HELLO\r\n\r\n", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_data_set_needs_no_cloudbed_id() {
    let (addr, _stop) = start(vec![sample()], ToolServerConfig::default()).await;
    let r = get(addr, &format!("/search_traces?parent_span_id={ENTRY}")).await;
    assert_eq!(r.status, 200);
    let r = get(addr, "/v1/datasets").await;
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v[0]["cloudbed_id"], "aiops2022-sample");
    assert_eq!(v[0]["spans"], 26);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_connections_with_malformed_requests_mixed_in() {
    let (addr, _stop) = start(vec![sample()], ToolServerConfig::default()).await;
    let ds = sample();
    let mut probes = Vec::new();
    for s in ds.store.spans() {
        let id = s.span_id().to_string();
        let expect = ToolRegistry::standard()
            .call(
                &ToolEnv::new(&ds.store, ToolsConfig::default()),
                "search_traces",
                &json!({"parent_span_id": id}),
            )
            .unwrap()
            .text;
        probes.push(
            Probe::get(&format!("/search_traces?parent_span_id={id}"), 200).with_body(expect),
        );
    }
    probes.push(
        Probe::get("/search_traces?parent_span_id=nosuchspan", 404)
            .containing("no span with span_id"),
    );
    probes.push(Probe::get("/search_traces", 400).containing("missing field"));
    probes.push(Probe::post_json("/v1/tools/call", "{not json", 400).containing("error"));
    probes.push(
        Probe::get(
            "/search_fluctuating_metrics?service_name=frontend&timestamp=x",
            400,
        )
        .containing("bad timestamp"),
    );
    probes.push(Probe::garbage(b"\x00\x01 NOT HTTP\r\n\r\n"));
    let cfg = LoadConfig {
        addr,
        connections: 1000,
        requests: 20_000,
        deadline: Duration::from_secs(60),
        io_timeout: Duration::from_secs(20),
    };
    let report = loadgen::run(&cfg, Arc::new(probes)).await.unwrap();
    assert_eq!(report.sent, 20_000, "{report:?}");
    assert_eq!(report.io_errors, 0, "{:?}", report.examples);
    assert_eq!(report.wrong, 0, "{:?}", report.examples);
    assert_eq!(report.correct, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = ToolServerConfig::default();
    config.limits.request_timeout = Duration::from_millis(300);
    config.limits.header_read_timeout = Duration::from_millis(300);
    let (addr, _stop) = start(vec![sample()], config).await;
    // A body announced and never sent: 408 with a JSON error.
    let raw = "POST /v1/tools/call HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
    let r = send_once(addr, raw.as_bytes(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(json_error(&r).contains("timed out"));
    // Headers never finished: the connection is closed.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /search_traces?parent_span_id=x HTTP/1.1\r\nHost")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(n.is_ok(), "the server kept a half-sent request open");
}
