//! Excerpts: a data set cut down to what a real incident export often is.
//!
//! The simulator writes two hours of every signal, and a tool that looks across the window (the
//! global view) sees each fault in its metrics, in the self latency of many traces and in the
//! logs. Incidents handed to a localizer are often much thinner. The real AIOps 2022 sample is
//! four minutes around one fault: one trace of 26 spans, the logs, no metrics, no topology. There
//! the window-wide evidence is only error-log counts, which the callers of a slow service write as
//! much as the service itself, and the one trace's descent is what names the culprit. A model
//! trained only on full data learns to trust the global view's first row; excerpts put the other
//! situation in its training data.
//!
//! [`excerpt`] keeps, for a few of the data set's faults, a few minutes around the fault start
//! (a random lead before it), in that window a few of the fault's anomalous traces (slow or failed
//! entry spans inside the fault) and a few other traces, and every log line; no metrics and no
//! topology. Node faults are left out: without metrics or placement nothing in an excerpt can
//! name a node. Windows are at least [`ExcerptConfig::gap_s`] apart, so that the reference period
//! a tool looks back over before one window holds no other fault's window. Every draw comes from
//! the seed.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, HashSet};
use thinkfl_core::{Dataset, FaultCase, Level, Span};

/// How an excerpt is cut.
#[derive(Debug, Clone, PartialEq)]
pub struct ExcerptConfig {
    /// Fewest seconds of data before the fault starts.
    pub lead_min_s: i64,
    /// Most seconds of data before the fault starts (the real sample: 106).
    pub lead_max_s: i64,
    /// Length of each window, seconds (the real sample: 240).
    pub length_s: i64,
    /// Fewest seconds between the end of one window and the start of the next.
    pub gap_s: i64,
    /// Most windows (fault cases) per excerpt.
    pub max_windows: usize,
    /// Most anomalous traces kept per window (at least one; the number is drawn).
    pub max_anomalous: usize,
    /// Most other traces of the window kept (from none; the number is drawn).
    pub max_other: usize,
    /// An entry span is anomalous above this factor of its operation's median duration over the
    /// whole source data set, or when its status is not OK.
    pub slow_factor: f64,
}

impl ExcerptConfig {
    /// Default [`ExcerptConfig::length_s`]: four minutes, as the real sample.
    pub const DEFAULT_LENGTH_S: i64 = 240;
    /// Default [`ExcerptConfig::gap_s`]: twenty minutes, the global view's reference period.
    pub const DEFAULT_GAP_S: i64 = 1200;

    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad =
            |field: &str, msg: &str| Err(crate::Error::Config(format!("excerpt.{field}: {msg}")));
        if self.lead_min_s < 0 || self.lead_max_s < self.lead_min_s {
            return bad("lead_max_s", "needs 0 <= lead_min_s <= lead_max_s");
        }
        if self.length_s <= self.lead_max_s {
            return bad(
                "length_s",
                "must be longer than lead_max_s (the window holds the fault start)",
            );
        }
        if self.gap_s < 0 {
            return bad("gap_s", "must be >= 0");
        }
        if self.max_windows == 0 {
            return bad("max_windows", "must be at least 1");
        }
        if self.max_anomalous == 0 {
            return bad("max_anomalous", "must be at least 1");
        }
        if !(self.slow_factor.is_finite() && self.slow_factor > 1.0) {
            return bad("slow_factor", "must be a number > 1");
        }
        Ok(())
    }
}

impl Default for ExcerptConfig {
    fn default() -> Self {
        Self {
            lead_min_s: 30,
            lead_max_s: 120,
            length_s: Self::DEFAULT_LENGTH_S,
            gap_s: Self::DEFAULT_GAP_S,
            max_windows: 6,
            max_anomalous: 2,
            max_other: 5,
            slow_factor: 3.0,
        }
    }
}

/// What [`excerpt`] kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExcerptReport {
    /// Fault cases of the source.
    pub source_faults: usize,
    /// Node faults left out.
    pub node_faults: usize,
    /// Faults with no anomalous trace inside them (nothing to ask about).
    pub without_anomalous_trace: usize,
    /// Faults whose window came too close to one already kept.
    pub too_close: usize,
    /// Windows written, one fault case each.
    pub windows: usize,
    /// Traces kept.
    pub traces: usize,
}

/// Entry spans (roots) by trace, and each root operation's median duration.
fn roots(ds: &Dataset) -> (Vec<&Span>, HashMap<(&str, &str), i64>) {
    let roots: Vec<&Span> = ds.spans.iter().filter(|s| s.is_root()).collect();
    let mut by_op: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
    for r in &roots {
        by_op
            .entry((r.cmdb_id.as_str(), r.operation_name.as_str()))
            .or_default()
            .push(r.duration);
    }
    let medians = by_op
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_unstable();
            (k, v[v.len() / 2])
        })
        .collect();
    (roots, medians)
}

/// Cuts `ds` down to excerpts around some of its faults (see the module header). The source's
/// fault durations say where each fault's anomalous traces are; the excerpt's ground truth keeps
/// the fault start, level, component and type, not the duration (exports rarely say it).
pub fn excerpt(
    ds: &Dataset,
    cfg: &ExcerptConfig,
    seed: u64,
) -> Result<(Dataset, ExcerptReport), crate::Error> {
    cfg.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut report = ExcerptReport {
        source_faults: ds.faults.len(),
        ..ExcerptReport::default()
    };
    let (roots, medians) = roots(ds);
    let mut faults: Vec<&FaultCase> = ds.faults.iter().collect();
    faults.sort_by_key(|f| f.timestamp);

    let mut kept_traces: HashSet<&str> = HashSet::new();
    let mut windows: Vec<(i64, i64)> = Vec::new();
    let mut kept_faults: Vec<FaultCase> = Vec::new();
    for f in faults {
        if windows.len() >= cfg.max_windows {
            break;
        }
        if f.level == Level::Node {
            report.node_faults += 1;
            continue;
        }
        let lead = rng.random_range(cfg.lead_min_s..=cfg.lead_max_s);
        let (start, end) = (f.timestamp - lead, f.timestamp - lead + cfg.length_s);
        if windows.last().is_some_and(|&(_, e)| start < e + cfg.gap_s) {
            report.too_close += 1;
            continue;
        }
        // The fault's anomalous traces: entry spans inside the fault (and inside the window).
        let fault_end = (f.timestamp + f.duration.unwrap_or(cfg.length_s)).min(end);
        let in_window = |r: &&&Span| {
            let t = r.timestamp.div_euclid(1000);
            t >= start && t < end
        };
        let mut anomalous: Vec<&Span> = roots
            .iter()
            .filter(in_window)
            .filter(|r| {
                let t = r.timestamp.div_euclid(1000);
                let median = medians[&(r.cmdb_id.as_str(), r.operation_name.as_str())];
                t >= f.timestamp
                    && t < fault_end
                    && (!r.status_ok() || r.duration as f64 > cfg.slow_factor * median as f64)
            })
            .copied()
            .collect();
        if anomalous.is_empty() {
            report.without_anomalous_trace += 1;
            continue;
        }
        anomalous.sort_by_key(|r| r.timestamp);
        let n_anomalous = rng.random_range(1..=cfg.max_anomalous).min(anomalous.len());
        let chosen: HashSet<&str> = anomalous[..n_anomalous]
            .iter()
            .map(|r| r.trace_id.as_str())
            .collect();
        let mut others: Vec<&Span> = roots
            .iter()
            .filter(in_window)
            .filter(|r| !chosen.contains(r.trace_id.as_str()))
            .copied()
            .collect();
        others.sort_by(|a, b| (a.timestamp, &a.trace_id).cmp(&(b.timestamp, &b.trace_id)));
        others.shuffle(&mut rng);
        let n_other = rng.random_range(0..=cfg.max_other).min(others.len());
        kept_traces.extend(chosen.iter().copied());
        kept_traces.extend(others[..n_other].iter().map(|r| r.trace_id.as_str()));
        report.traces += chosen.len() + n_other;
        windows.push((start, end));
        kept_faults.push(FaultCase {
            duration: None,
            ..f.clone()
        });
    }
    report.windows = windows.len();

    let inside = |t_s: i64| windows.iter().any(|&(s, e)| t_s >= s && t_s < e);
    let out = Dataset {
        spans: ds
            .spans
            .iter()
            .filter(|s| kept_traces.contains(s.trace_id.as_str()))
            .cloned()
            .collect(),
        metrics: Vec::new(),
        logs: ds
            .logs
            .iter()
            .filter(|l| inside(l.timestamp))
            .cloned()
            .collect(),
        faults: kept_faults,
        topology: None,
    };
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Preset, SimConfig};

    fn simulated() -> Dataset {
        let cfg = SimConfig {
            preset: Preset::OnlineBoutique,
            seed: 5,
            duration_s: 4 * 3600,
            traces_per_minute: 20.0,
            faults: 16,
            ..SimConfig::default()
        };
        crate::simulate_dataset(&cfg).unwrap()
    }

    #[test]
    fn windows_hold_anomalous_traces_logs_and_nothing_else() {
        let ds = simulated();
        let cfg = ExcerptConfig::default();
        let (ex, rep) = excerpt(&ds, &cfg, 1).unwrap();
        assert!(rep.windows >= 2, "{rep:?}");
        assert_eq!(ex.faults.len(), rep.windows);
        assert!(ex.metrics.is_empty() && ex.topology.is_none());
        assert!(
            ex.faults
                .iter()
                .all(|f| f.level != Level::Node && f.duration.is_none())
        );
        // Windows are apart by the gap; every log and every kept trace's root sits in one, and
        // each window's fault has a failed or slow entry span after its start.
        let mut starts: Vec<i64> = ex.faults.iter().map(|f| f.timestamp).collect();
        starts.sort_unstable();
        for w in starts.windows(2) {
            assert!(w[1] - w[0] >= cfg.gap_s + cfg.length_s - cfg.lead_max_s + cfg.lead_min_s);
        }
        let near = |t: i64| {
            ex.faults
                .iter()
                .any(|f| t >= f.timestamp - cfg.lead_max_s && t < f.timestamp + cfg.length_s)
        };
        assert!(ex.logs.iter().all(|l| near(l.timestamp)));
        assert!(!ex.logs.is_empty());
        let roots: Vec<&Span> = ex.spans.iter().filter(|s| s.is_root()).collect();
        assert_eq!(roots.len(), rep.traces);
        assert!(roots.iter().all(|r| near(r.timestamp / 1000)));
        let (_, medians) = super::roots(&ds);
        for f in &ex.faults {
            assert!(roots.iter().any(|r| {
                let t = r.timestamp / 1000;
                t >= f.timestamp
                    && (!r.status_ok()
                        || r.duration as f64
                            > cfg.slow_factor
                                * medians[&(r.cmdb_id.as_str(), r.operation_name.as_str())] as f64)
            }));
        }
        // Whole traces: every kept span's trace has its root.
        let kept: HashSet<&str> = roots.iter().map(|r| r.trace_id.as_str()).collect();
        assert!(ex.spans.iter().all(|s| kept.contains(s.trace_id.as_str())));
        let in_source = ds
            .spans
            .iter()
            .filter(|s| kept.contains(s.trace_id.as_str()))
            .count();
        assert_eq!(in_source, ex.spans.len());
    }

    #[test]
    fn the_seed_decides_every_draw() {
        let ds = simulated();
        let cfg = ExcerptConfig::default();
        let (a, _) = excerpt(&ds, &cfg, 3).unwrap();
        let (b, _) = excerpt(&ds, &cfg, 3).unwrap();
        let (c, _) = excerpt(&ds, &cfg, 4).unwrap();
        let ids = |d: &Dataset| {
            d.spans
                .iter()
                .map(|s| s.span_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(a.logs.len(), b.logs.len());
        assert_ne!((ids(&a), a.logs.len()), (ids(&c), c.logs.len()));
    }

    #[test]
    fn bad_settings_name_their_field() {
        let cfg = ExcerptConfig {
            length_s: 60,
            ..ExcerptConfig::default()
        };
        let e = excerpt(&Dataset::default(), &cfg, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("excerpt.length_s"), "{e}");
    }
}
