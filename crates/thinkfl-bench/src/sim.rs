//! Throughput of the simulator (`thinkfl bench sim`): spans generated and written per second.

use crate::Result;
use thinkfl_sim::{CountingSink, Preset, SimConfig, Stats, simulate, simulate_to_dir};

/// Throughput of the simulator (`thinkfl bench sim`, and the `bench_sim` example of this crate):
/// figures to print, never to assert.
#[derive(Debug, Clone, Copy)]
pub struct BenchReport {
    /// Spans per trace of the preset (from a short probe run).
    pub spans_per_trace: f64,
    /// The request rate that gives the asked number of spans.
    pub traces_per_minute: f64,
    /// Generation alone, rows counted but not written.
    pub generate: Stats,
    /// Seconds of generation alone.
    pub generate_s: f64,
    /// Generation and writing the AIOps 2022 layout.
    pub write: Stats,
    /// Seconds of generation and writing.
    pub write_s: f64,
    /// Bytes written.
    pub bytes: u64,
}

/// Simulates about `spans` spans of `preset` in two hours of simulated time, once into a counter
/// and once into `dir` (AIOps 2022 layout), timing both.
pub fn bench(
    preset: Preset,
    services: usize,
    spans: u64,
    logs: bool,
    dir: &std::path::Path,
) -> Result<BenchReport> {
    let probe = SimConfig {
        preset,
        services,
        duration_s: 600,
        warmup_s: 0,
        faults: 0,
        logs: false,
        ..SimConfig::default()
    };
    let mut c = CountingSink::default();
    let st = simulate(&probe, &mut c, &mut |_, _| {})?.stats;
    let spans_per_trace = st.spans as f64 / st.traces.max(1) as f64;
    let duration_s = 7_200;
    let cfg = SimConfig {
        traces_per_minute: (spans as f64 / spans_per_trace / (duration_s / 60) as f64).max(1.0),
        duration_s,
        faults: 20,
        logs,
        // A flat day, so that the span count meets the target.
        daily_amplitude: 0.0,
        ..probe
    };
    let mut c = CountingSink::default();
    let t = std::time::Instant::now();
    let generate = simulate(&cfg, &mut c, &mut |_, _| {})?.stats;
    let generate_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let write = simulate_to_dir(&cfg, dir, &mut |_, _| {})?.stats;
    let write_s = t.elapsed().as_secs_f64();
    Ok(BenchReport {
        spans_per_trace,
        traces_per_minute: cfg.traces_per_minute,
        generate,
        generate_s,
        write,
        write_s,
        bytes: dir_size(dir),
    })
}

fn dir_size(p: &std::path::Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                n += dir_size(&path);
            } else if let Ok(m) = e.metadata() {
                n += m.len();
            }
        }
    }
    n
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = &self.generate;
        let w = &self.write;
        writeln!(
            f,
            "{:.1} spans per trace, {:.0} traces/min over 2 h simulated",
            self.spans_per_trace, self.traces_per_minute
        )?;
        writeln!(
            f,
            "generate only:    {} spans, {} metric points, {} log lines in {:.2} s = {:.0} spans/s",
            g.spans,
            g.metrics,
            g.logs,
            self.generate_s,
            g.spans as f64 / self.generate_s
        )?;
        write!(
            f,
            "generate + write: {} spans, {} metric points, {} log lines, {:.0} MB in {:.2} s = {:.0} spans/s",
            w.spans,
            w.metrics,
            w.logs,
            self.bytes as f64 / 1e6,
            self.write_s,
            w.spans as f64 / self.write_s
        )
    }
}
