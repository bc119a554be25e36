//! A global view of an incident: every pod and node scored by how far its telemetry departs from
//! its own recent normal around a moment, over all the evidence the data holds.
//!
//! What the classic metric methods see (N-sigma, BARO: each metric series against a reference
//! period, robustly scaled) is joined with what trace- and log-based methods see, turned into
//! series of the same kind so that one robust scale fits them all:
//!
//! * **metrics**: container, istio and node series as recorded;
//! * **self latency**: per pod and 10-second bucket, the latency its spans add beyond their
//!   operation's normal duration *minus* what their children add (a caller waiting on a slow
//!   callee adds nothing of its own, so the excess lands on the component that causes it);
//! * **own errors**: spans that failed while none of their children failed;
//! * **error logs**: error and warning lines per bucket.
//!
//! Each series is centred and scaled on the reference period before the window (median and
//! interquartile range, BARO's RobustScaler, with floors so that a series flat in the reference
//! does not turn noise into an infinite score) and scores its largest departure in the window.
//! A pod scores the sum over evidence kinds of `ln(1 + z)` of its best series of each kind, and
//! inherits its node's metric evidence: a node fault makes its pods the suspects (an answer
//! naming a pod names its node too).
//!
//! Reference for the robust ranking: Luan Pham, Huong Ha, Hongyu Zhang, "BARO: Robust Root Cause
//! Analysis for Microservices via Multivariate Bayesian Online Change Point Detection", FSE 2024.

use crate::baseline::Baselines;
use crate::severity::severity;
use std::collections::{BTreeMap, HashMap};
use thinkfl_core::{MetricSource, pod_node_from_container_id, service_of};
use thinkfl_store::TelemetryStore;

/// Settings of the global ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct SuspectConfig {
    /// The window starts this long (s) before the moment asked about: the first anomalous trace
    /// of a fault comes shortly after the fault starts.
    pub before_s: i64,
    /// ...and ends this long (s) after it.
    pub after_s: i64,
    /// Length (s) of the reference period just before the window.
    pub reference_s: i64,
    /// Width (s) of the buckets that turn spans and logs into series.
    pub bucket_s: i64,
    /// Fewest reference points for a series to be scored.
    pub min_reference_points: usize,
    /// Floor of a metric's scale, as a share of its reference median.
    pub min_relative_scale: f64,
    /// Floor (ms per bucket) of the self-latency scale.
    pub min_latency_scale_ms: f64,
    /// Floor (per bucket) of the scale of error and log counts.
    pub min_count_scale: f64,
    /// Weight of the node's metric evidence in the score of the pods it hosts: a node fault
    /// troubles every pod it hosts at once, each of which shows only part of it.
    pub node_weight: f64,
}

impl Default for SuspectConfig {
    fn default() -> Self {
        Self {
            before_s: 30,
            after_s: 150,
            reference_s: 1200,
            bucket_s: 10,
            min_reference_points: 5,
            min_relative_scale: 0.05,
            min_latency_scale_ms: 50.0,
            min_count_scale: 1.0,
            node_weight: 3.0,
        }
    }
}

impl SuspectConfig {
    /// Checks every field's range; the error names the field.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |field: &'static str, msg: String| Err(crate::Error::Config { field, msg });
        if self.before_s < 0 || self.after_s <= 0 {
            return bad(
                "after_s",
                "the window needs before_s >= 0 and after_s > 0".into(),
            );
        }
        if self.reference_s <= 0 || self.bucket_s <= 0 || self.bucket_s > self.reference_s {
            return bad("bucket_s", "needs 0 < bucket_s <= reference_s".to_string());
        }
        if self.min_reference_points < 2 {
            return bad("min_reference_points", "must be at least 2".into());
        }
        for (f, v) in [
            ("min_relative_scale", self.min_relative_scale),
            ("min_latency_scale_ms", self.min_latency_scale_ms),
            ("min_count_scale", self.min_count_scale),
            ("node_weight", self.node_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(f, format!("must be a finite number >= 0, got {v}"));
            }
        }
        Ok(())
    }
}

/// The strongest departure of one kind of evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Departure {
    /// Robust z-score (departure from the reference median in interquartile ranges).
    pub z: f64,
    /// What departed: a KPI name, or "latency", "errors", "logs".
    pub what: String,
    /// Reference median and the window value furthest from it.
    pub normal: f64,
    /// The window value furthest from `normal`.
    pub value: f64,
}

/// Evidence kinds, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A metric series of the pod (container, or istio server side), or of its node.
    Metric,
    /// The self time of the pod's spans, per bucket.
    Latency,
    /// Spans of the pod with a non-OK status, per bucket.
    Errors,
    /// Error and warning log lines of the pod, per bucket.
    Logs,
}

/// One suspect pod and the evidence against it.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspect {
    /// The suspect pod.
    pub pod: String,
    /// Its service.
    pub service: String,
    /// The node it runs on, when the topology or its container metrics say.
    pub node: Option<String>,
    /// Sum over evidence kinds of `ln(1 + z)`, plus the node's metric evidence weighted by
    /// [`SuspectConfig::node_weight`]; only pods scoring above zero are ranked.
    pub score: f64,
    /// The pod's own evidence, strongest of each kind.
    pub own: BTreeMap<Kind, Departure>,
    /// The hosting node's strongest metric departure.
    pub node_metric: Option<Departure>,
}

impl Suspect {
    /// The strongest single piece of evidence, for a one-line reason.
    pub fn headline(&self) -> Option<(&str, &Departure)> {
        let own = self
            .own
            .values()
            .max_by(|a, b| a.z.total_cmp(&b.z))
            .map(|d| (self.pod.as_str(), d));
        let node = self
            .node_metric
            .as_ref()
            .zip(self.node.as_deref())
            .map(|(d, n)| (n, d));
        match (own, node) {
            (Some(o), Some(n)) => Some(if n.1.z > o.1.z { n } else { o }),
            (o, n) => o.or(n),
        }
    }
}

/// Median and interquartile range of finite values, `None` with fewer than `min` of them.
fn robust_fit(values: &[f64], min: usize) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < min {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let pos = p * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    };
    Some((q(0.5), q(0.75) - q(0.25)))
}

/// Floor of a metric's scale: a share of its reference median, and a quarter of its reference standard
/// deviation. A series that is mostly flat with rare spikes (requests of a rarely called
/// operation) has an interquartile range of 0; without the second term any spike in the window
/// would score as infinitely unusual although the reference had the same spikes.
fn metric_floor(reference: &[f64], cfg: &SuspectConfig) -> f64 {
    let v: Vec<f64> = reference
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return 0.0;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let median = robust_fit(&v, 1).map(|f| f.0.abs()).unwrap_or(0.0);
    (cfg.min_relative_scale * median).max(0.25 * sd)
}

/// Scores above this say only "far out"; capping keeps one degenerate series from outweighing
/// every other kind of evidence.
pub const MAX_Z: f64 = 100.0;

/// The largest robust departure in `window` of a series split into reference and window values.
fn departure(
    reference: &[f64],
    window: &[f64],
    min_points: usize,
    scale_floor: f64,
    what: &str,
) -> Option<Departure> {
    let (median, iqr) = robust_fit(reference, min_points)?;
    let scale = iqr.max(scale_floor).max(1e-9);
    let (z, value) = window
        .iter()
        .filter(|x| x.is_finite())
        .map(|&x| ((x - median).abs() / scale, x))
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    Some(Departure {
        z: z.min(MAX_Z),
        what: what.to_string(),
        normal: median,
        value,
    })
}

fn keep_max(map: &mut BTreeMap<Kind, Departure>, kind: Kind, d: Departure) {
    match map.get(&kind) {
        Some(old) if old.z >= d.z => {}
        _ => {
            map.insert(kind, d);
        }
    }
}

/// Counts per bucket of the reference and of the window, from event times (s).
struct Buckets {
    reference: Vec<f64>,
    window: Vec<f64>,
}

impl Buckets {
    fn new(ref_buckets: usize, win_buckets: usize) -> Self {
        Self {
            reference: vec![0.0; ref_buckets],
            window: vec![0.0; win_buckets],
        }
    }
}

/// The time frame of one ranking, in seconds.
#[derive(Debug, Clone, Copy)]
struct Frame {
    ref_start: i64,
    win_start: i64,
    win_end: i64,
    bucket: i64,
}

impl Frame {
    fn of(t: i64, cfg: &SuspectConfig) -> Self {
        let win_start = t - cfg.before_s;
        Frame {
            ref_start: win_start - cfg.reference_s,
            win_start,
            win_end: t + cfg.after_s,
            bucket: cfg.bucket_s,
        }
    }
    fn ref_buckets(&self) -> usize {
        ((self.win_start - self.ref_start) / self.bucket) as usize
    }
    fn win_buckets(&self) -> usize {
        ((self.win_end - self.win_start + self.bucket - 1) / self.bucket) as usize
    }
    fn add(&self, b: &mut Buckets, t_s: i64, v: f64) {
        if t_s >= self.ref_start && t_s < self.win_start {
            let i = ((t_s - self.ref_start) / self.bucket) as usize;
            if let Some(x) = b.reference.get_mut(i) {
                *x += v;
            }
        } else if t_s >= self.win_start && t_s < self.win_end {
            let i = ((t_s - self.win_start) / self.bucket) as usize;
            if let Some(x) = b.window.get_mut(i) {
                *x += v;
            }
        }
    }
}

/// Every pod with evidence around `t_s` (s), most suspect first.
pub fn rank_suspects(
    store: &TelemetryStore,
    baselines: &Baselines,
    t_s: i64,
    cfg: &SuspectConfig,
) -> Vec<Suspect> {
    let frame = Frame::of(t_s, cfg);
    let topo = store.topology();
    let mut own: HashMap<String, BTreeMap<Kind, Departure>> = HashMap::new();
    let mut nodes: HashMap<String, Departure> = HashMap::new();
    let mut pod_nodes: HashMap<String, String> = HashMap::new();

    // Metrics, as recorded.
    for s in store.all_series() {
        let (ts, vs) = (s.timestamps(), s.values());
        let r0 = ts.partition_point(|&x| x < frame.ref_start);
        let r1 = ts.partition_point(|&x| x < frame.win_start);
        let w1 = ts.partition_point(|&x| x < frame.win_end);
        if w1 <= r1 {
            continue;
        }
        let floor = metric_floor(&vs[r0..r1], cfg);
        let Some(d) = departure(
            &vs[r0..r1],
            &vs[r1..w1],
            cfg.min_reference_points,
            floor,
            s.kpi(),
        ) else {
            continue;
        };
        let id = s.cmdb_id();
        match s.source() {
            MetricSource::Container => {
                if let Some((node, pod)) = pod_node_from_container_id(id) {
                    pod_nodes
                        .entry(pod.to_string())
                        .or_insert_with(|| node.to_string());
                    keep_max(own.entry(pod.to_string()).or_default(), Kind::Metric, d);
                }
            }
            // `pod.destination.caller.callee` is the pod's own server side;
            // `pod.source.caller.callee` is what the pod sees of its callee, which moves with
            // the callee's trouble (and is in the callee's own destination series already).
            MetricSource::Istio => {
                let mut parts = id.split('.');
                if let (Some(pod), Some("destination")) = (parts.next(), parts.next())
                    && !pod.is_empty()
                {
                    keep_max(own.entry(pod.to_string()).or_default(), Kind::Metric, d);
                }
            }
            MetricSource::Node => match nodes.get(id) {
                Some(old) if old.z >= d.z => {}
                _ => {
                    nodes.insert(id.to_string(), d);
                }
            },
            // Service-level series (rr, sr, mrt) move with every caller of a slow service;
            // the per-pod evidence below says which pod it is.
            MetricSource::Service => {}
        }
    }

    // Spans: self latency and own errors per pod and bucket.
    let (nr, nw) = (frame.ref_buckets(), frame.win_buckets());
    let mut latency: HashMap<&str, Buckets> = HashMap::new();
    let mut errors: HashMap<&str, Buckets> = HashMap::new();
    let excess = |cmdb: &str, op: &str, dur: i64| -> f64 {
        match baselines.get(cmdb, op) {
            Some(b) => (dur as f64 - b.median_us).max(0.0),
            None => 0.0,
        }
    };
    for s in store.spans_between(frame.ref_start * 1000, frame.win_end * 1000) {
        let mut child_excess = 0.0;
        let mut child_failed = false;
        for c in store.children(s.span_id()) {
            child_excess += excess(c.cmdb_id(), c.operation_name(), c.duration());
            child_failed |= !c.status_ok();
        }
        let own_excess =
            (excess(s.cmdb_id(), s.operation_name(), s.duration()) - child_excess).max(0.0);
        let t = s.timestamp().div_euclid(1000);
        let pod = s.cmdb_id();
        frame.add(
            latency.entry(pod).or_insert_with(|| Buckets::new(nr, nw)),
            t,
            own_excess / 1000.0,
        );
        let failed = !s.status_ok() && !child_failed;
        frame.add(
            errors.entry(pod).or_insert_with(|| Buckets::new(nr, nw)),
            t,
            if failed { 1.0 } else { 0.0 },
        );
    }
    for (pod, b) in &latency {
        if let Some(d) = departure(
            &b.reference,
            &b.window,
            cfg.min_reference_points,
            cfg.min_latency_scale_ms,
            "latency",
        ) {
            keep_max(own.entry(pod.to_string()).or_default(), Kind::Latency, d);
        }
    }
    for (pod, b) in &errors {
        if let Some(d) = departure(
            &b.reference,
            &b.window,
            cfg.min_reference_points,
            cfg.min_count_scale,
            "errors",
        ) {
            keep_max(own.entry(pod.to_string()).or_default(), Kind::Errors, d);
        }
    }

    // Error and warning logs per pod and bucket.
    for pod in store.log_components() {
        let mut b = Buckets::new(nr, nw);
        for l in store.logs_of(pod, frame.ref_start, frame.win_end) {
            if severity(l.value()).is_some() {
                frame.add(&mut b, l.timestamp(), 1.0);
            }
        }
        if let Some(d) = departure(
            &b.reference,
            &b.window,
            cfg.min_reference_points,
            cfg.min_count_scale,
            "logs",
        ) {
            keep_max(own.entry(pod.to_string()).or_default(), Kind::Logs, d);
        }
    }

    // Every pod of the data is a candidate (a node fault shows on the node's pods).
    let mut pods: Vec<String> = topo
        .services
        .iter()
        .flat_map(|s| s.pods.iter().cloned())
        .collect();
    pods.extend(
        own.keys()
            .filter(|p| !thinkfl_core::component::is_node_name(p))
            .cloned(),
    );
    pods.sort();
    pods.dedup();
    let lnz = |d: &Departure| (1.0 + d.z).ln();
    let mut out: Vec<Suspect> = pods
        .into_iter()
        .map(|pod| {
            let node = topo
                .node_of(&pod)
                .map(str::to_string)
                .or_else(|| pod_nodes.get(&pod).cloned());
            let ev = own.remove(&pod).unwrap_or_default();
            let node_metric = node.as_ref().and_then(|n| nodes.get(n)).cloned();
            let score = ev.values().map(lnz).sum::<f64>()
                + cfg.node_weight * node_metric.as_ref().map(lnz).unwrap_or(0.0);
            Suspect {
                service: service_of(&pod).to_string(),
                pod,
                node,
                score,
                own: ev,
                node_metric,
            }
        })
        .filter(|s| s.score > 0.0)
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.pod.cmp(&b.pod)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_fit_worked() {
        // Sorted 1, 2, 3, 4, 100: median 3, quartiles 2 and 4.
        assert_eq!(
            robust_fit(&[4.0, 1.0, 100.0, 3.0, 2.0], 3),
            Some((3.0, 2.0))
        );
        assert_eq!(robust_fit(&[1.0, f64::NAN], 2), None);
    }

    #[test]
    fn departure_uses_the_floor() {
        // A flat reference: the floor sets the scale.
        let d = departure(&[0.0; 10], &[0.0, 3.0, 1.0], 5, 1.0, "errors").unwrap();
        assert_eq!((d.z, d.value, d.normal), (3.0, 3.0, 0.0));
        // Too few reference points: no score.
        assert!(departure(&[0.0; 3], &[5.0], 5, 1.0, "x").is_none());
    }

    #[test]
    fn frame_buckets() {
        let cfg = SuspectConfig::default();
        let f = Frame::of(10_000, &cfg);
        assert_eq!(f.ref_buckets(), 120);
        assert_eq!(f.win_buckets(), 18);
        let mut b = Buckets::new(f.ref_buckets(), f.win_buckets());
        f.add(&mut b, 10_000 - 30, 1.0); // first window bucket
        f.add(&mut b, 10_000 - 31, 2.0); // last reference bucket
        f.add(&mut b, 10_000 + 150, 5.0); // past the window: dropped
        assert_eq!(b.window[0], 1.0);
        assert_eq!(b.reference[119], 2.0);
        assert_eq!(
            b.window.iter().sum::<f64>() + b.reference.iter().sum::<f64>(),
            3.0
        );
    }
}
