//! Spans generated and written per second (the same figures as `thinkfl bench sim`):
//! `cargo run --release -p thinkfl-bench --example bench_sim -- [spans] [preset] [services] [logs]`.
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let spans: u64 = a
        .get(1)
        .map(|s| s.parse().expect("spans"))
        .unwrap_or(5_000_000);
    let preset: thinkfl_sim::Preset = a
        .get(2)
        .map(|s| s.parse().expect("preset"))
        .unwrap_or(thinkfl_sim::Preset::OnlineBoutique);
    let services: usize = a
        .get(3)
        .map(|s| s.parse().expect("services"))
        .unwrap_or(100);
    let logs = a.get(4).is_some_and(|s| s == "logs");
    let dir = std::env::temp_dir().join(format!("thinkfl-bench-sim-{}", std::process::id()));
    let r = thinkfl_bench::sim::bench(preset, services, spans, logs, &dir).expect("bench");
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "bench sim: preset {preset}, logs {}",
        if logs { "on" } else { "off" }
    );
    println!("{r}");
}
