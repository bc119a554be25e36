//! TraceRCA: anomalous invocations in the traces of the window, frequent patterns of the pods
//! behind them in anomalous traces, ranked by support and confidence.
//!
//! Reference: Zeyan Li, Junjie Chen, Rui Jiao, Nengwen Zhao, Zhijun Wang, Shuwei Zhang, Yanjun
//! Wu, Long Jiang, Leiqin Yan, Zikai Wang, Zhekang Chen, Wenchi Zhang, Xiaohui Nie, Kaixin Sui,
//! Dan Pei, "Practical Root Cause Localization for Microservice Systems via Trace Analysis",
//! IEEE/ACM IWQoS 2021.
//!
//! As in the paper: an invocation (span) is anomalous when its latency deviates from the history
//! of its operation (here the robust z-score of [`crate::common`]) or it fails; a trace is
//! anomalous when its entry is (see [`crate::common::trace_anomalous`]: with heavy latency
//! tails, "holds an anomalous invocation" flags most normal traces) and holds one; the items of
//! an anomalous trace are the pods serving its anomalous invocations, the items of any trace the pods it touches. Patterns of
//! up to two pods are mined; `support` is the share of anomalous traces whose suspicious pods
//! contain the pattern, `confidence` the share of traces containing the pattern that are
//! anomalous; a pattern scores their harmonic mean, and a pod its best pattern (a single pod
//! beats a pair on a tie). The paper's FP-growth is replaced by exact counting of singletons and
//! pairs among the most frequent pods: the same counts on patterns this small.

use crate::common::{Context, Scores, rank_components, trace_anomalous, window_traces};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use thinkfl_core::Level;
use thinkfl_store::TelemetryStore;
use thinkfl_tools::{CaseWindow, DiagnoseError, Diagnoser, Diagnosis, Query};

/// Settings of TraceRCA.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRcaConfig {
    /// Pairs are mined among this many most frequent suspicious pods.
    pub pair_candidates: usize,
    /// Patterns below this support are dropped (the paper's minimum support).
    pub min_support: f64,
}

impl Default for TraceRcaConfig {
    fn default() -> Self {
        Self {
            pair_candidates: 10,
            min_support: 0.05,
        }
    }
}

impl TraceRcaConfig {
    /// Checks every field's range; the error names the field.
    pub fn validate(&self) -> Result<(), crate::Error> {
        if !(0.0..1.0).contains(&self.min_support) {
            return Err(crate::Error::Config {
                field: "min_support",
                msg: format!("must be in [0, 1), got {}", self.min_support),
            });
        }
        Ok(())
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct TraceRca {
    ctx: Arc<Context>,
    cfg: TraceRcaConfig,
}

impl TraceRca {
    /// The diagnoser over a shared context, after checking `cfg`.
    pub fn new(ctx: Arc<Context>, cfg: TraceRcaConfig) -> Result<Self, crate::Error> {
        cfg.validate()?;
        Ok(Self { ctx, cfg })
    }

    /// Pod scores of a window.
    pub fn score_pods(&self, store: &TelemetryStore, window: CaseWindow) -> BTreeMap<String, f64> {
        let traces = window_traces(store, &self.ctx, window);
        // Per trace: (anomalous?, suspicious pods, all pods).
        let mut rows: Vec<(bool, BTreeSet<&str>, BTreeSet<&str>)> =
            Vec::with_capacity(traces.len());
        for t in &traces {
            let all: BTreeSet<&str> = t.iter().map(|s| s.pod).collect();
            let anomalous = trace_anomalous(t, &self.ctx.cfg);
            let sus: BTreeSet<&str> = if anomalous {
                t.iter()
                    .filter(|s| s.anomalous(&self.ctx.cfg) || !s.ok)
                    .map(|s| s.pod)
                    .collect()
            } else {
                BTreeSet::new()
            };
            rows.push((!sus.is_empty(), sus, all));
        }
        let n_anom = rows.iter().filter(|r| r.0).count();
        let mut out = BTreeMap::new();
        if n_anom == 0 {
            return out;
        }
        let mut freq: BTreeMap<&str, usize> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.0) {
            for p in &r.1 {
                *freq.entry(p).or_default() += 1;
            }
        }
        let score = |pattern: &[&str]| -> f64 {
            let hit_anom = rows
                .iter()
                .filter(|r| r.0 && pattern.iter().all(|p| r.1.contains(p)))
                .count();
            let containing = rows
                .iter()
                .filter(|r| pattern.iter().all(|p| r.2.contains(p)))
                .count();
            let anom_containing = rows
                .iter()
                .filter(|r| r.0 && pattern.iter().all(|p| r.2.contains(p)))
                .count();
            let support = hit_anom as f64 / n_anom as f64;
            if support < self.cfg.min_support || containing == 0 {
                return 0.0;
            }
            let confidence = anom_containing as f64 / containing as f64;
            if support + confidence == 0.0 {
                0.0
            } else {
                2.0 * support * confidence / (support + confidence)
            }
        };
        for &p in freq.keys() {
            let s = score(&[p]);
            if s > 0.0 {
                out.insert(p.to_string(), s);
            }
        }
        let mut top: Vec<(&str, usize)> = freq.iter().map(|(p, c)| (*p, *c)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        top.truncate(self.cfg.pair_candidates);
        for i in 0..top.len() {
            for j in i + 1..top.len() {
                // A pair is worth less than its members alone on a tie: shade it slightly.
                let s = 0.999 * score(&[top[i].0, top[j].0]);
                for p in [top[i].0, top[j].0] {
                    let e = out.entry(p.to_string()).or_insert(0.0);
                    *e = e.max(s);
                }
            }
        }
        out
    }
}

impl Diagnoser for TraceRca {
    fn name(&self) -> &str {
        "tracerca"
    }

    fn diagnose(
        &self,
        store: &TelemetryStore,
        window: CaseWindow,
        _query: &Query,
    ) -> Result<Diagnosis, DiagnoseError> {
        let t0 = std::time::Instant::now();
        let pods = self.score_pods(store, window);
        let mut scores = Scores::default();
        for (p, s) in &pods {
            scores.add(Level::Pod, p, *s);
        }
        Ok(Diagnosis {
            ranking: rank_components(&scores, &self.ctx),
            path: pods.keys().cloned().collect(),
            elapsed_ms: t0.elapsed().as_secs_f64() * 1e3,
            ..Default::default()
        })
    }
}
