//! Anomalous-trace detection (DESIGN.md 5.2): a trace is anomalous when its entry span is much
//! slower than the normal duration of its operation, or its status is not OK.
//!
//! "Normal" is the median duration of the entry spans of the same (service, operation) over the
//! whole store: the median ignores the minority of slow traces that a fault produces. When an
//! operation has too few entry spans for a median to mean anything (a one-trace sample), an
//! absolute threshold stands in, so that a real 13 s request still counts as anomalous.
//!
//! The entry span of a trace is its root (empty `parent_span`). A span whose parent is absent
//! from the data (the exporter dropped it; the store lists such spans among its roots) is an entry
//! only in a trace that has no root at all, a partial export: then its earliest such span. Inner
//! spans cut off by a dropped parent are never queries of a trace that has its root.

use crate::baseline::median_in_place;
use std::collections::{HashMap, HashSet};
use thinkfl_core::service_of;
use thinkfl_store::{SpanIdx, TelemetryStore};

/// Settings of the detector and of how fault cases become queries.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyConfig {
    /// An entry span is slow when its duration exceeds `slow_factor` times the median duration of
    /// the entry spans of its (service, operation).
    pub slow_factor: f64,
    /// Fewest entry spans of an operation for its median to be trusted.
    pub min_baseline_samples: usize,
    /// With fewer samples than that, an entry span slower than this (ms) is slow.
    pub fallback_slow_ms: f64,
    /// Whether a non-OK status code makes an entry span anomalous.
    pub flag_errors: bool,
    /// Window length of a fault case whose duration the data does not give (AIOps 2022 gives
    /// only the start; its faults last minutes).
    pub default_case_duration_s: i64,
    /// Keep at most this many queries per case (the earliest); `None` keeps all.
    pub max_queries_per_case: Option<usize>,
}

impl AnomalyConfig {
    /// Default [`AnomalyConfig::slow_factor`].
    pub const DEFAULT_SLOW_FACTOR: f64 = 3.0;
    /// Default [`AnomalyConfig::min_baseline_samples`].
    pub const DEFAULT_MIN_BASELINE_SAMPLES: usize = 10;
    /// Default [`AnomalyConfig::fallback_slow_ms`]: one second.
    pub const DEFAULT_FALLBACK_SLOW_MS: f64 = 1000.0;
    /// Default [`AnomalyConfig::default_case_duration_s`]: ten minutes.
    pub const DEFAULT_CASE_DURATION_S: i64 = 600;

    /// Checks every field's range; the error names the field.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |field: &'static str, msg: String| Err(crate::Error::Config { field, msg });
        if !(self.slow_factor.is_finite() && self.slow_factor > 1.0) {
            return bad(
                "slow_factor",
                format!("must be a number > 1, got {}", self.slow_factor),
            );
        }
        if self.min_baseline_samples == 0 {
            return bad("min_baseline_samples", "must be at least 1".into());
        }
        if !(self.fallback_slow_ms.is_finite() && self.fallback_slow_ms > 0.0) {
            return bad(
                "fallback_slow_ms",
                format!("must be > 0, got {}", self.fallback_slow_ms),
            );
        }
        if self.default_case_duration_s <= 0 {
            return bad(
                "default_case_duration_s",
                format!("must be > 0, got {}", self.default_case_duration_s),
            );
        }
        if self.max_queries_per_case == Some(0) {
            return bad("max_queries_per_case", "must be at least 1 when set".into());
        }
        Ok(())
    }
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            slow_factor: Self::DEFAULT_SLOW_FACTOR,
            min_baseline_samples: Self::DEFAULT_MIN_BASELINE_SAMPLES,
            fallback_slow_ms: Self::DEFAULT_FALLBACK_SLOW_MS,
            flag_errors: true,
            default_case_duration_s: Self::DEFAULT_CASE_DURATION_S,
            max_queries_per_case: None,
        }
    }
}

/// Why an entry span was flagged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnomalyReason {
    /// Slower than `slow_factor` x the normal duration (µs) of its operation.
    Slow {
        /// Median duration of the operation's entry spans, µs.
        normal_us: f64,
    },
    /// Slower than the fallback threshold; the operation had too few samples for a baseline.
    SlowAbsolute,
    /// Non-OK status code.
    Error,
}

/// One anomalous trace, by its entry span.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalousEntry {
    /// The trace.
    pub trace_id: String,
    /// Its entry span.
    pub span_id: String,
    /// Start of the entry span, ms since the epoch.
    pub timestamp_ms: i64,
    /// The pod that emitted the entry span.
    pub cmdb_id: String,
    /// The entry span's operation.
    pub operation_name: String,
    /// Duration of the entry span, µs.
    pub duration_us: i64,
    /// Status code of the entry span, as written.
    pub status_code: String,
    /// Why it was flagged.
    pub reason: AnomalyReason,
}

/// The detector over one store: entry-span baselines computed once, roots indexed by time.
#[derive(Debug)]
pub struct AnomalyDetector<'s> {
    store: &'s TelemetryStore,
    cfg: AnomalyConfig,
    /// (service, operation) -> (median µs, count) of entry spans.
    baselines: HashMap<(&'s str, &'s str), (f64, usize)>,
    /// Root spans sorted by timestamp (stable: ties keep store order).
    roots: Vec<SpanIdx>,
}

impl<'s> AnomalyDetector<'s> {
    /// Computes the entry-span baselines of `store` (one pass over its entry spans) and indexes the
    /// entry spans by time.
    pub fn new(store: &'s TelemetryStore, cfg: AnomalyConfig) -> Self {
        let mut groups: HashMap<(&'s str, &'s str), Vec<i64>> = HashMap::new();
        let mut roots = Vec::new();
        for s in entry_spans(store) {
            roots.push(s.idx());
            groups
                .entry((service_of(s.cmdb_id()), s.operation_name()))
                .or_default()
                .push(s.duration());
        }
        roots.sort_by_key(|i| (store.span(*i).timestamp(), *i));
        let baselines = groups
            .into_iter()
            .map(|(k, mut d)| {
                let n = d.len();
                (k, (median_in_place(&mut d), n))
            })
            .collect();
        Self {
            store,
            cfg,
            baselines,
            roots,
        }
    }

    /// The settings the detector was built with.
    pub fn config(&self) -> &AnomalyConfig {
        &self.cfg
    }

    /// Median duration (µs) and count of the entry spans of an operation served by `cmdb_id`.
    pub fn baseline(&self, cmdb_id: &str, operation: &str) -> Option<(f64, usize)> {
        self.baselines
            .get(&(service_of(cmdb_id), operation))
            .copied()
    }

    /// Anomalous traces whose entry span starts in `[from_ms, to_ms)`, in time order.
    pub fn entries(&self, from_ms: i64, to_ms: i64) -> Vec<AnomalousEntry> {
        let store = self.store;
        let lo = self
            .roots
            .partition_point(|i| store.span(*i).timestamp() < from_ms);
        let hi = self
            .roots
            .partition_point(|i| store.span(*i).timestamp() < to_ms);
        let mut out = Vec::new();
        for &i in &self.roots[lo..hi.max(lo)] {
            let s = store.span(i);
            let base = self.baseline(s.cmdb_id(), s.operation_name());
            if let Some(reason) = classify_entry(s.duration(), s.status_ok(), base, &self.cfg) {
                out.push(AnomalousEntry {
                    trace_id: s.trace_id().to_string(),
                    span_id: s.span_id().to_string(),
                    timestamp_ms: s.timestamp(),
                    cmdb_id: s.cmdb_id().to_string(),
                    operation_name: s.operation_name().to_string(),
                    duration_us: s.duration(),
                    status_code: s.status_code().to_string(),
                    reason,
                });
            }
        }
        out
    }
}

/// The entry span of every trace, in the store's root order (time order): its root, or, in a
/// trace without one, the earliest span whose parent is absent from the data.
pub fn entry_spans(store: &TelemetryStore) -> impl Iterator<Item = thinkfl_store::SpanRef<'_>> {
    let rooted: HashSet<&str> = store
        .roots()
        .filter(|s| s.parent_span().is_empty())
        .map(|s| s.trace_id())
        .collect();
    let mut orphan_entry: HashSet<&str> = HashSet::new();
    store.roots().filter(move |s| {
        s.parent_span().is_empty()
            || (!rooted.contains(s.trace_id()) && orphan_entry.insert(s.trace_id()))
    })
}

/// Classifies one entry span; `None` when it looks normal.
pub fn classify_entry(
    duration_us: i64,
    status_ok: bool,
    baseline: Option<(f64, usize)>,
    cfg: &AnomalyConfig,
) -> Option<AnomalyReason> {
    match baseline {
        Some((normal_us, n)) if n >= cfg.min_baseline_samples => {
            if duration_us as f64 > cfg.slow_factor * normal_us {
                return Some(AnomalyReason::Slow { normal_us });
            }
        }
        _ => {
            if duration_us as f64 > cfg.fallback_slow_ms * 1000.0 {
                return Some(AnomalyReason::SlowAbsolute);
            }
        }
    }
    (cfg.flag_errors && !status_ok).then_some(AnomalyReason::Error)
}

/// Anomalous traces whose entry span starts in `[from_ms, to_ms)`, in time order. Builds a
/// detector for one query; reuse an [`AnomalyDetector`] for many.
pub fn anomalous_entries(
    store: &TelemetryStore,
    from_ms: i64,
    to_ms: i64,
    cfg: &AnomalyConfig,
) -> Vec<AnomalousEntry> {
    AnomalyDetector::new(store, cfg.clone()).entries(from_ms, to_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_against_baseline_and_fallback() {
        let cfg = AnomalyConfig::default();
        // 40 ms normal, 10 samples: 130 ms is slow, 110 ms is not.
        assert_eq!(
            classify_entry(130_000, true, Some((40_000.0, 10)), &cfg),
            Some(AnomalyReason::Slow {
                normal_us: 40_000.0
            })
        );
        assert_eq!(
            classify_entry(110_000, true, Some((40_000.0, 10)), &cfg),
            None
        );
        // Too few samples: only the absolute threshold counts.
        assert_eq!(
            classify_entry(130_000, true, Some((40_000.0, 2)), &cfg),
            None
        );
        assert_eq!(
            classify_entry(13_385_835, true, Some((13_385_835.0, 1)), &cfg),
            Some(AnomalyReason::SlowAbsolute)
        );
        // Errors flag a fast span unless switched off.
        assert_eq!(
            classify_entry(1_000, false, Some((40_000.0, 10)), &cfg),
            Some(AnomalyReason::Error)
        );
        let quiet = AnomalyConfig {
            flag_errors: false,
            ..cfg
        };
        assert_eq!(
            classify_entry(1_000, false, Some((40_000.0, 10)), &quiet),
            None
        );
    }

    #[test]
    fn orphans_are_entries_only_of_traces_without_a_root() {
        use thinkfl_core::{Dataset, Span};
        let span = |id: &str, trace: &str, parent: &str, ts: i64, dur: i64| Span {
            timestamp: ts,
            cmdb_id: "svc-0".into(),
            span_id: id.into(),
            trace_id: trace.into(),
            duration: dur,
            kind: "rpc".into(),
            status_code: "0".into(),
            operation_name: "op".into(),
            parent_span: parent.into(),
        };
        let store = TelemetryStore::from_dataset(Dataset {
            spans: vec![
                // Trace a: its root, and an inner span whose parent was dropped.
                span("a1", "a", "", 1_000, 5_000_000),
                span("a3", "a", "a2", 1_001, 4_000_000),
                // Trace b: no root; two spans cut off from it, the earlier is the entry.
                span("b3", "b", "b2", 1_003, 3_000_000),
                span("b5", "b", "b4", 1_002, 2_000_000),
            ],
            ..Default::default()
        });
        assert_eq!(store.roots().count(), 4);
        let mut ids: Vec<&str> = entry_spans(&store).map(|s| s.span_id()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["a1", "b5"]);
        // All four are slower than the 1 s fallback: only the entries are queries.
        let det = AnomalyDetector::new(&store, AnomalyConfig::default());
        let got: Vec<String> = det
            .entries(0, 10_000)
            .into_iter()
            .map(|e| e.span_id)
            .collect();
        assert_eq!(got, ["a1", "b5"]);
    }

    #[test]
    fn config_validation_names_the_field() {
        assert!(AnomalyConfig::default().validate().is_ok());
        let e = AnomalyConfig {
            slow_factor: 0.5,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("slow_factor"), "{e}");
        let e = AnomalyConfig {
            default_case_duration_s: 0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("default_case_duration_s"), "{e}");
    }
}
