//! Every constant of the grader (DESIGN.md section 6) in one struct, with the design's defaults.

use crate::Matching;
use serde::{Deserialize, Serialize};

/// Default `r_max`: ranks at or past it earn no recall.
pub const DEFAULT_R_MAX: usize = 10;
/// Default `mu` of the route score.
pub const DEFAULT_ROUTE_MU: f64 = 1.0;
/// Default `D_max`, the tool-round budget the route score normalizes a missed path by.
pub const DEFAULT_D_MAX: usize = 10;
/// Default `l1`, the weight of items naming components absent from the reasoning path.
pub const DEFAULT_LAMBDA_INVALID: f64 = 0.5;
/// Default `l2`, the weight of repeated items.
pub const DEFAULT_LAMBDA_DUPLICATE: f64 = 0.5;
/// Default `A`: a tool-call sequence new for the question whose answer is right.
pub const DEFAULT_DIVERSITY_NEW_CORRECT: f64 = 1.0;
/// Default `B`: a new sequence whose answer is wrong.
pub const DEFAULT_DIVERSITY_NEW_INCORRECT: f64 = 0.3;
/// Default `C`: a sequence already seen for the question.
pub const DEFAULT_DIVERSITY_SEEN: f64 = 0.1;

/// What identifies a tool-call sequence in the stage-2 diversity cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiversityKey {
    /// The tool names in order ([`thinkfl_core::Trajectory::call_sequence`]).
    #[default]
    Names,
    /// Tool names with their arguments: two descents through different spans differ.
    NamesAndArguments,
}

/// Constants of the multi-factor grader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraderConfig {
    /// `r_max`: recall is `1 - r / r_max` for a first match at 0-based rank `r < r_max`, else 0.
    pub r_max: usize,
    /// Which items count as a match for recall (and for "correct" in the diversity score). The
    /// design grades at the ground-truth level ([`Matching::Strict`]).
    pub recall_matching: Matching,
    /// `mu` of the route score `min(i / max(L - mu, 1), 1)`: how many trailing path entries
    /// (after the root cause was reached) are tolerated before the score drops.
    pub route_mu: f64,
    /// `D_max`: when the root cause is not in the path, route is `min(L / D_max, 1)`.
    pub d_max: usize,
    /// `l1`: weight of the share of items naming a component absent from the reasoning path.
    pub lambda_invalid: f64,
    /// `l2`: weight of the share of repeated items.
    pub lambda_duplicate: f64,
    /// `A`: diversity of a new tool-call sequence with a right answer (rank 0).
    pub diversity_new_correct: f64,
    /// `B`: diversity of a new tool-call sequence with a wrong answer.
    pub diversity_new_incorrect: f64,
    /// `C`: diversity of a tool-call sequence already in the question's cache.
    pub diversity_seen: f64,
    /// What makes two tool-call sequences the same for the diversity cache.
    pub diversity_key: DiversityKey,
    /// Stage 1 `R + F`: weight of recall.
    pub stage1_recall: f64,
    /// Stage 1: weight of format.
    pub stage1_format: f64,
    /// Stage 2 `R + 0.8 V`: weight of recall.
    pub stage2_recall: f64,
    /// Stage 2: weight of diversity.
    pub stage2_diversity: f64,
    /// Stage 3 `1.0 R + 0.2 P - 0.2 H`: weight of recall.
    pub stage3_recall: f64,
    /// Stage 3: weight of route.
    pub stage3_route: f64,
    /// Stage 3: weight of hallucination (subtracted).
    pub stage3_hallucination: f64,
}

impl Default for GraderConfig {
    fn default() -> Self {
        Self {
            r_max: DEFAULT_R_MAX,
            recall_matching: Matching::Strict,
            route_mu: DEFAULT_ROUTE_MU,
            d_max: DEFAULT_D_MAX,
            lambda_invalid: DEFAULT_LAMBDA_INVALID,
            lambda_duplicate: DEFAULT_LAMBDA_DUPLICATE,
            diversity_new_correct: DEFAULT_DIVERSITY_NEW_CORRECT,
            diversity_new_incorrect: DEFAULT_DIVERSITY_NEW_INCORRECT,
            diversity_seen: DEFAULT_DIVERSITY_SEEN,
            diversity_key: DiversityKey::Names,
            stage1_recall: 1.0,
            stage1_format: 1.0,
            stage2_recall: 1.0,
            stage2_diversity: 0.8,
            stage3_recall: 1.0,
            stage3_route: 0.2,
            stage3_hallucination: 0.2,
        }
    }
}

impl GraderConfig {
    /// Checks that every constant is usable: positive budgets, finite non-negative weights.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |field: &'static str, reason: String| Err(crate::Error::Config { field, reason });
        if self.r_max == 0 {
            return bad("r_max", "must be at least 1".into());
        }
        if self.d_max == 0 {
            return bad("d_max", "must be at least 1".into());
        }
        let weights: [(&'static str, f64); 14] = [
            ("route_mu", self.route_mu),
            ("lambda_invalid", self.lambda_invalid),
            ("lambda_duplicate", self.lambda_duplicate),
            ("diversity_new_correct", self.diversity_new_correct),
            ("diversity_new_incorrect", self.diversity_new_incorrect),
            ("diversity_seen", self.diversity_seen),
            ("stage1_recall", self.stage1_recall),
            ("stage1_format", self.stage1_format),
            ("stage2_recall", self.stage2_recall),
            ("stage2_diversity", self.stage2_diversity),
            ("stage3_recall", self.stage3_recall),
            ("stage3_route", self.stage3_route),
            ("stage3_hallucination", self.stage3_hallucination),
            (
                "lambda_invalid + lambda_duplicate",
                self.lambda_invalid + self.lambda_duplicate,
            ),
        ];
        for (field, v) in weights {
            if !v.is_finite() || v < 0.0 {
                return bad(field, format!("must be finite and >= 0, got {v}"));
            }
        }
        Ok(())
    }
}
