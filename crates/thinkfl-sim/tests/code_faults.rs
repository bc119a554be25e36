//! The code-level faults (as in RCAEval RE3): an exception thrown in one handler of a service,
//! and a service answering with error responses. Their evidence is in the logs and the spans of
//! the faulty pods and of their callers; resource metrics stay as they were.

mod common;

use common::{Series, fault_components};
use std::collections::HashMap;
use thinkfl_core::{Dataset, FaultCase, FaultType, LogRecord, Span};
use thinkfl_sim::{Difficulty, SimConfig, simulate_dataset};

fn run(t: FaultType, difficulty: Difficulty) -> Dataset {
    let cfg = SimConfig {
        seed: 300 + t as u64,
        // Four faults 45 minutes apart, as the per-type signature tests.
        duration_s: 600 + 4 * 2700,
        faults: 4,
        fault_types: vec![t],
        difficulty,
        confounders: false,
        // Clean traces: this test is about the fault; `messy.rs` covers the exporter.
        trace_noise: Some(thinkfl_sim::TraceNoise::NONE),
        ..SimConfig::default()
    };
    simulate_dataset(&cfg).unwrap()
}

/// A line of the service's own log (not its sidecar's) that reads as a stack trace or an error
/// reply of a handler.
fn code_error_line(l: &LogRecord, t: FaultType) -> bool {
    if !l.log_name.ends_with("-service_application") {
        return false;
    }
    let v = &l.value;
    match t {
        FaultType::CodeException => {
            v.contains("Exception")
                || v.contains("panic recovered")
                || v.contains("Error:")
                || v.contains("raceback")
        }
        _ => v.contains("returning error response") || v.contains("INTERNAL_SERVER_ERROR"),
    }
}

/// A frame of a stack trace: Java/C# `at ...`, Python `File "..."`, Go `file.go:N +0x..`.
fn frame_line(l: &LogRecord) -> bool {
    let v = l.value.trim_start();
    v.starts_with("at ") || v.contains("File \"") || v.contains(".go:") || v.contains("server.js:")
}

fn in_window(f: &FaultCase, ts_s: i64, slack: i64) -> bool {
    ts_s >= f.timestamp && ts_s < f.timestamp + f.duration.unwrap() + slack
}

fn check(t: FaultType, difficulty: Difficulty) {
    let ds = run(t, difficulty);
    let topo = ds.topology.clone().unwrap();
    assert_eq!(ds.faults.len(), 4);
    assert!(ds.faults.iter().all(|f| f.fault_type() == Some(t)));
    assert!(ds.faults.iter().all(|f| f.failure_type == t.data_name()));
    let by_id: HashMap<&str, &Span> = ds.spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let own_codes: &[&str] = if t == FaultType::CodeException {
        &["2", "500", "ERROR"]
    } else {
        &["13", "500", "ERROR"]
    };
    let mut roots_failed = 0;
    for f in &ds.faults {
        let (pods, container_ids) = fault_components(f, &topo);
        let on_target = |s: &str| pods.iter().any(|p| p == s);
        let before = |ts_s: i64| ts_s >= f.timestamp - 900 && ts_s < f.timestamp - 30;
        // Logs: error lines of the handler on the faulty pods, none before.
        let errors: Vec<&LogRecord> = ds
            .logs
            .iter()
            .filter(|l| on_target(&l.cmdb_id) && code_error_line(l, t))
            .collect();
        let during = errors
            .iter()
            .filter(|l| in_window(f, l.timestamp, 30))
            .count();
        assert!(during >= 5, "{t:?} {f:?}: {during} error lines on the pods");
        assert_eq!(
            errors.iter().filter(|l| before(l.timestamp)).count(),
            0,
            "{t:?} {f:?}: error lines before the fault"
        );
        let frames = ds
            .logs
            .iter()
            .filter(|l| on_target(&l.cmdb_id) && in_window(f, l.timestamp, 30) && frame_line(l))
            .count();
        if t == FaultType::CodeException {
            assert!(frames >= 5, "{t:?} {f:?}: {frames} stack frames");
        }
        // Spans: server spans of the faulty pods answer with the handler's error code.
        let server_errors: Vec<&Span> = ds
            .spans
            .iter()
            .filter(|s| on_target(&s.cmdb_id) && in_window(f, s.timestamp / 1000, 0))
            .filter(|s| {
                s.is_root()
                    || by_id
                        .get(s.parent_span.as_str())
                        .is_some_and(|p| p.cmdb_id != s.cmdb_id)
            })
            .filter(|s| !s.status_ok())
            .collect();
        assert!(
            server_errors.len() >= 5,
            "{t:?} {f:?}: {} failed server spans",
            server_errors.len()
        );
        assert!(
            server_errors
                .iter()
                .any(|s| own_codes.contains(&s.status_code.as_str())),
            "{t:?} {f:?}: codes {:?}",
            server_errors
                .iter()
                .map(|s| &s.status_code)
                .collect::<Vec<_>>()
        );
        // Callers: the client span of each failed call carries the error too (an entry
        // service's failed spans are the roots themselves).
        let called: Vec<&&Span> = server_errors.iter().filter(|s| !s.is_root()).collect();
        let callers_failed = called
            .iter()
            .filter_map(|s| by_id.get(s.parent_span.as_str()))
            .filter(|c| !on_target(&c.cmdb_id) && !c.status_ok())
            .count();
        assert!(
            callers_failed * 10 >= called.len() * 9,
            "{t:?} {f:?}: {callers_failed} of {} callers' client spans failed",
            called.len()
        );
        // Failing requests end early or on time: no slowdown of the entry spans.
        roots_failed += ds
            .spans
            .iter()
            .filter(|s| s.is_root() && !s.status_ok() && in_window(f, s.timestamp / 1000, 0))
            .count();
        // Resources: the pods' CPU, memory, disk and network do not step as a resource fault's
        // do (at most one series in five passes the paper's 3σ test by chance).
        let series = Series::new(&ds);
        let kpis = [
            "container_cpu_usage_seconds",
            "container_memory_usage_MB",
            "container_fs_writes./dev/vda",
            "container_fs_reads./dev/vda",
            "container_network_transmit_packets_dropped.eth0",
            "container_network_receive_packets_dropped.eth0",
            "container_threads",
        ];
        let mut checked = 0;
        let mut hits = Vec::new();
        for id in &container_ids {
            for k in kpis {
                if series.get(id, k).is_empty() {
                    continue;
                }
                checked += 1;
                if series.fluctuates(id, k, f.timestamp + 60) {
                    hits.push(format!("{id} {k}"));
                }
            }
        }
        assert!(checked > 0);
        assert!(
            hits.len() * 5 <= checked,
            "{t:?} {f:?}: resource series fluctuate: {hits:?}"
        );
    }
    // Failures reach the entry spans (a fault on a service called only as a non-critical
    // dependency, ads or e-mail, may not; four faults hit at least one other).
    assert!(
        roots_failed >= 5,
        "{t:?}: {roots_failed} failed entry spans"
    );
    // Outside the fault windows the handlers never fail on their own.
    for s in ds.spans.iter().filter(|s| !s.status_ok()) {
        assert!(
            ds.faults
                .iter()
                .any(|f| in_window(f, s.timestamp / 1000, 90)),
            "{t:?}: error span outside every fault window: {s:?}"
        );
    }
}

#[test]
fn code_exception_leaves_stack_traces_and_error_spans_up_the_callers() {
    check(FaultType::CodeException, Difficulty::Standard);
}

#[test]
fn error_response_leaves_error_lines_and_error_spans_up_the_callers() {
    check(FaultType::ErrorResponse, Difficulty::Standard);
}

#[test]
fn code_faults_at_hard_severity_are_still_visible() {
    check(FaultType::CodeException, Difficulty::Hard);
    check(FaultType::ErrorResponse, Difficulty::Hard);
}

#[test]
fn code_faults_on_every_preset() {
    use thinkfl_sim::Preset;
    for (preset, services) in [(Preset::TrainTicket, 0), (Preset::Synthetic, 60)] {
        let ds = simulate_dataset(&SimConfig {
            preset,
            services,
            seed: 5,
            duration_s: 3600,
            faults: 6,
            traces_per_minute: 60.0,
            fault_types: FaultType::CODE_LEVEL.to_vec(),
            confounders: false,
            ..SimConfig::default()
        })
        .unwrap();
        let topo = ds.topology.clone().unwrap();
        for f in &ds.faults {
            let t = f.fault_type().unwrap();
            assert!(t.is_code_fault());
            let (pods, _) = fault_components(f, &topo);
            let lines = ds
                .logs
                .iter()
                .filter(|l| pods.contains(&l.cmdb_id) && in_window(f, l.timestamp, 30))
                .filter(|l| code_error_line(l, t))
                .count();
            let spans = ds
                .spans
                .iter()
                .filter(|s| pods.contains(&s.cmdb_id) && in_window(f, s.timestamp / 1000, 0))
                .filter(|s| !s.status_ok())
                .count();
            assert!(
                lines > 0 && spans > 0,
                "{preset} {f:?}: {lines} lines, {spans} spans"
            );
        }
    }
}
