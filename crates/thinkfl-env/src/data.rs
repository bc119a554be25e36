//! A data set as the environment serves it: the tool server's loaded store, plus what every
//! episode of it needs and should not recompute (the queries of each fault case, the component
//! names, the normal durations).

use std::path::Path;
use std::sync::Arc;
use thinkfl_agent::constrain::Components;
use thinkfl_server::LoadedDataset;
use thinkfl_store::LoadOptions;
use thinkfl_tools::{AnomalyConfig, Query, ToolEnv, ToolsConfig, all_case_queries};

/// One loaded data set.
#[derive(Debug)]
pub struct EnvDataset {
    /// The store and its id (the directory name), shared with the tool server's loader.
    pub loaded: LoadedDataset,
    /// The anomalous-trace queries of each fault case, in the order of `store.faults()`.
    pub queries: Vec<Vec<Query>>,
    /// Component names, for episodes.
    pub components: Arc<Components>,
}

impl EnvDataset {
    /// Loads a directory in the AIOps 2022 layout; the id is its name.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self, crate::Error> {
        Ok(Self::new(LoadedDataset::load(dir, opts)?))
    }

    /// Wraps a loaded data set, computing its queries and normal durations now, so that no
    /// episode request pays for them.
    pub fn new(loaded: LoadedDataset) -> Self {
        let queries = all_case_queries(&loaded.store, &AnomalyConfig::default());
        let components = Arc::new(Components::of(&loaded.store));
        let _ = loaded.env(ToolsConfig::default()).baselines();
        Self {
            loaded,
            queries,
            components,
        }
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.loaded.id
    }

    /// The tools' view of it.
    pub fn env(&self, cfg: ToolsConfig) -> ToolEnv<'_> {
        self.loaded.env(cfg)
    }

    /// The query of `case` whose entry span is `span` (or the `index`-th when no span is given).
    pub fn query(
        &self,
        case: usize,
        span: Option<&str>,
        index: usize,
    ) -> Result<&Query, crate::Error> {
        let n = self.loaded.store.faults().len();
        let qs = self.queries.get(case).ok_or_else(|| {
            crate::Error::invalid(
                "case",
                format!("{case} is out of range: {} has {n} fault cases", self.id()),
            )
        })?;
        if qs.is_empty() {
            return Err(crate::Error::invalid(
                "case",
                format!(
                    "case {case} of {} has no anomalous-trace query to start from",
                    self.id()
                ),
            ));
        }
        match span.map(str::trim) {
            Some(s) if !s.is_empty() => qs.iter().find(|q| q.span_id == s).ok_or_else(|| {
                crate::Error::invalid(
                    "query_span",
                    format!("{s:?} is not a query of case {case} of {}", self.id()),
                )
            }),
            _ => qs.get(index).ok_or_else(|| {
                crate::Error::invalid(
                    "query_index",
                    format!(
                        "{index} is out of range: case {case} has {} queries",
                        qs.len()
                    ),
                )
            }),
        }
    }
}
