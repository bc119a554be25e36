//! Evaluation of failure localizers (DESIGN.md section 8): every [`Diagnoser`] runs on the first
//! `k` queries of each fault case of a data set; the rankings of a case are fused by reciprocal
//! rank ([`fusion`]); the fused list is scored at the ground-truth level (strict) and at service
//! level (lenient): Recall@1, 2, 3, 5, 10 and MRR, with wall time and tokens per case, and
//! breakdowns by fault level and fault type. Reports: JSON, Markdown, and a self-contained HTML
//! page with SVG charts ([`report`], [`html`]).
//!
//! Cases run in parallel (rayon) within a method; the results do not depend on the schedule, only
//! the wall times do. For the random method the report carries its analytic expectation, a check
//! of the harness itself.

#![warn(missing_docs)]

pub mod fusion;
pub mod html;
pub mod metrics;
pub mod report;

pub use metrics::{Latency, Metrics, Summary};
pub use report::{CaseOutcome, MethodReport, RandomExpectation, Report};

use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;
use thinkfl_core::{FaultCase, RootCause, TokenCounts, service_of};
use thinkfl_grader::{Matching, first_match};
use thinkfl_store::TelemetryStore;
use thinkfl_tools::{AnomalyConfig, CaseWindow, Diagnoser, Query, case_queries, case_window};

/// Errors of the evaluation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting out of its range.
    #[error("invalid eval config field `{field}`: {msg}")]
    Config {
        /// The field's name.
        field: &'static str,
        /// What its range is and what it was.
        msg: String,
    },
    /// The anomaly settings are invalid.
    #[error("anomaly config: {0}")]
    Anomaly(#[from] thinkfl_tools::Error),
    /// Nothing to evaluate: the store has no ground truth.
    #[error("the data set has no fault cases")]
    NoCases,
    /// A report file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The report could not be serialized.
    #[error("serializing the report: {0}")]
    Json(#[from] serde_json::Error),
}

/// Settings of an evaluation run.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalConfig {
    /// Queries per case whose rankings are fused (the first `k` anomalous traces).
    pub k_queries: usize,
    /// Reciprocal-rank fusion offset: an item scores `sum 1 / (offset + rank)`.
    pub fusion_offset: f64,
    /// The k of Recall@k.
    pub recall_ks: Vec<usize>,
    /// Which traces are anomalous, and the window of a case whose duration is unknown.
    pub anomaly: AnomalyConfig,
    /// A case without an anomalous trace is asked from the `k` traces of its window whose entry
    /// spans are slowest relative to their operation's median instead, so that every method (the
    /// metric-based ones need no anomalous trace) sees every case. Counted in the report.
    pub fallback_query: bool,
    /// Run the cases of a method in parallel.
    pub parallel: bool,
    /// Evaluate only the first this many cases (of `cases` when set).
    pub max_cases: Option<usize>,
    /// Evaluate only these case indices, in this order (a training run's held-out cases).
    pub cases: Option<Vec<usize>>,
    /// Items of the fused list kept per case in the report.
    pub report_top: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            k_queries: 3,
            fusion_offset: 0.0,
            recall_ks: vec![1, 2, 3, 5, 10],
            anomaly: AnomalyConfig::default(),
            fallback_query: true,
            parallel: true,
            max_cases: None,
            cases: None,
            report_top: 10,
        }
    }
}

impl EvalConfig {
    /// Checks every field's range (and the anomaly settings); the error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, msg: &str| {
            Err(Error::Config {
                field,
                msg: msg.into(),
            })
        };
        if self.k_queries == 0 {
            return bad("k_queries", "must be at least 1");
        }
        if !(self.fusion_offset.is_finite() && self.fusion_offset >= 0.0) {
            return bad("fusion_offset", "must be a finite number >= 0");
        }
        if self.recall_ks.is_empty() || self.recall_ks.contains(&0) {
            return bad("recall_ks", "must be non-empty and every k at least 1");
        }
        if self.max_cases == Some(0) {
            return bad("max_cases", "must be at least 1 when set");
        }
        if self.cases.as_ref().is_some_and(|c| c.is_empty()) {
            return bad("cases", "must name at least one case when set");
        }
        self.anomaly.validate()?;
        Ok(())
    }
}

/// The questions of one case, shared by every method.
#[derive(Debug, Clone)]
pub struct CasePlan {
    /// Index of the case in the store's ground truth.
    pub index: usize,
    /// The case's time window.
    pub window: CaseWindow,
    /// The questions asked of every method (at most `k_queries`).
    pub queries: Vec<Query>,
    /// The queries come from the fallback (no anomalous trace in the window).
    pub fallback: bool,
}

/// The queries of every case: the first `k` anomalous traces in its window, else (with
/// `fallback_query`) its `k` relatively slowest traces.
pub fn plan_cases(store: &TelemetryStore, cfg: &EvalConfig) -> Vec<CasePlan> {
    let all = store.faults().len();
    let selected: Vec<usize> = match &cfg.cases {
        Some(c) => c.iter().copied().filter(|&i| i < all).collect(),
        None => (0..all).collect(),
    };
    let normals = entry_medians(store);
    selected
        .into_iter()
        .take(cfg.max_cases.unwrap_or(usize::MAX))
        .map(|i| {
            let case = &store.faults()[i];
            let window = case_window(case, cfg.anomaly.default_case_duration_s);
            let mut queries = case_queries(store, i, &cfg.anomaly);
            queries.truncate(cfg.k_queries);
            let mut fallback = false;
            if queries.is_empty() && cfg.fallback_query {
                queries = slowest_entries(store, &normals, i, window, cfg.k_queries);
                fallback = !queries.is_empty();
            }
            CasePlan {
                index: i,
                window,
                queries,
                fallback,
            }
        })
        .collect()
}

/// Median duration (µs) of the entry spans (`thinkfl_tools::anomaly::entry_spans`: roots, and
/// cut-off spans only of traces without one) of each (service, operation).
fn entry_medians(store: &TelemetryStore) -> HashMap<(String, String), f64> {
    let mut groups: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
    for s in thinkfl_tools::anomaly::entry_spans(store) {
        groups
            .entry((service_of(s.cmdb_id()), s.operation_name()))
            .or_default()
            .push(s.duration());
    }
    groups
        .into_iter()
        .map(|((svc, op), mut d)| {
            d.sort_unstable();
            let n = d.len();
            let m = if n % 2 == 1 {
                d[n / 2] as f64
            } else {
                (d[n / 2 - 1] + d[n / 2]) as f64 / 2.0
            };
            ((svc.to_string(), op.to_string()), m)
        })
        .collect()
}

/// The fallback questions of a case: the `k` traces of its window whose entry spans are slowest
/// relative to the median of their operation (failed ones first), earliest first on ties.
fn slowest_entries(
    store: &TelemetryStore,
    normals: &HashMap<(String, String), f64>,
    case: usize,
    window: CaseWindow,
    k: usize,
) -> Vec<Query> {
    let mut scored: Vec<(f64, i64, Query)> = thinkfl_tools::anomaly::entry_spans(store)
        .filter(|s| window.contains_ms(s.timestamp()))
        .map(|s| {
            let key = (
                service_of(s.cmdb_id()).to_string(),
                s.operation_name().to_string(),
            );
            let normal = normals.get(&key).copied().unwrap_or(0.0).max(1.0);
            let ratio = if s.status_ok() {
                s.duration() as f64 / normal
            } else {
                f64::INFINITY
            };
            let q = Query {
                case,
                trace_id: s.trace_id().to_string(),
                span_id: s.span_id().to_string(),
                timestamp_ms: s.timestamp(),
                cmdb_id: s.cmdb_id().to_string(),
                operation_name: s.operation_name().to_string(),
            };
            (ratio, s.timestamp(), q)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|x| x.2).collect()
}

/// Progress of a run: one call per finished (method, case).
pub trait Progress: Sync {
    /// Called when `method` has finished one case (from several threads when the run is
    /// parallel).
    fn case_done(&self, method: &str);
}

impl Progress for () {
    fn case_done(&self, _method: &str) {}
}

fn display_item(r: &RootCause) -> String {
    let parts: Vec<String> = [("node", &r.node), ("service", &r.service), ("pod", &r.pod)]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    parts.join(",")
}

fn run_case(
    store: &TelemetryStore,
    method: &dyn Diagnoser,
    plan: &CasePlan,
    truth: &FaultCase,
    cfg: &EvalConfig,
) -> CaseOutcome {
    let t0 = Instant::now();
    let mut rankings = Vec::new();
    let mut errors = Vec::new();
    let mut tokens = TokenCounts::default();
    for q in &plan.queries {
        match method.diagnose(store, plan.window, q) {
            Ok(d) => {
                tokens.prompt += d.tokens.prompt;
                tokens.cached += d.tokens.cached;
                tokens.completion += d.tokens.completion;
                rankings.push(d.ranking);
            }
            Err(e) => errors.push(format!("query {}: {e}", q.span_id)),
        }
    }
    if plan.queries.is_empty() {
        errors.push("no trace in the case window".to_string());
    }
    let fused = fusion::fuse(&rankings, cfg.fusion_offset);
    let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
    CaseOutcome {
        case: plan.index,
        timestamp: truth.timestamp,
        level: truth.level,
        cmdb_id: truth.cmdb_id.clone(),
        fault_type: truth.display_type(),
        queries: plan.queries.len(),
        fallback_query: plan.fallback,
        strict_rank: first_match(&fused, truth, Matching::Strict),
        lenient_rank: first_match(&fused, truth, Matching::Lenient),
        top: fused
            .iter()
            .take(cfg.report_top)
            .map(display_item)
            .collect(),
        wall_ms,
        tokens,
        errors,
    }
}

/// Runs every method over the cases of the store.
pub fn evaluate(
    store: &TelemetryStore,
    methods: &[&dyn Diagnoser],
    cfg: &EvalConfig,
    dataset: &str,
    seed: u64,
    progress: &dyn Progress,
) -> Result<Report, Error> {
    cfg.validate()?;
    if store.faults().is_empty() {
        return Err(Error::NoCases);
    }
    let plans = plan_cases(store, cfg);
    let faults = store.faults();
    let mut reports = Vec::with_capacity(methods.len());
    for &m in methods {
        let one = |p: &CasePlan| {
            let out = run_case(store, m, p, &faults[p.index], cfg);
            progress.case_done(m.name());
            out
        };
        let cases: Vec<CaseOutcome> = if cfg.parallel {
            plans.par_iter().map(one).collect()
        } else {
            plans.iter().map(one).collect()
        };
        reports.push(MethodReport::from_cases(m.name(), cases, &cfg.recall_ks));
    }
    let mut fault_types: BTreeMap<String, usize> = BTreeMap::new();
    let mut levels: BTreeMap<String, usize> = BTreeMap::new();
    for p in &plans {
        *fault_types
            .entry(faults[p.index].display_type())
            .or_default() += 1;
        *levels.entry(faults[p.index].level.to_string()).or_default() += 1;
    }
    let random_expectation = methods
        .iter()
        .any(|m| m.name() == "random")
        .then(|| RandomExpectation::compute(store, &plans, &cfg.recall_ks));
    Ok(Report {
        dataset: dataset.to_string(),
        seed,
        k_queries: cfg.k_queries,
        fusion_offset: cfg.fusion_offset,
        recall_ks: cfg.recall_ks.clone(),
        cases: plans.len(),
        cases_with_fallback_query: plans.iter().filter(|p| p.fallback).count(),
        cases_without_query: plans.iter().filter(|p| p.queries.is_empty()).count(),
        fault_types,
        levels,
        methods: reports,
        random_expectation,
    })
}

/// Linear-interpolated quantile of sorted data.
pub(crate) fn metrics_quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}
