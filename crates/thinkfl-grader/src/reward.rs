//! What a GRPO stage rewards: a stage score of the curriculum or the MRR-only control.

use serde::{Deserialize, Serialize};

/// What a GRPO stage rewards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reward {
    /// The grader's stage score: 1 (`R + F`), 2 (`R + 0.8 V`), 3 (`R + 0.2 P - 0.2 H`).
    Stage(u8),
    /// A named reward outside the curriculum.
    Named(RewardName),
}

/// Rewards by name (`reward = "mrr"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RewardName {
    /// The reciprocal rank of the first right item alone (0 when none is right): the paper's
    /// negative control, which it reports collapses without the format and process factors.
    Mrr,
}

impl Reward {
    /// The reward of one graded rollout (`stage2` is the breakdown's stage-2 score, which
    /// needs the diversity cache).
    pub fn of(self, b: &crate::GradeBreakdown) -> f64 {
        match self {
            Reward::Stage(n) => crate::Stage::from_number(n)
                .map(|s| b.score(s))
                .unwrap_or(0.0),
            Reward::Named(RewardName::Mrr) => b.rank.map_or(0.0, |r| 1.0 / (r as f64 + 1.0)),
        }
    }

    /// Whether the diversity cache must grade the rollouts (stage 2's `V`).
    pub fn needs_diversity(self) -> bool {
        self == Reward::Stage(2)
    }
}

impl std::fmt::Display for Reward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reward::Stage(n) => write!(f, "{n}"),
            Reward::Named(RewardName::Mrr) => f.write_str("mrr"),
        }
    }
}

impl std::str::FromStr for Reward {
    type Err = crate::Error;

    /// `"1"`, `"2"`, `"3"` or `"mrr"`, as configs and requests write it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "1" => Ok(Reward::Stage(1)),
            "2" => Ok(Reward::Stage(2)),
            "3" => Ok(Reward::Stage(3)),
            m if m.eq_ignore_ascii_case("mrr") => Ok(Reward::Named(RewardName::Mrr)),
            other => Err(crate::Error::Config {
                field: "reward",
                reason: format!("must be 1, 2, 3 or \"mrr\", not {other:?}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_displays_and_rejects_the_rest() {
        for r in [
            Reward::Stage(1),
            Reward::Stage(2),
            Reward::Stage(3),
            Reward::Named(RewardName::Mrr),
        ] {
            assert_eq!(r.to_string().parse::<Reward>(), Ok(r));
        }
        assert!("0".parse::<Reward>().is_err());
        assert!("4".parse::<Reward>().is_err());
        let e = "stage3".parse::<Reward>().unwrap_err().to_string();
        assert!(e.contains("reward"), "{e}");
    }

    #[test]
    fn mrr_is_the_reciprocal_rank() {
        let mut b = crate::grade(
            &crate::GraderConfig::default(),
            &thinkfl_core::Trajectory::default(),
            &thinkfl_core::FaultCase {
                timestamp: 0,
                level: thinkfl_core::Level::Pod,
                cmdb_id: "a-0".into(),
                failure_type: "x".into(),
                duration: None,
            },
        );
        let mrr = Reward::Named(RewardName::Mrr);
        assert_eq!(mrr.of(&b), 0.0);
        b.rank = Some(1);
        assert_eq!(mrr.of(&b), 0.5);
    }
}
