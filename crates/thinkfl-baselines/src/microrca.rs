//! MicroRCA-style localization: an attributed graph of pods and the nodes hosting them, the
//! anomalous subgraph around the calls that turned slow in the case window, and a personalized
//! PageRank whose preference is each vertex's anomaly.
//!
//! Reference: Li Wu, Johan Tordsson, Erik Elmroth, Odej Kao, "MicroRCA: Root Cause Localization of
//! Performance Issues in Microservices", IEEE/IFIP NOMS 2020.
//!
//! As in the paper: the call edges come from the observed calls (here parent/child spans on
//! different pods in the window); an edge is anomalous when calls on it are slow; the anomalous
//! subgraph holds the pods at the ends of anomalous edges and their hosts; the weight of an
//! anomalous edge is its anomaly, a pod-to-host edge weighs the host's metric anomaly; the
//! preference of a pod is the anomaly of its incoming calls times (1 + its metric anomaly), of a
//! node its metric anomaly; the walk follows calls towards callees, so the rank gathers where
//! the trouble starts. Metric anomalies are N-sigma scores squashed to [0, 1).

use crate::common::{Context, Scores, personalized_pagerank, rank_components, window_traces};
use crate::metric::{MetricConfig, Scaler, metric_scores};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use thinkfl_core::Level;
use thinkfl_store::TelemetryStore;
use thinkfl_tools::{CaseWindow, DiagnoseError, Diagnoser, Diagnosis, Query};

/// Settings of the MicroRCA-style ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct MicroRcaConfig {
    /// Damping factor of the personalized PageRank, in (0, 1).
    pub damping: f64,
    /// PageRank iterations.
    pub iterations: usize,
    /// Weight of a host-to-pod edge (the walk may come back from a node to its pods).
    pub host_back_weight: f64,
    /// Metric comparison used for the metric anomalies.
    pub metrics: MetricConfig,
}

impl Default for MicroRcaConfig {
    fn default() -> Self {
        Self {
            damping: 0.85,
            iterations: 100,
            host_back_weight: 0.1,
            metrics: MetricConfig::default(),
        }
    }
}

impl MicroRcaConfig {
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
        if !(self.host_back_weight.is_finite() && self.host_back_weight >= 0.0) {
            return Err(crate::Error::Config {
                field: "host_back_weight",
                msg: "must be >= 0".into(),
            });
        }
        self.metrics.validate()
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct MicroRca {
    ctx: Arc<Context>,
    cfg: MicroRcaConfig,
}

/// `z / (1 + z)`: a deviation of any size as a weight in [0, 1).
fn squash(z: f64) -> f64 {
    if z.is_finite() && z > 0.0 {
        z / (1.0 + z)
    } else {
        0.0
    }
}

impl MicroRca {
    /// The diagnoser over a shared context, after checking `cfg`.
    pub fn new(ctx: Arc<Context>, cfg: MicroRcaConfig) -> Result<Self, crate::Error> {
        cfg.validate()?;
        Ok(Self { ctx, cfg })
    }

    /// Component scores of a case window: a personalized PageRank over the pods joined by
    /// anomalous calls in the window's traces and their hosts; call edges weigh by the calls'
    /// anomaly, each pod's preference by its call anomaly and metric anomaly, a host edge by the
    /// node's metric anomaly. Scaled so that the top score is 1.
    pub fn score(&self, store: &TelemetryStore, window: CaseWindow) -> Scores {
        let traces = window_traces(store, &self.ctx, window);
        // (caller pod, callee pod) -> (anomalous calls' summed score, calls)
        let mut edges: BTreeMap<(&str, &str), (f64, usize)> = BTreeMap::new();
        // Anomaly of pods' own spans, for pods reached by no call (entry pods).
        let mut own: BTreeMap<&str, f64> = BTreeMap::new();
        for t in &traces {
            let pod_of: HashMap<&str, &str> = t.iter().map(|s| (s.span_id, s.pod)).collect();
            for s in t {
                let a = if s.anomalous(&self.ctx.cfg) {
                    s.score
                } else {
                    0.0
                };
                let e = own.entry(s.pod).or_insert(0.0);
                *e = e.max(a);
                if let Some(&caller) = pod_of.get(s.parent)
                    && caller != s.pod
                {
                    let e = edges.entry((caller, s.pod)).or_insert((0.0, 0));
                    e.0 += a;
                    e.1 += 1;
                }
            }
        }
        let anomalous: Vec<((&str, &str), f64)> = edges
            .iter()
            .filter(|(_, (sum, _))| *sum > 0.0)
            .map(|(&k, &(sum, n))| (k, sum / n as f64))
            .collect();
        let mut pods: BTreeSet<&str> = anomalous.iter().flat_map(|((a, b), _)| [*a, *b]).collect();
        if pods.is_empty() {
            pods = own
                .iter()
                .filter(|(_, a)| **a > 0.0)
                .map(|(p, _)| *p)
                .collect();
        }
        let metric = metric_scores(store, window, Scaler::Standard, &self.cfg.metrics);
        let topo = &self.ctx.topology;
        let hosts: BTreeSet<&str> = pods.iter().filter_map(|p| topo.node_of(p)).collect();
        let mut ids: Vec<(Level, &str)> = pods.iter().map(|p| (Level::Pod, *p)).collect();
        ids.extend(hosts.iter().map(|n| (Level::Node, *n)));
        let index: HashMap<(Level, &str), usize> =
            ids.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        let mut g: Vec<Vec<(usize, f64)>> = vec![Vec::new(); ids.len()];
        let mut incoming: HashMap<&str, (f64, usize)> = HashMap::new();
        for ((a, b), w) in &anomalous {
            if let (Some(&i), Some(&j)) =
                (index.get(&(Level::Pod, *a)), index.get(&(Level::Pod, *b)))
            {
                g[i].push((j, squash(*w)));
                let e = incoming.entry(b).or_insert((0.0, 0));
                e.0 += squash(*w);
                e.1 += 1;
            }
        }
        let mut pref = vec![0.0; ids.len()];
        for (i, (level, name)) in ids.iter().enumerate() {
            match level {
                Level::Pod => {
                    let m = squash(metric.pods.get(*name).copied().unwrap_or(0.0));
                    let call = incoming.get(name).map_or_else(
                        || squash(own.get(name).copied().unwrap_or(0.0)),
                        |(s, n)| s / *n as f64,
                    );
                    pref[i] = call * (1.0 + m);
                    if let Some(n) = topo.node_of(name)
                        && let Some(&j) = index.get(&(Level::Node, n))
                    {
                        let nm = squash(metric.nodes.get(n).copied().unwrap_or(0.0));
                        g[i].push((j, nm));
                        g[j].push((i, self.cfg.host_back_weight));
                    }
                }
                Level::Node => pref[i] = squash(metric.nodes.get(*name).copied().unwrap_or(0.0)),
                Level::Service => {}
            }
        }
        let rank = personalized_pagerank(&g, &pref, self.cfg.damping, self.cfg.iterations);
        let top = rank.iter().copied().fold(0.0, f64::max);
        let mut scores = Scores::default();
        if top > 0.0 {
            for (i, (level, name)) in ids.iter().enumerate() {
                scores.add(*level, name, rank[i] / top);
            }
        }
        scores
    }
}

impl Diagnoser for MicroRca {
    fn name(&self) -> &str {
        "microrca"
    }

    fn diagnose(
        &self,
        store: &TelemetryStore,
        window: CaseWindow,
        _query: &Query,
    ) -> Result<Diagnosis, DiagnoseError> {
        let t0 = std::time::Instant::now();
        let scores = self.score(store, window);
        let path = scores
            .pods
            .keys()
            .chain(scores.nodes.keys())
            .cloned()
            .collect();
        Ok(Diagnosis {
            ranking: rank_components(&scores, &self.ctx),
            path,
            elapsed_ms: t0.elapsed().as_secs_f64() * 1e3,
            ..Default::default()
        })
    }
}
