//! The reference a served episode is checked against: the assistant texts of a trajectory,
//! replayed through the in-process actor ([`thinkfl_agent::Actor`], the path `thinkfl localize`
//! and `thinkfl train` take) and graded by the grader as training grades a rollout.

use crate::data::EnvDataset;
use crate::service::EnvConfig;
use std::collections::VecDeque;
use std::sync::Mutex;
use thinkfl_agent::Actor;
use thinkfl_core::{Role, Trajectory};
use thinkfl_grader::{DiversityCache, GradeBreakdown, Reward, grade, grade_with_diversity_for};
use thinkfl_llm::{ChatModel, ChatRequest, ChatResponse};

/// A model that answers with given texts in order, then with nothing.
#[derive(Debug)]
pub struct Replay {
    texts: Mutex<VecDeque<String>>,
}

impl Replay {
    /// Replays `texts`.
    pub fn new(texts: impl IntoIterator<Item = String>) -> Self {
        Self {
            texts: Mutex::new(texts.into_iter().collect()),
        }
    }
}

impl ChatModel for Replay {
    fn name(&self) -> &str {
        "replay"
    }

    fn chat(&self, _request: &ChatRequest) -> thinkfl_llm::Result<ChatResponse> {
        let text = self
            .texts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .unwrap_or_default();
        Ok(thinkfl_llm::ChatResponse::from_text(text))
    }
}

/// The assistant texts of a trajectory, in order.
pub fn assistant_texts(t: &Trajectory) -> Vec<String> {
    t.messages
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .map(|m| m.content.clone())
        .collect()
}

/// Replays `texts` as the model's replies to the question `(case, query_span)` of `ds`.
pub fn replay(
    ds: &EnvDataset,
    cfg: &EnvConfig,
    case: usize,
    query_span: Option<&str>,
    texts: Vec<String>,
) -> Result<Trajectory, crate::Error> {
    let q = ds.query(case, query_span, 0)?;
    let actor = Actor::new(Replay::new(texts), cfg.episode_config())?;
    Ok(actor.run(&ds.loaded.store, q)?)
}

/// Grades a trajectory of `ds` as a training step grades a rollout (stage 2 against a fresh
/// cache: the first rollout of its question).
pub fn grade_as_training(
    ds: &EnvDataset,
    cfg: &EnvConfig,
    t: &Trajectory,
    reward: Reward,
) -> (f64, GradeBreakdown) {
    let truth = &ds.loaded.store.faults()[t.case.unwrap_or(0)];
    let b = if reward.needs_diversity() {
        let question = format!(
            "{}#{}#{}",
            ds.id(),
            t.case.unwrap_or(0),
            t.query_span.as_deref().unwrap_or("-")
        );
        grade_with_diversity_for(&cfg.grader, t, truth, &mut DiversityCache::new(), &question)
    } else {
        grade(&cfg.grader, t, truth)
    };
    (reward.of(&b), b)
}
