//! Which child span carries its parent's delay. The enriched `search_traces` states the answer
//! in one line under its rows, and the scripted expert descends by the same rule: a small model
//! reads a decision instead of comparing durations digit by digit (a 135M model follows a
//! 2.87 ms child of a 21.4 ms span as readily as a 20 ms one), and the teacher it imitates
//! never disagrees with what the tool printed.

use crate::baseline::Baselines;
use thinkfl_store::{SpanRef, TelemetryStore};

/// The rule of the descent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DescentRule {
    /// A child is followed when its excess latency is at least this share of its parent's.
    pub follow_share: f64,
    /// Fewest samples for a per-operation baseline to be trusted; below it, the raw duration
    /// counts as excess.
    pub min_baseline_samples: usize,
}

impl DescentRule {
    /// Default [`DescentRule::follow_share`].
    pub const DEFAULT_FOLLOW_SHARE: f64 = 0.3;
    /// Default [`DescentRule::min_baseline_samples`].
    pub const DEFAULT_MIN_BASELINE_SAMPLES: usize = 5;

    /// Checks every field's range; the error names the field.
    pub fn validate(&self) -> Result<(), crate::Error> {
        if !(self.follow_share > 0.0 && self.follow_share <= 1.0) {
            return Err(crate::Error::Config {
                field: "descent.follow_share",
                msg: format!("must be in (0, 1], got {}", self.follow_share),
            });
        }
        if self.min_baseline_samples == 0 {
            return Err(crate::Error::Config {
                field: "descent.min_baseline_samples",
                msg: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// Latency a span carries beyond its operation's normal duration (µs); its whole duration
    /// where the operation has too few samples to know its normal.
    pub fn excess_us(&self, baselines: &Baselines, s: &SpanRef<'_>) -> f64 {
        let d = s.duration() as f64;
        match baselines.get(s.cmdb_id(), s.operation_name()) {
            Some(b) if b.count >= self.min_baseline_samples => (d - b.median_us).max(0.0),
            _ => d,
        }
    }

    /// The child of `parent` that the descent follows: a failed child first, else the one with
    /// the most excess latency, if it explains at least [`DescentRule::follow_share`] of the
    /// parent's (ties go to the smaller span id, so the choice never depends on file order).
    pub fn slow_child<'a>(
        &self,
        store: &'a TelemetryStore,
        baselines: &Baselines,
        parent: &SpanRef<'_>,
    ) -> Option<SpanRef<'a>> {
        let parent_excess = self.excess_us(baselines, parent).max(1.0);
        let (failed, excess, child) = store
            .children(parent.span_id())
            .map(|c| (!c.status_ok(), self.excess_us(baselines, &c), c))
            .max_by(|a, b| {
                a.0.cmp(&b.0)
                    .then(a.1.total_cmp(&b.1))
                    .then(b.2.span_id().cmp(a.2.span_id()))
            })?;
        (failed || excess >= self.follow_share * parent_excess).then_some(child)
    }
}

impl Default for DescentRule {
    fn default() -> Self {
        Self {
            follow_share: Self::DEFAULT_FOLLOW_SHARE,
            min_baseline_samples: Self::DEFAULT_MIN_BASELINE_SAMPLES,
        }
    }
}
