//! Prints one metric series around a time: `--example series -- <seed> <faults> <cmdb_id> <kpi> <ts>`.
use thinkfl_sim::{SimConfig, simulate_dataset};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let cfg = SimConfig {
        seed: a[1].parse().unwrap(),
        faults: a[2].parse().unwrap(),
        ..SimConfig::default()
    };
    let ds = simulate_dataset(&cfg).unwrap();
    let ts: i64 = a[5].parse().unwrap();
    for f in &ds.faults {
        if (f.timestamp - ts).abs() < 1300 {
            println!("{f:?}");
        }
    }
    for m in ds
        .metrics
        .iter()
        .filter(|m| m.cmdb_id == a[3] && m.kpi_name == a[4] && (m.timestamp - ts).abs() <= 1200)
    {
        println!("{} {:+} {}", m.timestamp, m.timestamp - ts, m.value);
    }
}
