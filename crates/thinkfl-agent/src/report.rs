//! What a person reads about one episode: the question, the ranked root causes with their
//! reasons, the evidence path, the calls, the time and tokens (`thinkfl localize`, and the MCP
//! server's `localize` tool).

use thinkfl_core::{FaultCase, Trajectory};
use thinkfl_tools::Query;

/// The human-readable report of one episode.
pub fn summary(q: &Query, case: Option<&FaultCase>, t: &Trajectory, model: &str) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if let Some(c) = case {
        let _ = writeln!(
            s,
            "fault case {} at {}: truth {} {} ({})",
            q.case,
            c.timestamp,
            c.level,
            c.cmdb_id,
            c.display_type()
        );
    }
    let _ = writeln!(
        s,
        "query: trace {} entry span {} on {} ({})",
        q.trace_id, q.span_id, q.cmdb_id, q.operation_name
    );
    let _ = writeln!(s, "model: {model}");
    match &t.prediction {
        Some(list) => {
            let _ = writeln!(s, "ranked root causes:");
            for (i, rc) in list.iter().enumerate() {
                let mut parts = Vec::new();
                for (k, v) in [
                    ("node", &rc.node),
                    ("service", &rc.service),
                    ("pod", &rc.pod),
                ] {
                    if let Some(v) = v {
                        parts.push(format!("{k}={v}"));
                    }
                }
                let reason = rc
                    .reason
                    .as_deref()
                    .map(|r| format!("  -- {r}"))
                    .unwrap_or_default();
                let _ = writeln!(s, "  {}. {}{}", i + 1, parts.join(" "), reason);
            }
        }
        None => {
            let _ = writeln!(s, "no valid answer was printed");
        }
    }
    let _ = writeln!(
        s,
        "evidence path: {}",
        if t.path.is_empty() {
            "-".into()
        } else {
            t.path.join(" -> ")
        }
    );
    let valid = t.calls.iter().filter(|c| c.valid).count();
    let _ = writeln!(
        s,
        "tool calls: {} ({} valid){}",
        t.calls.len(),
        valid,
        if t.forced_final {
            ", forced final answer"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "time: model {:.0} ms, tools {:.1} ms, total {:.0} ms; tokens: prompt {} ({} cached), completion {}",
        t.timings.model_ms,
        t.timings.tool_ms,
        t.timings.total_ms,
        t.tokens.prompt,
        t.tokens.cached,
        t.tokens.completion
    );
    s
}
