//! The multi-factor failure-localization grader of thinkfl (DESIGN.md section 6), after section
//! 4.2 of "ThinkFL: Self-Refining Failure Localization for Microservice Systems via Reinforcement
//! Fine-Tuning" (Zhang et al., arXiv 2504.18776).
//!
//! Pure functions from a [`Trajectory`] and its ground-truth [`FaultCase`] to a
//! [`GradeBreakdown`]: recall `R`, route `P`, hallucination `H`, format `F`, diversity `V`
//! (stage 2 only, it needs the per-question [`DiversityCache`]) and the three stage scores
//! (stage 1 `R + F`, stage 2 `R + 0.8 V`, stage 3 `R + 0.2 P - 0.2 H`). Every constant is a field
//! of [`GraderConfig`].

#![warn(missing_docs)]

mod config;
mod diversity;
mod matching;
mod reward;
mod scores;

pub use config::*;
pub use diversity::{DiversityCache, question_key, sequence_key};
pub use matching::{
    Matching, first_match, item_matches, named_in_path, path_entry_is_truth, path_position,
};
pub use reward::{Reward, RewardName};
pub use scores::{HallucinationCounts, format, hallucination, hallucination_counts, recall, route};

use serde::{Deserialize, Serialize};
use thinkfl_core::{FaultCase, Trajectory};

/// Errors of the grader.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// A grader setting out of range.
    #[error("grader config: {field} {reason}")]
    Config {
        /// The setting, as the config names it.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// A stage of the progressive GRPO curriculum (DESIGN.md section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Format and correctness: `R + F`.
    One,
    /// Exploration: `R + 0.8 V`.
    Two,
    /// Faithful reasoning: `R + 0.2 P - 0.2 H`.
    Three,
}

impl Stage {
    /// The stages in the order they run.
    pub const ALL: [Stage; 3] = [Stage::One, Stage::Two, Stage::Three];

    /// 1, 2 or 3, as configs and logs write the stage.
    pub fn number(self) -> u8 {
        match self {
            Stage::One => 1,
            Stage::Two => 2,
            Stage::Three => 3,
        }
    }

    /// The stage of [`Stage::number`] `n`; `None` outside 1..=3.
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            1 => Some(Stage::One),
            2 => Some(Stage::Two),
            3 => Some(Stage::Three),
            _ => None,
        }
    }
}

/// Every factor of one graded trajectory, with the counts behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradeBreakdown {
    /// 0-based rank of the first matching item (under `recall_matching`); `None` without a match
    /// or without an answer.
    pub rank: Option<usize>,
    /// 0-based rank of the first item matching at service level.
    pub lenient_rank: Option<usize>,
    /// `R`.
    pub recall: f64,
    /// 1-based position of the ground truth in the reasoning path.
    pub route_position: Option<usize>,
    /// Length `L` of the reasoning path.
    pub path_len: usize,
    /// `P`.
    pub route: f64,
    /// `N`, `N_inv`, `N_dup` behind `H`.
    pub counts: HallucinationCounts,
    /// `H`.
    pub hallucination: f64,
    /// Tool calls of the episode, `print_results` included.
    pub calls: usize,
    /// Of those, the ones that parsed to a known tool with valid arguments.
    pub valid_calls: usize,
    /// `F`.
    pub format: f64,
    /// `V`: present only when graded against a [`DiversityCache`].
    pub diversity: Option<f64>,
    /// `R + F` (weighted by the config).
    pub stage1: f64,
    /// `R + 0.8 V`; present only with a diversity score.
    pub stage2: Option<f64>,
    /// The recall term of stage 2 alone (`1.0 R`), the stage-2 score when `V` is unknown.
    pub stage2_recall_part: f64,
    /// `R + 0.2 P - 0.2 H`.
    pub stage3: f64,
}

impl GradeBreakdown {
    /// The reward of a stage. Stage 2 without a diversity score (graded without a cache) counts
    /// `V` as 0; use [`grade_with_diversity`] for stage-2 rewards.
    pub fn score(&self, stage: Stage) -> f64 {
        match stage {
            Stage::One => self.stage1,
            Stage::Two => self.stage2.unwrap_or(self.stage2_recall_part),
            Stage::Three => self.stage3,
        }
    }
}

/// Grades a trajectory without a diversity cache (`V` and the stage-2 score are `None`).
///
/// ```
/// use thinkfl_core::{FaultCase, Level, RootCause, Trajectory};
/// use thinkfl_grader::{GraderConfig, Stage, grade};
///
/// let truth = FaultCase {
///     timestamp: 1_647_705_600,
///     level: Level::Pod,
///     cmdb_id: "cartservice-1".into(),
///     failure_type: "k8s container cpu load".into(),
///     duration: None,
/// };
/// let item = |pod: &str, service: &str| RootCause {
///     node: Some("node-2".into()),
///     service: Some(service.into()),
///     pod: Some(pod.into()),
///     reason: Some("CPU saturated".into()),
/// };
/// let traj = Trajectory {
///     // The episode walked from the frontend to the cart service.
///     path: vec!["frontend-0".into(), "cartservice-1".into()],
///     prediction: Some(vec![item("frontend-0", "frontend"), item("cartservice-1", "cartservice")]),
///     ..Trajectory::default()
/// };
/// let cfg = GraderConfig::default();
/// let g = grade(&cfg, &traj, &truth);
/// assert_eq!(g.rank, Some(1), "the second item names the faulty pod");
/// assert_eq!(g.route_position, Some(2));
/// assert!(g.recall > 0.0 && g.recall < 1.0, "found, but not first");
/// assert_eq!(g.diversity, None);
/// assert!(g.score(Stage::Three) > 0.0);
/// ```
pub fn grade(cfg: &GraderConfig, traj: &Trajectory, truth: &FaultCase) -> GradeBreakdown {
    let prediction = traj.prediction.as_deref().unwrap_or(&[]);
    let rank = first_match(prediction, truth, cfg.recall_matching);
    let lenient_rank = first_match(prediction, truth, Matching::Lenient);
    let r = recall(cfg, rank);
    let p = route(cfg, &traj.path, truth);
    let counts = hallucination_counts(prediction, &traj.path);
    let h = hallucination(cfg, &counts);
    let f = format(&traj.calls, traj.prediction.is_some());
    GradeBreakdown {
        rank,
        lenient_rank,
        recall: r,
        route_position: path_position(&traj.path, truth),
        path_len: traj.path.len(),
        route: p,
        counts,
        hallucination: h,
        calls: traj.calls.len(),
        valid_calls: traj.calls.iter().filter(|c| c.valid).count(),
        format: f,
        diversity: None,
        stage1: cfg.stage1_recall * r + cfg.stage1_format * f,
        stage2: None,
        stage2_recall_part: cfg.stage2_recall * r,
        stage3: cfg.stage3_recall * r + cfg.stage3_route * p - cfg.stage3_hallucination * h,
    }
}

/// Grades a trajectory and scores its diversity against the cache of its question (keyed by
/// [`question_key`]), remembering its tool-call sequence there.
pub fn grade_with_diversity(
    cfg: &GraderConfig,
    traj: &Trajectory,
    truth: &FaultCase,
    cache: &mut DiversityCache,
) -> GradeBreakdown {
    grade_with_diversity_for(cfg, traj, truth, cache, &question_key(traj))
}

/// As [`grade_with_diversity`], with an explicit question key.
pub fn grade_with_diversity_for(
    cfg: &GraderConfig,
    traj: &Trajectory,
    truth: &FaultCase,
    cache: &mut DiversityCache,
    question: &str,
) -> GradeBreakdown {
    let mut g = grade(cfg, traj, truth);
    let correct = g.rank == Some(0);
    let v = cache.observe(
        cfg,
        question,
        sequence_key(traj, cfg.diversity_key),
        correct,
    );
    g.diversity = Some(v);
    g.stage2 = Some(cfg.stage2_recall * g.recall + cfg.stage2_diversity * v);
    g
}

#[cfg(test)]
mod tests;
