//! What a data set holds, as `thinkfl inspect` prints it and the MCP server's `inspect` tool and
//! summary resource return it: time range; spans, traces, metric series and points, logs;
//! services, pods, nodes; fault cases by level and type.

use crate::TelemetryStore;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The report `inspect` prints.
pub fn render(store: &TelemetryStore, name: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "dataset   {name}");
    match store.time_range() {
        Some((a, b)) => {
            let _ = writeln!(o, "time      {} .. {} UTC ({} s)", utc(a), utc(b), b - a);
        }
        None => {
            let _ = writeln!(o, "time      (empty)");
        }
    }
    let errors = store.spans().filter(|s| !s.status_ok()).count();
    let _ = writeln!(
        o,
        "spans     {} in {} traces ({} roots, {} with an error status)",
        store.span_count(),
        store.trace_count(),
        store.roots().count(),
        errors
    );
    let _ = writeln!(
        o,
        "metrics   {} series, {} points",
        store.series_count(),
        store.point_count()
    );
    let _ = writeln!(
        o,
        "logs      {} from {} components",
        store.log_count(),
        store.log_components().len()
    );
    let t = store.topology();
    let source = if store.topology_derived() {
        "derived from the data"
    } else {
        "read from topology.json"
    };
    let _ = writeln!(
        o,
        "topology  {source}: {} calls, {} pods placed",
        t.calls.len(),
        t.placement.len()
    );
    let services: Vec<&str> = t.services.iter().map(|s| s.name.as_str()).collect();
    let _ = writeln!(o, "services  {}", listing(&services));
    let mut pods: Vec<&str> = t
        .services
        .iter()
        .flat_map(|s| s.pods.iter().map(String::as_str))
        .collect();
    pods.sort_unstable();
    let _ = writeln!(o, "pods      {}", listing(&pods));
    let nodes: Vec<&str> = t.nodes.iter().map(String::as_str).collect();
    let _ = writeln!(o, "nodes     {}", listing(&nodes));
    let mut by: BTreeMap<(String, String), usize> = BTreeMap::new();
    for f in store.faults() {
        *by.entry((f.level.to_string(), f.display_type()))
            .or_default() += 1;
    }
    let _ = writeln!(o, "faults    {}", store.faults().len());
    for ((level, kind), n) in by {
        let _ = writeln!(o, "  {level:<8} {kind:<32} {n}");
    }
    o
}

/// `3: a, b, c`, or `0`.
fn listing(names: &[&str]) -> String {
    if names.is_empty() {
        "0".to_string()
    } else {
        format!("{}: {}", names.len(), names.join(", "))
    }
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time in seconds (proleptic Gregorian, UTC).
pub fn utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1647747326), "2022-03-20 03:35:26");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(super::utc(-1), "1969-12-31 23:59:59");
    }
}
