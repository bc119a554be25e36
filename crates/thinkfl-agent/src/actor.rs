//! The Recursion-of-Thought actor: a model, the tools, and the episode loop.

use crate::config::ActorConfig;
use crate::constrain::Components;
use crate::episode::Episode;
use crate::prompts::QuestionSpan;
use std::sync::Arc;
use std::time::Instant;
use thinkfl_core::Trajectory;
use thinkfl_llm::ChatModel;
use thinkfl_store::TelemetryStore;
use thinkfl_tools::{
    Baselines, CaseWindow, DiagnoseError, Diagnoser, Diagnosis, Query, ToolEnv, ToolRegistry,
    ToolsConfig,
};

/// A finished episode and the grammar each of its assistant messages was decoded under (`None`
/// where the turn was free), in the order of the messages.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The episode.
    pub trajectory: Trajectory,
    /// One per assistant message, in order: the grammar it was decoded under, `None` for a free
    /// turn.
    pub grammars: Vec<Option<thinkfl_llm::grammar::Grammar>>,
}

/// The RoT actor over any [`ChatModel`]: runs episodes (system prompt, question, tool calls, an
/// answer at the end of each phase) and, as a [`Diagnoser`], answers the evaluation's queries.
///
/// The scripted [`ExpertPolicy`](crate::ExpertPolicy) stands in for a model below; a
/// `CandleChatModel` or an HTTP backend goes in the same place.
///
/// ```
/// use std::path::Path;
/// use std::sync::Arc;
/// use thinkfl_agent::expert::ExpertConfig;
/// use thinkfl_agent::{Actor, ActorConfig, ExpertPolicy};
/// use thinkfl_store::{LoadOptions, TelemetryStore};
/// use thinkfl_tools::Query;
///
/// // The real AIOps 2022 sample: one anomalous trace of a fault in recommendationservice.
/// let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/aiops2022-sample");
/// let (store, _) = TelemetryStore::load(&dir, &LoadOptions::default())?;
/// let store = Arc::new(store);
///
/// // The question: the entry span of the anomalous trace.
/// let query = Query::of_span(&store, "d1b3f238e544e3f0").expect("the entry span");
///
/// let model = ExpertPolicy::new(store.clone(), ExpertConfig::default());
/// let actor = Actor::new(model, ActorConfig::default())?;
/// let trajectory = actor.run(&store, &query)?;
///
/// // Every call was valid, the answer came before D_max, and it puts the faulty service first.
/// assert!(trajectory.calls.iter().all(|c| c.valid));
/// assert!(!trajectory.forced_final);
/// let answer = trajectory.prediction.expect("an answer");
/// assert_eq!(answer[0].service_or_pod_service(), Some("recommendationservice"));
/// // The reasoning path reached the slow pod.
/// assert!(trajectory.path.iter().any(|c| c == "recommendationservice-1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Actor<M> {
    model: M,
    config: ActorConfig,
    registry: ToolRegistry,
    name: String,
}

impl<M: std::fmt::Debug> std::fmt::Debug for Actor<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor")
            .field("model", &self.model)
            .field("config", &self.config)
            .finish()
    }
}

impl<M: ChatModel> Actor<M> {
    /// An actor over `model` with the standard tools, after checking `config`; named
    /// `thinkfl[<model name>]` in reports.
    pub fn new(model: M, config: ActorConfig) -> Result<Self, crate::Error> {
        config.validate()?;
        let name = format!("thinkfl[{}]", model.name());
        Ok(Self {
            model,
            config,
            registry: ToolRegistry::standard(),
            name,
        })
    }

    /// Renames the actor in reports.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The actor's settings.
    pub fn config(&self) -> &ActorConfig {
        &self.config
    }

    /// The model it runs.
    pub fn model(&self) -> &M {
        &self.model
    }

    fn tools_config(&self) -> ToolsConfig {
        self.config.tools_config()
    }

    /// Runs one episode from `query`.
    pub fn run(&self, store: &TelemetryStore, query: &Query) -> Result<Trajectory, crate::Error> {
        let env = ToolEnv::new(store, self.tools_config());
        let mut out = self.run_batch_in(&env, std::slice::from_ref(query), &[self.config.seed])?;
        Ok(out.remove(0).trajectory)
    }

    /// Runs one episode per (query, seed) in lockstep: each round sends the pending requests of
    /// all unfinished episodes in one batch.
    pub fn run_batch(
        &self,
        store: &TelemetryStore,
        baselines: &Baselines,
        queries: &[Query],
        seeds: &[u64],
    ) -> Result<Vec<Trajectory>, crate::Error> {
        let env = ToolEnv::with_baselines(store, self.tools_config(), baselines);
        Ok(self
            .run_batch_in(&env, queries, seeds)?
            .into_iter()
            .map(|r| r.trajectory)
            .collect())
    }

    /// [`Actor::run_batch`], with the grammar each assistant turn was decoded under.
    pub fn run_batch_recorded(
        &self,
        store: &TelemetryStore,
        baselines: &Baselines,
        queries: &[Query],
        seeds: &[u64],
    ) -> Result<Vec<Recorded>, crate::Error> {
        let env = ToolEnv::with_baselines(store, self.tools_config(), baselines);
        self.run_batch_in(&env, queries, seeds)
    }

    fn run_batch_in(
        &self,
        env: &ToolEnv<'_>,
        queries: &[Query],
        seeds: &[u64],
    ) -> Result<Vec<Recorded>, crate::Error> {
        assert_eq!(queries.len(), seeds.len(), "one seed per query");
        let cfg = &self.config;
        let mut episodes = Vec::with_capacity(queries.len());
        let components = Arc::new(Components::of(env.store));
        for (q, &seed) in queries.iter().zip(seeds) {
            let question = question_span(env, q)?;
            episodes.push(Episode::new(
                cfg,
                &self.registry,
                &question,
                components.clone(),
                seed,
            ));
        }
        let started = Instant::now();
        loop {
            let pending: Vec<usize> = (0..episodes.len())
                .filter(|&i| !episodes[i].is_done())
                .collect();
            if pending.is_empty() {
                break;
            }
            // Not done, so each pending episode has a next request.
            let requests: Vec<_> = pending
                .iter()
                .filter_map(|&i| episodes[i].request(cfg, &self.registry))
                .collect();
            let t0 = Instant::now();
            let responses = self.model.chat_batch(&requests)?;
            let model_ms = t0.elapsed().as_secs_f64() * 1e3;
            if responses.len() != requests.len() {
                return Err(crate::Error::Model(format!(
                    "backend answered {} of {} requests",
                    responses.len(),
                    requests.len()
                )));
            }
            for ((&i, req), resp) in pending.iter().zip(requests).zip(responses) {
                episodes[i].observe(cfg, &self.registry, env, req.params.grammar, resp, model_ms);
            }
        }
        let wall_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(episodes
            .into_iter()
            .zip(queries)
            .map(|(e, q)| {
                let (mut t, grammars) = e.finish_recorded();
                t.case = Some(q.case);
                t.timings.total_ms = wall_ms;
                Recorded {
                    trajectory: t,
                    grammars,
                }
            })
            .collect())
    }
}

/// The question of a query, with the normal duration of its operation where the data has one.
pub fn question_span(env: &ToolEnv<'_>, q: &Query) -> Result<QuestionSpan, crate::Error> {
    let span = env.store.span_by_id(&q.span_id).ok_or_else(|| {
        crate::Error::Query(format!(
            "span {} of the query is not in the data",
            q.span_id
        ))
    })?;
    let normal_us = env
        .baselines()
        .get(span.cmdb_id(), span.operation_name())
        .map(|b| b.median_us);
    Ok(QuestionSpan {
        timestamp_ms: span.timestamp(),
        cmdb_id: span.cmdb_id().to_string(),
        span_id: span.span_id().to_string(),
        trace_id: span.trace_id().to_string(),
        duration_us: span.duration(),
        kind: span.kind().to_string(),
        status_code: span.status_code().to_string(),
        operation_name: span.operation_name().to_string(),
        normal_us,
    })
}

impl<M: ChatModel> Diagnoser for Actor<M> {
    fn name(&self) -> &str {
        &self.name
    }

    fn diagnose(
        &self,
        store: &TelemetryStore,
        _window: CaseWindow,
        query: &Query,
    ) -> Result<Diagnosis, DiagnoseError> {
        let t0 = Instant::now();
        let traj = self.run(store, query)?;
        Ok(Diagnosis {
            ranking: traj.prediction.clone().unwrap_or_default(),
            path: traj.path.clone(),
            tokens: traj.tokens,
            trajectory: Some(traj),
            elapsed_ms: t0.elapsed().as_secs_f64() * 1e3,
        })
    }
}
