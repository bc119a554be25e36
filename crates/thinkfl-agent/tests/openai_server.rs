//! The OpenAI-compatible client and the actor against a real server: llama.cpp's `llama-server`
//! on the SmolLM2-135M GGUF, started here on a free loopback port. `scripts/llama-peer.sh` builds
//! the server (the README's test command runs it first); `THINKFL_LLAMA_BIN` may name another
//! directory holding `llama-server`.

use serde_json::json;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use thinkfl_agent::{Actor, ActorConfig};
use thinkfl_core::Message;
use thinkfl_llm::openai::{OpenAiClient, OpenAiConfig};
use thinkfl_llm::parse::parse_tool_calls;
use thinkfl_llm::{ChatModel, ChatRequest, SamplingParams};
use thinkfl_store::{LoadOptions, SpanIdx, TelemetryStore};
use thinkfl_tools::Query;

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn llama_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("THINKFL_LLAMA_BIN") {
        return PathBuf::from(dir).join("llama-server");
    }
    let peers = std::env::var_os("THINKFL_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/thinkfl/peers")
        });
    peers.join("llama-cpp-python-0.3.36/bin/llama-server")
}

fn start_server() -> Server {
    let bin = llama_bin();
    assert!(
        bin.exists(),
        "{} not found: run `bash scripts/llama-peer.sh` (the README's test command does)",
        bin.display()
    );
    let model = thinkfl_candle::fetch::resolve_model("default", true).expect("the default model");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&bin)
        .args([
            "-m",
            model.to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args([
            "--jinja",
            "-c",
            "8192",
            "-t",
            "2",
            "--parallel",
            "1",
            "--no-webui",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("llama-server starts");
    let url = format!("http://127.0.0.1:{port}");
    let server = Server { child, url };
    let t0 = Instant::now();
    let agent = ureq_agent();
    loop {
        if let Ok(r) = agent.get(&format!("{}/health", server.url)).call()
            && r.status() == 200
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "llama-server did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server
}

fn ureq_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// A GBNF grammar (llama.cpp's `grammar` extension) that makes even a 135M model answer with one
/// well-formed call of our text protocol, naming one of `span_ids`, so that the test checks the
/// protocol and the plumbing, not the model's skill.
fn call_grammar(span_ids: &[String]) -> String {
    let ids: Vec<String> = span_ids.iter().map(|id| format!("\"{id}\"")).collect();
    format!(
        r#"root ::= "<tool_call>" call "</tool_call>"
call ::= "{{\"name\": \"search_traces\", \"arguments\": {{\"parent_span_id\": \"" id "\"}}}}" | "{{\"name\": \"print_results\", \"arguments\": {{\"root_causes\": [{{\"service\": \"" word "\"}}]}}}}"
id ::= {}
word ::= [a-z] [a-z-]{{2,30}}
"#,
        ids.join(" | ")
    )
}

fn client(url: &str, grammar: Option<String>) -> OpenAiClient {
    let mut cfg = OpenAiConfig::new(url, "smollm2");
    cfg.timeout = Duration::from_secs(300);
    if let Some(g) = grammar {
        cfg.extra_body.insert("grammar".into(), json!(g));
    }
    OpenAiClient::new(cfg).unwrap()
}

#[test]
fn client_and_actor_against_llama_server() {
    let server = start_server();
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/aiops2022-sample");
    let (store, _) = TelemetryStore::load(&dir, &LoadOptions::default()).unwrap();
    let ids: Vec<String> = (0..store.span_count() as u32)
        .map(|i| store.span(SpanIdx(i)).span_id().to_string())
        .collect();
    let grammar = call_grammar(&ids);

    // A tool-call round trip in the text protocol: the server's reply is parsed into a call, the
    // tool result goes back as a `tool` message, and the server answers it.
    let c = client(&server.url, Some(grammar));
    let mut messages = vec![
        Message::system("You diagnose failures. Call a tool as <tool_call>{...}</tool_call>."),
        Message::user("List the child spans of span d1b3f238e544e3f0."),
    ];
    let req = ChatRequest {
        messages: messages.clone(),
        tools: vec![],
        params: SamplingParams::greedy(96),
    };
    let r = c.chat(&req).expect("a completion");
    let calls: Vec<_> = parse_tool_calls(&r.text)
        .into_iter()
        .map(|p| p.call.expect("well-formed"))
        .collect();
    assert_eq!(calls.len(), 1, "{r:?}");
    assert!(
        ["search_traces", "print_results"].contains(&calls[0].name.as_str()),
        "{calls:?}"
    );
    assert!(r.prompt_tokens > 0 && r.completion_tokens > 0);
    let mut a = Message::assistant(r.text.clone());
    a.tool_calls = calls.clone();
    messages.push(a);
    messages.push(Message::tool(
        calls[0].name.clone(),
        "span_id,cmdb_id,duration_ms\na21065d052ec52ab,frontend-2,13334.4",
    ));
    let r2 = client(&server.url, None)
        .chat(&ChatRequest {
            messages,
            tools: vec![],
            params: SamplingParams::greedy(32),
        })
        .expect("the server accepts the tool result");
    assert!(r2.completion_tokens > 0, "{r2:?}");

    // An episode of the actor on the real sample over the same server, each turn under the
    // actor's own grammar of admissible calls, sent as GBNF in llama.cpp's `grammar` field.
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/aiops2022-sample");
    let (store, _) = TelemetryStore::load(&dir, &LoadOptions::default()).unwrap();
    let root = store.span_by_id("d1b3f238e544e3f0").unwrap();
    let q = Query {
        case: 0,
        trace_id: root.trace_id().into(),
        span_id: root.span_id().into(),
        timestamp_ms: root.timestamp(),
        cmdb_id: root.cmdb_id().into(),
        operation_name: root.operation_name().into(),
    };
    let cfg = ActorConfig {
        d_max: 4,
        max_tokens_per_turn: 96,
        ..ActorConfig::default()
    };
    let mut per_turn =
        OpenAiConfig::from_spec(&format!("openai:{}#smollm2#grammar", server.url)).unwrap();
    per_turn.timeout = Duration::from_secs(300);
    let actor = Actor::new(OpenAiClient::new(per_turn).unwrap(), cfg).unwrap();
    let t = actor.run(&store, &q).expect("the episode completes");
    assert!(!t.calls.is_empty(), "{t:#?}");
    assert!(
        t.calls.iter().all(|c| c.valid),
        "every call valid under the grammars: {:#?}",
        t.calls
    );
    assert!(t.prediction.is_some(), "a final list: {t:#?}");
    assert!(
        t.messages
            .iter()
            .any(|m| m.role == thinkfl_core::Role::Tool)
    );
    assert!(t.tokens.completion > 0);
}
