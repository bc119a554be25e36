//! The episode table: create, step, grade, expire. Synchronous and lock-per-episode, so that the
//! HTTP layer runs each call on a blocking thread and many episodes step in parallel.

use crate::Error;
use crate::data::EnvDataset;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use thinkfl_agent::{ActorConfig, Constrain, Episode, question_span};
use thinkfl_core::{Message, Trajectory};
use thinkfl_grader::{
    DiversityCache, GradeBreakdown, GraderConfig, Reward, grade, grade_with_diversity_for,
};
use thinkfl_llm::ChatResponse;
use thinkfl_tools::{ToolRegistry, ToolsConfig};

/// Settings of the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvConfig {
    /// The episode settings (`d_max`, prompt set, tool output). Sampling fields are unused: the
    /// engine samples.
    pub actor: ActorConfig,
    /// The grader's constants.
    pub grader: GraderConfig,
    /// The reward of an episode whose request names none.
    pub default_reward: Reward,
    /// An episode untouched for this long is dropped.
    pub ttl: Duration,
    /// Most episodes held at once.
    pub max_episodes: usize,
    /// Longest model text one step accepts, bytes.
    pub max_text_bytes: usize,
}

impl EnvConfig {
    /// Default of `ttl`.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(600);
    /// Default of `max_episodes`.
    pub const DEFAULT_MAX_EPISODES: usize = 65_536;
    /// Default of `max_text_bytes`.
    pub const DEFAULT_MAX_TEXT_BYTES: usize = 32 * 1024;

    /// The actor settings of served episodes: the engine's model was not decoded under our
    /// grammars, so none is recorded.
    pub fn episode_config(&self) -> ActorConfig {
        ActorConfig {
            constrain: Constrain::Off,
            ..self.actor.clone()
        }
    }

    /// The tool settings the actor would use.
    pub fn tools_config(&self) -> ToolsConfig {
        self.actor.tools_config()
    }

    /// Checks every setting; the error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        self.actor.validate()?;
        self.grader
            .validate()
            .map_err(|e| Error::invalid("grader", e.to_string()))?;
        if self.ttl.is_zero() {
            return Err(Error::invalid("ttl", "must be > 0"));
        }
        if self.max_episodes == 0 {
            return Err(Error::invalid("max_episodes", "must be at least 1"));
        }
        if self.max_text_bytes < 256 {
            return Err(Error::invalid("max_text_bytes", "must be at least 256"));
        }
        Ok(())
    }
}

impl Default for EnvConfig {
    fn default() -> Self {
        Self {
            actor: ActorConfig::default(),
            grader: GraderConfig::default(),
            default_reward: Reward::Stage(3),
            ttl: Self::DEFAULT_TTL,
            max_episodes: Self::DEFAULT_MAX_EPISODES,
            max_text_bytes: Self::DEFAULT_MAX_TEXT_BYTES,
        }
    }
}

/// Which question an episode answers: what the exported data sets carry as their label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// The data set id (its directory name); optional when one data set is loaded.
    #[serde(default)]
    pub dataset: Option<String>,
    /// Index of the fault case in the data set's ground truth.
    pub case: usize,
    /// The entry span of the query; the case's first query when absent.
    #[serde(default)]
    pub query_span: Option<String>,
}

impl Label {
    /// A label from JSON: an object, or a string holding one (OpenRLHF passes labels as text).
    pub fn from_json(v: &Value) -> Result<Self, Error> {
        let parsed = match v {
            Value::String(s) => serde_json::from_str(s),
            other => serde_json::from_value(other.clone()),
        };
        parsed.map_err(|e| {
            Error::invalid(
                "label",
                format!("{e}; expected {{\"dataset\": string, \"case\": integer, \"query_span\": string}}"),
            )
        })
    }
}

/// A request to start an episode.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// The data set; optional when one is loaded.
    #[serde(default)]
    pub dataset: Option<String>,
    /// The fault case.
    pub case: usize,
    /// The query's entry span; else `query_index`.
    #[serde(default)]
    pub query_span: Option<String>,
    /// Which query of the case when no span is given (default the first).
    #[serde(default)]
    pub query_index: usize,
    /// `1`, `2`, `3` or `"mrr"`; the server's default when absent.
    #[serde(default)]
    pub reward: Option<Value>,
    /// The training run whose stage-2 diversity cache grades this episode.
    #[serde(default)]
    pub run: Option<String>,
}

/// The reward a request names: a number or a string.
pub fn parse_reward(v: Option<&Value>, default: Reward) -> Result<Reward, Error> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n.to_string().parse().map_err(reward_error),
        Some(Value::String(s)) => s.parse().map_err(reward_error),
        Some(other) => Err(Error::invalid(
            "reward",
            format!("must be 1, 2, 3 or \"mrr\", not {other}"),
        )),
    }
}

fn reward_error(e: thinkfl_grader::Error) -> Error {
    Error::invalid("reward", e.to_string())
}

/// What a step answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepResult {
    /// The messages the environment adds after the model's reply (tool results, the next
    /// phase's prompt), to be rendered in the model's chat template.
    pub observation: Vec<Message>,
    /// The episode is over (final answer printed, or the budget spent).
    pub done: bool,
    /// The phase the next turn is in.
    pub phase: String,
    /// Assistant turns so far.
    pub turn: usize,
    /// Whether every tool call of this reply parsed and ran.
    pub valid: bool,
    /// 0 until the last step, then the episode's graded reward: the sum over steps is the
    /// grader's score of the trajectory.
    pub reward: f64,
    /// The grade behind `reward`, on the last step.
    pub factors: Option<GradeBreakdown>,
}

/// A graded episode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graded {
    /// The reward asked for.
    pub reward: f64,
    /// Which reward it is.
    pub reward_kind: String,
    /// Every factor.
    pub factors: GradeBreakdown,
}

enum State {
    Running(Box<Episode>),
    Finished(Box<Trajectory>),
}

struct Slot {
    dataset: usize,
    reward: Reward,
    run: String,
    question: String,
    state: State,
    grade: Option<GradeBreakdown>,
    turn: usize,
    touched: Instant,
}

/// The environment: data sets, episodes, diversity caches.
pub struct EnvService {
    datasets: Vec<EnvDataset>,
    config: EnvConfig,
    registry: ToolRegistry,
    episodes: Mutex<HashMap<u64, Arc<Mutex<Slot>>>>,
    runs: Mutex<HashMap<String, DiversityCache>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for EnvService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvService")
            .field("datasets", &self.dataset_ids())
            .field("config", &self.config)
            .field("episodes", &self.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a tool is caught per request; the table itself stays consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_id(id: &str) -> Result<u64, Error> {
    id.trim()
        .strip_prefix("ep-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::UnknownEpisode(id.to_string()))
}

impl EnvService {
    /// An environment over `datasets` (at least one, ids distinct).
    pub fn new(datasets: Vec<EnvDataset>, config: EnvConfig) -> Result<Self, Error> {
        config.validate()?;
        if datasets.is_empty() {
            return Err(thinkfl_server::Error::NoDatasets.into());
        }
        for (i, d) in datasets.iter().enumerate() {
            if datasets[..i].iter().any(|e| e.id() == d.id()) {
                return Err(thinkfl_server::Error::DuplicateId(d.id().to_string()).into());
            }
        }
        Ok(Self {
            datasets,
            config,
            registry: ToolRegistry::standard(),
            episodes: Mutex::new(HashMap::new()),
            runs: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        })
    }

    /// Its settings.
    pub fn config(&self) -> &EnvConfig {
        &self.config
    }

    /// The loaded data sets.
    pub fn datasets(&self) -> &[EnvDataset] {
        &self.datasets
    }

    /// Their ids, in order.
    pub fn dataset_ids(&self) -> Vec<&str> {
        self.datasets.iter().map(EnvDataset::id).collect()
    }

    /// Episodes held now.
    pub fn len(&self) -> usize {
        lock(&self.episodes).len()
    }

    /// Whether no episode is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index of a data set by id; with one loaded, the id may be left out.
    pub fn dataset_index(&self, id: Option<&str>) -> Result<usize, Error> {
        match id.map(str::trim) {
            None | Some("") if self.datasets.len() == 1 => Ok(0),
            None | Some("") => Err(Error::invalid(
                "dataset",
                format!(
                    "required when several data sets are loaded; loaded: {}",
                    self.dataset_ids().join(", ")
                ),
            )),
            Some(id) => self
                .datasets
                .iter()
                .position(|d| d.id() == id)
                .ok_or_else(|| Error::UnknownDataset {
                    id: id.to_string(),
                    loaded: self.dataset_ids().join(", "),
                }),
        }
    }

    /// A fresh episode (not in the table) for a question, with its opening messages.
    fn start(
        &self,
        dataset: usize,
        case: usize,
        span: Option<&str>,
        index: usize,
    ) -> Result<(Episode, String), Error> {
        let ds = &self.datasets[dataset];
        let q = ds.query(case, span, index)?;
        let env = ds.env(self.config.tools_config());
        let question = question_span(&env, q)?;
        let cfg = self.config.episode_config();
        let ep = Episode::new(
            &cfg,
            &self.registry,
            &question,
            ds.components.clone(),
            cfg.seed,
        );
        // The key training uses for a question: the data set, the case and the entry span.
        Ok((ep, format!("{}#{}#{}", ds.id(), case, q.span_id)))
    }

    /// The opening messages of a question's episode: what the exported data sets hold as prompt.
    pub fn opening(
        &self,
        dataset: usize,
        case: usize,
        span: Option<&str>,
    ) -> Result<Vec<Message>, Error> {
        Ok(self.start(dataset, case, span, 0)?.0.messages().to_vec())
    }

    /// Starts an episode; answers its id and opening messages.
    pub fn create(&self, req: &CreateRequest) -> Result<Value, Error> {
        let reward = parse_reward(req.reward.as_ref(), self.config.default_reward)?;
        let run = req.run.clone().unwrap_or_else(|| "default".into());
        if run.is_empty() || run.len() > 128 {
            return Err(Error::invalid("run", "must be 1 to 128 characters"));
        }
        let dataset = self.dataset_index(req.dataset.as_deref())?;
        let (ep, question) = self.start(
            dataset,
            req.case,
            req.query_span.as_deref(),
            req.query_index,
        )?;
        let messages = ep.messages().to_vec();
        let phase = ep.phase();
        let slot = Slot {
            dataset,
            reward,
            run,
            question: question.clone(),
            state: State::Running(Box::new(ep)),
            grade: None,
            turn: 0,
            touched: Instant::now(),
        };
        let id = {
            let mut table = lock(&self.episodes);
            if table.len() >= self.config.max_episodes {
                drop(table);
                self.sweep();
                table = lock(&self.episodes);
                if table.len() >= self.config.max_episodes {
                    return Err(Error::Full(table.len()));
                }
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            table.insert(id, Arc::new(Mutex::new(slot)));
            id
        };
        let span = question.rsplit('#').next().unwrap_or_default().to_string();
        Ok(json!({
            "episode_id": format!("ep-{id}"),
            "dataset": self.datasets[dataset].id(),
            "case": req.case,
            "query_span": span,
            "reward": reward.to_string(),
            "phase": phase_name(phase),
            "d_max": self.config.actor.d_max,
            "messages": messages,
        }))
    }

    fn slot(&self, id: &str) -> Result<Arc<Mutex<Slot>>, Error> {
        let n = parse_id(id)?;
        lock(&self.episodes)
            .get(&n)
            .cloned()
            .ok_or_else(|| Error::UnknownEpisode(id.to_string()))
    }

    /// Feeds the model's reply to an episode.
    pub fn step(&self, id: &str, text: &str) -> Result<StepResult, Error> {
        if text.len() > self.config.max_text_bytes {
            return Err(Error::invalid(
                "text",
                format!(
                    "{} bytes; at most {} per step",
                    text.len(),
                    self.config.max_text_bytes
                ),
            ));
        }
        let slot = self.slot(id)?;
        let mut s = lock(&slot);
        s.touched = Instant::now();
        let ds = &self.datasets[s.dataset];
        let State::Running(ep) = &mut s.state else {
            return Err(Error::Over(id.to_string()));
        };
        let env = ds.env(self.config.tools_config());
        let before = ep.messages().len();
        let calls_before = ep_calls(ep);
        ep.observe(
            &self.config.episode_config(),
            &self.registry,
            &env,
            None,
            ChatResponse::from_text(text),
            0.0,
        );
        // The assistant message itself is the engine's own text; the observation is what follows.
        let observation = ep.messages()[(before + 1).min(ep.messages().len())..].to_vec();
        let valid = ep_invalid_since(ep, calls_before) == 0;
        let done = ep.is_done();
        let phase = phase_name(ep.phase()).to_string();
        s.turn += 1;
        let turn = s.turn;
        if !done {
            return Ok(StepResult {
                observation,
                done,
                phase,
                turn,
                valid,
                reward: 0.0,
                factors: None,
            });
        }
        let reward = s.reward;
        let g = self.finish_and_grade(&mut s, reward)?;
        Ok(StepResult {
            observation,
            done,
            phase,
            turn,
            valid,
            reward: g.reward,
            factors: Some(g.factors),
        })
    }

    /// Ends the episode if it is still running and grades it once; later grades reuse the
    /// breakdown, so that a stage-2 question enters its run's diversity cache exactly once.
    fn finish_and_grade(&self, s: &mut Slot, reward: Reward) -> Result<Graded, Error> {
        if let State::Running(_) = s.state {
            let State::Running(ep) =
                std::mem::replace(&mut s.state, State::Finished(Box::default()))
            else {
                unreachable!("matched above")
            };
            let mut t = ep.finish();
            t.case = Some(case_of(&s.question));
            s.state = State::Finished(Box::new(t));
        }
        let State::Finished(t) = &s.state else {
            unreachable!("finished above")
        };
        let truth = &self.datasets[s.dataset].loaded.store.faults()[t.case.unwrap_or(0)];
        let needs_v =
            reward.needs_diversity() && s.grade.as_ref().is_none_or(|g| g.diversity.is_none());
        if needs_v {
            let mut runs = lock(&self.runs);
            let cache = runs.entry(s.run.clone()).or_default();
            s.grade = Some(grade_with_diversity_for(
                &self.config.grader,
                t,
                truth,
                cache,
                &s.question,
            ));
        } else if s.grade.is_none() {
            s.grade = Some(grade(&self.config.grader, t, truth));
        }
        let factors = s.grade.clone().expect("graded above");
        Ok(Graded {
            reward: reward.of(&factors),
            reward_kind: reward.to_string(),
            factors,
        })
    }

    /// Grades an episode with its own reward or `reward`; a running episode ends here.
    pub fn grade(&self, id: &str, reward: Option<&Value>) -> Result<Graded, Error> {
        let slot = self.slot(id)?;
        let mut s = lock(&slot);
        s.touched = Instant::now();
        let reward = parse_reward(reward, s.reward)?;
        self.finish_and_grade(&mut s, reward)
    }

    /// The state of an episode: its messages so far, or the finished trajectory.
    pub fn get(&self, id: &str) -> Result<Value, Error> {
        let slot = self.slot(id)?;
        let mut s = lock(&slot);
        s.touched = Instant::now();
        let ds = self.datasets[s.dataset].id();
        Ok(match &s.state {
            State::Running(ep) => json!({
                "episode_id": id, "dataset": ds, "done": false, "turn": s.turn,
                "phase": phase_name(ep.phase()), "messages": ep.messages(),
            }),
            State::Finished(t) => json!({
                "episode_id": id, "dataset": ds, "done": true, "turn": s.turn,
                "trajectory": t, "factors": s.grade,
            }),
        })
    }

    /// Forgets an episode.
    pub fn delete(&self, id: &str) -> Result<(), Error> {
        let n = parse_id(id)?;
        lock(&self.episodes)
            .remove(&n)
            .map(|_| ())
            .ok_or_else(|| Error::UnknownEpisode(id.to_string()))
    }

    /// Drops episodes untouched for longer than the TTL; answers how many.
    pub fn sweep(&self) -> usize {
        let ttl = self.config.ttl;
        let mut table = lock(&self.episodes);
        let before = table.len();
        // An episode being stepped right now is locked, and so in use: keep it.
        table.retain(|_, slot| slot.try_lock().map_or(true, |s| s.touched.elapsed() < ttl));
        before - table.len()
    }

    /// The stage-2 diversity cache of a run: questions and distinct sequences per question.
    pub fn run_cache(&self, run: &str) -> Value {
        let runs = lock(&self.runs);
        match runs.get(run) {
            None => json!({"run": run, "questions": 0}),
            Some(c) => json!({"run": run, "questions": c.questions()}),
        }
    }

    /// Forgets a run's diversity cache (a new run, or a new epoch that should explore again).
    pub fn reset_run(&self, run: &str) -> bool {
        lock(&self.runs).remove(run).is_some()
    }

    /// OpenRLHF's single-turn reward: each `query` (prompt and response as one decoded text) is
    /// the model's one reply to the question of its label; the reply's calls run, its
    /// `print_results` is the answer, and the trajectory is graded with `reward`.
    pub fn single_turn(
        &self,
        query: &str,
        prompt: Option<&str>,
        label: &Label,
        reward: Reward,
        run: &str,
    ) -> Result<Graded, Error> {
        let response = match prompt {
            Some(p) if !p.is_empty() && query.starts_with(p) => &query[p.len()..],
            _ => query,
        };
        if response.len() > self.config.max_text_bytes {
            return Err(Error::invalid(
                "query",
                format!(
                    "response of {} bytes; at most {}",
                    response.len(),
                    self.config.max_text_bytes
                ),
            ));
        }
        let dataset = self.dataset_index(label.dataset.as_deref())?;
        let (mut ep, question) = self.start(dataset, label.case, label.query_span.as_deref(), 0)?;
        let env = self.datasets[dataset].env(self.config.tools_config());
        ep.observe(
            &self.config.episode_config(),
            &self.registry,
            &env,
            None,
            ChatResponse::from_text(response),
            0.0,
        );
        let mut slot = Slot {
            dataset,
            reward,
            run: run.to_string(),
            question,
            state: State::Running(Box::new(ep)),
            grade: None,
            turn: 1,
            touched: Instant::now(),
        };
        self.finish_and_grade(&mut slot, reward)
    }
}

fn case_of(question: &str) -> usize {
    question
        .split('#')
        .rev()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn ep_calls(ep: &Episode) -> usize {
    ep.calls().len()
}

fn ep_invalid_since(ep: &Episode, from: usize) -> usize {
    ep.calls()[from.min(ep.calls().len())..]
        .iter()
        .filter(|c| !c.valid)
        .count()
}

pub(crate) fn phase_name(p: thinkfl_agent::Phase) -> &'static str {
    match p {
        thinkfl_agent::Phase::InitialThink => "initial_think",
        thinkfl_agent::Phase::Rethink => "rethink",
        thinkfl_agent::Phase::FinalReview => "final_review",
    }
}
