//! The generator: minute by minute, draws user requests from the load model, walks each request's
//! call tree through the pods (load balancing, queueing for CPU, disk and memory, the network
//! with its faults, deadlines, retries, process liveness), writes spans and logs in time order,
//! and at the end of each minute writes the minute's container, node, service and istio metrics.
//!
//! Memory stays bounded: only spans and logs not yet written (those of traces still running at
//! the end of the minute) are kept.

mod metrics;
mod requests;

use crate::Error;
use crate::config::{SimConfig, TraceNoise};
use crate::faults::{self, Confounder, Injected, NodeState, PodState};
use crate::logs::{self, TraceCtx};
use crate::model::{Lang, Model, Status};
use crate::rand_util::{self, Stream, poisson, std_normal};
use crate::sink::Sink;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use thinkfl_core::{LogRecord, MetricPoint, MetricSource, Span};

/// CPU a request costs beyond its modelled self time (serialization, runtime, GC), as a factor.
const CPU_OVERHEAD: f64 = 2.5;
/// Linux minimum retransmission timeout, µs.
const RTO_US: f64 = 200_000.0;

/// What a run produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// User requests simulated (one trace each).
    pub traces: u64,
    /// Spans written (dropped ones excluded).
    pub spans: u64,
    /// Metric samples written.
    pub metrics: u64,
    /// Log lines written.
    pub logs: u64,
    /// Traces whose root span is not OK (or that got no answer at all).
    pub failed_traces: u64,
    /// Spans the exporter dropped (`TraceNoise::drop_span`); not in `spans`.
    pub dropped_spans: u64,
}

#[derive(Debug, Clone, Copy)]
struct SpanRec {
    ts_us: i64,
    dur_us: i64,
    trace: u128,
    span_id: u64,
    parent: u64,
    seq: u64,
    pod: u32,
    label: u32,
    status: Status,
}

#[derive(Debug)]
struct LogRec {
    ts: i64,
    seq: u64,
    pod: u32,
    /// An access-log line of the pod's sidecar rather than of the service.
    proxy: bool,
    text: String,
}

#[derive(Debug, Clone, Default)]
struct PodAcc {
    served: f64,
    busy_ms: f64,
    cpu_ms: f64,
    rx_b: f64,
    tx_b: f64,
    rx_p: f64,
    tx_p: f64,
    retrans: f64,
    tx_drop: f64,
    rx_drop: f64,
    io_ops: f64,
    writes: f64,
}

#[derive(Debug, Clone, Default)]
struct SvcAcc {
    count: f64,
    ok: f64,
    responded: f64,
    dur_ms: f64,
}

#[derive(Debug, Clone, Default)]
struct EdgeAcc {
    count: f64,
    dur_ms: f64,
    req_b: f64,
    resp_b: f64,
    err: [f64; 5],
    seen: [bool; 5],
    tcp: bool,
}

impl EdgeAcc {
    /// One call over the edge (either direction sees the same call): `code` is its error
    /// series, 0 for none.
    fn record(&mut self, tcp: bool, dur_ms: f64, req_b: f64, resp_b: f64, code: usize) {
        self.tcp = tcp;
        self.count += 1.0;
        self.dur_ms += dur_ms;
        self.req_b += req_b;
        self.resp_b += resp_b;
        if code > 0 {
            self.err[code] += 1.0;
            self.seen[code] = true;
        }
    }
}

pub(crate) struct Engine<'a, S: Sink> {
    cfg: &'a SimConfig,
    m: &'a Model,
    faults: &'a [Injected],
    conf: &'a [Confounder],
    kills: Vec<Vec<(i64, i64)>>,
    ps: Vec<PodState>,
    ns: Vec<NodeState>,
    /// Cores a pod needs per entry request per second.
    demand_per_rps: Vec<f64>,
    demand: Vec<f64>,
    entry_cum: Vec<f64>,
    second_deploy: Vec<bool>,
    rt: ChaCha8Rng,
    rl: ChaCha8Rng,
    rm: ChaCha8Rng,
    spans: Vec<SpanRec>,
    logs: Vec<LogRec>,
    seq: u64,
    log_counter: u64,
    pod_acc: Vec<PodAcc>,
    svc_acc: Vec<SvcAcc>,
    edges: BTreeMap<(u32, u32, u8), EdgeAcc>,
    mem_drift: Vec<f64>,
    fs_usage: Vec<f64>,
    start_time: Vec<i64>,
    disk_used_gb: Vec<f64>,
    load5: Vec<f64>,
    redis_changes: Vec<f64>,
    last_save: Vec<i64>,
    ctx: TraceCtx,
    scratch: Vec<String>,
    out_span: Span,
    out_metric: MetricPoint,
    out_log: LogRecord,
    sink: &'a mut S,
    pub stats: Stats,
    timeout_us: i64,
    /// Trace imperfections and their generator (a stream of its own).
    noise: TraceNoise,
    rx: ChaCha8Rng,
    /// Clock offset of each pod's node, µs.
    pod_skew_us: Vec<i64>,
    /// Per service: 0 writes status codes, 1 writes none, 2 always writes its OK code.
    statusless: Vec<u8>,
    /// Spans are written up to this long before the flush time, so that skewed timestamps of
    /// spans still to come never precede spans already written.
    flush_margin_us: i64,
}

impl<'a, S: Sink> Engine<'a, S> {
    pub fn new(
        cfg: &'a SimConfig,
        m: &'a Model,
        faults: &'a [Injected],
        conf: &'a [Confounder],
        sink: &'a mut S,
    ) -> Self {
        let np = m.pods.len();
        let mut kills = vec![Vec::new(); np];
        for f in faults {
            for &(p, k, u) in &f.kills {
                kills[p as usize].push((k, u));
            }
        }
        let visits = m.expected_visits();
        let mut svc_cpu = vec![0.0; m.svcs.len()];
        for (i, op) in m.ops.iter().enumerate() {
            svc_cpu[op.svc as usize] += visits[i]
                * op.self_ms
                * op.cpu_frac
                * (op.sigma * op.sigma / 2.0).exp()
                * CPU_OVERHEAD
                / 1000.0;
        }
        let demand_per_rps = m
            .pods
            .iter()
            .map(|p| {
                let s = &m.svcs[p.svc as usize];
                svc_cpu[p.svc as usize] / s.pods.len() as f64 * p.speed
            })
            .collect();
        let mut acc = 0.0;
        let entry_cum = m
            .endpoints
            .iter()
            .map(|e| {
                acc += e.weight;
                acc
            })
            .collect();
        let mut rm = rand_util::stream(cfg.seed, Stream::Metrics);
        let mem_drift = (0..np).map(|_| 1.0 + 0.05 * std_normal(&mut rm)).collect();
        let fs_usage = (0..np).map(|_| rm.random_range(0.05..40.0)).collect();
        let start_time = (0..np)
            .map(|_| cfg.start_epoch_s - rm.random_range(86_400..30 * 86_400))
            .collect();
        let disk_used_gb = m
            .nodes
            .iter()
            .map(|n| n.disk_total_gb * rm.random_range(0.25..0.55))
            .collect();
        let noise = cfg.trace_noise();
        let mut rx = rand_util::stream(cfg.seed, Stream::Export);
        let mut node_skew = vec![0i64; m.nodes.len()];
        if noise.clock_skew_ms > 0.0 {
            let max = TraceNoise::MAX_SKEW_MS;
            for s in &mut node_skew {
                let ms = (noise.clock_skew_ms * std_normal(&mut rx)).clamp(-max, max);
                *s = (ms * 1000.0).round() as i64;
            }
        }
        let pod_skew_us = m.pods.iter().map(|p| node_skew[p.node as usize]).collect();
        let mut statusless = vec![0u8; m.svcs.len()];
        if noise.statusless_services > 0.0 {
            // The entry services keep their status codes: a gateway always records them.
            let entry: std::collections::BTreeSet<u32> = m
                .endpoints
                .iter()
                .map(|e| m.ops[e.op as usize].svc)
                .collect();
            for (si, svc) in m.svcs.iter().enumerate() {
                if svc.lang == Lang::Store || entry.contains(&(si as u32)) {
                    continue;
                }
                if rx.random::<f64>() < noise.statusless_services {
                    statusless[si] = if rx.random::<f64>() < 0.5 { 1 } else { 2 };
                }
            }
        }
        let flush_margin_us = if noise.clock_skew_ms > 0.0 {
            (TraceNoise::MAX_SKEW_MS * 1000.0) as i64 + 1_000_000
        } else {
            0
        };
        Self {
            cfg,
            m,
            faults,
            conf,
            kills,
            ps: vec![PodState::default(); np],
            ns: vec![NodeState::default(); m.nodes.len()],
            demand_per_rps,
            demand: vec![0.0; np],
            entry_cum,
            second_deploy: m.pods.iter().map(|p| p.name.contains("2-")).collect(),
            rt: rand_util::stream(cfg.seed, Stream::Traffic),
            rl: rand_util::stream(cfg.seed, Stream::Logs),
            rm,
            spans: Vec::new(),
            logs: Vec::new(),
            seq: 0,
            log_counter: 0,
            pod_acc: vec![PodAcc::default(); np],
            svc_acc: vec![SvcAcc::default(); m.svcs.len()],
            edges: BTreeMap::new(),
            mem_drift,
            fs_usage,
            start_time,
            disk_used_gb,
            load5: vec![0.0; m.nodes.len()],
            redis_changes: vec![0.0; np],
            last_save: vec![cfg.start_epoch_s; np],
            ctx: TraceCtx::default(),
            scratch: Vec::new(),
            out_span: Span {
                timestamp: 0,
                cmdb_id: String::new(),
                span_id: String::new(),
                trace_id: String::new(),
                duration: 0,
                kind: String::new(),
                status_code: String::new(),
                operation_name: String::new(),
                parent_span: String::new(),
            },
            out_metric: MetricPoint {
                timestamp: 0,
                cmdb_id: String::new(),
                kpi_name: String::new(),
                value: 0.0,
                source: MetricSource::Node,
            },
            out_log: LogRecord {
                log_id: String::new(),
                timestamp: 0,
                cmdb_id: String::new(),
                log_name: String::new(),
                value: String::new(),
            },
            sink,
            stats: Stats::default(),
            timeout_us: (cfg.call_timeout_ms * 1000.0) as i64,
            noise,
            rx,
            pod_skew_us,
            statusless,
            flush_margin_us,
        }
    }

    /// Request rate (per minute) at time `t` seconds, before Poisson noise.
    fn rate(&mut self, t: f64) -> f64 {
        let local_h = ((t + self.cfg.utc_offset_h as f64 * 3600.0) / 3600.0).rem_euclid(24.0);
        // Busiest in the afternoon, quietest before dawn.
        let diurnal = 1.0
            + self.cfg.daily_amplitude / 2.0
                * (2.0 * std::f64::consts::PI * (local_h - 15.0) / 24.0).cos();
        let wobble = (0.04 * std_normal(&mut self.rt)).exp();
        self.cfg.traces_per_minute * diurnal * wobble * faults::burst_mult(self.conf, t)
    }

    fn refresh_state(&mut self, t: f64) {
        faults::state_at(
            self.m,
            self.faults,
            self.conf,
            &self.demand,
            t,
            &mut self.ps,
            &mut self.ns,
        );
    }

    /// Runs the whole period; `progress(minutes_done, minutes_total)` after each minute.
    pub fn run(&mut self, progress: &mut dyn FnMut(u64, u64)) -> Result<Stats, Error> {
        let minutes = self.cfg.minutes();
        let mut events: Vec<i64> = Vec::new();
        for f in self.faults {
            events.push(f.start_s * 1_000_000);
            events.push(f.end_s * 1_000_000);
            for &(_, k, u) in &f.kills {
                events.push(k);
                events.push(u);
                // Readiness: the dead pod leaves the endpoints 10 s after the kill.
                events.push(k + 10_000_000);
            }
        }
        for c in self.conf {
            events.push(c.start_s * 1_000_000);
            events.push(c.end_s * 1_000_000);
        }
        events.sort_unstable();
        events.dedup();
        let mut ev = 0;
        let mut times: Vec<i64> = Vec::new();
        for minute in 0..minutes {
            let m0 = self.cfg.start_epoch_s + minute * 60;
            let rate = self.rate(m0 as f64 + 30.0);
            for (d, per) in self.demand.iter_mut().zip(&self.demand_per_rps) {
                *d = per * rate / 60.0;
            }
            self.refresh_state(m0 as f64);
            let n = poisson(&mut self.rt, rate);
            times.clear();
            for _ in 0..n {
                times.push(m0 * 1_000_000 + self.rt.random_range(0..60_000_000));
            }
            times.sort_unstable();
            while ev < events.len() && events[ev] <= m0 * 1_000_000 {
                ev += 1;
            }
            for &t in &times {
                let mut changed = false;
                while ev < events.len() && events[ev] <= t {
                    ev += 1;
                    changed = true;
                }
                if changed {
                    self.refresh_state(t as f64 / 1e6);
                }
                self.trace(t);
            }
            self.refresh_state(m0 as f64 + 30.0);
            self.minute_logs(m0);
            self.emit_metrics(m0)?;
            self.flush((m0 + 60) * 1_000_000)?;
            progress((minute + 1) as u64, minutes as u64);
        }
        self.flush(i64::MAX)?;
        Ok(self.stats)
    }

    fn pick_entry(&mut self) -> u32 {
        let total = *self.entry_cum.last().expect("endpoints");
        let x = self.rt.random::<f64>() * total;
        let i = self
            .entry_cum
            .partition_point(|&c| c <= x)
            .min(self.entry_cum.len() - 1);
        self.m.endpoints[i].op
    }

    /// Logs that are not tied to one request: exporter tracebacks of Python services under a
    /// network fault, redis persistence, start-up lines after a kill.
    fn minute_logs(&mut self, m0: i64) {
        let m = self.m;
        let mut lines = Vec::new();
        for (pi, pod) in m.pods.iter().enumerate() {
            let svc = &m.svcs[pod.svc as usize];
            let s = &self.ps[pi];
            if svc.lang == Lang::Python && self.cfg.logs {
                let p_fail = (s.loss + s.corrupt + s.delay_ms / 800.0).min(1.0);
                if p_fail > 0.0 {
                    for _ in 0..12 {
                        if self.rl.random::<f64>() < p_fail * 0.5 {
                            lines.clear();
                            logs::exporter_traceback(&mut self.rl, &mut lines);
                            let ts = m0 + self.rl.random_range(0..60);
                            for l in lines.drain(..) {
                                self.push_log(ts, pi as u32, l);
                            }
                        }
                    }
                }
            }
            if svc.lang == Lang::Store
                && svc.name.starts_with("redis")
                && m0 - self.last_save[pi] >= 300
            {
                if self.redis_changes[pi] >= 100.0 {
                    lines.clear();
                    logs::redis_save(self.rl.random_range(1000..4000), &mut lines);
                    let ts = m0 + self.rl.random_range(0..60);
                    for l in lines.drain(..) {
                        self.push_log(ts, pi as u32, l);
                    }
                    self.pod_acc[pi].io_ops += 40.0;
                    self.redis_changes[pi] = 0.0;
                }
                self.last_save[pi] = m0;
            }
        }
        if !self.cfg.logs {
            self.logs.clear();
            return;
        }
        for f in self.faults {
            for &(p, _, up) in &f.kills {
                let up_s = up.div_euclid(1_000_000);
                if up_s >= m0 && up_s < m0 + 60 {
                    let svc = &m.svcs[m.pods[p as usize].svc as usize];
                    lines.clear();
                    logs::startup_lines(svc.lang, &svc.name, &mut lines);
                    for l in lines.drain(..) {
                        self.push_log(up_s, p, l);
                    }
                }
            }
        }
    }

    /// Writes the spans and logs that start before `before_us`, in time order (spans by the
    /// timestamps they are written with, their host's clock offset included).
    fn flush(&mut self, before_us: i64) -> Result<(), Error> {
        let skew = &self.pod_skew_us;
        self.spans
            .sort_unstable_by_key(|r| (r.ts_us + skew[r.pod as usize], r.seq));
        let horizon = before_us.saturating_sub(self.flush_margin_us);
        let cut = self
            .spans
            .partition_point(|r| r.ts_us + skew[r.pod as usize] < horizon);
        let m = self.m;
        let drop_p = self.noise.drop_span;
        for i in 0..cut {
            let r = self.spans[i];
            if drop_p > 0.0 && r.parent != 0 && unit(self.cfg.seed ^ r.span_id) < drop_p {
                self.stats.spans -= 1;
                self.stats.dropped_spans += 1;
                continue;
            }
            let label = &m.labels[r.label as usize];
            let o = &mut self.out_span;
            o.timestamp = (r.ts_us + self.pod_skew_us[r.pod as usize]).div_euclid(1000);
            o.cmdb_id.clear();
            o.cmdb_id.push_str(&m.pods[r.pod as usize].name);
            o.span_id.clear();
            rand_util::push_hex(&mut o.span_id, r.span_id as u128, 16);
            o.trace_id.clear();
            rand_util::push_hex(&mut o.trace_id, r.trace, 32);
            o.duration = r.dur_us;
            o.kind.clear();
            o.kind.push_str(label.kind);
            o.status_code.clear();
            match self.statusless[m.pods[r.pod as usize].svc as usize] {
                0 => o.status_code.push_str(label.status_str(r.status)),
                1 => {}
                _ => o.status_code.push_str(label.ok),
            }
            o.operation_name.clear();
            o.operation_name.push_str(&label.name);
            o.parent_span.clear();
            if r.parent != 0 {
                rand_util::push_hex(&mut o.parent_span, r.parent as u128, 16);
            }
            self.sink.span(&self.out_span)?;
        }
        self.spans.drain(..cut);
        let before_s = if before_us == i64::MAX {
            i64::MAX
        } else {
            before_us / 1_000_000
        };
        self.logs.sort_unstable_by_key(|r| (r.ts, r.seq));
        let cut = self.logs.partition_point(|r| r.ts < before_s);
        for r in self.logs.drain(..cut) {
            self.log_counter += 1;
            let o = &mut self.out_log;
            o.log_id = rand_util::log_id(self.cfg.seed, self.log_counter);
            o.timestamp = r.ts;
            o.cmdb_id.clear();
            o.cmdb_id.push_str(&m.pods[r.pod as usize].name);
            o.log_name.clear();
            let svc = &m.svcs[m.pods[r.pod as usize].svc as usize];
            if r.proxy {
                o.log_name.push_str("log_");
                o.log_name.push_str(&svc.name);
                o.log_name.push_str("-envoy_proxy");
            } else {
                o.log_name.push_str(&svc.log_name);
            }
            o.value = r.text;
            self.stats.logs += 1;
            self.sink.log(&self.out_log)?;
        }
        Ok(())
    }
}

/// A uniform number in [0, 1) from a 64-bit key.
fn unit(key: u64) -> f64 {
    (rand_util::splitmix(key) >> 11) as f64 / (1u64 << 53) as f64
}

/// Which code-level fault a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    Exception,
    ErrorResponse,
}

/// Rounds to 6 significant digits: the data set's precision, and smaller files.
fn round_sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return 0.0;
    }
    let mag = v.abs().log10().floor() as i32;
    let scale = 10f64.powi(5 - mag);
    (v * scale).round() / scale
}
