//! Helpers shared by the integration tests: series lookup and the paper's 3σ test.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use thinkfl_core::{Dataset, FaultCase, Level, Span, Topology};

/// Metric series by (cmdb_id, kpi), sorted by time.
pub struct Series(pub HashMap<(String, String), Vec<(i64, f64)>>);

impl Series {
    pub fn new(ds: &Dataset) -> Self {
        let mut map: HashMap<(String, String), Vec<(i64, f64)>> = HashMap::new();
        for m in &ds.metrics {
            map.entry((m.cmdb_id.clone(), m.kpi_name.clone()))
                .or_default()
                .push((m.timestamp, m.value));
        }
        for v in map.values_mut() {
            v.sort_by_key(|p| p.0);
        }
        Series(map)
    }

    pub fn get(&self, cmdb: &str, kpi: &str) -> &[(i64, f64)] {
        self.0
            .get(&(cmdb.to_string(), kpi.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Whether the series fluctuates around `ts` as the paper's tool server decides: some value
    /// within ±600 s lies beyond mean ± 3·std of the values within ±1200 s (sample std; a
    /// constant baseline never fluctuates).
    pub fn fluctuates(&self, cmdb: &str, kpi: &str, ts: i64) -> bool {
        fluctuates(self.get(cmdb, kpi), ts)
    }

    /// Every (cmdb_id, kpi) of `cmdb_ids` that fluctuates around `ts`.
    pub fn fluctuating(&self, cmdb_ids: &[String], ts: i64) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .0
            .iter()
            .filter(|((c, _), _)| cmdb_ids.contains(c))
            .filter(|(_, v)| fluctuates(v, ts))
            .map(|(k, _)| k.clone())
            .collect();
        out.sort();
        out
    }
}

pub fn fluctuates(v: &[(i64, f64)], ts: i64) -> bool {
    let base: Vec<f64> = v
        .iter()
        .filter(|p| (ts - 1200..=ts + 1200).contains(&p.0))
        .map(|p| p.1)
        .collect();
    if base.len() < 3 {
        return false;
    }
    let n = base.len() as f64;
    let mean = base.iter().sum::<f64>() / n;
    let var = base.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let std = var.sqrt();
    if std == 0.0 || !std.is_finite() {
        return false;
    }
    v.iter()
        .filter(|p| (ts - 600..=ts + 600).contains(&p.0))
        .any(|p| (p.1 - mean).abs() > 3.0 * std)
}

/// Pods a fault acts on, and the metric ids (container ids, node) it should move.
pub fn fault_components(f: &FaultCase, topo: &Topology) -> (Vec<String>, Vec<String>) {
    let pods: Vec<String> = match f.level {
        Level::Pod => vec![f.cmdb_id.clone()],
        Level::Service => topo
            .service(&f.cmdb_id)
            .map(|s| s.pods.clone())
            .unwrap_or_default(),
        Level::Node => topo
            .pods_on(&f.cmdb_id)
            .into_iter()
            .map(String::from)
            .collect(),
    };
    let ids = match f.level {
        Level::Node => vec![f.cmdb_id.clone()],
        _ => pods
            .iter()
            .map(|p| format!("{}.{p}", topo.node_of(p).unwrap_or("?")))
            .collect(),
    };
    (pods, ids)
}

/// Root spans by trace, and every span by trace.
pub fn traces(ds: &Dataset) -> BTreeMap<&str, Vec<&Span>> {
    let mut t: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    for s in &ds.spans {
        t.entry(s.trace_id.as_str()).or_default().push(s);
    }
    t
}

/// Root spans that are anomalous: non-OK, or slower than `factor` times the 99th percentile of
/// root spans of the same operation outside every fault window (±5 min).
pub fn anomalous_roots(ds: &Dataset, factor: f64) -> Vec<&Span> {
    let quiet = |ts_ms: i64| {
        ds.faults.iter().all(|f| {
            let s = f.timestamp * 1000;
            let e = (f.timestamp + f.duration.unwrap_or(600)) * 1000;
            ts_ms < s - 300_000 || ts_ms > e + 300_000
        })
    };
    let mut normal: HashMap<&str, Vec<i64>> = HashMap::new();
    for s in ds
        .spans
        .iter()
        .filter(|s| s.is_root() && quiet(s.timestamp))
    {
        normal
            .entry(s.operation_name.as_str())
            .or_default()
            .push(s.duration);
    }
    let p99: HashMap<&str, i64> = normal
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_unstable();
            (k, v[(v.len() * 99 / 100).min(v.len() - 1)])
        })
        .collect();
    ds.spans
        .iter()
        .filter(|s| s.is_root())
        .filter(|s| {
            !s.status_ok()
                || p99
                    .get(s.operation_name.as_str())
                    .is_some_and(|&p| s.duration as f64 > factor * p as f64)
        })
        .collect()
}

/// FNV-1a 64 of bytes.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Hash of every file under `dir`, by relative path.
pub fn hash_dir(dir: &std::path::Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fnv(&std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// The metric signature of a fault type: kpis of which one must fluctuate on the faulty
/// component's series (container ids of its pods, istio ids for delay, the node for node faults).
pub fn signature(t: thinkfl_core::FaultType) -> &'static [&'static str] {
    use thinkfl_core::FaultType::*;
    match t {
        ContainerCpuLoad => &[
            "container_cpu_usage_seconds",
            "container_cpu_cfs_throttled_periods",
        ],
        ContainerMemoryLoad => &[
            "container_memory_usage_MB",
            "container_memory_working_set_MB",
        ],
        ContainerNetworkDelay => &[
            "istio_request_duration_milliseconds.grpc.200.0.0",
            "istio_request_duration_milliseconds.http.200.",
        ],
        ContainerPacketLoss => &["container_network_transmit_packets_dropped.eth0"],
        ContainerPacketCorruption => &["container_network_receive_packets_dropped.eth0"],
        ContainerPacketDuplication => &[
            "container_network_transmit_packets.eth0",
            "container_network_receive_packets.eth0",
        ],
        ContainerReadIoLoad => &[
            "container_fs_reads./dev/vda",
            "container_fs_reads_MB./dev/vda",
        ],
        ContainerWriteIoLoad => &[
            "container_fs_writes./dev/vda",
            "container_fs_writes_MB./dev/vda",
        ],
        ContainerProcessKill => &[
            "container_threads",
            "container_memory_usage_MB",
            "container_cpu_usage_seconds",
            "istio_requests.grpc.200.14.0",
            "istio_requests.http.503.",
        ],
        NodeCpuFault | NodeCpuClimb => &["system.cpu.pct_usage", "system.cpu.user"],
        NodeMemory => &["system.mem.used", "system.mem.pct_usage"],
        NodeDiskReadIo => &["system.io.r_s", "system.io.rkb_s"],
        NodeDiskWriteIo => &["system.io.w_s", "system.io.wkb_s"],
        NodeDiskSpace => &["system.disk.used", "system.disk.pct_usage"],
        // Code-level faults move no resource metric; the mesh counts their error replies.
        CodeException | ErrorResponse => &[
            "istio_requests.grpc.200.2.0",
            "istio_requests.grpc.200.13.0",
            "istio_requests.http.500.",
        ],
    }
}

/// The metric ids a fault's signature is read from: the node, the container ids of the pods,
/// and, for network delay and process kill, the istio ids of the pods.
pub fn signature_ids(f: &FaultCase, topo: &Topology, series: &Series) -> Vec<String> {
    let (pods, mut ids) = fault_components(f, topo);
    if f.level != Level::Node {
        for (c, _) in series.0.keys() {
            if pods.iter().any(|p| {
                c.starts_with(&format!("{p}.source."))
                    || c.starts_with(&format!("{p}.destination."))
            }) {
                ids.push(c.clone());
            }
        }
        ids.sort();
        ids.dedup();
    }
    ids
}

/// Which of `ids` show the signature of `t` around `ts` (tried at ts+30, +60, +90 s, as the
/// first anomalous traces of a fault come in).
pub fn signature_hits(
    series: &Series,
    t: thinkfl_core::FaultType,
    ids: &[String],
    ts: i64,
) -> Vec<String> {
    let kpis = signature(t);
    ids.iter()
        .filter(|id| {
            kpis.iter().any(|k| {
                [30, 60, 90]
                    .iter()
                    .any(|d| series.fluctuates(id, k, ts + d))
            })
        })
        .cloned()
        .collect()
}

/// Root spans that are anomalous: non-OK, or slower than `factor` times the median root
/// duration of their operation.
pub fn slow_or_failed_roots(ds: &Dataset, factor: f64) -> Vec<&Span> {
    let mut normal: HashMap<&str, Vec<i64>> = HashMap::new();
    for s in ds.spans.iter().filter(|s| s.is_root()) {
        normal
            .entry(s.operation_name.as_str())
            .or_default()
            .push(s.duration);
    }
    let med: HashMap<&str, i64> = normal
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_unstable();
            (k, v[v.len() / 2])
        })
        .collect();
    ds.spans
        .iter()
        .filter(|s| s.is_root())
        .filter(|s| {
            !s.status_ok() || s.duration as f64 > factor * med[s.operation_name.as_str()] as f64
        })
        .collect()
}

/// Whether series `cmdb`/`kpi` deviates by more than 3σ inside the fault window [start, end]
/// (plus a minute of scrape lag) from its normal behaviour, estimated robustly (median and
/// 1.4826·MAD) from the values within ±1200 s outside this window, so that other faults nearby
/// do not hide it.
pub fn deviates_from_normal(
    series: &Series,
    _ds: &Dataset,
    cmdb: &str,
    kpi: &str,
    start: i64,
    end: i64,
) -> bool {
    let v = series.get(cmdb, kpi);
    let inside = |t: i64| (start - 60..=end + 60).contains(&t);
    let mut base: Vec<f64> = v
        .iter()
        .filter(|p| (start - 1200..=end + 1200).contains(&p.0) && !inside(p.0))
        .map(|p| p.1)
        .collect();
    if base.len() < 5 {
        return false;
    }
    base.sort_by(f64::total_cmp);
    let med = base[base.len() / 2];
    let mut dev: Vec<f64> = base.iter().map(|x| (x - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let sigma = 1.4826 * dev[dev.len() / 2];
    v.iter()
        .filter(|p| inside(p.0))
        .any(|p| (p.1 - med).abs() > 3.0 * sigma.max(1e-9 * med.abs().max(1.0)))
}
