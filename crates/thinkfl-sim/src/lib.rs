//! `thinkfl-sim`: a seeded simulator of a microservice system that writes telemetry in the
//! AIOps Challenge 2022 layout (`shared/DESIGN.md` section 4.1) with its ground truth, and the
//! training corpus of many such data sets ([`corpus`]).
//!
//! One [`SimConfig`] and one seed decide everything: the topology's placement, the fault
//! schedule, every request, every metric sample and every log line. The same seed gives
//! byte-identical output; independent generator streams (model, schedule, traffic, metrics, logs)
//! keep e.g. the traces unchanged when logs are turned off.
//!
//! # Model
//!
//! * **Topologies**: Online Boutique as deployed in AIOps 2022 (10 services plus `redis-cart`,
//!   pods `svc-0..2` and `svc2-0`, nodes `node-1..6`, span names, types and status codes of the
//!   real sample); a Train-Ticket-like system of 40 HTTP services with MongoDB stores; a layered
//!   synthetic system of N gRPC services (up to 5,000).
//! * **Load**: entry endpoints with a request mix (Online Boutique: the page mix of the real
//!   sample's frontend logs), a daily curve (busiest at 15:00 local time), minute-level wobble,
//!   Poisson arrivals and, as confounders, bursts.
//! * **Latency**: per-operation log-normal self time with a Pareto tail, per-pod speed, queueing
//!   for the container's CPU quota and for the node's cores as utilization grows (M/M/1-like),
//!   disk queueing for IO-bound work, memory pressure near limits, sidecar network time per
//!   message, sequential calls as the real handlers make them, client deadlines with propagation
//!   (`call_timeout_ms`), sidecar retries after a refused connection.
//! * **Metrics** every 60 s: container (CPU usage, user, system, CFS periods and throttling,
//!   load, memory usage, working set, RSS, cache, major faults, network bytes, packets and drops,
//!   sockets, threads, file descriptors, file-system reads, writes and usage, start time), node
//!   (CPU %, user, system, iowait, load, memory, disk IO operations, throughput, utilization,
//!   await, queue, disk space, network bytes and retransmissions), service (`rr`, `sr`, `mrt`,
//!   `count`) and istio (requests, duration, request and response bytes per pod and peer
//!   service, error-code series from their first error, TCP bytes to datastores).
//! * **Logs**: the real sample's templates per service (`log_<service>-service_application`),
//!   error lines under faults, and the callers' sidecar access-log lines of failed or slow calls
//!   (`log_<service>-envoy_proxy`, Istio's access-log format, kept only for `code >= 400` or
//!   `duration >= 1 s`).
//!
//! # What each fault does
//!
//! Container faults act on one pod (level `pod`) or on every pod of a service (level
//! `service`); node faults act on a node (level `node`) and through it on every pod placed
//! there. Severity (from the difficulty) scales every parameter. Slow or failed calls propagate
//! to every caller up to the root span.
//!
//! | fault | spans | metrics | logs |
//! | --- | --- | --- | --- |
//! | container CPU load | CPU-bound self time on the pod grows with CPU-quota queueing (about ×1.7 weak to ×15 strong) | `container_cpu_usage_seconds`, `_user_`, `_system_`, `cfs_throttled_periods`, `cfs_throttled_seconds`, `load_average_10s` up; node `system.cpu.pct_usage` up a little | — |
//! | container memory load | mild slowdown (reclaim, GC) near the limit | `container_memory_usage_MB`, `working_set_MB`, `rss`, `cache` up; `pgmajfault` up | — |
//! | container network delay | every message in or out of the pod delayed (5–600 ms): calls to and from it slow, the gap between client and server span grows | istio request duration on the pod's edges, `container_sockets`, service `mrt` | Python services: OpenTelemetry exporter tracebacks; callers' sidecar lines of calls over 1 s |
//! | container packet loss | TCP retransmission stalls of 200 ms·(2^k − 1) on calls crossing the pod, as in the real sample's 13 s span; deadline errors (`4`) | `transmit_packets_dropped`, transmit packets (retransmissions), node `tcp.retrans_segs`, istio duration and error series | tracebacks (Python), frontend `request error` on failures, callers' sidecar lines (`504 UT`, slow `200`) |
//! | container packet corruption | the same stalls (corrupted segments are dropped and resent) | `receive_packets_dropped`, retransmissions, istio duration | as loss |
//! | container packet duplication | a few µs per duplicate, a rare 200 ms stall: a weak latency effect | receive and transmit packets up by the duplicate rate | — |
//! | container read IO load | IO-bound work on the pod and its node slower; stress worker CPU on the pod | `container_fs_reads./dev/vda`, `fs_reads_MB`; node `system.io.r_s`, `rkb_s`, `util`, `await`, `avg_q_sz`, `cpu.iowait` | — |
//! | container write IO load | as read IO load | `container_fs_writes./dev/vda`, `fs_writes_MB`, `fs_usage_MB`; node `w_s`, `wkb_s`, `util`, `await` | — |
//! | container process kill | calls to the dead pod are refused (`14`/`503`, a few ms) until the readiness probe removes it (10 s); the sidecar retries 80 % on another pod; a whole service killed fails every call and the root span (`500`); slow cold start after the restart; repeated kills while the fault lasts | no container rows while down (gaps), `container_start_time_seconds` jumps, threads and memory restart low, istio `…14.0` series appear, service `rr`/`sr` drop | frontend `request error`, callers' sidecar lines `503 UF,URX`, start-up lines of the restarted process |
//! | node CPU fault | every pod on the node slower (host CPU queueing) | `system.cpu.pct_usage`, `user`, `system`, `load.1`, `load.5` | — |
//! | node CPU climb | as node CPU fault, ramping up over the window | the same, ramping | — |
//! | node memory | mild slowdown of the node's pods (page cache lost) | `system.mem.used`, `real.used`, `pct_usage` up; `free`, `usable` down | — |
//! | node disk read IO | IO-bound work on the node slower | `system.io.r_s`, `rkb_s`, `util`, `await`, `r_await`, `avg_q_sz`, `cpu.iowait` | — |
//! | node disk write IO | as read | `system.io.w_s`, `wkb_s`, `util`, `await`, `w_await` | — |
//! | node disk space | none | `system.disk.used`, `pct_usage` up, `free` down; a short write burst while the file is written | — |
//! | code exception (`code exception`) | one handler of the service (drawn by how often it runs) throws on 24–75 % of its requests, before one of its downstream calls or after them: the server span fails fast (`2`/`500`/`ERROR`), the caller's client span carries the error, critical callers fail up to the root | none on resources (failed requests end early); istio `…2.0`/`http.500` series, service `sr` | a stack trace per failed request in the service's language (Go panic, Java and Spring, Python traceback, Node, C#); callers' sidecar lines `500` |
//! | error response (`error response`) | every handler of the service answers 24–75 % of its requests with an error after doing its work (`13`/`500`/`ERROR`); propagation as above | as code exception (istio `…13.0`) | one error line per reply (`returning error response: code = Internal ...`) |
//!
//! The two code-level faults are not among the AIOps 2022 types: they are drawn only when
//! `fault_types` lists them (the [`corpus`] does), and their `failure_type` is written in English.
//!
//! # Messy traces at `hard`
//!
//! At `hard` (or with [`SimConfig::trace_noise`] set) the traces are exported as real pipelines
//! deliver them ([`TraceNoise`]): the exporter drops non-root spans (their children keep the
//! missing parent id, and the store takes them for roots); calls to non-critical operations
//! (e-mail, ads, notifications) are fire-and-forget, so that the callee's span starts after a
//! queueing delay, often after its parent ended, and its failure never reaches the caller; some
//! server spans outlive their caller (work after the answer); each node's clock is off by a few
//! tens of ms, shifting the timestamps of the spans its pods write; and some non-entry services
//! write no status code (empty, or always their OK code), so that their errors show only in their
//! logs and in their callers' spans. Metrics stay at one point a minute and logs unchanged. The
//! `easy` and `standard` levels write clean traces, byte for byte as before the knob existed.
//!
//! # Confounders
//!
//! At `standard` and `hard` difficulty (and with `confounders` on) the period also holds events
//! that look like faults but are not in the ground truth: load bursts (×1.5–3 traffic), container
//! CPU, network, disk and memory spikes (cron jobs, syncs, log rotation, cache warm-up), latency
//! hiccups of one pod (GC pauses), node CPU and disk spikes (daemons, backups), noisy pods with
//! more variable latency, redis persistence bursts; and, at `hard`, weak faults whose latency
//! effect is small.
//!
//! # Output order
//!
//! Spans and logs are written in time order (spans by start time in µs, logs by second); metrics
//! minute by minute (all series at one timestamp, then the next). Memory stays bounded by the
//! traces running across a minute boundary.

#![warn(missing_docs)]

pub mod config;
pub mod corpus;
mod engine;
pub mod excerpt;
mod faults;
mod logs;
mod model;
mod presets;
mod rand_util;
pub mod sink;

pub use config::{Difficulty, Preset, SimConfig, TraceNoise, parse_duration};
pub use engine::Stats;
pub use sink::{CountingSink, MemorySink, Sink};

use thinkfl_core::{Dataset, FaultCase, Topology};

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration field is out of range; the message names it.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// The sink failed to take a row.
    #[error("writing the simulated data failed: {0}")]
    Sink(String),
    /// The AIOps 2022 writer failed.
    #[error(transparent)]
    Store(#[from] thinkfl_store::Error),
}

/// What a run produced besides the rows: the ground truth, the topology and the counts.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The ground truth, in time order.
    pub faults: Vec<FaultCase>,
    /// The simulated system's topology (what `topology.json` holds).
    pub topology: Topology,
    /// Counts of what was written.
    pub stats: Stats,
}

/// The plan of a run, before any request is simulated: topology and fault schedule.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The fault schedule, in time order.
    pub faults: Vec<FaultCase>,
    /// The simulated system's topology.
    pub topology: Topology,
}

struct Prepared {
    model: model::Model,
    faults: Vec<faults::Injected>,
    conf: Vec<faults::Confounder>,
}

fn prepare(cfg: &SimConfig) -> Result<Prepared, Error> {
    cfg.validate()?;
    let mut rm = rand_util::stream(cfg.seed, rand_util::Stream::Model);
    let model = presets::build(cfg, &mut rm);
    let mut rs = rand_util::stream(cfg.seed, rand_util::Stream::Schedule);
    let faults = faults::schedule(cfg, &model, &mut rs);
    let conf = faults::confounders(cfg, &model, &mut rs);
    Ok(Prepared {
        model,
        faults,
        conf,
    })
}

/// The topology and the fault schedule of `cfg`, without simulating.
pub fn plan(cfg: &SimConfig) -> Result<Plan, Error> {
    let p = prepare(cfg)?;
    Ok(Plan {
        faults: p.faults.iter().map(|f| f.case.clone()).collect(),
        topology: p.model.topology(),
    })
}

/// Simulates the period of `cfg`, streaming rows into `sink`; `progress(done, total)` is called
/// after every simulated minute.
pub fn simulate<S: Sink>(
    cfg: &SimConfig,
    sink: &mut S,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Outcome, Error> {
    let p = prepare(cfg)?;
    let stats = {
        let mut e = engine::Engine::new(cfg, &p.model, &p.faults, &p.conf, sink);
        e.run(progress)?
    };
    Ok(Outcome {
        faults: p.faults.iter().map(|f| f.case.clone()).collect(),
        topology: p.model.topology(),
        stats,
    })
}

/// Simulates into an AIOps 2022 layout directory through the store's streaming writer, with
/// `groundtruth.csv` and `topology.json`.
pub fn simulate_to_dir(
    cfg: &SimConfig,
    dir: &std::path::Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Outcome, Error> {
    cfg.validate()?;
    let mut w = thinkfl_store::AiopsWriter::create(dir)?;
    let out = simulate(cfg, &mut w, progress)?;
    w.finish(&out.faults, Some(&out.topology))?;
    Ok(out)
}

/// Simulates into memory: for tests and small runs.
pub fn simulate_dataset(cfg: &SimConfig) -> Result<Dataset, Error> {
    let mut sink = MemorySink::default();
    let out = simulate(cfg, &mut sink, &mut |_, _| {})?;
    let mut ds = sink.dataset;
    ds.faults = out.faults;
    ds.topology = Some(out.topology);
    Ok(ds)
}
