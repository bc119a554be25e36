//! The simulated system: services, pods, nodes, operations with their call trees, entry endpoints,
//! and the span labels (name, type, status code) each language's instrumentation writes; and the
//! [`Builder`] the presets (`crate::presets`, one file a system) describe a system with.

use crate::config::{Preset, SimConfig};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use thinkfl_core::{ServiceInfo, Topology};

/// Implementation language of a service: decides span naming, log templates, memory and threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Go,
    CSharp,
    Node,
    Python,
    Java,
    /// Spring Boot over HTTP (Train-Ticket).
    JavaHttp,
    /// A datastore without spans of its own (redis, mongo); callers write `db` spans.
    Store,
}

/// How a failed span writes its status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrStyle {
    /// gRPC codes: `14` UNAVAILABLE, `4` DEADLINE_EXCEEDED, `2` UNKNOWN, `13` INTERNAL.
    Grpc,
    /// HTTP codes: `503`, `504`, `500` (also for an error response).
    Http,
    /// Java OpenTelemetry words: `ERROR`.
    Word,
    /// Redis client: `Error`.
    Db,
}

/// Name, type and OK status of one kind of span.
#[derive(Debug, Clone)]
pub(crate) struct Label {
    pub name: String,
    pub kind: &'static str,
    pub ok: &'static str,
    pub err: ErrStyle,
}

/// Span status: OK or one of four failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Status {
    Ok = 0,
    Unavailable = 1,
    Deadline = 2,
    Unknown = 3,
    /// An error response of the handler itself (gRPC INTERNAL, HTTP 500).
    Internal = 4,
}

impl Label {
    pub fn status_str(&self, s: Status) -> &'static str {
        match (s, self.err) {
            (Status::Ok, _) => self.ok,
            (Status::Unavailable, ErrStyle::Grpc) => "14",
            (Status::Deadline, ErrStyle::Grpc) => "4",
            (Status::Unknown, ErrStyle::Grpc) => "2",
            (Status::Internal, ErrStyle::Grpc) => "13",
            (Status::Unavailable, ErrStyle::Http) => "503",
            (Status::Deadline, ErrStyle::Http) => "504",
            (Status::Unknown | Status::Internal, ErrStyle::Http) => "500",
            (_, ErrStyle::Word) => "ERROR",
            (_, ErrStyle::Db) => "Error",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Svc {
    pub name: String,
    pub lang: Lang,
    pub pods: Vec<u32>,
    /// `adservice-grpc` in `metric_service.csv`; None for datastores.
    pub metric_name: Option<String>,
    /// `log_cartservice-service_application`.
    pub log_name: String,
    /// CPU limit of each pod, cores.
    pub cpu_limit: f64,
    pub mem_base_mb: f64,
    pub mem_limit_mb: f64,
    pub threads: f64,
    /// Background (idle) CPU of a pod, cores.
    pub cpu_idle: f64,
    /// Fault targets are drawn among services that write spans and are not datastores.
    pub faultable: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Pod {
    pub name: String,
    pub svc: u32,
    pub node: u32,
    /// `node-6.adservice2-0`.
    pub container_id: String,
    /// Per-pod speed factor (hardware, noisy neighbours, JIT state): multiplies self time.
    pub speed: f64,
    /// Noisy pods have more variable latency and resource use (a confounder).
    pub noisy: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub name: String,
    pub cores: f64,
    pub mem_total_mb: f64,
    pub disk_total_gb: f64,
    pub pods: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    pub op: u32,
    pub n_min: u8,
    pub n_max: u8,
    pub prob: f32,
}

/// Which log lines an operation's server writes (see `logs.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogKind {
    None,
    FrontendHome,
    FrontendProduct,
    FrontendViewCart,
    FrontendAddToCart,
    FrontendSetCurrency,
    FrontendCheckout,
    CurrencyConvert,
    CurrencySupported,
    CartGet,
    CartAdd,
    CartEmpty,
    ShippingQuote,
    ShippingShip,
    CheckoutPlace,
    PaymentCharge,
    EmailSend,
    RecommendationList,
    /// `severity: info, message: [<method>] ...` (Train-Ticket and synthetic services).
    Generic,
}

#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub svc: u32,
    /// Method as the data names it (`hipstershop.CartService/GetCart`, `GET /api/v1/...`).
    pub method: String,
    /// A call from the caller writes one `db` span and no server span.
    pub client_only: bool,
    pub server_label: u32,
    /// Client label by caller style (Go-like, Python-like, HTTP).
    pub client_label: [u32; 3],
    /// Median self time, ms.
    pub self_ms: f64,
    /// Log-normal sigma of the self time.
    pub sigma: f64,
    /// Share of the self time spent on CPU (slowed by CPU contention).
    pub cpu_frac: f64,
    /// Share of the self time spent on disk IO (slowed by IO contention).
    pub io_frac: f64,
    pub req_kb: f64,
    pub resp_kb: f64,
    pub calls: Vec<Call>,
    /// Whether a failure of this call fails its caller.
    pub critical: bool,
    pub log: LogKind,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Endpoint {
    pub op: u32,
    pub weight: f64,
}

/// The whole simulated system.
#[derive(Debug, Clone)]
pub(crate) struct Model {
    pub svcs: Vec<Svc>,
    pub pods: Vec<Pod>,
    pub nodes: Vec<Node>,
    pub ops: Vec<Op>,
    pub labels: Vec<Label>,
    pub endpoints: Vec<Endpoint>,
    /// Service-level call graph (caller, callee), sorted and unique.
    pub calls: Vec<(u32, u32)>,
}

impl Model {
    pub fn style_of(&self, svc: u32) -> usize {
        match self.svcs[svc as usize].lang {
            Lang::Python => 1,
            Lang::JavaHttp => 2,
            _ => 0,
        }
    }

    /// The topology written to `topology.json`.
    pub fn topology(&self) -> Topology {
        let mut t = Topology {
            services: self
                .svcs
                .iter()
                .map(|s| ServiceInfo {
                    name: s.name.clone(),
                    pods: s
                        .pods
                        .iter()
                        .map(|&p| self.pods[p as usize].name.clone())
                        .collect(),
                })
                .collect(),
            nodes: self.nodes.iter().map(|n| n.name.clone()).collect(),
            placement: self
                .pods
                .iter()
                .map(|p| (p.name.clone(), self.nodes[p.node as usize].name.clone()))
                .collect(),
            calls: self
                .calls
                .iter()
                .map(|&(a, b)| {
                    (
                        self.svcs[a as usize].name.clone(),
                        self.svcs[b as usize].name.clone(),
                    )
                })
                .collect(),
        };
        t.normalize();
        t
    }

    /// Expected number of times each operation runs per entry request, over the endpoint mix.
    pub fn expected_visits(&self) -> Vec<f64> {
        let total: f64 = self.endpoints.iter().map(|e| e.weight).sum();
        let mut v = vec![0.0; self.ops.len()];
        for e in &self.endpoints {
            self.visit(e.op, e.weight / total, &mut v, 0);
        }
        v
    }

    fn visit(&self, op: u32, mult: f64, v: &mut [f64], depth: usize) {
        v[op as usize] += mult;
        if depth > 32 {
            return;
        }
        for c in &self.ops[op as usize].calls {
            let mean = c.prob as f64 * (c.n_min as f64 + c.n_max as f64) / 2.0;
            self.visit(c.op, mult * mean, v, depth + 1);
        }
    }
}

/// A system being described: services, operations and entry points in the order the preset adds
/// them; [`Builder::finish`] places the pods on nodes.
#[derive(Default)]
pub(crate) struct Builder {
    pub svcs: Vec<Svc>,
    /// Pod names per service, before placement.
    pod_names: Vec<Vec<String>>,
    pub ops: Vec<Op>,
    labels: Vec<Label>,
    pub endpoints: Vec<Endpoint>,
}

impl Builder {
    pub(crate) fn label(
        &mut self,
        name: String,
        kind: &'static str,
        ok: &'static str,
        err: ErrStyle,
    ) -> u32 {
        if let Some(i) = self
            .labels
            .iter()
            .position(|l| l.name == name && l.kind == kind && l.ok == ok)
        {
            return i as u32;
        }
        self.labels.push(Label {
            name,
            kind,
            ok,
            err,
        });
        (self.labels.len() - 1) as u32
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn svc(
        &mut self,
        name: &str,
        lang: Lang,
        pods: Vec<String>,
        metric: Option<String>,
    ) -> u32 {
        let (mem_base, mem_limit, threads, cpu_limit, cpu_idle) = match lang {
            Lang::Go => (35.0, 512.0, 14.0, 1.0, 0.004),
            Lang::CSharp => (130.0, 512.0, 26.0, 1.0, 0.008),
            Lang::Node => (75.0, 512.0, 11.0, 1.0, 0.006),
            Lang::Python => (95.0, 512.0, 8.0, 1.0, 0.010),
            Lang::Java => (310.0, 1024.0, 42.0, 1.0, 0.012),
            Lang::JavaHttp => (420.0, 1536.0, 48.0, 2.0, 0.015),
            Lang::Store => (18.0, 512.0, 5.0, 1.0, 0.003),
        };
        self.svcs.push(Svc {
            name: name.to_string(),
            lang,
            pods: Vec::new(),
            metric_name: metric,
            log_name: format!("log_{name}-service_application"),
            cpu_limit,
            mem_base_mb: mem_base,
            mem_limit_mb: mem_limit,
            threads,
            cpu_idle,
            faultable: lang != Lang::Store,
        });
        self.pod_names.push(pods);
        (self.svcs.len() - 1) as u32
    }

    /// An operation served by `svc`; names and labels follow the service's language.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn op(
        &mut self,
        svc: u32,
        method: &str,
        self_ms: f64,
        sigma: f64,
        cpu_frac: f64,
        io_frac: f64,
        log: LogKind,
    ) -> u32 {
        let lang = self.svcs[svc as usize].lang;
        let (server_label, client_only) = match lang {
            Lang::Go => (self.label(method.into(), "rpc", "0", ErrStyle::Grpc), false),
            Lang::CSharp => (
                self.label(format!("/{method}"), "http", "200", ErrStyle::Http),
                false,
            ),
            Lang::Node => (
                self.label(format!("grpc.{method}"), "telemetry", "0", ErrStyle::Grpc),
                false,
            ),
            Lang::Python => (
                self.label(format!("/{method}"), "", "0", ErrStyle::Grpc),
                false,
            ),
            Lang::Java => (
                self.label(method.to_ascii_lowercase(), "rpc", "OK", ErrStyle::Word),
                false,
            ),
            Lang::JavaHttp => (
                self.label(method.into(), "http", "200", ErrStyle::Http),
                false,
            ),
            Lang::Store => (self.label(method.into(), "db", "Ok", ErrStyle::Db), true),
        };
        let client_label = if client_only {
            [server_label; 3]
        } else {
            [
                self.label(method.into(), "rpc", "0", ErrStyle::Grpc),
                self.label(format!("/{method}"), "", "0", ErrStyle::Grpc),
                self.label(method.into(), "http", "200", ErrStyle::Http),
            ]
        };
        self.ops.push(Op {
            svc,
            method: method.to_string(),
            client_only,
            server_label,
            client_label,
            self_ms,
            sigma,
            cpu_frac,
            io_frac,
            req_kb: 0.4,
            resp_kb: 1.2,
            calls: Vec::new(),
            critical: true,
            log,
        });
        (self.ops.len() - 1) as u32
    }

    pub(crate) fn calls(&mut self, op: u32, calls: &[(u32, u8, u8, f32)]) {
        self.ops[op as usize].calls = calls
            .iter()
            .map(|&(op, n_min, n_max, prob)| Call {
                op,
                n_min,
                n_max,
                prob,
            })
            .collect();
    }

    pub(crate) fn finish(mut self, cfg: &SimConfig, n_nodes: usize, rng: &mut ChaCha8Rng) -> Model {
        let total_pods: usize = self.pod_names.iter().map(Vec::len).sum();
        let n_nodes = if n_nodes == 0 {
            total_pods.div_ceil(14).max(3)
        } else {
            n_nodes
        };
        let mut nodes: Vec<Node> = (0..n_nodes)
            .map(|i| Node {
                name: format!("node-{}", i + 1),
                cores: 8.0,
                mem_total_mb: 32_768.0,
                disk_total_gb: 100.0,
                pods: Vec::new(),
            })
            .collect();
        // Spread the pods of one service over distinct nodes, starting at a random node and
        // balancing the load: a Kubernetes-like scheduler.
        let mut pods = Vec::with_capacity(total_pods);
        let noisy_fraction = if cfg.confounders {
            cfg.difficulty.noisy_pod_fraction()
        } else {
            0.0
        };
        for (si, names) in self.pod_names.iter().enumerate() {
            let mut order: Vec<usize> = (0..n_nodes).collect();
            order.shuffle(rng);
            order.sort_by_key(|&n| nodes[n].pods.len());
            for (k, name) in names.iter().enumerate() {
                let node = order[k % n_nodes];
                let id = pods.len() as u32;
                nodes[node].pods.push(id);
                self.svcs[si].pods.push(id);
                // The second deployment (`svc2-0`) runs a slightly different build and host.
                let base = if name.contains("2-") && cfg.preset == Preset::OnlineBoutique {
                    1.08
                } else {
                    1.0
                };
                let speed = base * (0.07 * crate::rand_util::std_normal(rng)).exp();
                let noisy = self.svcs[si].faultable && rng.random::<f64>() < noisy_fraction;
                pods.push(Pod {
                    name: name.clone(),
                    svc: si as u32,
                    node: node as u32,
                    container_id: format!("{}.{}", nodes[node].name, name),
                    speed,
                    noisy,
                });
            }
        }
        let mut calls = BTreeSet::new();
        for op in &self.ops {
            for c in &op.calls {
                let callee = self.ops[c.op as usize].svc;
                if callee != op.svc {
                    calls.insert((op.svc, callee));
                }
            }
        }
        Model {
            svcs: self.svcs,
            pods,
            nodes,
            ops: self.ops,
            labels: self.labels,
            endpoints: self.endpoints,
            calls: calls.into_iter().collect(),
        }
    }
}
