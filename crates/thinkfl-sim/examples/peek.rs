//! Prints a summary of a small simulated data set: `cargo run --release -p thinkfl-sim --example peek`.
use thinkfl_sim::{SimConfig, simulate_dataset};

fn main() {
    let preset = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "online-boutique".into());
    let cfg = SimConfig {
        preset: preset.parse().expect("preset"),
        duration_s: 3600,
        faults: 5,
        ..SimConfig::default()
    };
    let t = std::time::Instant::now();
    let ds = simulate_dataset(&cfg).expect("simulate");
    println!(
        "{} spans, {} metrics, {} logs in {:.2?}",
        ds.spans.len(),
        ds.metrics.len(),
        ds.logs.len(),
        t.elapsed()
    );
    for f in &ds.faults {
        println!("{f:?}");
    }
    let first = &ds.spans[0].trace_id;
    let mut tr: Vec<_> = ds.spans.iter().filter(|s| &s.trace_id == first).collect();
    tr.sort_by_key(|s| s.timestamp);
    for s in tr {
        println!(
            "{},{},{},{},{},{},{},{},{}",
            s.timestamp,
            s.cmdb_id,
            s.span_id,
            s.trace_id,
            s.duration,
            s.kind,
            s.status_code,
            s.operation_name,
            s.parent_span
        );
    }
    for l in ds.logs.iter().take(12) {
        println!(
            "{},{},{},{},{:?}",
            l.log_id, l.timestamp, l.cmdb_id, l.log_name, l.value
        );
    }
    for m in ds.metrics.iter().take(5) {
        println!("{m:?}");
    }
}
