//! Prints the slowest trace of each fault window: `--example slowest -- <fault-type slug> [seed]`.
use thinkfl_sim::{SimConfig, simulate_dataset};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let t = a
        .get(1)
        .map(|s| s.parse().expect("fault type"))
        .unwrap_or(thinkfl_core::FaultType::ContainerPacketCorruption);
    let seed = a.get(2).map(|s| s.parse().unwrap()).unwrap_or(1);
    let cfg = SimConfig {
        seed,
        faults: 2,
        fault_types: vec![t],
        ..SimConfig::default()
    };
    let ds = simulate_dataset(&cfg).unwrap();
    for f in &ds.faults {
        println!("{f:?}");
        let s = f.timestamp * 1000;
        let e = (f.timestamp + f.duration.unwrap()) * 1000;
        let root = ds
            .spans
            .iter()
            .filter(|x| x.is_root() && x.timestamp >= s && x.timestamp < e)
            .max_by_key(|x| x.duration)
            .unwrap();
        for x in ds.spans.iter().filter(|x| x.trace_id == root.trace_id) {
            println!(
                "{},{},{},{},{},{},{},{},{}",
                x.timestamp,
                x.cmdb_id,
                x.span_id,
                x.trace_id,
                x.duration,
                x.kind,
                x.status_code,
                x.operation_name,
                x.parent_span
            );
        }
        let logs: Vec<_> = ds
            .logs
            .iter()
            .filter(|l| {
                l.timestamp * 1000 >= s
                    && l.timestamp * 1000 < e
                    && (l.value.contains("error")
                        || l.value.contains("ERROR")
                        || l.value.contains("warning")
                        || l.value.contains("fail"))
            })
            .take(6)
            .collect();
        for l in logs {
            println!("LOG {} {} {:?}", l.timestamp, l.cmdb_id, l.value);
        }
    }
}
