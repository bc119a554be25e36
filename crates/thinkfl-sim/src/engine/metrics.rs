//! The minute's metrics: containers (their usage also adds up on their nodes), nodes, services
//! and istio edges, each from the accumulators the requests of the minute filled, with
//! measurement noise. The order of the noise draws is the data's: same seed, same bytes.

use super::{EdgeAcc, Engine, PodAcc, round_sig};
use crate::Error;
use crate::faults;
use crate::model::Lang;
use crate::rand_util::std_normal;
use crate::sink::Sink;
use thinkfl_core::MetricSource;

/// What one container used in a minute, as its node adds it up.
#[derive(Debug, Clone, Copy)]
struct PodUsage {
    cpu: f64,
    mem_mb: f64,
    rx_bytes_s: f64,
    tx_bytes_s: f64,
    retrans_s: f64,
}

impl EdgeAcc {
    /// The accumulator for the next minute: counts cleared, what the edge has shown kept.
    fn emptied(&self) -> Self {
        EdgeAcc {
            seen: self.seen,
            tcp: self.tcp,
            ..EdgeAcc::default()
        }
    }
}

impl<S: Sink> Engine<'_, S> {
    fn emit(
        &mut self,
        ts: i64,
        source: MetricSource,
        cmdb: &str,
        kpi: &str,
        v: f64,
    ) -> Result<(), Error> {
        let o = &mut self.out_metric;
        o.timestamp = ts;
        o.source = source;
        o.cmdb_id.clear();
        o.cmdb_id.push_str(cmdb);
        o.kpi_name.clear();
        o.kpi_name.push_str(kpi);
        o.value = round_sig(v);
        self.stats.metrics += 1;
        self.sink.metric(&self.out_metric)
    }

    /// Multiplicative measurement noise: 1 + sigma·N(0, 1), the normal truncated at ±3.
    fn noise(&mut self, sigma: f64) -> f64 {
        (1.0 + sigma * std_normal(&mut self.rm).clamp(-3.0, 3.0)).max(0.02)
    }
    /// Writes the minute's metrics and resets the accumulators.
    pub(super) fn emit_metrics(&mut self, m0: i64) -> Result<(), Error> {
        let mut usage = Vec::with_capacity(self.m.pods.len());
        for pi in 0..self.m.pods.len() {
            usage.push(self.emit_container(m0, pi)?);
        }
        for ni in 0..self.m.nodes.len() {
            self.emit_node(m0, ni, &usage)?;
        }
        self.emit_services(m0)?;
        // Istio call metrics, per pod and peer service; a series exists from its first request.
        if self.cfg.istio_metrics {
            let mut edges = std::mem::take(&mut self.edges);
            let mut id = String::new();
            for (&key, e) in edges.iter_mut() {
                self.emit_edge(m0, key, e, &mut id)?;
            }
            self.edges = edges;
        }
        for a in &mut self.pod_acc {
            *a = PodAcc::default();
        }
        Ok(())
    }

    /// One container's metrics (none while it is down at scrape time), and its usage.
    fn emit_container(&mut self, m0: i64, pi: usize) -> Result<PodUsage, Error> {
        let m = self.m;
        let pod = &m.pods[pi];
        let svc = &m.svcs[pod.svc as usize];
        let a = self.pod_acc[pi].clone();
        let s = self.ps[pi].clone();
        let mid = (m0 + 30) * 1_000_000;
        // Restart bookkeeping; a pod dead at scrape time leaves a gap.
        for &(k, u) in &self.kills[pi] {
            if k < mid + 30_000_000 && u > m0 * 1_000_000 - 30_000_000 && u <= mid + 30_000_000 {
                self.start_time[pi] = u.div_euclid(1_000_000);
            }
        }
        let down = self.down(pi as u32, mid).is_some();
        let since_start = (m0 - self.start_time[pi]) as f64;
        let jitter = if pod.noisy { 0.25 } else { 0.07 };
        let cpu = (svc.cpu_idle * self.noise(0.3)
            + a.cpu_ms / 60_000.0 * self.noise(jitter)
            + s.cpu_extra * self.noise(0.03))
        .min(svc.cpu_limit);
        // Memory: a warm runtime grows toward its working set; a restart starts low.
        let warm = (since_start / 900.0).min(1.0);
        let mem = svc.mem_base_mb * self.mem_drift[pi] * (0.6 + 0.4 * warm) * self.noise(0.01)
            + s.mem_extra * self.noise(0.02)
            + a.served / 60.0 * 0.3;
        let net = s.net_mult;
        // Health probes, telemetry export and mesh control traffic flow even without
        // requests; netem duplicates, drops and corrupts them too.
        let bg_p = 180.0;
        let rx_p = (a.rx_p + bg_p) * net * (1.0 + 2.0 * s.dup);
        let tx_p = (a.tx_p + bg_p) * net * (1.0 + 2.0 * s.dup) + a.retrans;
        let tx_drop = tx_p * s.loss + a.tx_drop;
        let rx_drop = rx_p * s.corrupt + a.rx_drop;
        let rx_b = (a.rx_b + bg_p * 300.0) * net * (1.0 + s.dup);
        let tx_b = (a.tx_b + bg_p * 300.0) * net * (1.0 + s.dup);
        let usage = PodUsage {
            cpu,
            mem_mb: mem,
            rx_bytes_s: rx_b / 60.0,
            tx_bytes_s: tx_b / 60.0,
            retrans_s: a.retrans / 60.0,
        };
        self.fs_usage[pi] += (s.io_w_mb * 60.0 * 0.02).min(5_000.0) + a.writes * 1e-4;
        if down {
            return Ok(usage);
        }
        let cid = &pod.container_id;
        let u = cpu / svc.cpu_limit;
        let throttle = if u < 0.4 {
            0.0
        } else {
            1.0 / (1.0 + (-(u - 0.75) / 0.06).exp())
        };
        let periods = 10.0 * (1.0 - (-cpu * 60.0).exp());
        let inflight = a.busy_ms / 60_000.0;
        let sockets = (6.0 + inflight * 40.0 + a.served / 600.0) * self.noise(0.04);
        let threads = if since_start < 60.0 {
            svc.threads * 0.6
        } else {
            svc.threads
        } + (inflight * 4.0).round();
        let io_r = 0.05 * self.noise(0.5) + s.io_r * self.noise(0.05) + a.io_ops / 60.0 * 0.3;
        let io_w = 0.4 * self.noise(0.4) + s.io_w * self.noise(0.05) + a.io_ops / 60.0 * 0.7;
        let pgmaj = 0.02 * self.noise(0.8) + (s.mem_factor - 1.0) * 150.0 * self.noise(0.1);
        let vals: [(&str, f64); 28] = [
            ("container_cpu_usage_seconds", cpu),
            ("container_cpu_user_seconds", cpu * 0.72),
            ("container_cpu_system_seconds", cpu * 0.28),
            ("container_cpu_cfs_periods", periods),
            ("container_cpu_cfs_throttled_periods", periods * throttle),
            (
                "container_cpu_cfs_throttled_seconds",
                periods * throttle * 0.1 * u.min(1.0),
            ),
            (
                "container_cpu_load_average_10s",
                cpu * 1.4 * self.noise(0.1),
            ),
            ("container_memory_usage_MB", mem),
            ("container_memory_working_set_MB", mem * 0.92),
            ("container_memory_rss", mem * 0.8 * 1_048_576.0),
            ("container_memory_cache", mem * 0.12 * 1_048_576.0),
            ("container_memory_failures.container.pgmajfault", pgmaj),
            (
                "container_network_receive_MB.eth0",
                rx_b / 60.0 / 1_048_576.0 * self.noise(0.03),
            ),
            (
                "container_network_transmit_MB.eth0",
                tx_b / 60.0 / 1_048_576.0 * self.noise(0.03),
            ),
            (
                "container_network_receive_packets.eth0",
                rx_p / 60.0 * self.noise(0.03),
            ),
            (
                "container_network_transmit_packets.eth0",
                tx_p / 60.0 * self.noise(0.03),
            ),
            (
                "container_network_receive_packets_dropped.eth0",
                rx_drop / 60.0,
            ),
            (
                "container_network_transmit_packets_dropped.eth0",
                tx_drop / 60.0,
            ),
            ("container_sockets", sockets.round()),
            ("container_threads", threads),
            ("container_file_descriptors", (sockets + 12.0).round()),
            ("container_fs_reads./dev/vda", io_r),
            ("container_fs_writes./dev/vda", io_w),
            (
                "container_fs_reads_MB./dev/vda",
                io_r * 0.004 + s.io_r_mb * self.noise(0.05),
            ),
            (
                "container_fs_writes_MB./dev/vda",
                io_w * 0.008 + s.io_w_mb * self.noise(0.05),
            ),
            ("container_fs_usage_MB./dev/vda1", self.fs_usage[pi]),
            ("container_start_time_seconds", self.start_time[pi] as f64),
            ("container_spec_cpu_quota", svc.cpu_limit * 100_000.0),
        ];
        for (k, v) in vals {
            self.emit(m0, MetricSource::Container, cid, k, v)?;
        }
        Ok(usage)
    }

    /// One node's metrics: its own load plus its containers' `usage`.
    fn emit_node(&mut self, m0: i64, ni: usize, usage: &[PodUsage]) -> Result<(), Error> {
        let m = self.m;
        let node = &m.nodes[ni];
        let s = self.ns[ni].clone();
        let mut cpu = 0.35 * self.noise(0.15) + s.cpu_extra * self.noise(0.03);
        let mut mem = 5_500.0 * self.noise(0.005) + s.mem_extra;
        let (mut rx, mut tx, mut retrans) = (0.0, 0.0, 0.0);
        let mut io_r = 8.0 * self.noise(0.3) + s.io_r * self.noise(0.05);
        let mut io_w = 20.0 * self.noise(0.3) + s.io_w * self.noise(0.05);
        let mut rkb = 150.0 * self.noise(0.4) + s.io_r_kb * self.noise(0.05);
        let mut wkb = 600.0 * self.noise(0.4) + s.io_w_kb * self.noise(0.05);
        for &p in &node.pods {
            let ps = &self.ps[p as usize];
            let u = &usage[p as usize];
            cpu += u.cpu;
            mem += u.mem_mb;
            rx += u.rx_bytes_s;
            tx += u.tx_bytes_s;
            retrans += u.retrans_s;
            io_r += ps.io_r;
            io_w += ps.io_w;
            rkb += ps.io_r_mb * 1024.0;
            wkb += ps.io_w_mb * 1024.0;
        }
        let cpu_pct = (cpu / node.cores * 100.0).min(100.0);
        let io_util = ((io_r + io_w) / faults::NODE_IOPS).min(0.99);
        let iowait = io_util * 12.0 * self.noise(0.1);
        let load1 = cpu * self.noise(0.08) + io_util * 4.0;
        self.load5[ni] = if self.load5[ni] == 0.0 {
            load1
        } else {
            0.8 * self.load5[ni] + 0.2 * load1
        };
        let await_ms = 1.2 / (1.0 - io_util) * self.noise(0.1);
        self.disk_used_gb[ni] += 0.0005;
        let disk_used = self.disk_used_gb[ni] + s.disk_extra_gb;
        let mem_total = node.mem_total_mb;
        let mem_used = mem.min(mem_total * 0.99);
        let n = &node.name;
        let vals: [(&str, f64); 27] = [
            ("system.cpu.pct_usage", cpu_pct),
            ("system.cpu.user", cpu_pct * 0.7),
            ("system.cpu.system", cpu_pct * 0.25),
            ("system.cpu.iowait", iowait),
            ("system.load.1", load1),
            ("system.load.5", self.load5[ni]),
            ("system.mem.used", mem_used),
            ("system.mem.real.used", mem_used * 0.9),
            ("system.mem.free", mem_total - mem_used),
            ("system.mem.usable", (mem_total - mem_used) * 0.95),
            ("system.mem.pct_usage", mem_used / mem_total),
            ("system.io.r_s", io_r),
            ("system.io.w_s", io_w),
            ("system.io.rkb_s", rkb),
            ("system.io.wkb_s", wkb),
            ("system.io.util", io_util * 100.0),
            ("system.io.await", await_ms),
            (
                "system.io.r_await",
                await_ms * if s.io_r > 0.0 { 1.4 } else { 0.9 },
            ),
            (
                "system.io.w_await",
                await_ms * if s.io_w > 0.0 { 1.4 } else { 1.1 },
            ),
            (
                "system.io.avg_q_sz",
                io_util / (1.0 - io_util) * self.noise(0.1),
            ),
            ("system.disk.used", disk_used * 1_048_576.0),
            (
                "system.disk.free",
                (node.disk_total_gb - disk_used) * 1_048_576.0,
            ),
            (
                "system.disk.pct_usage",
                disk_used / node.disk_total_gb * 100.0,
            ),
            ("system.net.bytes_rcvd", rx * self.noise(0.02)),
            ("system.net.bytes_sent", tx * self.noise(0.02)),
            (
                "system.net.tcp.retrans_segs",
                retrans + 0.05 * self.noise(0.5),
            ),
            ("system.net.tcp.in_segs", rx / 1400.0 * self.noise(0.02)),
        ];
        for (k, v) in vals {
            self.emit(m0, MetricSource::Node, n, k, v)?;
        }
        Ok(())
    }

    /// Service metrics: rr (answered %), sr (succeeded %), mrt (ms), count.
    fn emit_services(&mut self, m0: i64) -> Result<(), Error> {
        let m = self.m;
        for (si, svc) in m.svcs.iter().enumerate() {
            let Some(name) = &svc.metric_name else {
                continue;
            };
            let a = std::mem::take(&mut self.svc_acc[si]);
            // A minute without requests has no row, as in the data set.
            if a.count == 0.0 {
                continue;
            }
            let (rr, sr, mrt) = (
                100.0 * a.responded / a.count,
                100.0 * a.ok / a.count,
                a.dur_ms / a.count,
            );
            let src = MetricSource::Service;
            self.emit(m0, src, name, "rr", rr)?;
            self.emit(m0, src, name, "sr", sr)?;
            self.emit(m0, src, name, "mrt", mrt)?;
            self.emit(m0, src, name, "count", a.count)?;
        }
        Ok(())
    }

    /// One istio edge `(pod, peer service, direction: 0 source, 1 destination)`; `id` is a
    /// buffer for the series id.
    fn emit_edge(
        &mut self,
        m0: i64,
        (pod, other, dir): (u32, u32, u8),
        e: &mut EdgeAcc,
        id: &mut String,
    ) -> Result<(), Error> {
        let m = self.m;
        let p = &m.pods[pod as usize];
        if self.down(pod, (m0 + 30) * 1_000_000).is_some() {
            *e = e.emptied();
            return Ok(());
        }
        let own = &m.svcs[p.svc as usize].name;
        let peer = &m.svcs[other as usize].name;
        id.clear();
        if dir == 0 {
            id.push_str(&format!("{}.source.{own}.{peer}", p.name));
        } else {
            id.push_str(&format!("{}.destination.{peer}.{own}", p.name));
        }
        let src = MetricSource::Istio;
        let callee_svc = if dir == 0 { other } else { p.svc };
        let http = m.svcs[callee_svc as usize].lang == Lang::JavaHttp;
        if e.tcp {
            self.emit(m0, src, id, "istio_tcp_sent_bytes.-", e.req_b / 60.0)?;
            self.emit(m0, src, id, "istio_tcp_received_bytes.-", e.resp_b / 60.0)?;
        } else {
            let ok_n = e.count - e.err.iter().sum::<f64>();
            let (req, dur) = if http {
                (
                    "istio_requests.http.200.",
                    "istio_request_duration_milliseconds.http.200.",
                )
            } else {
                (
                    "istio_requests.grpc.200.0.0",
                    "istio_request_duration_milliseconds.grpc.200.0.0",
                )
            };
            self.emit(m0, src, id, req, ok_n / 60.0)?;
            // Averages exist only for minutes with requests (a histogram rate over no
            // samples is undefined, so the scrape has no row).
            if e.count > 0.0 {
                let rb = if http {
                    "istio_request_bytes.http.200."
                } else {
                    "istio_request_bytes.grpc.200.0.0"
                };
                let sb = if http {
                    "istio_response_bytes.http.200."
                } else {
                    "istio_response_bytes.grpc.200.0.0"
                };
                let n = e.count;
                self.emit(m0, src, id, dur, e.dur_ms / n)?;
                self.emit(m0, src, id, rb, e.req_b / n)?;
                self.emit(m0, src, id, sb, e.resp_b / n)?;
            }
            for code in 1..5 {
                if e.seen[code] {
                    let k = match (http, code) {
                        (false, 1) => "istio_requests.grpc.200.14.0",
                        (false, 2) => "istio_requests.grpc.200.4.0",
                        (false, 3) => "istio_requests.grpc.200.2.0",
                        (false, _) => "istio_requests.grpc.200.13.0",
                        (true, 1) => "istio_requests.http.503.",
                        (true, 2) => "istio_requests.http.504.",
                        (true, _) => "istio_requests.http.500.",
                    };
                    self.emit(m0, src, id, k, e.err[code] / 60.0)?;
                }
            }
        }
        *e = e.emptied();
        Ok(())
    }
}
