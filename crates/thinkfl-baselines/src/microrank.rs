//! MicroRank: traces of the window split into anomalous and normal; a personalized PageRank over
//! the operation/trace graph of each side weights a spectrum analysis of the operations, ranked
//! by DStar2.
//!
//! Reference: Guangba Yu, Pengfei Chen, Hongyang Chen, Zijie Guan, Zicheng Huang, Linxiao Jing,
//! Tianjun Weng, Xinmeng Sun, Xiaoyun Li, "MicroRank: End-to-End Latency Issue Localization with
//! Extended Spectrum Analysis in Microservice Environments", The Web Conference (WWW) 2021.
//!
//! As in the paper: a trace is anomalous when its end-to-end latency is higher than expected
//! (here: its entry span lies more than `z_threshold` robust deviations above the median of its
//! operation) or it failed; an
//! operation instance is a (pod, operation) pair; the preference of a trace is larger when it
//! touches fewer operations (it says more about each); an operation's PageRank weight on each
//! side multiplies its spectrum counts (`ef`, `nf` on the anomalous side, `ep`, `np` on the
//! normal side); DStar2 `ef^2 / (ep + nf)` ranks. A pod scores its best operation.

use crate::common::{
    Context, Scores, personalized_pagerank, rank_components, trace_anomalous, window_traces,
};
use std::collections::HashMap;
use std::sync::Arc;
use thinkfl_core::Level;
use thinkfl_store::TelemetryStore;
use thinkfl_tools::{CaseWindow, DiagnoseError, Diagnoser, Diagnosis, Query};

/// Settings of MicroRank.
#[derive(Debug, Clone, PartialEq)]
pub struct MicroRankConfig {
    /// PageRank damping.
    pub damping: f64,
    /// Power iterations at most.
    pub iterations: usize,
    /// Weight of an operation -> trace edge relative to operation call edges (the paper's
    /// bipartite coupling).
    pub trace_edge_weight: f64,
}

impl Default for MicroRankConfig {
    fn default() -> Self {
        Self {
            damping: 0.85,
            iterations: 100,
            trace_edge_weight: 1.0,
        }
    }
}

impl MicroRankConfig {
    /// Checks every field's range; the error names the field.
    pub fn validate(&self) -> Result<(), crate::Error> {
        if !(self.damping > 0.0 && self.damping < 1.0) {
            return Err(crate::Error::Config {
                field: "damping",
                msg: format!("must be in (0, 1), got {}", self.damping),
            });
        }
        if self.iterations == 0 {
            return Err(crate::Error::Config {
                field: "iterations",
                msg: "must be at least 1".into(),
            });
        }
        if !(self.trace_edge_weight.is_finite() && self.trace_edge_weight > 0.0) {
            return Err(crate::Error::Config {
                field: "trace_edge_weight",
                msg: "must be > 0".into(),
            });
        }
        Ok(())
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct MicroRank {
    ctx: Arc<Context>,
    cfg: MicroRankConfig,
}

/// One side's graph: operations first, then traces.
fn side_pagerank(
    ops_of: &[Vec<usize>],
    calls: &[(usize, usize)],
    n_ops: usize,
    cfg: &MicroRankConfig,
) -> Vec<f64> {
    let n = n_ops + ops_of.len();
    let mut edges: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for &(a, b) in calls {
        // The callee's trouble shows at the caller: rank flows from caller to callee.
        edges[a].push((b, 1.0));
    }
    let mut pref = vec![0.0; n];
    for (t, ops) in ops_of.iter().enumerate() {
        let tn = n_ops + t;
        for &o in ops {
            edges[tn].push((o, 1.0));
            edges[o].push((tn, cfg.trace_edge_weight));
        }
        if !ops.is_empty() {
            pref[tn] = 1.0 / ops.len() as f64;
        }
    }
    let mut p = personalized_pagerank(&edges, &pref, cfg.damping, cfg.iterations);
    p.truncate(n_ops);
    p
}

impl MicroRank {
    /// The diagnoser over a shared context, after checking `cfg`.
    pub fn new(ctx: Arc<Context>, cfg: MicroRankConfig) -> Result<Self, crate::Error> {
        cfg.validate()?;
        Ok(Self { ctx, cfg })
    }

    /// Operation scores of a window: ((pod, operation), DStar2), best first.
    pub fn rank_operations(
        &self,
        store: &TelemetryStore,
        window: CaseWindow,
    ) -> Vec<((String, String), f64)> {
        let traces = window_traces(store, &self.ctx, window);
        let mut op_index: HashMap<(&str, &str), usize> = HashMap::new();
        let mut ops: Vec<(&str, &str)> = Vec::new();
        let mut anom_ops: Vec<Vec<usize>> = Vec::new();
        let mut norm_ops: Vec<Vec<usize>> = Vec::new();
        let mut anom_calls = Vec::new();
        let mut norm_calls = Vec::new();
        for t in &traces {
            let mut ids: Vec<usize> = Vec::with_capacity(t.len());
            let mut by_span: HashMap<&str, usize> = HashMap::new();
            for s in t {
                let k = (s.pod, s.op);
                let id = *op_index.entry(k).or_insert_with(|| {
                    ops.push(k);
                    ops.len() - 1
                });
                ids.push(id);
                by_span.insert(s.span_id, id);
            }
            let calls: Vec<(usize, usize)> = t
                .iter()
                .zip(&ids)
                .filter_map(|(s, &id)| by_span.get(s.parent).map(|&p| (p, id)))
                .filter(|(a, b)| a != b)
                .collect();
            let mut uniq = ids.clone();
            uniq.sort_unstable();
            uniq.dedup();
            if trace_anomalous(t, &self.ctx.cfg) {
                anom_ops.push(uniq);
                anom_calls.extend(calls);
            } else {
                norm_ops.push(uniq);
                norm_calls.extend(calls);
            }
        }
        if anom_ops.is_empty() {
            return Vec::new();
        }
        for c in [&mut anom_calls, &mut norm_calls] {
            c.sort_unstable();
            c.dedup();
        }
        let n_ops = ops.len();
        let pa = side_pagerank(&anom_ops, &anom_calls, n_ops, &self.cfg);
        let pn = if norm_ops.is_empty() {
            vec![0.0; n_ops]
        } else {
            side_pagerank(&norm_ops, &norm_calls, n_ops, &self.cfg)
        };
        let mut n_ef = vec![0usize; n_ops];
        let mut n_ep = vec![0usize; n_ops];
        for t in &anom_ops {
            for &o in t {
                n_ef[o] += 1;
            }
        }
        for t in &norm_ops {
            for &o in t {
                n_ep[o] += 1;
            }
        }
        let (na, nn) = (anom_ops.len() as f64, norm_ops.len() as f64);
        let mut out: Vec<((String, String), f64)> = (0..n_ops)
            .filter(|&o| n_ef[o] > 0)
            .map(|o| {
                // PageRank weights are probabilities over many nodes; scale them to "per trace" so
                // that they weight counts without vanishing.
                let wa = pa[o] * (n_ops as f64 + na);
                let wn = pn[o] * (n_ops as f64 + nn);
                let ef = wa * n_ef[o] as f64;
                let nf = wa * (na - n_ef[o] as f64);
                let ep = wn * n_ep[o] as f64;
                let _np = wn * (nn - n_ep[o] as f64);
                let dstar2 = ef * ef / (ep + nf + 1e-9);
                ((ops[o].0.to_string(), ops[o].1.to_string()), dstar2)
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

impl Diagnoser for MicroRank {
    fn name(&self) -> &str {
        "microrank"
    }

    fn diagnose(
        &self,
        store: &TelemetryStore,
        window: CaseWindow,
        _query: &Query,
    ) -> Result<Diagnosis, DiagnoseError> {
        let t0 = std::time::Instant::now();
        let ranked = self.rank_operations(store, window);
        let mut scores = Scores::default();
        let top = ranked.first().map_or(1.0, |r| r.1.max(1e-12));
        for ((pod, _), s) in &ranked {
            scores.add(Level::Pod, pod, s / top);
        }
        let path = scores.pods.keys().cloned().collect();
        Ok(Diagnosis {
            ranking: rank_components(&scores, &self.ctx),
            path,
            elapsed_ms: t0.elapsed().as_secs_f64() * 1e3,
            ..Default::default()
        })
    }
}
