//! Harnesses of the HTTP servers: requests built from the input (method, path and query,
//! body) go through the real router, limits and fallbacks included, in process. A 5xx answer
//! to a client's request (the servers turn a handler's panic into a 500) and an error answer
//! without a reason are findings.

use crate::seeds::Corpus;
use crate::{Error, Harness, Result, Target, Verdict};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use std::sync::Arc;
use thinkfl_server::{LoadedDataset, ToolServer, ToolServerConfig};
use thinkfl_store::{LoadOptions, TelemetryStore};
use tower::ServiceExt;

/// Between two requests of one input.
const NEXT: &str = "\n--req--\n";
/// In a path, the id of the episode the input created last.
const EPISODE: &str = "{EP}";
/// Requests of one input beyond these are ignored (each costs a tool call or an episode).
const MAX_REQUESTS: usize = 4;

struct HttpHarness {
    router: Router,
    rt: tokio::runtime::Runtime,
}

impl HttpHarness {
    fn new(router: Router) -> std::result::Result<Self, std::io::Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self { router, rt })
    }

    /// One request; `None` when the head does not make an HTTP request at all (hyper refuses
    /// those before a router sees them).
    fn send(&self, head: &str, body: &[u8]) -> Option<(StatusCode, Vec<u8>)> {
        let (method, target) = head.trim_end_matches('\r').split_once(' ')?;
        let method = Method::from_bytes(method.as_bytes()).ok()?;
        let req = Request::builder()
            .method(method)
            .uri(target)
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
            .ok()?;
        let router = self.router.clone();
        self.rt.block_on(async move {
            let resp = router.oneshot(req).await.ok()?;
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
                .await
                .ok()?;
            Some((status, bytes.to_vec()))
        })
    }
}

impl Harness for HttpHarness {
    fn run(&mut self, input: &[u8]) -> Verdict {
        let text = String::from_utf8_lossy(input);
        let mut episode: Option<String> = None;
        let mut any_ok = false;
        for raw in text.split(NEXT).take(MAX_REQUESTS) {
            let (head, body) = raw.split_once('\n').unwrap_or((raw, ""));
            let head = match &episode {
                Some(id) => head.replace(EPISODE, id),
                None => head.replace(EPISODE, "ep-0"),
            };
            let Some((status, resp)) = self.send(&head, body.as_bytes()) else {
                continue;
            };
            if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
                return Verdict::Finding(format!(
                    "{status} for {head:?}: {}",
                    String::from_utf8_lossy(&resp)
                ));
            }
            if status.is_success() {
                any_ok = true;
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&resp)
                    && let Some(id) = v.get("episode_id").and_then(|i| i.as_str())
                {
                    episode = Some(id.to_string());
                }
            } else if status != StatusCode::NO_CONTENT && resp.iter().all(u8::is_ascii_whitespace) {
                return Verdict::Finding(format!("{status} without a reason for {head:?}"));
            }
        }
        // Episodes do not outlive their input: the table stays small over a long run.
        if let Some(id) = episode {
            let _ = self.send(&format!("DELETE /v1/episodes/{id}"), b"");
        }
        if any_ok {
            Verdict::Accepted
        } else {
            Verdict::Rejected
        }
    }
}

fn sample_store(corpus: &Corpus, target: &'static str) -> Result<(String, TelemetryStore)> {
    let dir = match corpus.sample() {
        Some(s) => s,
        None => corpus.sim_dir()?.to_path_buf(),
    };
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (store, _) =
        TelemetryStore::load(&dir, &LoadOptions::default()).map_err(|e| Error::setup(target, e))?;
    Ok((id, store))
}

fn seeds(list: &[String]) -> Vec<Vec<u8>> {
    list.iter().map(|s| s.as_bytes().to_vec()).collect()
}

const HTTP_DICT: &[&str] = &[
    "GET ",
    "POST ",
    "DELETE ",
    "PUT ",
    "?",
    "&",
    "=",
    "%",
    "%00",
    "%ff",
    "%2F",
    "/",
    "//",
    "/../",
    "{",
    "}",
    "\"",
    ":",
    ",",
    "null",
    "[]",
    "\n--req--\n",
    "{EP}",
    "cloudbed_id=",
    "mode=enriched",
    "mode=bogus",
    "parent_span_id=",
    "timestamp=",
    "service_name=",
    "node_id=",
    "\"text\"",
    "\"case\"",
    "\"reward\"",
    "\"run\"",
    "\"query_span\"",
    "\"query_index\"",
    "\"dataset\"",
    "\"arguments\"",
    "\"name\"",
    "<tool_call>",
    "</tool_call>",
];

/// The tool server over the real sample.
pub(crate) fn tool_server(corpus: &Corpus) -> Result<Target> {
    let (id, store) = sample_store(corpus, "tool-server-http")?;
    let server = ToolServer::new(
        vec![LoadedDataset::new(id.clone(), store)],
        ToolServerConfig::default(),
    )
    .map_err(|e| Error::setup("tool-server-http", e))?;
    let router = Arc::new(server).router();
    let list = [
        "GET /search_traces?parent_span_id=d1b3f238e544e3f0".to_string(),
        format!("GET /search_traces?parent_span_id=ed794292138f3a8d&cloudbed_id={id}&mode=enriched"),
        "GET /search_fluctuating_metrics?service_name=recommendationservice-1&timestamp=1647747340".into(),
        "GET /search_logs?service_name=recommendationservice&timestamp=1647747340".into(),
        "GET /check_trace?span_id=d1b3f238e544e3f0".into(),
        "GET /v1/tools".into(),
        "GET /v1/datasets".into(),
        "GET /healthz".into(),
        "POST /v1/tools/call\n{\"name\": \"search_traces\", \"arguments\": {\"parent_span_id\": \"d1b3f238e544e3f0\"}}".into(),
        format!("POST /v1/tools/call\n{{\"name\": \"search_anomalous_components\", \"arguments\": {{\"timestamp\": 1647747340}}, \"cloudbed_id\": \"{id}\", \"mode\": \"enriched\"}}"),
        "POST /v1/tools/call\n{\"name\": \"search_logs\", \"arguments\": {\"service_name\": \"currencyservice-0\", \"timestamp\": 1647747298}}".into(),
    ];
    let harness = HttpHarness::new(router).map_err(|e| Error::setup("tool-server-http", e))?;
    Ok(Target::new(
        "tool-server-http",
        seeds(&list),
        HTTP_DICT,
        harness,
    ))
}

/// The RL environment server over the real sample: episodes are created, stepped with model
/// text, graded and deleted within one input.
pub(crate) fn env_server(corpus: &Corpus) -> Result<Target> {
    let (id, store) = sample_store(corpus, "env-server-http")?;
    let ds = thinkfl_env::EnvDataset::new(LoadedDataset::new(id.clone(), store));
    let service = thinkfl_env::EnvService::new(vec![ds], thinkfl_env::EnvConfig::default())
        .map_err(|e| Error::setup("env-server-http", e))?;
    let router =
        thinkfl_env::http::router(Arc::new(service), &thinkfl_server::ServeLimits::default());
    let call = r#"<tool_call>{\"name\": \"search_anomalous_components\", \"arguments\": {\"timestamp\": 1647747340}}</tool_call>"#;
    let print = r#"<tool_call>{\"name\": \"print_results\", \"arguments\": {\"root_causes\": [{\"pod\": \"recommendationservice-1\", \"node\": \"node-6\", \"service\": \"recommendationservice\", \"reason\": \"slow\"}]}}</tool_call>"#;
    let list = [
        format!(
            "POST /v1/episodes\n{{\"case\": 0, \"reward\": 1, \"run\": \"r\"}}{NEXT}POST /v1/episodes/{{EP}}/step\n{{\"text\": \"{call}\"}}{NEXT}POST /v1/episodes/{{EP}}/step\n{{\"text\": \"{print}\"}}{NEXT}POST /v1/episodes/{{EP}}/grade\n{{\"reward\": \"mrr\"}}"
        ),
        format!(
            "POST /v1/episodes\n{{\"dataset\": \"{id}\", \"case\": 0, \"query_index\": 0, \"reward\": 2}}{NEXT}POST /v1/episodes/{{EP}}/step\n{{\"text\": \"no call here\"}}{NEXT}GET /v1/episodes/{{EP}}"
        ),
        format!(
            "POST /get_reward\n{{\"query\": [\"{print}\"], \"prompts\": [\"p\"], \"labels\": [{{\"dataset\": \"{id}\", \"case\": 0}}]}}"
        ),
        "GET /v1/datasets".into(),
        "GET /v1/tools".into(),
        "GET /v1/runs/r/diversity".into(),
        "DELETE /v1/runs/r/diversity".into(),
    ];
    let harness = HttpHarness::new(router).map_err(|e| Error::setup("env-server-http", e))?;
    Ok(Target::new(
        "env-server-http",
        seeds(&list),
        HTTP_DICT,
        harness,
    ))
}
