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
    /// Descend only when the children of one (pod, operation) together hold at least this share
    /// of the current span's excess (then into the worst of them); below it, the span's own
    /// time explains the delay and the search stops.
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
    /// Checks every field's range; the error names the field.
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
    /// The diagnoser over a shared context, after checking `cfg`.
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
            // Sibling calls of one operation from one pod add up: eight slow GetProduct calls
            // explain a slow page together though none does alone.
            let mut groups: Vec<((&str, &str), f64, f64, SpanRef<'a>)> = Vec::new();
            let mut failed: Option<SpanRef<'a>> = None;
            for c in store.children(cur.span_id()) {
                touch(c.cmdb_id());
                let e = self.excess(&c);
                if !c.status_ok() && failed.is_none() {
                    failed = Some(c);
                }
                let key = (c.cmdb_id(), c.operation_name());
                match groups.iter_mut().find(|g| g.0 == key) {
                    Some(g) => {
                        g.1 += e.max(0.0);
                        // Ties keep the earlier child: deterministic in store order.
                        if e > g.2 {
                            g.2 = e;
                            g.3 = c;
                        }
                    }
                    None => groups.push((key, e.max(0.0), e, c)),
                }
            }
            // A failed call is followed first: errors surface from where they start.
            let next =
                if let Some(f) = failed.filter(|_| !cur.status_ok() || self.excess(&cur) <= 0.0) {
                    Some(f)
                } else {
                    let best = groups.iter().fold(
                        None::<&((&str, &str), f64, f64, SpanRef<'a>)>,
                        |b, g| match b {
                            Some(b) if b.1 >= g.1 => Some(b),
                            _ => Some(g),
                        },
                    );
                    let cur_excess = self.excess(&cur);
                    best.filter(|g| {
                        g.1 > 0.0
                            && (cur_excess <= 0.0 || g.1 >= self.cfg.explain_ratio * cur_excess)
                    })
                    .map(|g| g.3)
                };
            let Some(child) = next else { break };
            chain.push(child);
            cur = child;
        }
        chain
    }
}

fn touch_path(path: &mut Vec<String>, c: &str) {
    if !path.iter().any(|p| p == c) {
        path.push(c.to_string());
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
        // The stopping span, when it is a client call, waited on its callee: the time between the
        // two is the network's, at either end. A caller deep in the tree leads (its other calls
        // would look the same); when the search stopped in the entry pod, which calls everything,
        // the callee leads.
        if let Some(last) = chain.last() {
            let stop_pod = last.cmdb_id();
            if let Some(c) = store
                .children(last.span_id())
                .filter(|c| c.cmdb_id() != stop_pod)
                .max_by(|a, b| self.excess(a).total_cmp(&self.excess(b)))
            {
                let w = if stop_pod == entry.cmdb_id() {
                    1.1
                } else {
                    0.9
                };
                scores.add(Level::Pod, c.cmdb_id(), w);
                touch_path(&mut path, c.cmdb_id());
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
