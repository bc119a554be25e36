//! The evaluation report: per method and per case, in JSON and Markdown (HTML in [`crate::html`]).

use crate::metrics::{Latency, Metrics, Summary};
use crate::{CasePlan, Error};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use thinkfl_core::{Level, TokenCounts};
use thinkfl_grader::{Matching, item_matches};
use thinkfl_store::TelemetryStore;

/// One case as one method answered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseOutcome {
    /// Index of the case in the store's ground truth.
    pub case: usize,
    /// Fault start, seconds since the epoch.
    pub timestamp: i64,
    /// The ground truth's level.
    pub level: Level,
    /// The faulty component.
    pub cmdb_id: String,
    /// The fault type, in English when known.
    pub fault_type: String,
    /// Queries asked (at most k).
    pub queries: usize,
    /// The queries came from the fallback (no anomalous trace in the window).
    pub fallback_query: bool,
    /// 0-based rank of the first strict / lenient match in the fused list.
    pub strict_rank: Option<usize>,
    /// 0-based rank of the first lenient match.
    pub lenient_rank: Option<usize>,
    /// The head of the fused list.
    pub top: Vec<String>,
    /// Wall time of the case: every query and the fusion.
    pub wall_ms: f64,
    /// Tokens spent over the queries.
    pub tokens: TokenCounts,
    /// One line per failed query (and one when the case had no query).
    pub errors: Vec<String>,
}

/// One method over every case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodReport {
    /// The method's name.
    pub method: String,
    /// Metrics over every case.
    pub overall: Summary,
    /// Metrics per ground-truth level.
    pub by_level: BTreeMap<String, Summary>,
    /// Metrics per fault type.
    pub by_fault_type: BTreeMap<String, Summary>,
    /// Wall time per case.
    pub latency: Latency,
    /// Tokens spent over every case.
    pub tokens: TokenCounts,
    /// Cases in which at least one query failed.
    pub cases_with_errors: usize,
    /// Every case, in plan order.
    pub cases: Vec<CaseOutcome>,
}

fn summary(cases: &[&CaseOutcome], ks: &[usize]) -> Summary {
    let strict: Vec<Option<usize>> = cases.iter().map(|c| c.strict_rank).collect();
    let lenient: Vec<Option<usize>> = cases.iter().map(|c| c.lenient_rank).collect();
    Summary {
        strict: Metrics::from_ranks(&strict, ks),
        lenient: Metrics::from_ranks(&lenient, ks),
    }
}

impl MethodReport {
    /// Aggregates the outcomes of one method, with Recall at each of `ks`.
    pub fn from_cases(method: &str, cases: Vec<CaseOutcome>, ks: &[usize]) -> Self {
        let all: Vec<&CaseOutcome> = cases.iter().collect();
        let mut by_level: BTreeMap<String, Vec<&CaseOutcome>> = BTreeMap::new();
        let mut by_type: BTreeMap<String, Vec<&CaseOutcome>> = BTreeMap::new();
        for c in &cases {
            by_level.entry(c.level.to_string()).or_default().push(c);
            by_type.entry(c.fault_type.clone()).or_default().push(c);
        }
        let wall: Vec<f64> = cases.iter().map(|c| c.wall_ms).collect();
        let tokens = cases
            .iter()
            .fold(TokenCounts::default(), |a, c| TokenCounts {
                prompt: a.prompt + c.tokens.prompt,
                cached: a.cached + c.tokens.cached,
                completion: a.completion + c.tokens.completion,
            });
        Self {
            method: method.to_string(),
            overall: summary(&all, ks),
            by_level: by_level
                .into_iter()
                .map(|(k, v)| (k, summary(&v, ks)))
                .collect(),
            by_fault_type: by_type
                .into_iter()
                .map(|(k, v)| (k, summary(&v, ks)))
                .collect(),
            latency: Latency::from_ms(&wall),
            tokens,
            cases_with_errors: cases.iter().filter(|c| !c.errors.is_empty()).count(),
            cases,
        }
    }
}

/// What the random method should score, in closed form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomExpectation {
    /// Items the random method shuffles (every pod, service and node).
    pub candidates: usize,
    /// Expected MRR with strict matching.
    pub strict_mrr: f64,
    /// Standard error of the mean reciprocal rank over this many cases.
    pub strict_mrr_se: f64,
    /// Expected MRR with lenient matching.
    pub lenient_mrr: f64,
    /// Standard error of the lenient MRR.
    pub lenient_mrr_se: f64,
    /// Expected Recall@k with strict matching.
    pub strict_recall: BTreeMap<usize, f64>,
    /// Expected Recall@k with lenient matching.
    pub lenient_recall: BTreeMap<usize, f64>,
}

impl RandomExpectation {
    /// Per case, `m` candidates match (strict: 0 or 1; lenient: the service and its pods); the
    /// first match of a random order of `n` has reciprocal-rank mean and variance in closed form.
    pub fn compute(store: &TelemetryStore, plans: &[CasePlan], ks: &[usize]) -> Self {
        let cands = thinkfl_baselines::candidates(store.topology());
        let n = cands.len();
        let acc = |matching: Matching| {
            let (mut mean, mut var) = (0.0, 0.0);
            let mut recall: BTreeMap<usize, f64> = ks.iter().map(|&k| (k, 0.0)).collect();
            for p in plans {
                let truth = &store.faults()[p.index];
                let m = if p.queries.is_empty() {
                    0
                } else {
                    cands
                        .iter()
                        .filter(|c| item_matches(c, truth, matching))
                        .count()
                };
                let (e1, e2) = thinkfl_baselines::reciprocal_rank_moments(n, m);
                mean += e1;
                var += e2 - e1 * e1;
                for (k, r) in recall.iter_mut() {
                    *r += thinkfl_baselines::expected_recall_at(n, m, *k);
                }
            }
            let c = plans.len().max(1) as f64;
            recall.values_mut().for_each(|r| *r /= c);
            (mean / c, var.sqrt() / c, recall)
        };
        let (sm, sse, sr) = acc(Matching::Strict);
        let (lm, lse, lr) = acc(Matching::Lenient);
        Self {
            candidates: n,
            strict_mrr: sm,
            strict_mrr_se: sse,
            lenient_mrr: lm,
            lenient_mrr_se: lse,
            strict_recall: sr,
            lenient_recall: lr,
        }
    }
}

/// The whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The data set's name, as the caller gave it.
    pub dataset: String,
    /// The seed the caller ran the methods with; recorded, not used by the evaluation itself.
    pub seed: u64,
    /// Queries fused per case.
    pub k_queries: usize,
    /// The reciprocal-rank fusion offset.
    pub fusion_offset: f64,
    /// The k values of Recall@k.
    pub recall_ks: Vec<usize>,
    /// Cases evaluated.
    pub cases: usize,
    /// Cases asked from the fallback queries.
    pub cases_with_fallback_query: usize,
    /// Cases with no query at all (every method fails them).
    pub cases_without_query: usize,
    /// Cases per fault type and per level.
    pub fault_types: BTreeMap<String, usize>,
    /// Cases per level.
    pub levels: BTreeMap<String, usize>,
    /// One report per method, in the order given.
    pub methods: Vec<MethodReport>,
    /// What the random method should score, when it was run.
    pub random_expectation: Option<RandomExpectation>,
}

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

impl Report {
    /// The report with every wall time zeroed: what must not change between two runs with the
    /// same data and seed.
    pub fn without_timings(&self) -> Self {
        let mut r = self.clone();
        for m in &mut r.methods {
            m.latency = Latency::default();
            for c in &mut m.cases {
                c.wall_ms = 0.0;
            }
        }
        r
    }

    /// The report of the method named `name`.
    pub fn method(&self, name: &str) -> Option<&MethodReport> {
        self.methods.iter().find(|m| m.method == name)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> Result<String, Error> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Markdown tables: overall strict and lenient, latency, by level, by fault type.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let ks = &self.recall_ks;
        let _ = writeln!(s, "# Evaluation: {}\n", self.dataset);
        let _ = writeln!(
            s,
            "{} fault cases ({}), first {} queries fused by reciprocal rank (offset {}), seed {}.",
            self.cases,
            self.levels
                .iter()
                .map(|(l, n)| format!("{n} {l}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.k_queries,
            self.fusion_offset,
            self.seed
        );
        if self.cases_with_fallback_query > 0 || self.cases_without_query > 0 {
            let _ = writeln!(
                s,
                "{} cases had no anomalous trace and were asked from the relatively slowest traces of their window; {} had no trace at all.",
                self.cases_with_fallback_query, self.cases_without_query
            );
        }
        for (title, strict) in [
            ("Strict (ground-truth level)", true),
            ("Lenient (service level)", false),
        ] {
            let _ = writeln!(s, "\n## {title}\n");
            let head: Vec<String> = ks.iter().map(|k| format!("R@{k}")).collect();
            let _ = writeln!(s, "| method | {} | MRR |", head.join(" | "));
            let _ = writeln!(s, "|---|{}---:|", "---:|".repeat(ks.len()));
            for m in &self.methods {
                let x = if strict {
                    &m.overall.strict
                } else {
                    &m.overall.lenient
                };
                let cells: Vec<String> = ks.iter().map(|&k| pct(x.recall_at(k))).collect();
                let _ = writeln!(s, "| {} | {} | {:.3} |", m.method, cells.join(" | "), x.mrr);
            }
            if let Some(e) = &self.random_expectation {
                let (mrr, se, rec) = if strict {
                    (e.strict_mrr, e.strict_mrr_se, &e.strict_recall)
                } else {
                    (e.lenient_mrr, e.lenient_mrr_se, &e.lenient_recall)
                };
                let cells: Vec<String> = ks
                    .iter()
                    .map(|k| pct(rec.get(k).copied().unwrap_or(0.0)))
                    .collect();
                let _ = writeln!(
                    s,
                    "| *random, expected* | {} | {:.3} ± {:.3} |",
                    cells.join(" | "),
                    mrr,
                    se
                );
            }
        }
        let _ = writeln!(
            s,
            "\nRecall in percent. *random, expected*: the closed form over {} candidates (± one standard error).",
            self.random_expectation.as_ref().map_or(0, |e| e.candidates)
        );
        let _ = writeln!(s, "\n## Time per case\n");
        let _ = writeln!(
            s,
            "| method | mean ms | p50 ms | p90 ms | p95 ms | max ms | total s | tokens | prompt tokens from cache | cases with errors |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for m in &self.methods {
            let l = &m.latency;
            let _ = writeln!(
                s,
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
                m.method,
                l.mean_ms,
                l.p50_ms,
                l.p90_ms,
                l.p95_ms,
                l.max_ms,
                l.total_ms / 1e3,
                m.tokens.prompt + m.tokens.completion,
                m.tokens.cached,
                m.cases_with_errors
            );
        }
        for (title, by_level) in [("MRR by fault level", true), ("MRR by fault type", false)] {
            let _ = writeln!(s, "\n## {title} (strict / lenient)\n");
            let keys: Vec<(&String, &usize)> = if by_level {
                self.levels.iter().collect()
            } else {
                self.fault_types.iter().collect()
            };
            let _ = writeln!(
                s,
                "| {} | cases | {} |",
                if by_level { "level" } else { "fault type" },
                self.methods
                    .iter()
                    .map(|m| m.method.as_str())
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(s, "|---|---:|{}", "---:|".repeat(self.methods.len()));
            for (k, n) in keys {
                let cells: Vec<String> = self
                    .methods
                    .iter()
                    .map(|m| {
                        let map = if by_level {
                            &m.by_level
                        } else {
                            &m.by_fault_type
                        };
                        map.get(k).map_or("-".into(), |x| {
                            format!("{:.2} / {:.2}", x.strict.mrr, x.lenient.mrr)
                        })
                    })
                    .collect();
                let _ = writeln!(s, "| {k} | {n} | {} |", cells.join(" | "));
            }
        }
        s
    }

    /// Writes `report.json`, `report.md` and `report.html` into `dir` (created if needed).
    pub fn write_all(&self, dir: &Path) -> Result<(), Error> {
        let io = |path: &Path, e: std::io::Error| Error::Io {
            path: path.display().to_string(),
            source: e,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        for (name, text) in [
            ("report.json", self.to_json()?),
            ("report.md", self.to_markdown()),
            ("report.html", crate::html::render(self)),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| io(&p, e))?;
        }
        Ok(())
    }
}
