//! The MCP handler: tools, resources and the prompt of one data set.

use crate::data_tools::{CaseQueries, Inspect, ListIncidents, incident_report, no_case_message};
use crate::localize::{LocalizeArgs, LocalizeModel, Turn, Watched, answer_json, pick_query};
use crate::{Error, McpConfig};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, Prompt, PromptArgument, PromptMessage, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResourceTemplate, Role,
    ServerCapabilities, ServerConfig, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use thinkfl_agent::expert::{ExpertConfig, ExpertPolicy};
use thinkfl_agent::{Actor, ActorConfig};
use thinkfl_llm::ChatModel;
use thinkfl_store::TelemetryStore;
use thinkfl_tools::{
    Baselines, SearchAnomalousComponents, SearchFluctuatingMetrics, SearchLogs, SearchTraces,
    ToolEnv, ToolError, ToolRegistry, parameters_schema, parse_arguments,
};
use tokio_util::sync::CancellationToken;

/// Builds the model `localize` runs as "default", on the first call that asks for it (the binary
/// knows how: fetch, load, adapter); it gets the data set's store (which the scripted expert
/// reads). The error is the tool error's text.
pub type ModelLoader =
    Arc<dyn Fn(&Arc<TelemetryStore>) -> Result<Arc<dyn ChatModel>, String> + Send + Sync>;

const LOCALIZE: &str = "localize";
const DATASET_URI: &str = "thinkfl://dataset";
const INCIDENT_URI: &str = "thinkfl://incidents/";
const PROMPT: &str = "investigate_incident";

/// thinkfl's MCP server over one data set. Cheap to clone: the streamable HTTP transport makes a
/// handler per session, and every one shares the store, the caches and the model.
#[derive(Clone)]
pub struct ThinkflMcp {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    store: Arc<TelemetryStore>,
    baselines: OnceLock<Baselines>,
    config: McpConfig,
    registry: ToolRegistry,
    tools: Vec<rmcp::model::Tool>,
    queries: Arc<CaseQueries>,
    loader: Option<ModelLoader>,
    local_model: tokio::sync::Mutex<Option<Arc<dyn ChatModel>>>,
    expert: OnceLock<Arc<ExpertPolicy>>,
    /// One local-model episode at a time: a second would halve the speed of both on the small
    /// machines this runs on, and the model's KV cache serves one sequence best.
    episodes: tokio::sync::Semaphore,
}

impl std::fmt::Debug for ThinkflMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThinkflMcp")
            .field("dataset", &self.inner.name)
            .field("tools", &self.tool_names())
            .field("local_model", &self.inner.loader.is_some())
            .finish()
    }
}

/// A tool error with the text of `e`.
fn tool_error(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text.into())])
}

fn object(schema: Value) -> Arc<Map<String, Value>> {
    match schema {
        Value::Object(m) => Arc::new(m),
        // Every argument type is a struct, whose schema is an object.
        _ => Arc::new(Map::new()),
    }
}

impl ThinkflMcp {
    /// A server over `store`, named `name` (the data set's directory) in reports. Without a
    /// `loader`, `localize` runs only the scripted expert and says so for the default model.
    pub fn new(
        name: impl Into<String>,
        store: TelemetryStore,
        config: McpConfig,
        loader: Option<ModelLoader>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let name = name.into();
        let queries = Arc::new(CaseQueries::default());
        let mut registry = ToolRegistry::new();
        registry.register(SearchTraces);
        registry.register(SearchFluctuatingMetrics);
        registry.register(SearchLogs);
        registry.register(SearchAnomalousComponents);
        registry.register(ListIncidents::with_cache(
            config.anomaly.clone(),
            queries.clone(),
        ));
        registry.register(Inspect::new(name.clone()));
        let read_only = ToolAnnotations::new().read_only(true).idempotent(true);
        let mut tools: Vec<rmcp::model::Tool> = registry
            .names()
            .into_iter()
            .filter_map(|n| registry.get(n))
            .map(|t| {
                rmcp::model::Tool::new(
                    t.name().to_string(),
                    t.description().to_string(),
                    object(t.parameters()),
                )
                .with_annotations(read_only.clone())
            })
            .collect();
        tools.push(
            rmcp::model::Tool::new(
                LOCALIZE,
                "Localize the root cause of an incident: runs thinkfl's Recursion-of-Thought \
                 actor (the trained local model, or the scripted expert) from a fault case's \
                 first anomalous trace, a trace or a span, through the diagnostic tools, and \
                 returns the ranked root causes (pod, node, service, reason) with the evidence \
                 path and every call it made. Reports each model turn as progress; cancellable.",
                object(parameters_schema::<LocalizeArgs>()),
            )
            .with_annotations(ToolAnnotations::new().read_only(true)),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                name,
                store: Arc::new(store),
                baselines: OnceLock::new(),
                config,
                registry,
                tools,
                queries,
                loader,
                local_model: tokio::sync::Mutex::new(None),
                expert: OnceLock::new(),
                episodes: tokio::sync::Semaphore::new(1),
            }),
        })
    }

    /// The data set's name (its directory).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The settings it was made with.
    pub fn config(&self) -> &McpConfig {
        &self.inner.config
    }

    /// The data set.
    pub fn store(&self) -> &TelemetryStore {
        &self.inner.store
    }

    /// The tools as listed, in order.
    pub fn tool_names(&self) -> Vec<String> {
        self.inner
            .tools
            .iter()
            .map(|t| t.name.to_string())
            .collect()
    }

    /// Runs one registry tool on a blocking thread, bounded by the tool timeout; a panic inside
    /// becomes a tool error instead of a dead connection.
    async fn call_registry(&self, name: String, args: Value) -> CallToolResult {
        let inner = self.inner.clone();
        let timeout = inner.config.tool_timeout;
        let job = tokio::task::spawn_blocking(move || {
            let env = ToolEnv::with_shared_baselines(
                &inner.store,
                inner.config.tools.clone(),
                &inner.baselines,
            );
            catch_unwind(AssertUnwindSafe(|| inner.registry.call(&env, &name, &args))).map_err(
                |_| format!("Error: internal error in tool {name:?}; nothing was answered"),
            )
        });
        match tokio::time::timeout(timeout, job).await {
            Err(_) => tool_error(format!(
                "Error: the call took longer than {} s and was abandoned",
                timeout.as_secs()
            )),
            Ok(Err(e)) => tool_error(format!("Error: the call failed: {e}")),
            Ok(Ok(Err(text))) => tool_error(text),
            Ok(Ok(Ok(Err(e)))) => tool_error(e.to_string()),
            Ok(Ok(Ok(Ok(out)))) => CallToolResult::success(vec![ContentBlock::text(out.text)]),
        }
    }

    /// The model a `localize` call asked for, built on first use.
    async fn model(&self, which: LocalizeModel) -> Result<Arc<dyn ChatModel>, String> {
        let inner = &self.inner;
        match which {
            LocalizeModel::Expert => {
                let store = inner.store.clone();
                let baselines = self.baselines().await;
                let expert = inner.expert.get_or_init(|| {
                    Arc::new(ExpertPolicy::with_baselines(
                        store,
                        baselines,
                        ExpertConfig::default(),
                    ))
                });
                Ok(expert.clone() as Arc<dyn ChatModel>)
            }
            LocalizeModel::Default => {
                let mut slot = inner.local_model.lock().await;
                if let Some(m) = slot.as_ref() {
                    return Ok(m.clone());
                }
                let Some(loader) = inner.loader.clone() else {
                    return Err(
                        "Error: localize: this server was started without a local model; \
                                use \"model\": \"expert\""
                            .into(),
                    );
                };
                let store = inner.store.clone();
                let m = tokio::task::spawn_blocking(move || loader(&store))
                    .await
                    .map_err(|e| format!("Error: localize: loading the model failed: {e}"))?
                    .map_err(|e| format!("Error: localize: loading the model failed: {e}"))?;
                *slot = Some(m.clone());
                Ok(m)
            }
        }
    }

    /// The store's normal durations, computed once (a pass over every span) off the reactor.
    async fn baselines(&self) -> Baselines {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            inner
                .baselines
                .get_or_init(|| Baselines::compute(&inner.store))
                .clone()
        })
        .await
        .unwrap_or_else(|_| Baselines::compute(&self.inner.store))
    }

    async fn case_queries(&self) -> crate::data_tools::QueriesByCase {
        let inner = self.inner.clone();
        let queries = tokio::task::spawn_blocking(move || {
            inner.queries.of(&inner.store, &inner.config.anomaly)
        })
        .await;
        match queries {
            Ok(q) => q,
            Err(_) => self
                .inner
                .queries
                .of(&self.inner.store, &self.inner.config.anomaly),
        }
    }

    async fn localize(&self, args: Value, ctx: RequestContext<RoleServer>) -> CallToolResult {
        let args: LocalizeArgs = match parse_arguments(LOCALIZE, &args) {
            Ok(a) => a,
            Err(e) => return tool_error(e.to_string()),
        };
        let queries = self.case_queries().await;
        let (query, case) = match pick_query(&self.inner.store, &queries, &args) {
            Ok(q) => q,
            Err(msg) => {
                let e = ToolError::Invalid {
                    tool: LOCALIZE.into(),
                    message: msg,
                };
                return tool_error(e.to_string());
            }
        };
        let which = args.model.unwrap_or_default();
        let timeout = self.inner.config.localize_timeout;
        let started = Instant::now();
        let run = async {
            // Local-model episodes wait for each other; the expert takes milliseconds.
            let _permit =
                match which {
                    LocalizeModel::Default => {
                        Some(self.inner.episodes.acquire().await.map_err(|_| {
                            "Error: localize: the server is shutting down".to_string()
                        })?)
                    }
                    LocalizeModel::Expert => None,
                };
            let model = self.model(which).await?;
            let baselines = self.baselines().await;
            // The actor's own tool settings (rows, bytes), as the model was trained with them
            // and as `thinkfl localize` runs it: the same question gets the same answer.
            let cfg = ActorConfig {
                d_max: args.d_max.unwrap_or(ActorConfig::DEFAULT_D_MAX),
                ..ActorConfig::default()
            };
            let cancel = CancellationToken::new();
            let _stop_on_drop = cancel.clone().drop_guard();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Turn>();
            let watched = Arc::new(Watched::new(model, cancel.clone(), tx));
            let actor = Actor::new(watched.clone() as Arc<dyn ChatModel>, cfg)
                .map_err(|e| format!("Error: localize: {e}"))?;
            let store = self.inner.store.clone();
            let q = query.clone();
            let mut episode = tokio::task::spawn_blocking(move || {
                catch_unwind(AssertUnwindSafe(|| {
                    actor.run_batch(&store, &baselines, std::slice::from_ref(&q), &[0])
                }))
            });
            let token = ctx.meta.get_progress_token();
            let peer = ctx.peer.clone();
            // Progress goes out in turn order from one task; it ends when the episode's actor,
            // which holds the sender, is dropped at the end of the episode.
            let forward = tokio::spawn(async move {
                while let Some(turn) = rx.recv().await {
                    if let Some(token) = token.clone() {
                        let p = ProgressNotificationParam::new(token, turn.number as f64)
                            .with_message(turn.message);
                        // A client that went away stops reading; the episode goes on to its
                        // cancellation or end.
                        let _ = peer.notify_progress(p).await;
                    }
                }
            });
            let result = tokio::select! {
                r = &mut episode => r,
                _ = ctx.ct.cancelled() => {
                    cancel.cancel();
                    // Say so on the operator's log once the episode has really stopped (at the
                    // end of the turn it was in).
                    let w = watched.clone();
                    tokio::spawn(async move {
                        let _ = episode.await;
                        eprintln!(
                            "thinkfl mcp: localize cancelled by the client; the episode stopped after {} model turns ({:.1} s)",
                            w.turns(),
                            started.elapsed().as_secs_f64()
                        );
                    });
                    return Err("Error: localize: cancelled by the client".to_string());
                }
            };
            let traj = match result {
                Err(e) => return Err(format!("Error: localize: the episode failed: {e}")),
                Ok(Err(_)) => {
                    return Err("Error: localize: internal error in the episode".to_string());
                }
                Ok(Ok(Err(e))) => return Err(format!("Error: localize: {e}")),
                Ok(Ok(Ok(mut t))) => t.remove(0),
            };
            let name = watched.name().to_string();
            let turns = watched.turns();
            drop(watched);
            // Every progress notification before the answer.
            let _ = forward.await;
            Ok::<_, String>((traj, name, turns))
        };
        let (traj, name, turns) = match tokio::time::timeout(timeout, run).await {
            Err(_) => {
                return tool_error(format!(
                    "Error: localize: no answer within {} s; the episode was stopped",
                    timeout.as_secs()
                ));
            }
            Ok(Err(msg)) => return tool_error(msg),
            Ok(Ok(r)) => r,
        };
        // Without the case's label: the summary of `thinkfl localize` prints the ground truth for
        // evaluation, which an assistant investigating the incident must not be told.
        let text = thinkfl_agent::summary(&query, None, &traj, &name);
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = Some(answer_json(&query, case.as_ref(), &traj, &name, turns));
        result
    }

    fn resources(&self) -> Vec<Resource> {
        let mut list = vec![
            Resource::new(DATASET_URI, "dataset")
                .with_title(format!("Data set {}", self.inner.name))
                .with_description("What the data set holds (thinkfl inspect)")
                .with_mime_type("text/plain"),
        ];
        let faults = self.inner.store.faults();
        list.extend(faults.iter().enumerate().map(|(i, f)| {
            Resource::new(format!("{INCIDENT_URI}{i}"), format!("incident {i}"))
                .with_title(format!(
                    "Fault case {i} at {}",
                    thinkfl_store::summary::utc(f.timestamp)
                ))
                .with_description(
                    "The case's window, its anomalous traces and its labelled root cause",
                )
                .with_mime_type("application/json")
        }));
        list
    }

    /// The contents of `uri`, or the message of why not.
    async fn read(&self, uri: &str) -> Result<ResourceContents, String> {
        if uri == DATASET_URI {
            let text = thinkfl_store::summary::render(&self.inner.store, &self.inner.name);
            return Ok(ResourceContents::text(text, uri));
        }
        let Some(n) = uri.strip_prefix(INCIDENT_URI) else {
            return Err(format!(
                "no resource {uri:?}; the resources are {DATASET_URI} and {INCIDENT_URI}{{case}}"
            ));
        };
        let count = self.inner.store.faults().len();
        let case: usize = n
            .parse()
            .map_err(|_| format!("{uri:?}: the case must be a number (0 to {count} - 1)"))?;
        if case >= count {
            return Err(no_case_message(case, count));
        }
        let queries = self.case_queries().await;
        let report = incident_report(
            &self.inner.store,
            &self.inner.config.anomaly,
            case,
            &queries[case],
            ListIncidents::MAX_TRACES,
            true,
        );
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        Ok(ResourceContents::text(text, uri).with_mime_type("application/json"))
    }

    /// The `investigate_incident` prompt for fault case `case`.
    async fn prompt(&self, case: &str) -> Result<String, String> {
        let count = self.inner.store.faults().len();
        let n: usize = case
            .trim()
            .parse()
            .map_err(|_| format!("`case` must be a fault case number, got {case:?}"))?;
        if n >= count {
            return Err(no_case_message(n, count));
        }
        let queries = self.case_queries().await;
        let fault = &self.inner.store.faults()[n];
        let w =
            thinkfl_tools::case_window(fault, self.inner.config.anomaly.default_case_duration_s);
        let start = match queries[n].first() {
            Some(q) => format!(
                "Its first anomalous trace is {} (entry span {} on {}, {}, at {} ms). Walk it \
                 down with search_traces from that span, always into the slowest or failed \
                 child,",
                q.trace_id, q.span_id, q.cmdb_id, q.operation_name, q.timestamp_ms
            ),
            None => "No trace in its window is anomalous; find the slow or failing calls with \
                     list_incidents and search_traces,"
                .to_string(),
        };
        Ok(format!(
            "Investigate incident {n} of the data set {}: a failure between {} and {} UTC \
             (Unix seconds {} to {}). First take the global view with \
             search_anomalous_components at timestamp {}. {start} then check the metrics \
             (search_fluctuating_metrics) and logs (search_logs) of the pods, services and \
             nodes that stand out. Answer with the three most likely root causes, most likely \
             first, each as a pod with its node and service and the evidence for it. thinkfl's \
             own localizer can be asked too: localize with {{\"case\": {n}}}.",
            self.inner.name,
            thinkfl_store::summary::utc(w.start_s),
            thinkfl_store::summary::utc(w.end_s),
            w.start_s,
            w.end_s,
            w.start_s,
        ))
    }
}

impl ServerHandler for ThinkflMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new("thinkfl", env!("CARGO_PKG_VERSION")))
        .with_instructions(format!(
            "thinkfl localizes the root cause of failures in a microservice system from its \
             traces, metrics and logs; this server answers for the data set {}. Start with \
             list_incidents, then localize a case or walk its anomalous trace with \
             search_traces, search_fluctuating_metrics and search_logs.",
            self.inner.name
        ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.inner.tools.clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.trim().to_string();
        let args = Value::Object(request.arguments.unwrap_or_default());
        if name == LOCALIZE {
            return Ok(self.localize(args, context).await.into());
        }
        if self.inner.registry.get(&name).is_none() {
            // The MCP specification makes an unknown tool a protocol error.
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool {name:?}; the tools are: {}",
                    self.tool_names().join(", ")
                ),
                None,
            ));
        }
        Ok(self.call_registry(name, args).await.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(self.resources()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(format!("{INCIDENT_URI}{{case}}"), "incident")
                .with_description(
                    "Fault case {case}: its window, anomalous traces and labelled root cause",
                )
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        match self.read(&request.uri).await {
            Ok(c) => Ok(ReadResourceResult::new(vec![c]).into()),
            Err(msg) => Err(McpError::resource_not_found(msg, None)),
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            PROMPT,
            Some("Investigate an incident of the data set with thinkfl's tools"),
            Some(vec![
                PromptArgument::new("case")
                    .with_description("The fault case number, as list_incidents lists them")
                    .with_required(true),
            ]),
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        if request.name != PROMPT {
            return Err(McpError::invalid_params(
                format!("unknown prompt {:?}; the prompt is {PROMPT}", request.name),
                None,
            ));
        }
        let case = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("case"))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .ok_or_else(|| McpError::invalid_params("the prompt needs `case`", None))?;
        let text = self
            .prompt(&case)
            .await
            .map_err(|m| McpError::invalid_params(m, None))?;
        let mut r = GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]);
        r.description = Some(format!("Investigate incident {case}"));
        Ok(r.into())
    }
}
