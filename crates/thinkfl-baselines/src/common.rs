//! What every baseline shares: normal durations of operations, the traces of a case window with
//! a robust anomaly score per span, metric deviations per component, personalized PageRank, and
//! the one rule that turns component scores into a ranked list of node, service and pod items.
//!
//! The shared level rule keeps the comparison about evidence: a method scores pods, nodes and
//! (when it has service-level data) services; [`rank_components`] decides whether a service (all
//! its pods look bad) or a single pod, and whether a node (the pods it hosts look bad together),
//! is the better answer.

use crate::Error;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use thinkfl_core::{
    Level, MetricSource, RootCause, Topology, pod_node_from_container_id, service_of,
};
use thinkfl_store::TelemetryStore;
use thinkfl_tools::CaseWindow;

/// MAD to standard deviation under normality.
const MAD_TO_SIGMA: f64 = 1.4826;

/// Settings shared by the trace-based baselines and the level rule.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonConfig {
    /// A span is anomalous when its duration lies more than this many robust deviations above the
    /// median of its (service, operation).
    pub z_threshold: f64,
    /// Fewest spans of an operation for its median to be trusted; with fewer, a span is scored by
    /// its duration against `fallback_slow_ms`.
    pub min_samples: usize,
    /// Without a trusted median: the duration (ms) that counts as one threshold's worth of anomaly.
    pub fallback_slow_ms: f64,
    /// Score of a span whose status is not OK.
    pub error_score: f64,
    /// Floor of the robust deviation, as a share of the median (a near-constant operation would
    /// otherwise flag microseconds of jitter).
    pub min_relative_scale: f64,
    /// A service outranks its best pod when the mean of its pods' scores, times this, reaches it.
    pub service_boost: f64,
    /// A node's co-location score is the mean of the scores of the pods it hosts times this.
    pub node_boost: f64,
    /// Longest list a baseline returns.
    pub max_items: usize,
}

impl Default for CommonConfig {
    fn default() -> Self {
        Self {
            z_threshold: 3.0,
            min_samples: 10,
            fallback_slow_ms: 1000.0,
            error_score: 10.0,
            min_relative_scale: 0.1,
            service_boost: 1.25,
            node_boost: 1.25,
            max_items: 20,
        }
    }
}

impl CommonConfig {
    /// Checks every field's range; the error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        let pos = |field: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::Config {
                    field,
                    msg: format!("must be a finite number > 0, got {v}"),
                })
            }
        };
        pos("z_threshold", self.z_threshold)?;
        pos("fallback_slow_ms", self.fallback_slow_ms)?;
        pos("error_score", self.error_score)?;
        pos("min_relative_scale", self.min_relative_scale)?;
        pos("service_boost", self.service_boost)?;
        pos("node_boost", self.node_boost)?;
        if self.min_samples == 0 {
            return Err(Error::Config {
                field: "min_samples",
                msg: "must be at least 1".into(),
            });
        }
        if self.max_items == 0 {
            return Err(Error::Config {
                field: "max_items",
                msg: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// Robust statistics of one (service, operation) over the whole store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpNormal {
    /// Median duration of the operation's spans, µs.
    pub median_us: f64,
    /// Robust standard deviation (1.4826 MAD), floored.
    pub scale_us: f64,
    /// Spans it was computed over.
    pub count: usize,
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Linear-interpolated quantile of sorted data (numpy's default).
pub fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Precomputed once per store: normal operation durations and the component inventory.
#[derive(Debug, Clone)]
pub struct Context {
    /// The settings shared by every method.
    pub cfg: CommonConfig,
    ops: HashMap<(String, String), OpNormal>,
    /// The store's topology (its `topology.json`, or derived).
    pub topology: Topology,
}

impl Context {
    /// One pass over every span of the store. The median ignores the minority of slow spans a
    /// fault produces, so the whole store serves as the normal reference.
    pub fn new(store: &TelemetryStore, cfg: CommonConfig) -> Result<Self, Error> {
        cfg.validate()?;
        let mut groups: HashMap<(&str, &str), Vec<f64>> = HashMap::new();
        for s in store.spans() {
            groups
                .entry((service_of(s.cmdb_id()), s.operation_name()))
                .or_default()
                .push(s.duration() as f64);
        }
        let ops = groups
            .into_iter()
            .map(|((svc, op), mut d)| {
                let count = d.len();
                let med = median(&mut d);
                let mut dev: Vec<f64> = d.iter().map(|x| (x - med).abs()).collect();
                let mad = median(&mut dev);
                let scale = (MAD_TO_SIGMA * mad)
                    .max(cfg.min_relative_scale * med)
                    .max(1.0);
                (
                    (svc.to_string(), op.to_string()),
                    OpNormal {
                        median_us: med,
                        scale_us: scale,
                        count,
                    },
                )
            })
            .collect();
        Ok(Self {
            cfg,
            ops,
            topology: store.topology().clone(),
        })
    }

    /// The normal statistics of `op` served by `pod`'s service, when it has at least
    /// [`CommonConfig::min_samples`] spans.
    pub fn op_normal(&self, pod: &str, op: &str) -> Option<OpNormal> {
        self.ops
            .get(&(service_of(pod).to_string(), op.to_string()))
            .copied()
            .filter(|n| n.count >= self.cfg.min_samples)
    }

    /// How anomalous one span is, in units of the threshold's deviations: `(d - median) / scale`
    /// with a trusted median, else the duration in units of `fallback_slow_ms / z_threshold`;
    /// at least `error_score` for a failed span. Never negative.
    pub fn span_score(&self, pod: &str, op: &str, duration_us: i64, ok: bool) -> f64 {
        let d = duration_us as f64;
        let z = match self.op_normal(pod, op) {
            Some(n) => (d - n.median_us) / n.scale_us,
            None => d / (self.cfg.fallback_slow_ms * 1000.0) * self.cfg.z_threshold,
        };
        let z = z.max(0.0);
        if ok { z } else { z.max(self.cfg.error_score) }
    }

    /// Expected duration of an operation: its median when trusted, else 0 (nothing is known, so
    /// the whole duration counts as excess).
    pub fn normal_us(&self, pod: &str, op: &str) -> f64 {
        self.op_normal(pod, op).map_or(0.0, |n| n.median_us)
    }

    /// Every pod, service and node the system has, sorted, as single-field items.
    pub fn candidates(&self) -> Vec<RootCause> {
        candidates(&self.topology)
    }
}

/// Every pod, service and node of a topology, as single-field items: nodes, then services, then
/// pods, each sorted.
pub fn candidates(topology: &Topology) -> Vec<RootCause> {
    let mut pods = BTreeSet::new();
    let mut services = BTreeSet::new();
    for s in &topology.services {
        services.insert(s.name.clone());
        pods.extend(s.pods.iter().cloned());
    }
    pods.extend(topology.placement.keys().cloned());
    for p in &pods {
        services.insert(service_of(p).to_string());
    }
    let nodes: BTreeSet<String> = topology
        .nodes
        .iter()
        .chain(topology.placement.values())
        .cloned()
        .collect();
    let mut out: Vec<RootCause> = nodes.into_iter().map(|n| item(Level::Node, &n)).collect();
    out.extend(services.into_iter().map(|s| item(Level::Service, &s)));
    out.extend(pods.into_iter().map(|p| item(Level::Pod, &p)));
    out
}

/// An item naming exactly one component.
pub fn item(level: Level, name: &str) -> RootCause {
    let mut r = RootCause::default();
    match level {
        Level::Node => r.node = Some(name.to_string()),
        Level::Service => r.service = Some(name.to_string()),
        Level::Pod => r.pod = Some(name.to_string()),
    }
    r
}

/// One span of a window trace, with its score.
#[derive(Debug, Clone, Copy)]
pub struct WSpan<'a> {
    /// The pod that emitted the span.
    pub pod: &'a str,
    /// Its operation.
    pub op: &'a str,
    /// Its span id.
    pub span_id: &'a str,
    /// Its parent's span id; empty for a root.
    pub parent: &'a str,
    /// Its duration, µs.
    pub duration_us: i64,
    /// Whether its status code means success.
    pub ok: bool,
    /// Its anomaly score ([`Context::span_score`]): robust z-score of the duration, at least
    /// [`CommonConfig::error_score`] for a failed span.
    pub score: f64,
}

impl WSpan<'_> {
    /// Whether the score exceeds [`CommonConfig::z_threshold`].
    pub fn anomalous(&self, cfg: &CommonConfig) -> bool {
        self.score > cfg.z_threshold
    }
}

/// Whether a trace is anomalous as a whole: its entry span is anomalous, or a span failed. A
/// trace whose entry lies outside the window is judged by its slowest span. (Judging by any span
/// would flag most traces: with two dozen spans each, heavy latency tails put some span past any
/// per-span threshold in most normal traces.)
pub fn trace_anomalous(trace: &[WSpan<'_>], cfg: &CommonConfig) -> bool {
    if trace.iter().any(|s| !s.ok) {
        return true;
    }
    let ids: std::collections::HashSet<&str> = trace.iter().map(|s| s.span_id).collect();
    let mut roots = trace
        .iter()
        .filter(|s| s.parent.is_empty() || !ids.contains(s.parent))
        .peekable();
    if roots.peek().is_some() {
        roots.any(|s| s.anomalous(cfg))
    } else {
        trace.iter().any(|s| s.anomalous(cfg))
    }
}

/// Traces with at least one span in the window, each in store order, traces by first span time.
pub fn window_traces<'a>(
    store: &'a TelemetryStore,
    ctx: &Context,
    w: CaseWindow,
) -> Vec<Vec<WSpan<'a>>> {
    let mut order: Vec<&'a str> = Vec::new();
    let mut by_trace: HashMap<&'a str, Vec<WSpan<'a>>> = HashMap::new();
    for s in store.spans_between(w.start_s.saturating_mul(1000), w.end_s.saturating_mul(1000)) {
        let t = s.trace_id();
        let e = by_trace.entry(t).or_insert_with(|| {
            order.push(t);
            Vec::new()
        });
        e.push(WSpan {
            pod: s.cmdb_id(),
            op: s.operation_name(),
            span_id: s.span_id(),
            parent: s.parent_span(),
            duration_us: s.duration(),
            ok: s.status_ok(),
            score: ctx.span_score(s.cmdb_id(), s.operation_name(), s.duration(), s.status_ok()),
        });
    }
    order
        .into_iter()
        .map(|t| by_trace.remove(t).expect("inserted above"))
        .collect()
}

/// The component a metric series describes: a pod (container series, istio series by their
/// first segment), a node, or a service (service metrics, `-grpc` stripped).
pub fn series_component(cmdb_id: &str, source: MetricSource) -> Option<(Level, String)> {
    match source {
        MetricSource::Container => {
            pod_node_from_container_id(cmdb_id).map(|(_, p)| (Level::Pod, p.to_string()))
        }
        MetricSource::Istio => cmdb_id
            .split('.')
            .next()
            .filter(|s| !s.is_empty())
            .map(|p| (Level::Pod, p.to_string())),
        MetricSource::Node => Some((Level::Node, cmdb_id.to_string())),
        MetricSource::Service => Some((
            Level::Service,
            cmdb_id.strip_suffix("-grpc").unwrap_or(cmdb_id).to_string(),
        )),
    }
}

/// Scores per component, which [`rank_components`] turns into a list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    /// Scores of pods.
    pub pods: BTreeMap<String, f64>,
    /// Scores of services.
    pub services: BTreeMap<String, f64>,
    /// Scores of nodes.
    pub nodes: BTreeMap<String, f64>,
}

impl Scores {
    /// Records `score` for a component, keeping the largest; non-positive and non-finite scores
    /// are ignored.
    pub fn add(&mut self, level: Level, name: &str, score: f64) {
        if !(score.is_finite() && score > 0.0) {
            return;
        }
        let m = match level {
            Level::Pod => &mut self.pods,
            Level::Service => &mut self.services,
            Level::Node => &mut self.nodes,
        };
        let e = m.entry(name.to_string()).or_insert(0.0);
        *e = e.max(score);
    }
}

/// The level rule (see the module header): pods keep their score; a service scores the larger of
/// its own evidence and `service_boost` x the mean score of its pods (a pod without a score counts
/// 0); a node the larger of its own evidence and `node_boost` x the mean score of the pods it
/// hosts (when it hosts two or more). Sorted by score, then service before pod before node, then
/// name; zero scores are dropped; at most `max_items`.
pub fn rank_components(scores: &Scores, ctx: &Context) -> Vec<RootCause> {
    let topo = &ctx.topology;
    let mut items: Vec<(f64, u8, Level, String)> = Vec::new();
    for (p, &s) in &scores.pods {
        items.push((s, 1, Level::Pod, p.clone()));
    }
    let mut services: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in &topo.services {
        services
            .entry(s.name.clone())
            .or_default()
            .extend(s.pods.iter().cloned());
    }
    for p in scores.pods.keys() {
        let v = services.entry(service_of(p).to_string()).or_default();
        if !v.contains(p) {
            v.push(p.clone());
        }
    }
    for s in scores.services.keys() {
        services.entry(s.clone()).or_default();
    }
    for (svc, pods) in &services {
        let own = scores.services.get(svc).copied().unwrap_or(0.0);
        let mean = if pods.is_empty() {
            0.0
        } else {
            pods.iter()
                .map(|p| scores.pods.get(p).copied().unwrap_or(0.0))
                .sum::<f64>()
                / pods.len() as f64
        };
        items.push((
            own.max(ctx.cfg.service_boost * mean),
            0,
            Level::Service,
            svc.clone(),
        ));
    }
    let mut nodes: BTreeSet<String> = topo.nodes.iter().cloned().collect();
    nodes.extend(scores.nodes.keys().cloned());
    for n in nodes {
        let own = scores.nodes.get(&n).copied().unwrap_or(0.0);
        let hosted = topo.pods_on(&n);
        let co = if hosted.len() >= 2 {
            ctx.cfg.node_boost
                * hosted
                    .iter()
                    .map(|p| scores.pods.get(*p).copied().unwrap_or(0.0))
                    .sum::<f64>()
                / hosted.len() as f64
        } else {
            0.0
        };
        items.push((own.max(co), 2, Level::Node, n));
    }
    items.retain(|i| i.0.is_finite() && i.0 > 0.0);
    items.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then_with(|| a.3.cmp(&b.3))
    });
    items.truncate(ctx.cfg.max_items);
    items.into_iter().map(|(_, _, l, n)| item(l, &n)).collect()
}

/// Personalized PageRank by power iteration. `edges[i]` lists `(j, weight)` out of `i`; each row
/// is normalized; a node without out-edges gives its mass back by the preference vector.
pub fn personalized_pagerank(
    edges: &[Vec<(usize, f64)>],
    preference: &[f64],
    damping: f64,
    iters: usize,
) -> Vec<f64> {
    let n = edges.len();
    if n == 0 {
        return Vec::new();
    }
    let total: f64 = preference.iter().sum();
    let pref: Vec<f64> = if total > 0.0 {
        preference.iter().map(|p| p / total).collect()
    } else {
        vec![1.0 / n as f64; n]
    };
    let out_w: Vec<f64> = edges.iter().map(|e| e.iter().map(|x| x.1).sum()).collect();
    let mut p = pref.clone();
    for _ in 0..iters {
        let mut next = vec![0.0; n];
        let mut dangling = 0.0;
        for i in 0..n {
            if out_w[i] > 0.0 {
                for &(j, w) in &edges[i] {
                    next[j] += damping * p[i] * w / out_w[i];
                }
            } else {
                dangling += damping * p[i];
            }
        }
        for i in 0..n {
            next[i] += (1.0 - damping + dangling) * pref[i];
        }
        let delta: f64 = next.iter().zip(&p).map(|(a, b)| (a - b).abs()).sum();
        p = next;
        if delta < 1e-12 {
            break;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use thinkfl_core::ServiceInfo;

    fn ctx_with(topology: Topology) -> Context {
        Context {
            cfg: CommonConfig::default(),
            ops: HashMap::new(),
            topology,
        }
    }

    fn topo() -> Topology {
        let mut t = Topology {
            services: vec![
                ServiceInfo {
                    name: "cart".into(),
                    pods: vec!["cart-0".into(), "cart-1".into()],
                },
                ServiceInfo {
                    name: "ad".into(),
                    pods: vec!["ad-0".into(), "ad-1".into()],
                },
            ],
            nodes: vec!["node-1".into(), "node-2".into()],
            ..Default::default()
        };
        for (p, n) in [
            ("cart-0", "node-1"),
            ("ad-0", "node-1"),
            ("cart-1", "node-2"),
            ("ad-1", "node-2"),
        ] {
            t.placement.insert(p.into(), n.into());
        }
        t
    }

    #[test]
    fn one_bad_pod_is_a_pod_all_pods_a_service_colocated_pods_a_node() {
        let ctx = ctx_with(topo());
        let mut s = Scores::default();
        s.add(Level::Pod, "cart-1", 8.0);
        // cart: 1.25 * 4 = 5 < 8, so the pod leads; node-2: 1.25 * 4 = 5, a tie broken towards
        // the service.
        let r = rank_components(&s, &ctx);
        assert_eq!(r[0], item(Level::Pod, "cart-1"));
        assert_eq!(r[1], item(Level::Service, "cart"));
        assert_eq!(r[2], item(Level::Node, "node-2"));
        assert_eq!(r.len(), 3);

        s.add(Level::Pod, "cart-0", 7.0);
        let r = rank_components(&s, &ctx);
        // 1.25 * 7.5 = 9.375 > 8.
        assert_eq!(r[0], item(Level::Service, "cart"));

        let mut s = Scores::default();
        s.add(Level::Pod, "cart-0", 5.0);
        s.add(Level::Pod, "ad-0", 5.0);
        let r = rank_components(&s, &ctx);
        assert_eq!(r[0], item(Level::Node, "node-1"));
        // Node evidence of its own counts too.
        let mut s = Scores::default();
        s.add(Level::Node, "node-2", 3.0);
        s.add(Level::Pod, "ad-0", 0.0);
        assert_eq!(rank_components(&s, &ctx), vec![item(Level::Node, "node-2")]);
    }

    #[test]
    fn pagerank_sums_to_one_and_follows_edges() {
        // 0 -> 1 -> 2, 2 dangling; preference all on 0.
        let edges = vec![vec![(1, 1.0)], vec![(2, 1.0)], vec![]];
        let p = personalized_pagerank(&edges, &[1.0, 0.0, 0.0], 0.85, 200);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // Stationary: p0 = 0.15 + 0.85 p2, p1 = 0.85 p0, p2 = 0.85 p1.
        assert!((p[1] - 0.85 * p[0]).abs() < 1e-9);
        assert!((p[2] - 0.85 * p[1]).abs() < 1e-9);
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.5), 2.5);
        assert_eq!(quantile_sorted(&v, 0.25), 1.75);
        assert_eq!(quantile_sorted(&v, 1.0), 4.0);
    }

    #[test]
    fn series_map_to_components() {
        assert_eq!(
            series_component("node-6.cart-2", MetricSource::Container),
            Some((Level::Pod, "cart-2".into()))
        );
        assert_eq!(
            series_component("cart-1.source.cart.redis-cart", MetricSource::Istio),
            Some((Level::Pod, "cart-1".into()))
        );
        assert_eq!(
            series_component("adservice-grpc", MetricSource::Service),
            Some((Level::Service, "adservice".into()))
        );
        assert_eq!(
            series_component("node-3", MetricSource::Node),
            Some((Level::Node, "node-3".into()))
        );
    }
}
