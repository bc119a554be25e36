//! The environment over HTTP, on the tool server's accept loop and limits.
//!
//! | method and path | body | answer |
//! | --- | --- | --- |
//! | `POST /v1/episodes` | `{dataset?, case, query_span?, query_index?, reward?, run?}` | `{episode_id, messages, ...}` |
//! | `POST /v1/episodes/{id}/step` | `{text}` | `{observation, done, reward, factors?, valid, phase, turn}` |
//! | `POST /v1/episodes/{id}/grade` | `{reward?}` (or no body) | `{reward, reward_kind, factors}` |
//! | `GET /v1/episodes/{id}` | | messages so far, or the trajectory |
//! | `DELETE /v1/episodes/{id}` | | 204 |
//! | `GET /v1/datasets` | | ids, cases and their queries |
//! | `GET /v1/tools` | | OpenAI schemas of the episode's tools |
//! | `GET`/`DELETE /v1/runs/{run}/diversity` | | a run's stage-2 cache |
//! | `POST /get_reward` | `{query, prompts, labels, reward?, run?}` | `{rewards, scores, extra_logs}` (OpenRLHF) |

use crate::service::{CreateRequest, EnvService, Label, parse_reward};
use crate::{Error, service::phase_name};
use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use thinkfl_server::ServeLimits;
use tokio::net::TcpListener;

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        error(status, self.to_string())
    }
}

/// Runs a service call on a blocking thread (tools scan the store); a panic becomes a 500.
async fn blocking<T: serde::Serialize + Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the request was not answered",
        ),
    }
}

fn body<T: for<'de> Deserialize<'de>>(
    b: Result<Json<Value>, JsonRejection>,
    expected: &str,
) -> Result<T, (StatusCode, String)> {
    let Json(v) = b.map_err(|e| {
        (
            e.status(),
            format!("{}; expected {expected}", e.body_text()),
        )
    })?;
    serde_json::from_value(v).map_err(|e| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("bad request body: {e}; expected {expected}"),
        )
    })
}

const CREATE_SHAPE: &str = "{\"dataset\"?: string, \"case\": integer, \"query_span\"?: string, \"query_index\"?: integer, \"reward\"?: 1|2|3|\"mrr\", \"run\"?: string}";

async fn create(
    State(s): State<Arc<EnvService>>,
    b: Result<Json<Value>, JsonRejection>,
) -> Response {
    let req: CreateRequest = match body(b, CREATE_SHAPE) {
        Ok(r) => r,
        Err((status, msg)) => return error(status, msg),
    };
    blocking(move || s.create(&req)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepBody {
    text: String,
}

async fn step(
    State(s): State<Arc<EnvService>>,
    Path(id): Path<String>,
    b: Result<Json<Value>, JsonRejection>,
) -> Response {
    let req: StepBody = match body(b, "{\"text\": string}") {
        Ok(r) => r,
        Err((status, msg)) => return error(status, msg),
    };
    blocking(move || s.step(&id, &req.text)).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GradeBody {
    #[serde(default)]
    reward: Option<Value>,
}

async fn grade(State(s): State<Arc<EnvService>>, Path(id): Path<String>, raw: String) -> Response {
    let req: GradeBody = if raw.trim().is_empty() {
        GradeBody::default()
    } else {
        match serde_json::from_str(&raw) {
            Ok(r) => r,
            Err(e) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("bad request body: {e}; expected {{\"reward\"?: 1|2|3|\"mrr\"}}"),
                );
            }
        }
    };
    blocking(move || s.grade(&id, req.reward.as_ref())).await
}

async fn get_episode(State(s): State<Arc<EnvService>>, Path(id): Path<String>) -> Response {
    blocking(move || s.get(&id)).await
}

async fn delete_episode(State(s): State<Arc<EnvService>>, Path(id): Path<String>) -> Response {
    match s.delete(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn datasets(State(s): State<Arc<EnvService>>) -> Response {
    let list: Vec<Value> = s
        .datasets()
        .iter()
        .map(|d| {
            let cases: Vec<Value> = d
                .loaded
                .store
                .faults()
                .iter()
                .zip(&d.queries)
                .enumerate()
                .map(|(i, (f, qs))| {
                    json!({
                        "case": i, "level": f.level, "failure_type": f.failure_type,
                        "queries": qs.iter().map(|q| q.span_id.as_str()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({ "dataset": d.id(), "cases": cases })
        })
        .collect();
    Json(Value::Array(list)).into_response()
}

async fn tools(State(s): State<Arc<EnvService>>) -> Response {
    let set = s.config().actor.prompt_set;
    let names = set.tools(thinkfl_agent::Phase::Rethink);
    let phases: Vec<Value> = [
        thinkfl_agent::Phase::InitialThink,
        thinkfl_agent::Phase::Rethink,
        thinkfl_agent::Phase::FinalReview,
    ]
    .iter()
    .map(|p| json!({"phase": phase_name(*p), "tools": set.tools(*p)}))
    .collect();
    Json(json!({
        "tools": thinkfl_tools::ToolRegistry::standard().openai_schemas_of(names),
        "phases": phases,
    }))
    .into_response()
}

async fn run_get(State(s): State<Arc<EnvService>>, Path(run): Path<String>) -> Response {
    Json(s.run_cache(&run)).into_response()
}

async fn run_delete(State(s): State<Arc<EnvService>>, Path(run): Path<String>) -> Response {
    Json(json!({"run": run, "reset": s.reset_run(&run)})).into_response()
}

#[derive(Deserialize)]
struct RewardBody {
    query: Vec<String>,
    #[serde(default)]
    prompts: Vec<String>,
    labels: Vec<Value>,
    #[serde(default)]
    reward: Option<Value>,
    #[serde(default)]
    run: Option<String>,
}

/// OpenRLHF's remote reward: one reward per query; a query that cannot be graded (a bad label)
/// fails the whole request, since a silent 0 would train on a wrong signal.
fn get_reward(s: &EnvService, b: RewardBody) -> Result<Value, Error> {
    if b.labels.len() != b.query.len() {
        return Err(Error::invalid(
            "labels",
            format!("{} labels for {} queries", b.labels.len(), b.query.len()),
        ));
    }
    if !b.prompts.is_empty() && b.prompts.len() != b.query.len() {
        return Err(Error::invalid(
            "prompts",
            format!("{} prompts for {} queries", b.prompts.len(), b.query.len()),
        ));
    }
    let reward = parse_reward(b.reward.as_ref(), s.config().default_reward)?;
    let run = b.run.unwrap_or_else(|| "get_reward".into());
    let mut rewards = Vec::with_capacity(b.query.len());
    let mut logs: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for (i, q) in b.query.iter().enumerate() {
        let label = Label::from_json(&b.labels[i])?;
        let g = s.single_turn(
            q,
            b.prompts.get(i).map(String::as_str),
            &label,
            reward,
            &run,
        )?;
        rewards.push(g.reward);
        let f = &g.factors;
        for (k, v) in [
            ("recall", f.recall),
            ("route", f.route),
            ("hallucination", f.hallucination),
            ("format", f.format),
            ("mrr", f.rank.map_or(0.0, |r| 1.0 / (r as f64 + 1.0))),
        ] {
            logs.entry(k).or_default().push(v);
        }
    }
    Ok(json!({ "rewards": rewards, "scores": rewards, "extra_logs": logs }))
}

async fn get_reward_route(
    State(s): State<Arc<EnvService>>,
    b: Result<Json<Value>, JsonRejection>,
) -> Response {
    let req: RewardBody = match body(
        b,
        "{\"query\": [string], \"prompts\": [string], \"labels\": [label], \"reward\"?: 1|2|3|\"mrr\"}",
    ) {
        Ok(r) => r,
        Err((status, msg)) => return error(status, msg),
    };
    blocking(move || get_reward(&s, req)).await
}

/// The router, every request bounded by `limits` (body size, time).
pub fn router(service: Arc<EnvService>, limits: &ServeLimits) -> Router {
    let timeout = limits.request_timeout;
    Router::new()
        .route("/v1/episodes", post(create))
        .route("/v1/episodes/{id}/step", post(step))
        .route("/v1/episodes/{id}/grade", post(grade))
        .route("/v1/episodes/{id}", get(get_episode).delete(delete_episode))
        .route("/v1/datasets", get(datasets))
        .route("/v1/tools", get(tools))
        .route("/v1/runs/{run}/diversity", get(run_get).delete(run_delete))
        .route("/get_reward", post(get_reward_route))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such endpoint; try POST /v1/episodes, POST /v1/episodes/{id}/step, POST /get_reward",
            )
        })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
        })
        .layer(middleware::from_fn(move |req: Request, next: Next| async move {
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(r) => r,
                Err(_) => error(StatusCode::REQUEST_TIMEOUT, "request timed out"),
            }
        }))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(service)
}

/// Serves on `listener` until `shutdown`, dropping expired episodes every TTL/4.
pub async fn serve(
    listener: TcpListener,
    service: Arc<EnvService>,
    limits: &ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let sweeper = {
        let s = service.clone();
        let every = (s.config().ttl / 4).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let n = s.sweep();
                if n > 0 {
                    tracing::info!("dropped {n} expired episodes");
                }
            }
        })
    };
    let app = router(service, limits);
    let r = thinkfl_server::serve(listener, app, limits, shutdown).await;
    sweeper.abort();
    r
}

/// Binds `addr` (loopback expected) and serves until the process ends; prints the address.
pub fn serve_blocking(
    service: Arc<EnvService>,
    addr: std::net::SocketAddr,
    threads: usize,
    limits: ServeLimits,
) -> std::io::Result<()> {
    let datasets = service.dataset_ids().join(", ");
    thinkfl_server::run_blocking(
        addr,
        threads,
        "env server",
        &datasets,
        |listener| async move { serve(listener, service, &limits, std::future::pending()).await },
    )
}
