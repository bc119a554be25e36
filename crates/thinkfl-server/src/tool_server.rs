//! The tool server: routes, data set selection, and error mapping.

use crate::serve::ServeLimits;
use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_tools::{
    Baselines, OutputMode, ToolEnv, ToolError, ToolOutput, ToolRegistry, ToolsConfig,
};

/// One data set the server answers for, selected by `cloudbed_id` (its directory name).
#[derive(Debug)]
pub struct LoadedDataset {
    /// What requests name it by (`cloudbed_id`).
    pub id: String,
    /// Its telemetry.
    pub store: TelemetryStore,
    /// Normal durations for the enriched mode, computed on the first request that needs them.
    baselines: OnceLock<Baselines>,
}

impl LoadedDataset {
    /// A data set named `id` over `store`.
    pub fn new(id: impl Into<String>, store: TelemetryStore) -> Self {
        Self {
            id: id.into(),
            store,
            baselines: OnceLock::new(),
        }
    }

    /// Opens an AIOps 2022 layout directory (from its snapshot when that is fresh, see
    /// `thinkfl_store::snapshot`); the id is the directory's name.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self, crate::Error> {
        let mode = thinkfl_store::snapshot::SnapshotMode::Auto;
        let (store, _report, _) =
            TelemetryStore::open(dir, opts, mode).map_err(|source| crate::Error::Load {
                path: dir.display().to_string(),
                source,
            })?;
        let id = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self::new(id, store))
    }

    /// The tools' view of this data set, with its normal durations shared between requests.
    pub fn env(&self, config: ToolsConfig) -> ToolEnv<'_> {
        ToolEnv::with_shared_baselines(&self.store, config, &self.baselines)
    }
}

/// Settings of the tool server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolServerConfig {
    /// Tool settings; `tools.mode` is the default output mode (a request may pass `mode`).
    pub tools: ToolsConfig,
    /// Connection, timeout and body limits.
    pub limits: ServeLimits,
}

impl ToolServerConfig {
    /// Checks the tool settings and the limits.
    pub fn validate(&self) -> Result<(), crate::Error> {
        self.tools.validate()?;
        self.limits.validate()
    }
}

/// The shared state of the tool server.
#[derive(Debug)]
pub struct ToolServer {
    datasets: Vec<LoadedDataset>,
    registry: ToolRegistry,
    config: ToolServerConfig,
    schemas: Value,
}

/// An HTTP error with a JSON body `{"error": message}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ToolError> for ApiError {
    fn from(e: ToolError) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        Self::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// Text of a tool result with the content type the paper's Flask server gives it.
fn text_response(text: String) -> Response {
    let ct = if text.starts_with('{') || text.starts_with('[') {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    ([(header::CONTENT_TYPE, ct)], text).into_response()
}

impl ToolServer {
    /// A server of `datasets` (at least one, ids distinct) under a validated `config`.
    pub fn new(
        datasets: Vec<LoadedDataset>,
        config: ToolServerConfig,
    ) -> Result<Self, crate::Error> {
        config.validate()?;
        if datasets.is_empty() {
            return Err(crate::Error::NoDatasets);
        }
        for (i, d) in datasets.iter().enumerate() {
            if datasets[..i].iter().any(|e| e.id == d.id) {
                return Err(crate::Error::DuplicateId(d.id.clone()));
            }
        }
        let registry = ToolRegistry::standard();
        let schemas = Value::Array(registry.openai_schemas());
        Ok(Self {
            datasets,
            registry,
            config,
            schemas,
        })
    }

    /// The settings the server was built with.
    pub fn config(&self) -> &ToolServerConfig {
        &self.config
    }

    /// The ids of its data sets, in the order given.
    pub fn dataset_ids(&self) -> Vec<&str> {
        self.datasets.iter().map(|d| d.id.as_str()).collect()
    }

    fn dataset(&self, cloudbed_id: Option<&str>) -> Result<&LoadedDataset, ApiError> {
        match cloudbed_id.map(str::trim) {
            None | Some("") if self.datasets.len() == 1 => Ok(&self.datasets[0]),
            None | Some("") => Err(ApiError::bad(format!(
                "cloudbed_id is required when several data sets are loaded; loaded: {}",
                self.dataset_ids().join(", ")
            ))),
            Some(id) => self.datasets.iter().find(|d| d.id == id).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!(
                        "unknown cloudbed_id {id:?}; loaded: {}",
                        self.dataset_ids().join(", ")
                    ),
                )
            }),
        }
    }

    fn mode(&self, mode: Option<&str>) -> Result<OutputMode, ApiError> {
        match mode {
            None => Ok(self.config.tools.mode),
            Some(m) => m
                .parse()
                .map_err(|e: thinkfl_tools::Error| ApiError::bad(e.to_string())),
        }
    }

    /// Runs one tool call; a panic inside becomes a 500.
    fn call(
        &self,
        cloudbed_id: Option<&str>,
        mode: Option<&str>,
        name: &str,
        args: &Value,
    ) -> Result<ToolOutput, ApiError> {
        let ds = self.dataset(cloudbed_id)?;
        let mut cfg = self.config.tools.clone();
        cfg.mode = self.mode(mode)?;
        let env = ds.env(cfg);
        match catch_unwind(AssertUnwindSafe(|| self.registry.call(&env, name, args))) {
            Ok(r) => r.map_err(ApiError::from),
            Err(_) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error in tool {name:?}; the request was not answered"),
            )),
        }
    }

    /// The router, with body limit, request timeout and JSON fallbacks.
    pub fn router(self: Arc<Self>) -> Router {
        let limits = self.config.limits.clone();
        let timeout = limits.request_timeout;
        Router::new()
            .route(
                "/search_traces",
                get(|s, q| paper_get(s, q, "search_traces")),
            )
            .route(
                "/search_fluctuating_metrics",
                get(|s, q| paper_get(s, q, "search_fluctuating_metrics")),
            )
            .route("/search_logs", get(|s, q| paper_get(s, q, "search_logs")))
            .route("/check_trace", get(check_trace))
            .route("/v1/tools", get(list_tools))
            // Only requests with a body can be slow after their headers; GET handlers are short
            // synchronous calls, and header reads are bounded by the connection's timeout.
            .route(
                "/v1/tools/call",
                post(call_tool).layer(middleware::from_fn(
                    move |req: Request, next: Next| async move {
                        match tokio::time::timeout(timeout, next.run(req)).await {
                            Ok(r) => r,
                            Err(_) => {
                                ApiError::new(StatusCode::REQUEST_TIMEOUT, "request timed out")
                                    .into_response()
                            }
                        }
                    },
                )),
            )
            .route("/v1/datasets", get(list_datasets))
            .route("/healthz", get(|| async { "ok" }))
            .fallback(|| async {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no such endpoint; try GET /v1/tools, POST /v1/tools/call, GET /search_traces",
                )
            })
            .method_not_allowed_fallback(|| async {
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed on this endpoint",
                )
            })
            .layer(DefaultBodyLimit::max(limits.max_body_bytes))
            .with_state(self)
    }
}

type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The paper's GET endpoints: every query parameter but `cloudbed_id` and `mode` is a tool
/// argument.
async fn paper_get(
    State(s): State<Arc<ToolServer>>,
    params: Params,
    tool: &'static str,
) -> Response {
    let Query(params) = match params {
        Ok(p) => p,
        Err(e) => {
            return ApiError::bad(format!("bad query string: {}", e.body_text())).into_response();
        }
    };
    let mut cloudbed = None;
    let mut mode = None;
    let mut args = serde_json::Map::new();
    for (k, v) in params {
        let slot = match k.as_str() {
            "cloudbed_id" => &mut cloudbed,
            "mode" => &mut mode,
            _ => {
                if args.insert(k.clone(), Value::String(v)).is_some() {
                    return ApiError::bad(format!("query parameter {k:?} given twice"))
                        .into_response();
                }
                continue;
            }
        };
        if slot.replace(v).is_some() {
            return ApiError::bad(format!("query parameter {k:?} given twice")).into_response();
        }
    }
    match s.call(
        cloudbed.as_deref(),
        mode.as_deref(),
        tool,
        &Value::Object(args),
    ) {
        Ok(out) => text_response(out.text),
        Err(e) => e.into_response(),
    }
}

/// `GET /check_trace?span_id=..[&cloudbed_id=..]`: 200 `{"exists":true}` or 404
/// `{"exists":false}`, as the paper's server.
async fn check_trace(State(s): State<Arc<ToolServer>>, params: Params) -> Response {
    let Query(params) = match params {
        Ok(p) => p,
        Err(e) => {
            return ApiError::bad(format!("bad query string: {}", e.body_text())).into_response();
        }
    };
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
    };
    let Some(span_id) = get("span_id").filter(|v| !v.is_empty()) else {
        return ApiError::bad("span_id is missing: GET /check_trace?span_id=<span_id>")
            .into_response();
    };
    let datasets: Vec<&LoadedDataset> = match get("cloudbed_id") {
        Some(id) if !id.is_empty() => match s.dataset(Some(&id)) {
            Ok(d) => vec![d],
            Err(e) => return e.into_response(),
        },
        _ => s.datasets.iter().collect(),
    };
    let exists = datasets
        .iter()
        .any(|d| d.store.span_by_id(&span_id).is_some());
    let status = if exists {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    (status, Json(json!({ "exists": exists }))).into_response()
}

async fn list_tools(State(s): State<Arc<ToolServer>>) -> Response {
    Json(s.schemas.clone()).into_response()
}

async fn list_datasets(State(s): State<Arc<ToolServer>>) -> Response {
    let list: Vec<Value> = s
        .datasets
        .iter()
        .map(|d| {
            json!({
                "cloudbed_id": d.id,
                "spans": d.store.span_count(),
                "traces": d.store.trace_count(),
                "series": d.store.series_count(),
                "logs": d.store.log_count(),
                "faults": d.store.faults().len(),
            })
        })
        .collect();
    Json(Value::Array(list)).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    name: String,
    #[serde(default)]
    arguments: Value,
    #[serde(default)]
    cloudbed_id: Option<String>,
    #[serde(default)]
    mode: Option<String>,
}

/// `POST /v1/tools/call {"name", "arguments", "cloudbed_id"?, "mode"?}` ->
/// `{"name", "output", "touched"}`.
async fn call_tool(
    State(s): State<Arc<ToolServer>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return ApiError::new(e.status(), e.body_text()).into_response(),
    };
    let body: CallBody = match serde_json::from_value(body) {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("bad request body: {e}; expected {{\"name\": string, \"arguments\": object, \"cloudbed_id\"?: string, \"mode\"?: \"plain\"|\"enriched\"}}"),
            )
            .into_response();
        }
    };
    match s.call(
        body.cloudbed_id.as_deref(),
        body.mode.as_deref(),
        &body.name,
        &body.arguments,
    ) {
        Ok(out) => Json(json!({ "name": body.name, "output": out.text, "touched": out.touched }))
            .into_response(),
        Err(e) => e.into_response(),
    }
}
