//! `search_fluctuating_metrics(service_name, timestamp)`: the metric series of a service, pod or
//! node, and of the node(s) hosting it, that fluctuate around the time by the n-sigma rule
//! ([`crate::nsigma`]).
//!
//! Plain mode is the paper's server: `DataFrame.to_csv` of
//! `key,regular_mean,regular_std_dev,current_mean,current_std_dev` (values rounded to 2 decimals
//! as numpy does, NaN as an empty field), rows in the order of pandas' `groupby` (kpi, then
//! series id); `{"message":"No matching records found."}` when the component has no point within
//! the regular window and `{"message":"No fluctuating metrics found."}` when nothing fluctuates.
//! The key of a series is `<cmdb_id>.<kpi>` (`node-6.cartservice-2.container_cpu_usage_seconds`,
//! as the paper's keys). Enriched mode orders rows by deviation and writes the two means and
//! the deviation in sigmas (`key,regular_mean,current_mean,sigma`).

use super::{Resolved, more_rows, resolve_component, series_components, unknown_component};
use crate::env::{OutputMode, ToolEnv};
use crate::nsigma::{Fluctuation, fluctuation};
use crate::pyfmt::{np_round2, pandas_csv_float, push_csv_field, py_float_repr};
use crate::timestamp::{BadTimestamp, TimestampArg};
use crate::tool::{Tool, ToolFailure, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt::Write;
use thinkfl_core::MetricSource;
use thinkfl_store::{SeriesRef, TelemetryStore};

/// The `search_fluctuating_metrics` tool: the metric series of a component that break the
/// n-sigma rule around a moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchFluctuatingMetrics;

// No doc comment: schemars would put it into the schema the model reads as a description,
// which the paper's schemas do not have.
#[allow(missing_docs)]
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchFluctuatingMetricsArgs {
    /// The service_name to be queried.
    pub service_name: String,
    /// The timestamp to be queried.
    pub timestamp: TimestampArg,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "service_name is empty; pass a service (recommendationservice), a pod (recommendationservice-1) or a node (node-1)"
    )]
    /// No component named.
    Empty,
    /// A name that is no service, pod or node of the data; the message lists services.
    #[error("{0}")]
    UnknownComponent(String),
    /// The timestamp argument is not a time.
    #[error(transparent)]
    Timestamp(#[from] BadTimestamp),
}

impl ToolFailure for MetricsError {
    fn not_found(&self) -> bool {
        matches!(self, MetricsError::UnknownComponent(_))
    }
}

/// The series of a component and of the nodes hosting it, without duplicates, in (kpi, cmdb_id)
/// order (pandas' groupby order on the paper's table).
pub(crate) fn selected_series<'s>(store: &'s TelemetryStore, c: &Resolved) -> Vec<SeriesRef<'s>> {
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    let mut out = Vec::new();
    let own = store.series_of(&c.name);
    // The node rows of the hosting nodes, in one pass whatever the number of nodes (a service
    // spreads over several).
    let host_nodes: Vec<&str> = c
        .nodes
        .iter()
        .map(String::as_str)
        .filter(|n| *n != c.name)
        .collect();
    let hosts = store
        .all_series()
        .filter(|s| s.source() == MetricSource::Node && host_nodes.contains(&s.cmdb_id()));
    // Names are read once: each read of a name from the store validates its bytes.
    let mut keyed: Vec<(&str, &str, SeriesRef<'s>)> = Vec::new();
    for s in own.into_iter().chain(hosts) {
        let (id, kpi) = (s.cmdb_id(), s.kpi());
        if seen.insert((id, kpi)) {
            keyed.push((kpi, id, s));
        }
    }
    // (kpi, cmdb_id) pairs are unique here, so an unstable sort is deterministic.
    keyed.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    out.extend(keyed.into_iter().map(|k| k.2));
    out
}

fn has_points_within(s: &SeriesRef<'_>, from: i64, to: i64) -> bool {
    let ts = s.timestamps();
    let i = ts.partition_point(|&t| t < from);
    i < ts.len() && ts[i] <= to
}

fn message(text: &str) -> String {
    let mut out = String::from("{\"message\":");
    crate::pyfmt::push_py_json_str(&mut out, text);
    out.push_str("}\n");
    out
}

impl Tool for SearchFluctuatingMetrics {
    type Args = SearchFluctuatingMetricsArgs;
    type Output = ToolOutput;
    type Error = MetricsError;

    fn name(&self) -> &'static str {
        "search_fluctuating_metrics"
    }

    fn description(&self) -> &'static str {
        "Get all fluctuating metrics with the input service_name and around the input timestamp"
    }

    fn call(&self, env: &ToolEnv<'_>, args: Self::Args) -> Result<ToolOutput, MetricsError> {
        if args.service_name.trim().is_empty() {
            return Err(MetricsError::Empty);
        }
        let t = args.timestamp.seconds()?;
        let store = env.store;
        let c = resolve_component(store, &args.service_name).ok_or_else(|| {
            MetricsError::UnknownComponent(unknown_component(store, &args.service_name))
        })?;
        let cfg = &env.config.nsigma;
        let series = selected_series(store, &c);
        let mut out = ToolOutput::default();
        out.touch(&c.name);
        let w = cfg.regular_window_s;
        if !series.iter().any(|s| has_points_within(s, t - w, t + w)) {
            out.text = message("No matching records found.");
            return Ok(out);
        }
        // (series index, key, statistics)
        let mut rows: Vec<(usize, String, Fluctuation)> = series
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                fluctuation(s.timestamps(), s.values(), t, cfg)
                    .map(|f| (i, format!("{}.{}", s.cmdb_id(), s.kpi()), f))
            })
            .collect();
        if rows.is_empty() {
            out.text = message("No fluctuating metrics found.");
            return Ok(out);
        }
        let enriched = env.mode() == OutputMode::Enriched;
        if enriched {
            rows.sort_by(|a, b| {
                b.2.max_sigma
                    .total_cmp(&a.2.max_sigma)
                    .then_with(|| a.1.cmp(&b.1))
            });
        }
        let max = env.config.max_rows;
        for (i, _, _) in rows.iter().take(max) {
            for comp in series_components(series[*i].cmdb_id()) {
                out.touch(comp);
            }
        }
        let text = &mut out.text;
        if enriched {
            // Compact for small models: the deviation in sigmas says what the two standard
            // deviations would.
            let _ = writeln!(
                text,
                "{} metrics of {} off by over {} sigma within {} s of {}, most deviating first",
                rows.len(),
                c.name,
                cfg.n_sigma,
                cfg.current_window_s,
                t,
            );
            text.push_str("key,regular_mean,current_mean,sigma\n");
        } else {
            text.push_str("key,regular_mean,regular_std_dev,current_mean,current_std_dev\n");
        }
        for (_, key, f) in rows.iter().take(max) {
            push_csv_field(text, key);
            let values: &[f64] = if enriched {
                &[f.regular_mean, f.current_mean]
            } else {
                &[f.regular_mean, f.regular_std, f.current_mean, f.current_std]
            };
            for &v in values {
                text.push(',');
                text.push_str(&pandas_csv_float(np_round2(v)));
            }
            if enriched {
                text.push(',');
                text.push_str(&if f.max_sigma.is_finite() {
                    py_float_repr(np_round2(f.max_sigma))
                } else {
                    "inf".into()
                });
            }
            text.push('\n');
        }
        if let Some(m) = more_rows(rows.len(), max) {
            text.push_str(&m);
        }
        Ok(out)
    }
}
