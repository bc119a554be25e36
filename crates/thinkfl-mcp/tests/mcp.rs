//! The MCP server in process, through rmcp's own client over an in-memory pipe: the tool list and
//! its schemas (the tool server's), the real AIOps 2022 sample's trace walk, the expert through
//! `localize`, tool errors, resources and the prompt; and streamable HTTP on loopback. The
//! official Python SDK drives the binary in python/thinkfl_mcp_test (scripts/test).

use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, GetPromptRequestParams, ReadResourceRequestParams,
};
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use thinkfl_mcp::{McpConfig, ThinkflMcp};
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_tools::ToolRegistry;

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/aiops2022-sample")
}

fn server() -> ThinkflMcp {
    let (store, _) = TelemetryStore::load(&sample_dir(), &LoadOptions::default()).unwrap();
    ThinkflMcp::new("aiops2022-sample", store, McpConfig::default(), None).unwrap()
}

async fn connect(server: ThinkflMcp) -> RunningService<RoleClient, ()> {
    let (a, b) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(a).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(b).await.expect("the client initializes")
}

async fn call(c: &RunningService<RoleClient, ()>, name: &str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    c.call_tool(CallToolRequestParams::new(name.to_string()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_resources_prompt_and_errors_over_a_pipe() {
    let c = connect(server()).await;
    let tools = c.list_tools(None).await.unwrap().tools;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "search_traces",
            "search_fluctuating_metrics",
            "search_logs",
            "search_anomalous_components",
            "list_incidents",
            "inspect",
            "localize"
        ]
    );
    // The diagnostic tools' input schemas are the tool server's, from the same argument types.
    let reg = ToolRegistry::standard();
    for t in &tools[..4] {
        let theirs = reg.get(&t.name).unwrap().parameters();
        assert_eq!(
            Value::Object((*t.input_schema).clone()),
            theirs,
            "{}",
            t.name
        );
    }

    // recommendationservice-1's slow ListProducts call, down to productcatalogservice-1.
    let r = call(
        &c,
        "search_traces",
        json!({"parent_span_id": "125b4bbe94d27a47"}),
    )
    .await;
    assert_eq!(r.is_error, Some(false));
    let t = text(&r);
    assert!(t.starts_with("1 child spans of 125b4bbe94d27a47"), "{t}");
    assert!(
        t.contains("025a8665c0c59c04,productcatalogservice-1,"),
        "{t}"
    );

    let r = call(&c, "localize", json!({"case": 0, "model": "expert"})).await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    let v = r.structured_content.unwrap();
    assert_eq!(v["query"]["span_id"], "d1b3f238e544e3f0");
    assert_eq!(
        v["root_causes"][0]["service"], "recommendationservice",
        "{v}"
    );
    assert!(
        v["evidence_path"]
            .as_array()
            .unwrap()
            .contains(&json!("productcatalogservice-1")),
        "{v}"
    );

    // Errors are tool results with the reason.
    for (name, args, needle) in [
        ("search_traces", json!({}), "missing field `parent_span_id`"),
        (
            "search_traces",
            json!({"parent_span_id": "0000"}),
            "no span with span_id \"0000\"",
        ),
        (
            "search_logs",
            json!({"service_name": "cartservice-9", "timestamp": 1647747326}),
            "no service, pod or node named \"cartservice-9\"",
        ),
        (
            "search_anomalous_components",
            json!({"timestamp": "tomorrow"}),
            "search_anomalous_components",
        ),
        (
            "localize",
            json!({"case": 0, "trace_id": "x"}),
            "exactly one",
        ),
        (
            "localize",
            json!({"case": 0, "model": "gpt"}),
            r#"unknown variant `gpt`, expected `default` or `expert`. Expected arguments: {"case"?: integer, "d_max"?: integer, "model"?: "default"|"expert", "span_id"?: string, "trace_id"?: string}."#,
        ),
        (
            "localize",
            json!({"case": 0}),
            "started without a local model",
        ),
        ("list_incidents", json!({"max_traces": 51}), "max_traces"),
        (
            "inspect",
            json!({"verbose": true}),
            "unknown field `verbose`",
        ),
    ] {
        let r = call(&c, name, args.clone()).await;
        assert_eq!(r.is_error, Some(true), "{name} {args}: {}", text(&r));
        assert!(text(&r).contains(needle), "{name} {args}: {}", text(&r));
    }
    let err = c
        .call_tool(CallToolRequestParams::new("search_metrics"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown tool"), "{err}");

    let resources = c.list_resources(None).await.unwrap().resources;
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["thinkfl://dataset", "thinkfl://incidents/0"]);
    let r = c
        .read_resource(ReadResourceRequestParams::new("thinkfl://incidents/0"))
        .await
        .unwrap();
    let rmcp::model::ResourceContents::TextResourceContents { text, .. } = &r.contents[0] else {
        panic!("text contents")
    };
    let report: Value = serde_json::from_str(text).unwrap();
    assert_eq!(report["truth"]["cmdb_id"], "recommendationservice");
    assert_eq!(report["traces"][0]["entry_span_id"], "d1b3f238e544e3f0");
    assert!(
        c.read_resource(ReadResourceRequestParams::new("thinkfl://incidents/1"))
            .await
            .is_err()
    );
    let mut args = serde_json::Map::new();
    args.insert("case".into(), json!("0"));
    let p = c
        .get_prompt(GetPromptRequestParams::new("investigate_incident").with_arguments(args))
        .await
        .unwrap();
    let body = serde_json::to_string(&p.messages).unwrap();
    assert!(body.contains("d1b3f238e544e3f0"), "{body}");
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_on_loopback_only() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(thinkfl_mcp::serve_http(server(), listener, async move {
        let _ = stop_rx.await;
    }));
    // A raw initialize: the transport answers JSON-RPC at /mcp, and nothing elsewhere.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}})
    .to_string();
    let reply = post(addr, "/mcp", &body).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"name\":\"thinkfl\""), "{reply}");
    let reply = post(addr, "/elsewhere", &body).await;
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    stop_tx.send(()).unwrap();
    serving.await.unwrap().unwrap();

    // Not on a non-loopback address.
    if let Ok(l) = tokio::net::TcpListener::bind("0.0.0.0:0").await {
        let err = thinkfl_mcp::serve_http(server(), l, std::future::pending())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not a loopback address"), "{err}");
    }
}

/// One HTTP/1.1 POST on a fresh connection; the whole response as text (SSE or JSON).
async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        addr.port(),
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // The initialize answer is one SSE event; the server keeps the stream open for more, so read
    // until the answer is in rather than to the end.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("an answer within 20 s")
            .unwrap();
        out.extend_from_slice(&buf[..n]);
        let t = String::from_utf8_lossy(&out);
        if n == 0
            || t.contains("\"result\"")
            || (t.starts_with("HTTP/1.1 4") && t.contains("\r\n\r\n"))
        {
            return t.into_owned();
        }
    }
}
