//! `thinkfl incidents DATASET`: the fault cases of a data set with their queries, the anomalous
//! traces (entry span slower than a factor of its operation's normal duration, or failed) that
//! start in each case's window.

use clap::Args as ClapArgs;
use std::fmt::Write as _;
use std::path::PathBuf;
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_tools::{AnomalyConfig, AnomalyDetector, case_window, queries_of_case};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// A data set in the AIOps 2022 layout.
    pub dataset: PathBuf,
    /// An entry span is slow above this factor of its operation's median duration.
    #[arg(long, default_value_t = AnomalyConfig::DEFAULT_SLOW_FACTOR)]
    pub slow_factor: f64,
    /// Window length (s) of a case whose duration the data does not give.
    #[arg(long, default_value_t = AnomalyConfig::DEFAULT_CASE_DURATION_S)]
    pub case_duration: i64,
    /// Threshold (ms) for operations with too few entry spans for a median.
    #[arg(long, default_value_t = AnomalyConfig::DEFAULT_FALLBACK_SLOW_MS)]
    pub fallback_slow_ms: f64,
    /// Queries listed per case (all are counted).
    #[arg(long, default_value_t = 3)]
    pub show: usize,
    /// Print JSON lines (one per case, every query) instead of text.
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub lenient: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = AnomalyConfig {
        slow_factor: args.slow_factor,
        default_case_duration_s: args.case_duration,
        fallback_slow_ms: args.fallback_slow_ms,
        ..Default::default()
    };
    cfg.validate()?;
    let (store, report) = super::open_store(
        &args.dataset,
        &LoadOptions {
            lenient: args.lenient,
        },
    )?;
    if report.skipped_rows > 0 {
        eprintln!("skipped {} malformed rows", report.skipped_rows);
    }
    print!("{}", render(&store, &cfg, args.show, args.json));
    Ok(())
}

/// What `incidents` prints.
pub fn render(store: &TelemetryStore, cfg: &AnomalyConfig, show: usize, json: bool) -> String {
    let det = AnomalyDetector::new(store, cfg.clone());
    let mut o = String::new();
    if !json {
        let _ = writeln!(o, "{} fault cases", store.faults().len());
    }
    for (i, case) in store.faults().iter().enumerate() {
        let w = case_window(case, cfg.default_case_duration_s);
        let queries = queries_of_case(&det, store, i);
        if json {
            let qs: Vec<serde_json::Value> = queries
                .iter()
                .map(|q| {
                    serde_json::json!({
                        "trace_id": q.trace_id, "span_id": q.span_id, "timestamp_ms": q.timestamp_ms,
                        "cmdb_id": q.cmdb_id, "operation_name": q.operation_name,
                    })
                })
                .collect();
            let line = serde_json::json!({
                "case": i, "timestamp": case.timestamp, "level": case.level.as_str(), "cmdb_id": case.cmdb_id,
                "failure_type": case.display_type(), "window": [w.start_s, w.end_s], "queries": qs,
            });
            let _ = writeln!(o, "{line}");
            continue;
        }
        let _ = writeln!(
            o,
            "case {i}: {} {} {} ({}), window [{}, {}) s: {} anomalous traces",
            case.timestamp,
            case.level,
            case.cmdb_id,
            case.display_type(),
            w.start_s,
            w.end_s,
            queries.len()
        );
        for q in queries.iter().take(show) {
            let dur = store
                .span_by_id(&q.span_id)
                .map(|s| s.duration() as f64 / 1000.0)
                .unwrap_or(f64::NAN);
            let _ = writeln!(
                o,
                "  {} {} {} {} {:.1} ms (trace {})",
                q.timestamp_ms, q.span_id, q.cmdb_id, q.operation_name, dur, q.trace_id
            );
        }
        if queries.len() > show {
            let _ = writeln!(o, "  ... {} more", queries.len() - show);
        }
    }
    o
}
