//! One request's walk through the system: load balancing over live pods, the network between
//! pods with its faults, self time under CPU, disk and memory pressure, the call tree with its
//! deadlines, retries and fire-and-forget children, and the spans, logs and istio edges it
//! leaves.

use super::{CPU_OVERHEAD, EdgeAcc, Engine, FaultKind, LogRec, RTO_US, SpanRec};
use crate::logs::{self, TraceCtx};
use crate::model::{Lang, LogKind, Op, Status};
use crate::rand_util::{lognormal1, pareto};
use crate::sink::Sink;
use rand::{Rng, RngCore};

impl<S: Sink> Engine<'_, S> {
    /// `Some(still_receiving)` when pod `p` is down at `t`.
    pub(super) fn down(&self, p: u32, t: i64) -> Option<bool> {
        for &(k, u) in &self.kills[p as usize] {
            if k <= t && t < u {
                return Some(t - k < 10_000_000);
            }
        }
        None
    }

    /// Load balancing with liveness: a dead pod still in the endpoints refuses the connection and
    /// the sidecar retries on another pod; a dead pod out of the endpoints gets no traffic.
    /// Returns the pod and the extra latency, or the latency of a failed attempt.
    fn pick_pod(&mut self, svc: u32, t: i64) -> Result<(u32, i64), i64> {
        let m = self.m;
        let pods = &m.svcs[svc as usize].pods;
        let first = pods[self.rt.random_range(0..pods.len())];
        match self.down(first, t) {
            None => Ok((first, 0)),
            Some(receiving) => {
                let live: Vec<u32> = pods
                    .iter()
                    .copied()
                    .filter(|&p| self.down(p, t).is_none())
                    .collect();
                if live.is_empty() {
                    return Err(self.rt.random_range(500..3_000));
                }
                let alt = live[self.rt.random_range(0..live.len())];
                if !receiving {
                    Ok((alt, 0))
                } else if self.rt.random::<f64>() < 0.8 {
                    Ok((alt, self.rt.random_range(1_000..5_000)))
                } else {
                    Err(self.rt.random_range(500..3_000))
                }
            }
        }
    }

    /// One-way network time between two pods for `kb` kilobytes, µs, with the faults of both
    /// pods' interfaces: netem delay, TCP retransmission stalls after loss or corruption
    /// (exponential back-off from a 200 ms RTO), duplicates.
    fn net_us(&mut self, from: u32, to: u32, kb: f64) -> i64 {
        let mut t = 300.0 * lognormal1(&mut self.rt, 0.4) + kb;
        let packets = 1.0 + (kb / 1.4).floor();
        self.pod_acc[from as usize].tx_b += kb * 1024.0;
        self.pod_acc[from as usize].tx_p += packets;
        self.pod_acc[to as usize].rx_b += kb * 1024.0;
        self.pod_acc[to as usize].rx_p += packets;
        for (i, p) in [from, to].into_iter().enumerate() {
            if i == 1 && p == from {
                break;
            }
            let s = &self.ps[p as usize];
            let (delay, loss, corrupt, dup) = (s.delay_ms, s.loss, s.corrupt, s.dup);
            if delay > 0.0 {
                t += delay * 1000.0 * self.rt.random_range(0.9..1.1);
            }
            let lost = 1.0 - (1.0 - loss) * (1.0 - corrupt);
            if lost > 0.0 {
                let mut k = 0;
                while k < 7 && self.rt.random::<f64>() < lost {
                    k += 1;
                }
                if k > 0 {
                    let stall: f64 = (0..k).map(|j| RTO_US * f64::from(1 << j)).sum();
                    t += stall * self.rt.random_range(1.0..1.1);
                    let a = &mut self.pod_acc[p as usize];
                    a.retrans += k as f64;
                    if corrupt > loss {
                        a.rx_drop += k as f64;
                    } else {
                        a.tx_drop += k as f64;
                    }
                    self.pod_acc[from as usize].tx_p += k as f64;
                }
            }
            if dup > 0.0 && self.rt.random::<f64>() < dup {
                t += self.rt.random_range(30.0..150.0);
                if self.rt.random::<f64>() < 0.02 {
                    // Reordering makes the sender wait for a timeout now and then.
                    t += RTO_US;
                }
            }
        }
        t as i64
    }

    /// Self time of one execution of `op` on `pod`, µs, and the CPU it burns, ms.
    fn self_time(&mut self, op: &Op, pod: u32) -> (f64, f64) {
        let p = &self.m.pods[pod as usize];
        let s = &self.ps[pod as usize];
        let sigma = if p.noisy { op.sigma * 1.7 } else { op.sigma };
        let mut base = op.self_ms * p.speed * lognormal1(&mut self.rt, sigma);
        let tail_p = if p.noisy { 0.012 } else { 0.004 };
        if self.rt.random::<f64>() < tail_p {
            base *= pareto(&mut self.rt, 2.0, 1.3).min(60.0);
        }
        let rest = (1.0 - op.cpu_frac - op.io_frac).max(0.0);
        let slow = (op.cpu_frac * s.cpu_factor + op.io_frac * s.io_factor + rest)
            * s.mem_factor
            * s.lat_mult;
        let stalls = s.stalls;
        let mut stall_us = 0.0;
        for (p, mean) in stalls {
            if p > 0.0 && self.rt.random::<f64>() < p {
                stall_us -= mean * self.rt.random::<f64>().max(1e-12).ln();
            }
        }
        (
            base * slow * 1000.0 + stall_us,
            base * op.cpu_frac * CPU_OVERHEAD,
        )
    }

    pub(super) fn trace(&mut self, t0: i64) {
        self.stats.traces += 1;
        self.ctx = TraceCtx::default();
        let entry = self.pick_entry();
        let trace = ((self.rt.next_u64() as u128) << 64) | self.rt.next_u64() as u128;
        let svc = self.m.ops[entry as usize].svc;
        let acc = &mut self.svc_acc[svc as usize];
        acc.count += 1.0;
        match self.pick_pod(svc, t0) {
            Ok((pod, extra)) => {
                let deadline = t0 + extra + 3 * self.timeout_us;
                let (end, st) = self.serve(entry, pod, t0 + extra, 0, deadline, trace);
                let acc = &mut self.svc_acc[svc as usize];
                acc.dur_ms += (end - t0) as f64 / 1000.0;
                if st == Status::Ok {
                    acc.ok += 1.0;
                } else {
                    self.stats.failed_traces += 1;
                }
                if st != Status::Deadline {
                    acc.responded += 1.0;
                }
            }
            Err(_) => self.stats.failed_traces += 1,
        }
    }

    fn push_span(&mut self, rec: SpanRec) -> usize {
        self.spans.push(rec);
        self.spans.len() - 1
    }

    /// Serves `op` on `pod` from `start` (µs); returns the end and the status.
    fn serve(
        &mut self,
        op_id: u32,
        pod: u32,
        start: i64,
        parent: u64,
        deadline: i64,
        trace: u128,
    ) -> (i64, Status) {
        let m = self.m;
        let op = &m.ops[op_id as usize];
        let span_id = self.rt.next_u64();
        self.seq += 1;
        let idx = self.push_span(SpanRec {
            ts_us: start,
            dur_us: 0,
            trace,
            span_id,
            parent,
            seq: self.seq,
            pod,
            label: op.server_label,
            status: Status::Ok,
        });
        let (self_us, cpu_ms) = self.self_time(op, pod);
        // Code-level faults: whether this request runs into the bug. An exception is thrown
        // before the call group `throw_at` (after all of them when it equals their number).
        let (exception, error_response) = {
            let ps = &self.ps[pod as usize];
            (ps.exception, ps.error_response)
        };
        let mut throw_at = None;
        let mut answers_error = false;
        if let Some((bug, share)) = exception
            && bug == op_id
            && self.rt.random::<f64>() < share
        {
            throw_at = Some(self.rt.random_range(0..=op.calls.len()));
        } else if error_response > 0.0 && self.rt.random::<f64>() < error_response {
            answers_error = true;
        }
        let mut own_fault = None;
        let mut t = start + (self_us * 0.4) as i64;
        let mut status = Status::Ok;
        let mut soft_failure = None;
        'calls: for (ci, c) in op.calls.iter().enumerate() {
            if throw_at == Some(ci) {
                status = Status::Unknown;
                own_fault = Some(FaultKind::Exception);
                break 'calls;
            }
            if c.prob < 1.0 && self.rt.random::<f32>() >= c.prob {
                continue;
            }
            let n = if c.n_min == c.n_max {
                c.n_min
            } else {
                self.rt.random_range(c.n_min..=c.n_max)
            };
            let callee = &m.ops[c.op as usize];
            let fire_and_forget =
                self.noise.async_call > 0.0 && !callee.critical && !callee.client_only;
            for _ in 0..n {
                if t >= deadline {
                    status = Status::Deadline;
                    break 'calls;
                }
                if fire_and_forget && self.rx.random::<f64>() < self.noise.async_call {
                    t = self.call_async(c.op, pod, t, span_id, trace);
                    continue;
                }
                let (end, st) = self.call(c.op, pod, t, span_id, deadline, trace);
                t = end + self.rt.random_range(20..400);
                if st != Status::Ok {
                    if m.ops[c.op as usize].critical {
                        status = Status::Unknown;
                        break 'calls;
                    }
                    soft_failure = Some(c.op);
                }
            }
        }
        let mut rest = 0.6;
        if status == Status::Ok {
            if throw_at == Some(op.calls.len()) {
                status = Status::Unknown;
                own_fault = Some(FaultKind::Exception);
            } else if answers_error {
                status = Status::Internal;
                own_fault = Some(FaultKind::ErrorResponse);
            }
        }
        if own_fault == Some(FaultKind::Exception) {
            // The handler's remaining work is skipped; unwinding and the error reply are quick.
            rest = 0.1;
        }
        let mut end = t + (self_us * rest) as i64;
        if end > deadline {
            end = deadline;
            if status == Status::Ok {
                status = Status::Deadline;
            }
        }
        // Work after the answer (deferred flushes, post-processing) keeps the span open past
        // the end its caller saw. An entry span has no caller: it ends when the answer leaves.
        let mut recorded = end - start;
        if self.noise.outlive > 0.0 && parent != 0 && self.rx.random::<f64>() < self.noise.outlive {
            recorded += self.rx.random_range(2_000..80_000);
        }
        let rec = &mut self.spans[idx];
        rec.dur_us = recorded;
        rec.status = status;
        self.stats.spans += 1;
        let a = &mut self.pod_acc[pod as usize];
        a.served += 1.0;
        a.busy_ms += (end - start) as f64 / 1000.0;
        a.cpu_ms += cpu_ms;
        a.io_ops += op.io_frac * 4.0;
        if op.log != LogKind::None && self.cfg.logs {
            self.scratch.clear();
            let dur_ms = (end - start) as f64 / 1000.0;
            let mut scratch = std::mem::take(&mut self.scratch);
            logs::server_lines(
                op.log,
                &op.method,
                status,
                own_fault.is_some(),
                dur_ms,
                &mut self.ctx,
                &mut self.rl,
                &mut scratch,
            );
            if soft_failure.is_some()
                && let Some(l) = logs::non_critical_failure(op.log)
            {
                let last = scratch.len().saturating_sub(1);
                scratch.insert(last, l);
            }
            let n = scratch.len();
            for (i, text) in scratch.drain(..).enumerate() {
                let ts = if i + 1 == n { end } else { start };
                self.push_log(ts.div_euclid(1_000_000), pod, text);
            }
            self.scratch = scratch;
        }
        if let Some(kind) = own_fault
            && self.cfg.logs
        {
            let svc = &m.svcs[op.svc as usize];
            let ts = end.div_euclid(1_000_000);
            match kind {
                FaultKind::Exception => {
                    let mut lines = Vec::new();
                    logs::exception_lines(
                        svc.lang,
                        &svc.name,
                        &op.method,
                        &mut self.rl,
                        &mut lines,
                    );
                    for l in lines {
                        self.push_log(ts, pod, l);
                    }
                }
                FaultKind::ErrorResponse => {
                    let l = logs::error_response_line(svc.lang, &op.method, &mut self.rl);
                    self.push_log(ts, pod, l);
                }
            }
        }
        (end, status)
    }

    /// A fire-and-forget call: the caller hands the request over and goes on at once (its
    /// client span lasts the hand-over); the callee serves it after a queueing delay, often
    /// after the caller's span ended, and its outcome never reaches the caller. Returns when
    /// the caller goes on.
    fn call_async(&mut self, op_id: u32, caller: u32, t: i64, parent: u64, trace: u128) -> i64 {
        let idx = self.spans.len();
        let queued = 1_000 + (-40_000.0 * self.rx.random::<f64>().max(1e-12).ln()) as i64;
        let handover = self.rx.random_range(100..800);
        // The callee's own deadline only: nobody waits for the answer.
        self.call(op_id, caller, t + queued, parent, i64::MAX / 4, trace);
        let rec = &mut self.spans[idx];
        rec.ts_us = t;
        rec.dur_us = handover;
        rec.status = Status::Ok;
        t + handover
    }

    pub(super) fn push_log(&mut self, ts: i64, pod: u32, text: String) {
        self.seq += 1;
        self.logs.push(LogRec {
            ts,
            seq: self.seq,
            pod,
            proxy: false,
            text,
        });
    }

    fn push_proxy_log(&mut self, ts: i64, pod: u32, text: String) {
        self.seq += 1;
        self.logs.push(LogRec {
            ts,
            seq: self.seq,
            pod,
            proxy: true,
            text,
        });
    }

    fn edge(&mut self, pod: u32, other: u32, dir: u8) -> &mut EdgeAcc {
        self.edges.entry((pod, other, dir)).or_default()
    }

    /// A call from `caller` to `op_id` starting at `t`; returns the caller-side end and status.
    fn call(
        &mut self,
        op_id: u32,
        caller: u32,
        t: i64,
        parent: u64,
        parent_deadline: i64,
        trace: u128,
    ) -> (i64, Status) {
        let m = self.m;
        let op = &m.ops[op_id as usize];
        let deadline = (t + self.timeout_us).min(parent_deadline);
        let caller_svc = m.pods[caller as usize].svc;
        let callee_svc = op.svc;
        self.seq += 1;
        let span_id = self.rt.next_u64();
        let label = if op.client_only {
            op.server_label
        } else {
            op.client_label[m.style_of(caller_svc)]
        };
        let idx = self.push_span(SpanRec {
            ts_us: t,
            dur_us: 0,
            trace,
            span_id,
            parent,
            seq: self.seq,
            pod: caller,
            label,
            status: Status::Ok,
        });
        self.stats.spans += 1;
        let (end, status, callee) = if op.client_only {
            // A datastore call: one `db` span on the caller; the store pod does the work.
            let pods = &m.svcs[callee_svc as usize].pods;
            let target = if self.second_deploy[caller as usize] && pods.len() > 1 {
                pods[1]
            } else {
                pods[0]
            };
            if self.down(target, t).is_some() {
                (
                    t + self.rt.random_range(1_000..5_000),
                    Status::Unavailable,
                    target,
                )
            } else {
                let there = self.net_us(caller, target, op.req_kb);
                let (work, cpu_ms) = self.self_time(op, target);
                let back = self.net_us(target, caller, op.resp_kb);
                let a = &mut self.pod_acc[target as usize];
                a.served += 1.0;
                a.cpu_ms += cpu_ms;
                a.busy_ms += work / 1000.0;
                a.io_ops += op.io_frac * 4.0;
                if op.method.starts_with("HSET") || op.method.contains("update") {
                    self.redis_changes[target as usize] += 1.0;
                    a.writes += 1.0;
                }
                let end = t + there + work as i64 + back;
                if end > deadline {
                    (deadline, Status::Deadline, target)
                } else {
                    (end, Status::Ok, target)
                }
            }
        } else {
            match self.pick_pod(callee_svc, t) {
                Err(fail_us) => (t + fail_us, Status::Unavailable, u32::MAX),
                Ok((callee, extra)) => {
                    let arrive = t + extra + self.net_us(caller, callee, op.req_kb);
                    if arrive >= deadline {
                        (deadline, Status::Deadline, callee)
                    } else {
                        let (s_end, s_status) =
                            self.serve(op_id, callee, arrive, span_id, deadline, trace);
                        let end = s_end + self.net_us(callee, caller, op.resp_kb);
                        if end > deadline {
                            (deadline, Status::Deadline, callee)
                        } else {
                            (end, s_status, callee)
                        }
                    }
                }
            }
        };
        let rec = &mut self.spans[idx];
        rec.dur_us = end - t;
        rec.status = status;
        // The caller's sidecar logs failed and slow calls.
        if self.cfg.logs && !op.client_only && (status != Status::Ok || end - t >= 1_000_000) {
            let callee_name = &m.svcs[callee_svc as usize].name;
            let port = 7000 + (callee_svc % 1000) as u16;
            let line = logs::proxy_line(
                t.div_euclid(1000),
                &op.method,
                status,
                (end - t) / 1000,
                callee_name,
                port,
                &mut self.rl,
            );
            self.push_proxy_log(end.div_euclid(1_000_000), caller, line);
        }
        // Service and istio metrics of the call.
        let dur_ms = (end - t) as f64 / 1000.0;
        if !op.client_only {
            let a = &mut self.svc_acc[callee_svc as usize];
            a.count += 1.0;
            a.dur_ms += dur_ms;
            if status == Status::Ok {
                a.ok += 1.0;
            }
            if status != Status::Deadline && status != Status::Unavailable {
                a.responded += 1.0;
            }
        }
        if self.cfg.istio_metrics {
            let tcp = op.client_only;
            let (req_b, resp_b) = (op.req_kb * 1024.0, op.resp_kb * 1024.0);
            // HTTP has one series for both (`500`).
            let code = if status == Status::Internal
                && m.svcs[callee_svc as usize].lang == Lang::JavaHttp
            {
                Status::Unknown as usize
            } else {
                status as usize
            };
            self.edge(caller, callee_svc, 0)
                .record(tcp, dur_ms, req_b, resp_b, code);
            if callee != u32::MAX {
                self.edge(callee, caller_svc, 1)
                    .record(tcp, dur_ms, req_b, resp_b, code);
            }
        }
        (end, status)
    }
}
