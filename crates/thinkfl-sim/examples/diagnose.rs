//! Per fault: anomalous entry traces and fluctuating series of the faulty component, as the
//! paper's tools would see them; and the same at quiet times (false positives).
//! `cargo run --release -p thinkfl-sim --example diagnose -- [seed] [difficulty]`
#[path = "../tests/common/mod.rs"]
mod common;
use common::{Series, anomalous_roots, fault_components};
use thinkfl_sim::{SimConfig, simulate_dataset};

fn main() {
    let seed: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(7);
    let difficulty = std::env::args().nth(2).unwrap_or_else(|| "standard".into());
    let cfg = SimConfig {
        faults: 30,
        seed,
        difficulty: difficulty.parse().unwrap(),
        ..SimConfig::default()
    };
    let ds = simulate_dataset(&cfg).unwrap();
    let topo = ds.topology.clone().unwrap();
    let series = Series::new(&ds);
    let anomalous = anomalous_roots(&ds, 2.0);
    let quiet_rate = anomalous.len() as f64 / (cfg.duration_s as f64);
    println!(
        "{} anomalous roots overall ({:.4}/s)",
        anomalous.len(),
        quiet_rate
    );
    println!(
        "roots: {}",
        quantiles(
            ds.spans
                .iter()
                .filter(|s| s.is_root())
                .map(|s| s.duration)
                .collect()
        )
    );
    let by_trace = common::traces(&ds);
    for f in &ds.faults {
        let start = f.timestamp;
        let end = start + f.duration.unwrap();
        let n = anomalous
            .iter()
            .filter(|s| s.timestamp >= start * 1000 && s.timestamp < (end + 30) * 1000)
            .count();
        let roots = ds
            .spans
            .iter()
            .filter(|s| s.is_root() && s.timestamp >= start * 1000 && s.timestamp < end * 1000)
            .count();
        let (pods, ids) = fault_components(f, &topo);
        let touched: Vec<i64> = by_trace
            .values()
            .filter(|t| t.iter().any(|s| pods.contains(&s.cmdb_id)))
            .filter_map(|t| t.iter().find(|s| s.is_root()))
            .filter(|r| r.timestamp >= start * 1000 && r.timestamp < end * 1000)
            .map(|r| r.duration)
            .collect();
        let before: Vec<i64> = by_trace
            .values()
            .filter(|t| t.iter().any(|s| pods.contains(&s.cmdb_id)))
            .filter_map(|t| t.iter().find(|s| s.is_root()))
            .filter(|r| r.timestamp >= (start - 600) * 1000 && r.timestamp < (start - 60) * 1000)
            .map(|r| r.duration)
            .collect();
        println!(
            "   touched roots in fault: {}\n   before:                 {}",
            quantiles(touched),
            quantiles(before)
        );
        let fl = series.fluctuating(&ids, start + 30);
        let quiet = series.fluctuating(&ids, start - 420);
        println!(
            "{:<28} {:<7} {:<24} anomalous {n:>4}/{roots:<5} fluct {:>3} (quiet {:>3}) {:?}",
            f.display_type(),
            f.level.as_str(),
            f.cmdb_id,
            fl.len(),
            quiet.len(),
            fl.iter().map(|k| k.1.as_str()).take(6).collect::<Vec<_>>()
        );
    }
}

#[allow(dead_code)]
fn quantiles(mut v: Vec<i64>) -> String {
    v.sort_unstable();
    if v.is_empty() {
        return "-".into();
    }
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p) as usize] / 1000;
    format!(
        "p50 {} p90 {} p99 {} max {} ms (n {})",
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0),
        v.len()
    )
}
