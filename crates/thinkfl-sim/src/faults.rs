//! Fault schedule, confounders, and the state of every pod and node at a moment: what the
//! injected faults and confounders do to the system's physics (CPU, memory, disk, network,
//! process liveness). The trace, metric and log generators read this state.

use crate::config::SimConfig;
use crate::model::{Lang, Model};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use thinkfl_core::{FaultCase, FaultType, Level};

/// One injected fault.
#[derive(Debug, Clone)]
pub(crate) struct Injected {
    pub case: FaultCase,
    pub kind: FaultType,
    /// Pods whose container the fault acts on (container faults), or pods on the node.
    pub pods: Vec<u32>,
    /// A node fault with its node; `None` for faults of containers and code.
    pub node: Option<NodeFault>,
    pub start_s: i64,
    pub end_s: i64,
    /// In [0, 1]; scales every parameter.
    pub sev: f64,
    /// Process kill: (killed at µs, serving again at µs) per pod, in time order.
    pub kills: Vec<(u32, i64, i64)>,
    /// Code exception: the operation whose handler has the bug.
    pub buggy_op: Option<u32>,
}

/// The node faults of AIOps 2022, each with the index of the node it acts on: drawn together, so
/// that a node fault never lacks its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeFault {
    Cpu(u32),
    CpuClimb(u32),
    Memory(u32),
    DiskReadIo(u32),
    DiskWriteIo(u32),
    DiskSpace(u32),
}

impl NodeFault {
    /// The fault of type `kind` on node `node`; `None` when `kind` is not a node fault.
    pub(crate) fn of(kind: FaultType, node: u32) -> Option<Self> {
        Some(match kind {
            FaultType::NodeCpuFault => Self::Cpu(node),
            FaultType::NodeCpuClimb => Self::CpuClimb(node),
            FaultType::NodeMemory => Self::Memory(node),
            FaultType::NodeDiskReadIo => Self::DiskReadIo(node),
            FaultType::NodeDiskWriteIo => Self::DiskWriteIo(node),
            FaultType::NodeDiskSpace => Self::DiskSpace(node),
            _ => return None,
        })
    }

    /// Adds the fault's load to its node's state at time `t` (seconds), for a fault of severity
    /// `s` that started at `start_s` and ends at `end_s`.
    fn act(self, m: &Model, s: f64, (start_s, end_s): (i64, i64), t: f64, nodes: &mut [NodeState]) {
        match self {
            Self::Cpu(n) => {
                let n = n as usize;
                nodes[n].cpu_extra += m.nodes[n].cores * (0.55 + 0.43 * s);
            }
            Self::CpuClimb(n) => {
                let n = n as usize;
                let x = ((t - start_s as f64) / (end_s - start_s) as f64).clamp(0.0, 1.0);
                nodes[n].cpu_extra += m.nodes[n].cores * (0.1 + (0.45 + 0.45 * s) * x);
            }
            Self::Memory(n) => {
                let n = n as usize;
                nodes[n].mem_extra += m.nodes[n].mem_total_mb * (0.3 + 0.5 * s);
            }
            Self::DiskReadIo(n) => {
                let n = n as usize;
                nodes[n].io_r += 400.0 + 2200.0 * s;
                nodes[n].io_r_kb += 40_000.0 + 160_000.0 * s;
                nodes[n].cpu_extra += 0.3;
            }
            Self::DiskWriteIo(n) => {
                let n = n as usize;
                nodes[n].io_w += 400.0 + 2200.0 * s;
                nodes[n].io_w_kb += 40_000.0 + 160_000.0 * s;
                nodes[n].cpu_extra += 0.3;
            }
            Self::DiskSpace(n) => {
                let n = n as usize;
                let x = ((t - start_s as f64) / 60.0).clamp(0.0, 1.0);
                // fallocate fills the disk within the first minute.
                nodes[n].disk_extra_gb += m.nodes[n].disk_total_gb * (0.15 + 0.35 * s) * x;
                nodes[n].io_w += 150.0 * (1.0 - x) * s;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ConfKind {
    /// Traffic multiplied by `amp`.
    Burst,
    /// A cron job or GC storm: container CPU up by `amp` cores.
    PodCpu,
    /// A batch sync: container network volume up by factor `amp`.
    PodNet,
    /// Log rotation or a local dump: container disk writes up by `amp` ops/s.
    PodIo,
    /// A cache warm-up: container memory up by `amp` MB.
    PodMem,
    /// A stop-the-world pause or a slow dependency: latency of the pod times `amp`.
    Hiccup,
    /// A system daemon: node CPU up by `amp` cores.
    NodeCpu,
    /// A backup job: node disk reads and writes up by `amp` ops/s.
    NodeIo,
}

/// Something that looks like a fault somewhere but is not in the ground truth.
#[derive(Debug, Clone)]
pub(crate) struct Confounder {
    pub kind: ConfKind,
    pub pod: Option<u32>,
    pub node: Option<u32>,
    pub start_s: i64,
    pub end_s: i64,
    pub amp: f64,
}

/// What acts on one pod at a moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodState {
    /// Extra CPU burnt in the container (stress, cron), cores.
    pub cpu_extra: f64,
    /// Extra disk reads / writes by the container, ops per second, and MB per second.
    pub io_r: f64,
    pub io_w: f64,
    pub io_r_mb: f64,
    pub io_w_mb: f64,
    /// Extra memory, MB.
    pub mem_extra: f64,
    /// Network faults on the pod's interface.
    pub delay_ms: f64,
    pub loss: f64,
    pub corrupt: f64,
    pub dup: f64,
    /// Extra network volume factor (confounder).
    pub net_mult: f64,
    /// Multiplier of latency (hiccup confounder, warm-up after a restart).
    pub lat_mult: f64,
    /// Resulting slowdown of CPU-bound and IO-bound work, and of everything (memory pressure).
    pub cpu_factor: f64,
    pub io_factor: f64,
    pub mem_factor: f64,
    /// CPU the pod's requests need at the current rate, cores.
    pub demand: f64,
    /// Code exception: the operation that throws, and the share of its requests that do.
    pub exception: Option<(u32, f64)>,
    /// Error response: the share of the pod's requests answered with an error.
    pub error_response: f64,
    /// Stalls a request may hit, each as (probability per request, mean stall in µs): the CFS
    /// quota running out (the thread waits for the next 100 ms period), the host run queue,
    /// blocked disk writes (stdout logs, files), garbage collection near the memory limit.
    pub stalls: [(f64, f64); 4],
}

/// What acts on one node at a moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeState {
    pub cpu_extra: f64,
    pub mem_extra: f64,
    pub io_r: f64,
    pub io_w: f64,
    pub io_r_kb: f64,
    pub io_w_kb: f64,
    pub disk_extra_gb: f64,
    /// Resulting utilizations in [0, 1].
    pub cpu_util: f64,
    pub io_util: f64,
    pub mem_util: f64,
}

/// Disk capacity of a node, IO operations per second at full utilization.
pub(crate) const NODE_IOPS: f64 = 3000.0;

/// Draws the fault schedule: one fault per slot of the period, non-overlapping, types cycling
/// through a shuffled list so that every enabled type appears once `faults >= types`.
pub(crate) fn schedule(cfg: &SimConfig, m: &Model, rng: &mut ChaCha8Rng) -> Vec<Injected> {
    let mut out = Vec::new();
    if cfg.faults == 0 {
        return out;
    }
    let types = cfg.fault_types();
    let mut bag: Vec<FaultType> = Vec::new();
    let usable = cfg.duration_s - cfg.warmup_s;
    let slot = usable / cfg.faults as i64;
    let (sev_lo, sev_hi) = cfg.difficulty.severity_range();
    // A fault on a service that hardly gets requests has no symptoms to localize from: draw
    // container-fault targets among services with at least two requests per pod and minute.
    let visits = m.expected_visits();
    let mut per_svc = vec![0.0; m.svcs.len()];
    for (op, v) in m.ops.iter().zip(&visits) {
        per_svc[op.svc as usize] += v;
    }
    let busy = |s: usize| per_svc[s] * cfg.traces_per_minute / m.svcs[s].pods.len() as f64 >= 2.0;
    let mut faultable: Vec<u32> = (0..m.svcs.len() as u32)
        .filter(|&s| m.svcs[s as usize].faultable && busy(s as usize))
        .collect();
    if faultable.is_empty() {
        faultable = (0..m.svcs.len() as u32)
            .filter(|&s| m.svcs[s as usize].faultable)
            .collect();
    }
    for i in 0..cfg.faults {
        if bag.is_empty() {
            bag = types.clone();
            bag.shuffle(rng);
        }
        let kind = bag.pop().expect("refilled above");
        let room = slot - cfg.min_gap_s;
        let max_d = cfg.fault_max_s.min(room);
        let dur = rng.random_range(cfg.fault_min_s..=max_d.max(cfg.fault_min_s));
        let offset = rng.random_range(0..=(room - dur).max(0));
        let start_s = cfg.start_epoch_s + cfg.warmup_s + i as i64 * slot + offset;
        let end_s = start_s + dur;
        let sev = rng.random_range(sev_lo..=sev_hi);
        let (level, cmdb_id, pods, node) = if kind.is_node_fault() {
            let n = rng.random_range(0..m.nodes.len());
            (
                Level::Node,
                m.nodes[n].name.clone(),
                m.nodes[n].pods.clone(),
                NodeFault::of(kind, n as u32),
            )
        } else {
            let s = faultable[rng.random_range(0..faultable.len())] as usize;
            let svc = &m.svcs[s];
            if svc.pods.len() > 1 && rng.random::<f64>() < 0.5 {
                let p = svc.pods[rng.random_range(0..svc.pods.len())];
                (Level::Pod, m.pods[p as usize].name.clone(), vec![p], None)
            } else {
                (Level::Service, svc.name.clone(), svc.pods.clone(), None)
            }
        };
        let mut kills = Vec::new();
        if kind == FaultType::ContainerProcessKill {
            for &p in &pods {
                let lang = m.svcs[m.pods[p as usize].svc as usize].lang;
                let startup_s = match lang {
                    Lang::Go => 1.0,
                    Lang::Node | Lang::Python => 3.0,
                    Lang::CSharp => 6.0,
                    Lang::Java | Lang::JavaHttp => 20.0,
                    Lang::Store => 1.0,
                };
                let mut t = start_s as f64 + rng.random_range(0.0..3.0);
                while t < end_s as f64 {
                    // Kubernetes restarts the container after the back-off; the process then
                    // starts up before it serves again.
                    let down = rng.random_range(8.0..25.0) + startup_s;
                    let kill_us = (t * 1e6) as i64;
                    let up_us = ((t + down) * 1e6) as i64;
                    kills.push((p, kill_us, up_us));
                    t += down + rng.random_range(60.0..150.0);
                }
            }
            kills.sort_by_key(|k| (k.1, k.0));
        }
        // A bug sits in one handler of the service: its operations drawn by how often they run,
        // so that the faulty code path is exercised.
        let buggy_op = if kind == FaultType::CodeException {
            let svc = m.pods[pods[0] as usize].svc;
            let ops: Vec<(u32, f64)> = m
                .ops
                .iter()
                .enumerate()
                .filter(|(_, op)| op.svc == svc && !op.client_only)
                .map(|(i, _)| (i as u32, visits[i]))
                .collect();
            let total: f64 = ops.iter().map(|o| o.1).sum();
            let mut x = rng.random::<f64>() * total;
            let mut pick = None;
            for &(i, v) in &ops {
                pick = Some(i);
                if x < v {
                    break;
                }
                x -= v;
            }
            pick
        } else {
            None
        };
        out.push(Injected {
            case: FaultCase {
                timestamp: start_s,
                level,
                cmdb_id,
                failure_type: kind.data_name().to_string(),
                duration: Some(dur),
            },
            kind,
            pods,
            node,
            start_s,
            end_s,
            sev,
            kills,
            buggy_op,
        });
    }
    out
}

/// Draws the confounders of the period.
pub(crate) fn confounders(cfg: &SimConfig, m: &Model, rng: &mut ChaCha8Rng) -> Vec<Confounder> {
    if !cfg.confounders {
        return Vec::new();
    }
    let hours = cfg.duration_s as f64 / 3600.0;
    let n = crate::rand_util::poisson(rng, cfg.difficulty.confounders_per_hour() * hours);
    let mut out = Vec::new();
    for _ in 0..n {
        let start_s = cfg.start_epoch_s + rng.random_range(cfg.warmup_s / 2..cfg.duration_s - 60);
        let dur = rng.random_range(60..=300);
        let pod = Some(rng.random_range(0..m.pods.len()) as u32);
        let node = Some(rng.random_range(0..m.nodes.len()) as u32);
        let r: f64 = rng.random();
        let (kind, pod, node, amp) = if r < 0.2 {
            (ConfKind::Burst, None, None, rng.random_range(1.5..3.0))
        } else if r < 0.35 {
            (ConfKind::PodCpu, pod, None, rng.random_range(0.2..0.7))
        } else if r < 0.45 {
            (ConfKind::PodNet, pod, None, rng.random_range(2.0..6.0))
        } else if r < 0.55 {
            (ConfKind::PodIo, pod, None, rng.random_range(50.0..400.0))
        } else if r < 0.65 {
            (ConfKind::PodMem, pod, None, rng.random_range(60.0..250.0))
        } else if r < 0.8 {
            (ConfKind::Hiccup, pod, None, rng.random_range(1.5..4.0))
        } else if r < 0.9 {
            (ConfKind::NodeCpu, None, node, rng.random_range(1.0..3.0))
        } else {
            (ConfKind::NodeIo, None, node, rng.random_range(200.0..900.0))
        };
        out.push(Confounder {
            kind,
            pod,
            node,
            start_s,
            end_s: (start_s + dur).min(cfg.start_epoch_s + cfg.duration_s),
            amp,
        });
    }
    out.sort_by_key(|c| c.start_s);
    out
}

/// Share of the requests a code-level fault fails at severity `s`: 0.24 to 0.45 at `hard`,
/// 0.55 to 0.75 at `easy`.
fn code_fault_share(s: f64) -> f64 {
    0.15 + 0.6 * s
}

/// Whether `t` (s) lies in [start, end).
fn active(start: i64, end: i64, t: f64) -> bool {
    (start as f64) <= t && t < end as f64
}

/// The load multiplier of bursts at time `t`.
pub(crate) fn burst_mult(conf: &[Confounder], t: f64) -> f64 {
    conf.iter()
        .filter(|c| c.kind == ConfKind::Burst && active(c.start_s, c.end_s, t))
        .map(|c| c.amp)
        .fold(1.0, f64::max)
}

/// Computes every pod's and node's state at time `t` (seconds), given the CPU demand of each pod
/// at the current request rate (`demand`, cores).
pub(crate) fn state_at(
    m: &Model,
    faults: &[Injected],
    conf: &[Confounder],
    demand: &[f64],
    t: f64,
    pods: &mut [PodState],
    nodes: &mut [NodeState],
) {
    for (i, p) in pods.iter_mut().enumerate() {
        *p = PodState {
            net_mult: 1.0,
            lat_mult: 1.0,
            demand: demand[i],
            ..PodState::default()
        };
    }
    for n in nodes.iter_mut() {
        *n = NodeState::default();
    }
    for f in faults {
        let fault_on = active(f.start_s, f.end_s, t);
        // A restarted runtime is slow for a while after a kill (JIT, cold caches), also after
        // the fault window.
        if f.kind == FaultType::ContainerProcessKill {
            for &(p, _kill, up) in &f.kills {
                let since_up = t - up as f64 / 1e6;
                if (0.0..60.0).contains(&since_up) {
                    let lang = m.svcs[m.pods[p as usize].svc as usize].lang;
                    let cold = match lang {
                        Lang::Java | Lang::JavaHttp => 3.0,
                        Lang::CSharp => 2.0,
                        _ => 1.3,
                    };
                    let w = 1.0 + (cold - 1.0) * (1.0 - since_up / 60.0);
                    pods[p as usize].lat_mult *= w;
                    pods[p as usize].cpu_extra += 0.3 * (1.0 - since_up / 60.0);
                }
            }
        }
        if !fault_on {
            continue;
        }
        let s = f.sev;
        if let Some(nf) = f.node {
            nf.act(m, s, (f.start_s, f.end_s), t, nodes);
            continue;
        }
        match f.kind {
            FaultType::ContainerCpuLoad => {
                for &p in &f.pods {
                    let limit = m.svcs[m.pods[p as usize].svc as usize].cpu_limit;
                    // stress-ng workers take a share of the CPU quota.
                    pods[p as usize].cpu_extra += limit * (0.45 + 0.55 * s);
                }
            }
            FaultType::ContainerMemoryLoad => {
                for &p in &f.pods {
                    let svc = &m.svcs[m.pods[p as usize].svc as usize];
                    let room = svc.mem_limit_mb - svc.mem_base_mb;
                    pods[p as usize].mem_extra += room * (0.45 + 0.5 * s);
                }
            }
            FaultType::ContainerNetworkDelay => {
                for &p in &f.pods {
                    pods[p as usize].delay_ms += 5.0 + 595.0 * s * s;
                }
            }
            FaultType::ContainerPacketLoss => {
                for &p in &f.pods {
                    pods[p as usize].loss = 0.03 + 0.47 * s;
                }
            }
            FaultType::ContainerPacketCorruption => {
                for &p in &f.pods {
                    pods[p as usize].corrupt = 0.03 + 0.47 * s;
                }
            }
            FaultType::ContainerPacketDuplication => {
                for &p in &f.pods {
                    pods[p as usize].dup = 0.1 + 0.5 * s;
                }
            }
            FaultType::ContainerReadIoLoad => {
                for &p in &f.pods {
                    let ps = &mut pods[p as usize];
                    ps.io_r += 300.0 + 2500.0 * s;
                    ps.io_r_mb += 20.0 + 180.0 * s;
                    ps.cpu_extra += 0.1 + 0.3 * s;
                }
            }
            FaultType::ContainerWriteIoLoad => {
                for &p in &f.pods {
                    let ps = &mut pods[p as usize];
                    ps.io_w += 300.0 + 2500.0 * s;
                    ps.io_w_mb += 20.0 + 180.0 * s;
                    ps.cpu_extra += 0.1 + 0.3 * s;
                }
            }
            FaultType::ContainerProcessKill => {}
            // Node faults act through `f.node` above.
            FaultType::NodeCpuFault
            | FaultType::NodeCpuClimb
            | FaultType::NodeMemory
            | FaultType::NodeDiskReadIo
            | FaultType::NodeDiskWriteIo
            | FaultType::NodeDiskSpace => {}
            // Code-level faults leave the resources alone: the requests they fail end early.
            FaultType::CodeException => {
                if let Some(op) = f.buggy_op {
                    for &p in &f.pods {
                        pods[p as usize].exception = Some((op, code_fault_share(s)));
                    }
                }
            }
            FaultType::ErrorResponse => {
                for &p in &f.pods {
                    pods[p as usize].error_response = code_fault_share(s);
                }
            }
        }
    }
    for c in conf {
        if !active(c.start_s, c.end_s, t) {
            continue;
        }
        match (c.kind, c.pod, c.node) {
            (ConfKind::PodCpu, Some(p), _) => pods[p as usize].cpu_extra += c.amp,
            (ConfKind::PodNet, Some(p), _) => pods[p as usize].net_mult *= c.amp,
            (ConfKind::PodIo, Some(p), _) => {
                pods[p as usize].io_w += c.amp;
                pods[p as usize].io_w_mb += c.amp / 20.0;
            }
            (ConfKind::PodMem, Some(p), _) => pods[p as usize].mem_extra += c.amp,
            (ConfKind::Hiccup, Some(p), _) => {
                pods[p as usize].lat_mult *= c.amp;
                pods[p as usize].cpu_extra += 0.05;
            }
            (ConfKind::NodeCpu, _, Some(n)) => nodes[n as usize].cpu_extra += c.amp,
            (ConfKind::NodeIo, _, Some(n)) => {
                nodes[n as usize].io_r += c.amp / 2.0;
                nodes[n as usize].io_w += c.amp / 2.0;
                nodes[n as usize].io_r_kb += c.amp * 40.0;
                nodes[n as usize].io_w_kb += c.amp * 40.0;
            }
            _ => {}
        }
    }
    // Utilizations and the slowdowns they cause.
    for (ni, node) in m.nodes.iter().enumerate() {
        let mut cpu = 0.35 + nodes[ni].cpu_extra; // kubelet, system daemons
        let mut mem = 5_500.0 + nodes[ni].mem_extra;
        let mut iops = 15.0 + nodes[ni].io_r + nodes[ni].io_w;
        for &p in &node.pods {
            let ps = &pods[p as usize];
            let svc = &m.svcs[m.pods[p as usize].svc as usize];
            cpu += svc.cpu_idle + ps.demand + ps.cpu_extra;
            mem += svc.mem_base_mb + ps.mem_extra;
            iops += ps.io_r + ps.io_w;
        }
        let ns = &mut nodes[ni];
        ns.cpu_util = (cpu / node.cores).min(1.0);
        ns.mem_util = (mem / node.mem_total_mb).min(0.99);
        ns.io_util = (iops / NODE_IOPS).min(0.99);
    }
    for (pi, pod) in m.pods.iter().enumerate() {
        let svc = &m.svcs[pod.svc as usize];
        let ns = &nodes[pod.node as usize];
        let ps = &mut pods[pi];
        let u = ((ps.demand + ps.cpu_extra) / svc.cpu_limit).min(0.97);
        // Queueing for the container's CPU quota (M/M/1-like), then for the node's cores.
        let quota = 1.0 + 0.5 * u / (1.0 - u);
        let nu = ns.cpu_util.min(0.97);
        let host = 1.0 + 0.6 * (nu - 0.5).max(0.0) / (1.0 - nu);
        ps.cpu_factor = quota * host;
        ps.io_factor = 1.0 / (1.0 - ns.io_util) * if ps.io_r + ps.io_w > 100.0 { 1.5 } else { 1.0 };
        let mem_frac = (svc.mem_base_mb + ps.mem_extra) / svc.mem_limit_mb;
        // Reclaim and GC pressure near the limit; page-cache loss when the node runs out.
        ps.mem_factor =
            1.0 + 2.5 * (mem_frac - 0.75).max(0.0) + 1.5 * (ns.mem_util - 0.85).max(0.0);
        let throttled = if u < 0.4 {
            0.0
        } else {
            1.0 / (1.0 + (-(u - 0.75) / 0.06).exp())
        };
        let host = ((nu - 0.8) / 0.2).clamp(0.0, 1.0);
        let disk = ((ns.io_util - 0.5) * 2.0).clamp(0.0, 1.0);
        let own_io = if ps.io_r + ps.io_w > 100.0 { 0.5 } else { 0.0 };
        let gc = ((mem_frac - 0.85) * 4.0).clamp(0.0, 1.0);
        ps.stalls = [
            (throttled, 50_000.0 * (0.3 + 0.7 * u)),
            (host * 0.8, 5_000.0 + 60_000.0 * host),
            (
                (disk * 0.3 + own_io * 0.3).min(1.0),
                10_000.0 + 40_000.0 * ns.io_util,
            ),
            (gc * 0.3, 50_000.0),
        ];
    }
}
