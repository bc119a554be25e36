//! Span-tree descent: from the entry span of an anomalous trace, follow the child with the
//! largest excess duration, and stop where the span's own time explains the delay.
//!
//! Reference: the manual procedure that trace-based localization automates and that the
//! ThinkFL actor learns, described as "recursive descent along the anomalous call tree" in
//! Zhang et al., "ThinkFL: Self-Refining Failure Localization for Microservice Systems via
//! Reinforcement Fine-Tuning", arXiv 2504.18776 (section 3, Recursion-of-Thought); the stopping
//! rule on self time follows the critical-path analysis of trace tools (e.g. Jaeger's critical
//! path, and "CRISP: Critical Path Analysis of Large-Scale Microservice Architectures",
//! Zhang et al., USENIX ATC 2022).

use crate::common::{Context, Scores, rank_components};
use std::sync::Arc;
use thinkfl_core::Level;
use thinkfl_store::{SpanRef, TelemetryStore};
use thinkfl_tools::{CaseWindow, DiagnoseError, Diagnoser, Diagnosis, Query};

/// Settings of the descent.
#[derive(Debug, Clone, PartialEq)]
pub struct DescentConfig {
    /// Deepest descent (spans below the entry).
    pub max_depth: usize,
    /// Descend into the worst child only when its excess is at least this share of the current
    /// span's excess; below it, the span's own time explains the delay and the search stops.
    pub explain_ratio: f64,
    /// Score of each step up from the stopping span: the pods on the way down are the next
    /// suspects, each this much less likely than the one below it.
    pub ancestor_decay: f64,
}

impl Default for DescentConfig {
    fn default() -> Self {
        Self {
            max_depth: 64,
            explain_ratio: 0.5,
            ancestor_decay: 0.5,
        }
    }
}

impl DescentConfig {
    pub fn validate(&self) -> Result<(), crate::Error> {
        if self.max_depth == 0 {
            return Err(crate::Error::Config {
                field: "max_depth",
                msg: "must be at least 1".into(),
            });
        }
        if !(self.explain_ratio > 0.0 && self.explain_ratio <= 1.0) {
            return Err(crate::Error::Config {
                field: "explain_ratio",
                msg: format!("must be in (0, 1], got {}", self.explain_ratio),
            });
        }
        if !(self.ancestor_decay > 0.0 && self.ancestor_decay < 1.0) {
            return Err(crate::Error::Config {
                field: "ancestor_decay",
                msg: format!("must be in (0, 1), got {}", self.ancestor_decay),
            });
        }
        Ok(())
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct Descent {
    ctx: Arc<Context>,
    cfg: DescentConfig,
}

impl Descent {
    pub fn new(ctx: Arc<Context>, cfg: DescentConfig) -> Result<Self, crate::Error> {
        cfg.validate()?;
        Ok(Self { ctx, cfg })
    }

    fn excess(&self, s: &SpanRef<'_>) -> f64 {
        let e = s.duration() as f64 - self.ctx.normal_us(s.cmdb_id(), s.operation_name());
        // A failed call is a lead even when it was fast.
        if s.status_ok() { e } else { e.max(1.0) }
    }

    /// The spans from the entry down to where the descent stops.
    pub fn descend<'a>(
        &self,
        store: &'a TelemetryStore,
        entry: SpanRef<'a>,
        path: &mut Vec<String>,
    ) -> Vec<SpanRef<'a>> {
        let mut touch = |c: &str| {
            if !path.iter().any(|p| p == c) {
                path.push(c.to_string());
            }
        };
        touch(entry.cmdb_id());
        let mut chain = vec![entry];
        let mut cur = entry;
        for _ in 0..self.cfg.max_depth {
            let mut best: Option<(f64, SpanRef<'a>)> = None;
            for c in store.children(cur.span_id()) {
                touch(c.cmdb_id());
                let e = self.excess(&c);
                // Ties keep the earlier child: deterministic in store order.
                if best.as_ref().is_none_or(|(b, _)| e > *b) {
                    best = Some((e, c));
                }
            }
            let Some((child_excess, child)) = best else {
                break;
            };
            let cur_excess = self.excess(&cur);
            let explains = child_excess > 0.0
                && (cur_excess <= 0.0
                    || child_excess >= self.cfg.explain_ratio * cur_excess
                    || !child.status_ok());
            if !explains {
                break;
            }
            chain.push(child);
            cur = child;
        }
        chain
    }
}

impl Diagnoser for Descent {
    fn name(&self) -> &str {
        "descent"
    }

    fn diagnose(
        &self,
        store: &TelemetryStore,
        _window: CaseWindow,
        query: &Query,
    ) -> Result<Diagnosis, DiagnoseError> {
        let t0 = std::time::Instant::now();
        let entry = store.span_by_id(&query.span_id).ok_or_else(|| {
            format!(
                "descent: query span {:?} is not in the store",
                query.span_id
            )
        })?;
        let mut path = Vec::new();
        let chain = self.descend(store, entry, &mut path);
        let mut scores = Scores::default();
        let mut w = 1.0;
        for s in chain.iter().rev() {
            scores.add(Level::Pod, s.cmdb_id(), w);
            w *= self.cfg.ancestor_decay;
        }
        // The stopping span, when it is a client call, waited on its callee: that pod is the
        // next suspect after the caller.
        if let Some(last) = chain.last() {
            let stop_pod = last.cmdb_id();
            if let Some(c) = store
                .children(last.span_id())
                .filter(|c| c.cmdb_id() != stop_pod)
                .max_by(|a, b| self.excess(a).total_cmp(&self.excess(b)))
            {
                scores.add(
                    Level::Pod,
                    c.cmdb_id(),
                    0.9 * self.cfg.ancestor_decay.max(0.5),
                );
            }
        }
        Ok(Diagnosis {
            ranking: rank_components(&scores, &self.ctx),
            path,
            elapsed_ms: t0.elapsed().as_secs_f64() * 1e3,
            ..Default::default()
        })
    }
}
