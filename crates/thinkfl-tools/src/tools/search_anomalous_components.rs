//! `search_anomalous_components(timestamp)`: the pods whose metrics, spans and logs (and whose
//! node's metrics) depart most from their own normal around the time, ranked
//! ([`crate::suspects`]).
//!
//! Not a tool of the paper's server: it gives a model the global view that metric methods such
//! as BARO have, so that a fault without a clean latency descent (a node's disk, a memory leak,
//! an exception) is still in front of it. Our prompt set offers it; `--prompts thinkfl` does not.
//!
//! Rows: `pod,node,service,score,evidence`, most suspect first, where evidence lists the
//! strongest departures as `what z` (z in robust deviations from the reference median).

use super::more_rows;
use crate::env::ToolEnv;
use crate::suspects::{Kind, Suspect, SuspectConfig, rank_suspects};
use crate::timestamp::{BadTimestamp, TimestampArg};
use crate::tool::{Tool, ToolFailure, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use std::fmt::Write;

/// Rows at most, whatever `max_rows` allows: the tail of the ranking is noise.
pub const MAX_SUSPECTS: usize = 5;

/// The `search_anomalous_components` tool: the pods most likely at fault around a moment,
/// ranked by [`rank_suspects`](crate::suspects::rank_suspects) over every kind of evidence.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchAnomalousComponents;

impl SearchAnomalousComponents {
    /// The tool's name, as calls and prompts spell it.
    pub const NAME: &'static str = "search_anomalous_components";
}

// No doc comment: schemars would put it into the schema the model reads as a description,
// which the paper's schemas do not have.
#[allow(missing_docs)]
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchAnomalousComponentsArgs {
    /// The time of the anomaly (s or ms), e.g. the question's timestamp.
    pub timestamp: TimestampArg,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnomalousComponentsError {
    /// The timestamp argument is not a time.
    #[error(transparent)]
    Timestamp(#[from] BadTimestamp),
}

impl ToolFailure for AnomalousComponentsError {}

/// The evidence column of a row: the strongest departures, strongest first.
pub fn evidence(s: &Suspect) -> String {
    let mut parts: Vec<(f64, String)> = s
        .own
        .iter()
        .map(|(k, d)| {
            let what = match k {
                Kind::Metric => short_kpi(&d.what),
                Kind::Latency => "latency".into(),
                Kind::Errors => "errors".into(),
                Kind::Logs => "error logs".into(),
            };
            (d.z, format!("{what} {}", z_text(d.z)))
        })
        .collect();
    if let (Some(d), Some(n)) = (&s.node_metric, &s.node) {
        parts.push((d.z, format!("{n} {} {}", short_kpi(&d.what), z_text(d.z))));
    }
    parts.sort_by(|a, b| b.0.total_cmp(&a.0));
    // A departure under one deviation is no evidence.
    parts.retain(|p| p.0 >= 1.0);
    if parts.is_empty() {
        return "weak".into();
    }
    parts
        .into_iter()
        .take(2)
        .map(|p| p.1)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A KPI name in few tokens: `istio_request_duration_milliseconds.grpc.200.0.0` ->
/// `request_duration_ms`, `container_cpu_usage_seconds` -> `cpu_usage`, `system.io.w_await` ->
/// `io.w_await`. Every character of a tool result is read by a small model, and the variant
/// suffixes (protocol, status, flags) say nothing about which component is at fault.
pub fn short_kpi(kpi: &str) -> String {
    if let Some(rest) = kpi.strip_prefix("system.") {
        return rest.to_string();
    }
    let head = kpi.split('.').next().unwrap_or(kpi);
    let head = head
        .strip_prefix("container_")
        .or_else(|| head.strip_prefix("istio_"))
        .unwrap_or(head);
    let head = head.strip_suffix("_seconds").unwrap_or(head);
    match head.strip_suffix("_milliseconds") {
        Some(h) => format!("{h}_ms"),
        None => head.to_string(),
    }
}

fn z_text(z: f64) -> String {
    if z >= 100.0 {
        ">99".into()
    } else {
        format!("{z:.0}")
    }
}

impl Tool for SearchAnomalousComponents {
    type Args = SearchAnomalousComponentsArgs;
    type Output = ToolOutput;
    type Error = AnomalousComponentsError;

    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn description(&self) -> &'static str {
        "Get the pods whose metrics, spans and logs, or whose node's metrics, depart most from their normal around the input timestamp, most suspect first"
    }

    fn call(
        &self,
        env: &ToolEnv<'_>,
        args: Self::Args,
    ) -> Result<ToolOutput, AnomalousComponentsError> {
        let t = args.timestamp.seconds()?;
        let cfg = SuspectConfig::default();
        let ranked = rank_suspects(env.store, env.baselines(), t, &cfg);
        let mut out = ToolOutput::default();
        if ranked.is_empty() {
            out.text = format!(
                "no component departs from its normal within [{}, {}) s\n",
                t - cfg.before_s,
                t + cfg.after_s
            );
            return Ok(out);
        }
        let shown = ranked.len().min(env.config.max_rows).min(MAX_SUSPECTS);
        let text = &mut out.text;
        text.push_str("pod,node,service,score,evidence\n");
        for s in &ranked[..shown] {
            let _ = writeln!(
                text,
                "{},{},{},{:.1},{}",
                s.pod,
                s.node.as_deref().unwrap_or("-"),
                s.service,
                s.score,
                evidence(s)
            );
        }
        if let Some(m) = more_rows(ranked.len(), shown) {
            text.push_str(&m);
            text.push('\n');
        }
        for s in &ranked[..shown] {
            out.touch(&s.pod);
            if let Some(n) = &s.node {
                out.touch(n);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::short_kpi;

    #[test]
    fn short_kpi_names() {
        assert_eq!(
            short_kpi("istio_request_duration_milliseconds.grpc.200.0.0"),
            "request_duration_ms"
        );
        assert_eq!(short_kpi("container_cpu_usage_seconds"), "cpu_usage");
        assert_eq!(short_kpi("system.io.w_await"), "io.w_await");
        assert_eq!(short_kpi("container_fs_reads./dev/vda"), "fs_reads");
        assert_eq!(short_kpi("rr"), "rr");
    }
}
