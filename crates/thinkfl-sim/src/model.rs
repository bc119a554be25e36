//! The simulated system: services, pods, nodes, operations with their call trees, entry endpoints,
//! and the span labels (name, type, status code) each language's instrumentation writes.
//!
//! Online Boutique follows the AIOps 2022 deployment and the real sample in
//! `shared/fixtures/aiops2022-sample`: the Go services write `rpc` spans named after the gRPC
//! method with status `0`; the C# cart service writes `http` server spans named `/<method>` with
//! status `200` and `db` spans (`HGET`, `HSET`, `EXPIRE`) with status `Ok`; the Node.js services
//! write `telemetry` server spans named `grpc.<method>`; the Python services write spans with an
//! empty type named `/<method>`; the Java ad service writes `rpc` spans named
//! `hipstershop.adservice/getads` with status `OK`.

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

/// Builds the model of a preset. Placement, per-pod speeds and noisy pods come from `rng`.
pub(crate) fn build(cfg: &SimConfig, rng: &mut ChaCha8Rng) -> Model {
    let mut b = Builder::default();
    match cfg.preset {
        Preset::OnlineBoutique => online_boutique(&mut b),
        Preset::TrainTicket => train_ticket(&mut b),
        Preset::Synthetic => synthetic(&mut b, cfg.services, rng),
    }
    let n_nodes = match cfg.preset {
        Preset::OnlineBoutique => 6,
        Preset::TrainTicket => 8,
        Preset::Synthetic => 0,
    };
    b.finish(cfg, n_nodes, rng)
}

#[derive(Default)]
struct Builder {
    svcs: Vec<Svc>,
    /// Pod names per service, before placement.
    pod_names: Vec<Vec<String>>,
    ops: Vec<Op>,
    labels: Vec<Label>,
    endpoints: Vec<Endpoint>,
}

impl Builder {
    fn label(&mut self, name: String, kind: &'static str, ok: &'static str, err: ErrStyle) -> u32 {
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
    fn svc(&mut self, name: &str, lang: Lang, pods: Vec<String>, metric: Option<String>) -> u32 {
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
    fn op(
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

    fn calls(&mut self, op: u32, calls: &[(u32, u8, u8, f32)]) {
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

    fn finish(mut self, cfg: &SimConfig, n_nodes: usize, rng: &mut ChaCha8Rng) -> Model {
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

fn ob_pods(svc: &str) -> Vec<String> {
    vec![
        format!("{svc}-0"),
        format!("{svc}-1"),
        format!("{svc}-2"),
        format!("{svc}2-0"),
    ]
}

/// Online Boutique as in AIOps 2022.
fn online_boutique(b: &mut Builder) {
    use LogKind as L;
    let g = |s: &str| Some(format!("{s}-grpc"));
    let frontend = b.svc(
        "frontend",
        Lang::Go,
        ob_pods("frontend"),
        Some("frontend-http".into()),
    );
    let cart = b.svc(
        "cartservice",
        Lang::CSharp,
        ob_pods("cartservice"),
        g("cartservice"),
    );
    let catalog = b.svc(
        "productcatalogservice",
        Lang::Go,
        ob_pods("productcatalogservice"),
        g("productcatalogservice"),
    );
    let currency = b.svc(
        "currencyservice",
        Lang::Node,
        ob_pods("currencyservice"),
        g("currencyservice"),
    );
    let payment = b.svc(
        "paymentservice",
        Lang::Node,
        ob_pods("paymentservice"),
        g("paymentservice"),
    );
    let shipping = b.svc(
        "shippingservice",
        Lang::Go,
        ob_pods("shippingservice"),
        g("shippingservice"),
    );
    let email = b.svc(
        "emailservice",
        Lang::Python,
        ob_pods("emailservice"),
        g("emailservice"),
    );
    let checkout = b.svc(
        "checkoutservice",
        Lang::Go,
        ob_pods("checkoutservice"),
        g("checkoutservice"),
    );
    let recommendation = b.svc(
        "recommendationservice",
        Lang::Python,
        ob_pods("recommendationservice"),
        g("recommendationservice"),
    );
    let ad = b.svc(
        "adservice",
        Lang::Java,
        ob_pods("adservice"),
        g("adservice"),
    );
    let redis = b.svc(
        "redis-cart",
        Lang::Store,
        vec!["redis-cart-0".into(), "redis-cart2-0".into()],
        None,
    );

    let hget = b.op(redis, "HGET", 0.25, 0.5, 0.6, 0.05, L::None);
    let hset = b.op(redis, "HSET", 0.3, 0.5, 0.5, 0.15, L::None);
    let expire = b.op(redis, "EXPIRE", 0.15, 0.5, 0.6, 0.05, L::None);
    let get_cart = b.op(
        cart,
        "hipstershop.CartService/GetCart",
        0.9,
        0.45,
        0.7,
        0.0,
        L::CartGet,
    );
    b.calls(get_cart, &[(hget, 1, 1, 1.0)]);
    let add_item = b.op(
        cart,
        "hipstershop.CartService/AddItem",
        1.4,
        0.45,
        0.7,
        0.0,
        L::CartAdd,
    );
    b.calls(
        add_item,
        &[(hget, 1, 1, 1.0), (hset, 1, 1, 1.0), (expire, 1, 1, 1.0)],
    );
    let empty_cart = b.op(
        cart,
        "hipstershop.CartService/EmptyCart",
        1.1,
        0.45,
        0.7,
        0.0,
        L::CartEmpty,
    );
    b.calls(empty_cart, &[(hset, 1, 1, 1.0), (expire, 1, 1, 1.0)]);

    let get_product = b.op(
        catalog,
        "hipstershop.ProductCatalogService/GetProduct",
        3.6,
        0.3,
        0.8,
        0.0,
        L::None,
    );
    let list_products = b.op(
        catalog,
        "hipstershop.ProductCatalogService/ListProducts",
        0.05,
        0.6,
        0.8,
        0.0,
        L::None,
    );
    let convert = b.op(
        currency,
        "hipstershop.CurrencyService/Convert",
        0.12,
        0.35,
        0.9,
        0.0,
        L::CurrencyConvert,
    );
    let currencies = b.op(
        currency,
        "hipstershop.CurrencyService/GetSupportedCurrencies",
        0.13,
        0.35,
        0.9,
        0.0,
        L::CurrencySupported,
    );
    let charge = b.op(
        payment,
        "hipstershop.PaymentService/Charge",
        0.6,
        0.4,
        0.9,
        0.0,
        L::PaymentCharge,
    );
    let quote = b.op(
        shipping,
        "hipstershop.ShippingService/GetQuote",
        0.08,
        0.5,
        0.8,
        0.0,
        L::ShippingQuote,
    );
    let ship = b.op(
        shipping,
        "hipstershop.ShippingService/ShipOrder",
        0.09,
        0.5,
        0.8,
        0.0,
        L::ShippingShip,
    );
    let send_email = b.op(
        email,
        "hipstershop.EmailService/SendOrderConfirmation",
        6.0,
        0.35,
        0.6,
        0.25,
        L::EmailSend,
    );
    b.ops[send_email as usize].critical = false;
    let list_recs = b.op(
        recommendation,
        "hipstershop.RecommendationService/ListRecommendations",
        1.6,
        0.4,
        0.85,
        0.0,
        L::RecommendationList,
    );
    b.calls(list_recs, &[(list_products, 1, 1, 1.0)]);
    let get_ads = b.op(
        ad,
        "hipstershop.AdService/GetAds",
        0.03,
        0.8,
        0.9,
        0.0,
        L::None,
    );
    // A missing ad is logged and ignored by the frontend.
    b.ops[get_ads as usize].critical = false;
    let place_order = b.op(
        checkout,
        "hipstershop.CheckoutService/PlaceOrder",
        2.0,
        0.4,
        0.7,
        0.0,
        L::CheckoutPlace,
    );
    b.calls(
        place_order,
        &[
            (get_cart, 1, 1, 1.0),
            (get_product, 1, 3, 1.0),
            (convert, 1, 3, 1.0),
            (quote, 1, 1, 1.0),
            (convert, 1, 1, 1.0),
            (charge, 1, 1, 1.0),
            (ship, 1, 1, 1.0),
            (empty_cart, 1, 1, 1.0),
            (send_email, 1, 1, 1.0),
        ],
    );

    // The frontend handlers of the 2022 deployment; every root span is
    // `hipstershop.Frontend/Recv.` of type http.
    let root = b.label(
        "hipstershop.Frontend/Recv.".into(),
        "http",
        "0",
        ErrStyle::Http,
    );
    let page = |b: &mut Builder, log: LogKind, self_ms: f64| {
        let op = b.op(
            frontend,
            "hipstershop.Frontend/Recv.",
            self_ms,
            0.35,
            0.7,
            0.0,
            log,
        );
        b.ops[op as usize].server_label = root;
        b.ops[op as usize].resp_kb = 12.0;
        op
    };
    let home = page(b, L::FrontendHome, 2.5);
    b.calls(
        home,
        &[
            (currencies, 1, 1, 1.0),
            (list_products, 1, 1, 1.0),
            (get_cart, 1, 1, 1.0),
            (convert, 9, 9, 1.0),
            (get_ads, 1, 1, 1.0),
        ],
    );
    let product = page(b, L::FrontendProduct, 1.5);
    b.calls(
        product,
        &[
            (get_product, 1, 1, 1.0),
            (currencies, 1, 1, 1.0),
            (get_cart, 1, 1, 1.0),
            (convert, 1, 1, 1.0),
            (list_recs, 1, 1, 1.0),
            (get_product, 4, 5, 1.0),
            (get_ads, 1, 1, 1.0),
        ],
    );
    let view_cart = page(b, L::FrontendViewCart, 1.8);
    b.calls(
        view_cart,
        &[
            (currencies, 1, 1, 1.0),
            (get_cart, 1, 1, 1.0),
            (list_recs, 1, 1, 1.0),
            (get_product, 4, 4, 1.0),
            (quote, 1, 1, 1.0),
            (convert, 1, 1, 1.0),
            (get_product, 1, 3, 1.0),
            (convert, 1, 3, 1.0),
        ],
    );
    let add_to_cart = page(b, L::FrontendAddToCart, 0.8);
    b.calls(
        add_to_cart,
        &[(get_product, 1, 1, 1.0), (add_item, 1, 1, 1.0)],
    );
    let set_currency = page(b, L::FrontendSetCurrency, 0.3);
    let checkout_page = page(b, L::FrontendCheckout, 1.6);
    b.calls(
        checkout_page,
        &[
            (place_order, 1, 1, 1.0),
            (list_recs, 1, 1, 1.0),
            (get_product, 4, 4, 1.0),
            (currencies, 1, 1, 1.0),
        ],
    );
    // The request mix of the real sample's frontend logs (pages served in four minutes).
    for (op, w) in [
        (product, 392.0),
        (view_cart, 150.0),
        (home, 86.0),
        (add_to_cart, 60.0),
        (set_currency, 58.0),
        (checkout_page, 27.0),
    ] {
        b.endpoints.push(Endpoint { op, weight: w });
    }
}

/// A Train-Ticket-like system: about 40 Spring Boot services behind `ts-ui-dashboard`, each with
/// HTTP operations, several with their own MongoDB.
fn train_ticket(b: &mut Builder) {
    use LogKind::Generic as G;
    let names = [
        "ts-ui-dashboard",
        "ts-auth-service",
        "ts-user-service",
        "ts-verification-code-service",
        "ts-station-service",
        "ts-train-service",
        "ts-config-service",
        "ts-route-service",
        "ts-price-service",
        "ts-basic-service",
        "ts-ticketinfo-service",
        "ts-order-service",
        "ts-order-other-service",
        "ts-travel-service",
        "ts-travel2-service",
        "ts-seat-service",
        "ts-travel-plan-service",
        "ts-route-plan-service",
        "ts-preserve-service",
        "ts-preserve-other-service",
        "ts-contacts-service",
        "ts-assurance-service",
        "ts-food-service",
        "ts-food-map-service",
        "ts-consign-service",
        "ts-consign-price-service",
        "ts-security-service",
        "ts-inside-payment-service",
        "ts-payment-service",
        "ts-cancel-service",
        "ts-rebook-service",
        "ts-execute-service",
        "ts-notification-service",
        "ts-admin-basic-info-service",
        "ts-admin-order-service",
        "ts-admin-route-service",
        "ts-admin-travel-service",
        "ts-admin-user-service",
        "ts-news-service",
        "ts-voucher-service",
    ];
    let mut id = std::collections::BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        let replicas = if i < 20 { 2 } else { 1 };
        let pods = (0..replicas).map(|k| format!("{n}-{k}")).collect();
        let s = b.svc(n, Lang::JavaHttp, pods, Some(format!("{n}-http")));
        id.insert(*n, s);
    }
    let mongo_of = |b: &mut Builder, svc: &str| {
        let name = svc.replace("-service", "-mongo");
        let s = b.svc(&name, Lang::Store, vec![format!("{name}-0")], None);
        (
            b.op(s, "mongodb.find", 0.6, 0.5, 0.4, 0.3, LogKind::None),
            b.op(s, "mongodb.update", 0.9, 0.5, 0.3, 0.5, LogKind::None),
        )
    };
    let path = |svc: &str| {
        svc.trim_start_matches("ts-")
            .trim_end_matches("-service")
            .replace('-', "")
    };
    let op = |b: &mut Builder, svc: &str, verb: &str, rest: &str, ms: f64| {
        let m = format!("{verb} /api/v1/{}service/{rest}", path(svc));
        b.op(id[svc], &m, ms, 0.4, 0.6, 0.05, G)
    };
    let (order_find, order_upd) = mongo_of(b, "ts-order-service");
    let (oo_find, oo_upd) = mongo_of(b, "ts-order-other-service");
    let (user_find, _) = mongo_of(b, "ts-user-service");
    let (auth_find, _) = mongo_of(b, "ts-auth-service");
    let (station_find, _) = mongo_of(b, "ts-station-service");
    let (train_find, _) = mongo_of(b, "ts-train-service");
    let (route_find, _) = mongo_of(b, "ts-route-service");
    let (price_find, _) = mongo_of(b, "ts-price-service");
    let (contacts_find, _) = mongo_of(b, "ts-contacts-service");
    let (travel_find, _) = mongo_of(b, "ts-travel-service");
    let (config_find, _) = mongo_of(b, "ts-config-service");
    let (pay_find, pay_upd) = mongo_of(b, "ts-inside-payment-service");
    let (food_find, _) = mongo_of(b, "ts-food-map-service");
    let (consign_find, consign_upd) = mongo_of(b, "ts-consign-service");
    let (assur_find, assur_upd) = mongo_of(b, "ts-assurance-service");

    let verify = op(
        b,
        "ts-verification-code-service",
        "GET",
        "verification/verify",
        1.2,
    );
    let auth_login = op(b, "ts-auth-service", "POST", "users/login", 6.0);
    b.calls(auth_login, &[(verify, 1, 1, 1.0), (auth_find, 1, 1, 1.0)]);
    let user_get = op(b, "ts-user-service", "GET", "users/id", 1.5);
    b.calls(user_get, &[(user_find, 1, 1, 1.0)]);
    let station_id = op(b, "ts-station-service", "POST", "stations/idlist", 1.0);
    b.calls(station_id, &[(station_find, 1, 2, 1.0)]);
    let train_get = op(b, "ts-train-service", "GET", "trains/byName", 0.8);
    b.calls(train_get, &[(train_find, 1, 1, 1.0)]);
    let route_get = op(b, "ts-route-service", "GET", "routes/routeId", 1.0);
    b.calls(route_get, &[(route_find, 1, 1, 1.0)]);
    let price_get = op(
        b,
        "ts-price-service",
        "POST",
        "prices/byRouteIdsAndTrainTypes",
        1.1,
    );
    b.calls(price_get, &[(price_find, 1, 1, 1.0)]);
    let config_get = op(
        b,
        "ts-config-service",
        "GET",
        "configs/DirectTicketAllocationProportion",
        0.6,
    );
    b.calls(config_get, &[(config_find, 1, 1, 1.0)]);
    let basic = op(b, "ts-basic-service", "POST", "basic/travels", 2.0);
    b.calls(
        basic,
        &[
            (station_id, 1, 1, 1.0),
            (train_get, 1, 1, 1.0),
            (route_get, 1, 1, 1.0),
            (price_get, 1, 1, 1.0),
        ],
    );
    let ticketinfo = op(
        b,
        "ts-ticketinfo-service",
        "POST",
        "ticketinfo/travels",
        0.8,
    );
    b.calls(ticketinfo, &[(basic, 1, 1, 1.0)]);
    let order_sold = op(b, "ts-order-service", "POST", "orders/tickets", 1.8);
    b.calls(order_sold, &[(order_find, 1, 1, 1.0)]);
    let oo_sold = op(
        b,
        "ts-order-other-service",
        "POST",
        "orderOther/tickets",
        1.8,
    );
    b.calls(oo_sold, &[(oo_find, 1, 1, 1.0)]);
    let seat_left = op(b, "ts-seat-service", "POST", "seats/left_tickets", 1.5);
    b.calls(
        seat_left,
        &[(config_get, 1, 1, 1.0), (order_sold, 1, 1, 1.0)],
    );
    let seat_left2 = op(
        b,
        "ts-seat-service",
        "POST",
        "seats/left_tickets_other",
        1.5,
    );
    b.calls(seat_left2, &[(config_get, 1, 1, 1.0), (oo_sold, 1, 1, 1.0)]);
    let trips_left = op(b, "ts-travel-service", "POST", "trips/left", 3.0);
    b.calls(
        trips_left,
        &[
            (travel_find, 1, 1, 1.0),
            (ticketinfo, 1, 3, 1.0),
            (seat_left, 1, 3, 1.0),
        ],
    );
    let trips_left2 = op(b, "ts-travel2-service", "POST", "trips/left", 3.0);
    b.calls(
        trips_left2,
        &[(ticketinfo, 1, 2, 1.0), (seat_left2, 1, 2, 1.0)],
    );
    let route_plan = op(
        b,
        "ts-route-plan-service",
        "POST",
        "routePlan/cheapestRoute",
        2.5,
    );
    b.calls(
        route_plan,
        &[(trips_left, 1, 1, 1.0), (trips_left2, 1, 1, 1.0)],
    );
    let travel_plan = op(
        b,
        "ts-travel-plan-service",
        "POST",
        "travelPlan/cheapest",
        2.0,
    );
    b.calls(
        travel_plan,
        &[(route_plan, 1, 1, 1.0), (station_id, 1, 1, 1.0)],
    );
    let contacts = op(b, "ts-contacts-service", "GET", "contacts/account", 1.0);
    b.calls(contacts, &[(contacts_find, 1, 1, 1.0)]);
    let security = op(
        b,
        "ts-security-service",
        "GET",
        "securityConfigs/check",
        1.2,
    );
    b.calls(security, &[(order_sold, 1, 1, 1.0), (oo_sold, 1, 1, 1.0)]);
    let assurance = op(b, "ts-assurance-service", "POST", "assurances/create", 1.0);
    b.calls(
        assurance,
        &[(assur_find, 1, 1, 1.0), (assur_upd, 1, 1, 1.0)],
    );
    let food_map = op(b, "ts-food-map-service", "GET", "foodstores", 1.0);
    b.calls(food_map, &[(food_find, 1, 1, 1.0)]);
    let food = op(b, "ts-food-service", "POST", "orders/create", 1.4);
    b.calls(food, &[(food_map, 1, 1, 0.6)]);
    let consign_price = op(
        b,
        "ts-consign-price-service",
        "GET",
        "consignprice/weight",
        0.6,
    );
    let consign = op(b, "ts-consign-service", "POST", "consigns", 1.4);
    b.calls(
        consign,
        &[
            (consign_price, 1, 1, 1.0),
            (consign_find, 1, 1, 1.0),
            (consign_upd, 1, 1, 1.0),
        ],
    );
    let order_create = op(b, "ts-order-service", "POST", "orders", 2.2);
    b.calls(order_create, &[(order_upd, 1, 1, 1.0)]);
    let notify = op(
        b,
        "ts-notification-service",
        "POST",
        "notification/preserve_success",
        3.0,
    );
    b.ops[notify as usize].critical = false;
    let preserve = op(b, "ts-preserve-service", "POST", "preserve", 4.0);
    b.calls(
        preserve,
        &[
            (security, 1, 1, 1.0),
            (contacts, 1, 1, 1.0),
            (trips_left, 1, 1, 1.0),
            (seat_left, 1, 1, 1.0),
            (order_create, 1, 1, 1.0),
            (assurance, 1, 1, 0.5),
            (food, 1, 1, 0.5),
            (consign, 1, 1, 0.3),
            (user_get, 1, 1, 1.0),
            (notify, 1, 1, 1.0),
        ],
    );
    let oo_create = op(b, "ts-order-other-service", "POST", "orderOther", 2.2);
    b.calls(oo_create, &[(oo_upd, 1, 1, 1.0)]);
    let preserve_other = op(b, "ts-preserve-other-service", "POST", "preserveOther", 4.0);
    b.calls(
        preserve_other,
        &[
            (security, 1, 1, 1.0),
            (contacts, 1, 1, 1.0),
            (trips_left2, 1, 1, 1.0),
            (oo_create, 1, 1, 1.0),
            (user_get, 1, 1, 1.0),
            (notify, 1, 1, 1.0),
        ],
    );
    let payment = op(b, "ts-payment-service", "POST", "payment", 2.0);
    let order_get = op(b, "ts-order-service", "POST", "orders/refresh", 1.5);
    b.calls(order_get, &[(order_find, 1, 1, 1.0)]);
    let order_modify = op(b, "ts-order-service", "GET", "orders/status", 1.5);
    b.calls(order_modify, &[(order_upd, 1, 1, 1.0)]);
    let pay = op(
        b,
        "ts-inside-payment-service",
        "POST",
        "inside_payment",
        2.5,
    );
    b.calls(
        pay,
        &[
            (order_get, 1, 1, 1.0),
            (pay_find, 1, 1, 1.0),
            (payment, 1, 1, 0.4),
            (pay_upd, 1, 1, 1.0),
            (order_modify, 1, 1, 1.0),
        ],
    );
    let drawback = op(
        b,
        "ts-inside-payment-service",
        "GET",
        "inside_payment/drawback",
        1.6,
    );
    b.calls(drawback, &[(pay_upd, 1, 1, 1.0)]);
    let cancel = op(b, "ts-cancel-service", "GET", "cancel", 2.5);
    b.calls(
        cancel,
        &[
            (order_get, 1, 1, 1.0),
            (order_modify, 1, 1, 1.0),
            (drawback, 1, 1, 1.0),
            (user_get, 1, 1, 1.0),
            (notify, 1, 1, 1.0),
        ],
    );
    let rebook = op(b, "ts-rebook-service", "POST", "rebook", 3.0);
    b.calls(
        rebook,
        &[
            (order_get, 1, 1, 1.0),
            (trips_left, 1, 1, 1.0),
            (seat_left, 1, 1, 1.0),
            (pay, 1, 1, 0.5),
            (order_modify, 1, 1, 1.0),
        ],
    );
    let execute = op(b, "ts-execute-service", "GET", "execute/collected", 1.5);
    b.calls(
        execute,
        &[(order_get, 1, 1, 1.0), (order_modify, 1, 1, 1.0)],
    );
    let news = op(b, "ts-news-service", "GET", "news", 0.5);
    let voucher = op(b, "ts-voucher-service", "POST", "getVoucher", 1.5);
    b.calls(voucher, &[(order_get, 1, 1, 1.0)]);
    let admin_basic = op(
        b,
        "ts-admin-basic-info-service",
        "GET",
        "adminbasic/stations",
        1.2,
    );
    b.calls(admin_basic, &[(station_id, 1, 1, 1.0)]);
    let admin_order = op(b, "ts-admin-order-service", "GET", "adminorder", 2.0);
    b.calls(admin_order, &[(order_get, 1, 1, 1.0), (oo_sold, 1, 1, 1.0)]);
    let admin_route = op(b, "ts-admin-route-service", "GET", "adminroute", 1.2);
    b.calls(admin_route, &[(route_get, 1, 1, 1.0)]);
    let admin_travel = op(b, "ts-admin-travel-service", "GET", "admintravel", 1.8);
    b.calls(
        admin_travel,
        &[(trips_left, 1, 1, 1.0), (trips_left2, 1, 1, 1.0)],
    );
    let admin_user = op(b, "ts-admin-user-service", "GET", "adminuser", 1.2);
    b.calls(admin_user, &[(user_get, 1, 1, 1.0)]);

    // Entry pages on the dashboard (nginx + UI): each root calls one backend flow.
    let ui = id["ts-ui-dashboard"];
    let entry = |b: &mut Builder, path: &str, callee: u32, w: f64| {
        let o = b.op(
            ui,
            &format!("GET /{path}"),
            0.6,
            0.3,
            0.5,
            0.0,
            LogKind::None,
        );
        b.calls(o, &[(callee, 1, 1, 1.0)]);
        b.endpoints.push(Endpoint { op: o, weight: w });
    };
    entry(b, "client_login.html", auth_login, 8.0);
    entry(b, "index.html", trips_left, 30.0);
    entry(b, "search_other.html", trips_left2, 10.0);
    entry(b, "travel_plan.html", travel_plan, 6.0);
    entry(b, "preserve.html", preserve, 8.0);
    entry(b, "preserve_other.html", preserve_other, 3.0);
    entry(b, "payment.html", pay, 6.0);
    entry(b, "cancel.html", cancel, 2.0);
    entry(b, "rebook.html", rebook, 1.5);
    entry(b, "execute.html", execute, 2.0);
    entry(b, "news.html", news, 3.0);
    entry(b, "voucher.html", voucher, 1.0);
    entry(b, "admin_basic.html", admin_basic, 0.7);
    entry(b, "admin_order.html", admin_order, 0.7);
    entry(b, "admin_route.html", admin_route, 0.5);
    entry(b, "admin_travel.html", admin_travel, 0.5);
    entry(b, "admin_user.html", admin_user, 0.5);
}

const NOUNS: [&str; 50] = [
    "account",
    "address",
    "ads",
    "alert",
    "archive",
    "audit",
    "billing",
    "booking",
    "cart",
    "catalog",
    "checkout",
    "coupon",
    "currency",
    "customer",
    "delivery",
    "discount",
    "email",
    "feed",
    "fraud",
    "geo",
    "identity",
    "image",
    "inventory",
    "invoice",
    "ledger",
    "loyalty",
    "media",
    "message",
    "metering",
    "notify",
    "order",
    "partner",
    "payment",
    "pricing",
    "profile",
    "quote",
    "rating",
    "refund",
    "report",
    "review",
    "search",
    "session",
    "shipping",
    "stock",
    "subscription",
    "tax",
    "ticket",
    "tracking",
    "user",
    "wallet",
];
const ROLES: [&str; 25] = [
    "api",
    "service",
    "worker",
    "gateway",
    "store",
    "cache",
    "query",
    "writer",
    "reader",
    "sync",
    "router",
    "engine",
    "manager",
    "resolver",
    "indexer",
    "scheduler",
    "adapter",
    "aggregator",
    "validator",
    "publisher",
    "consumer",
    "broker",
    "registry",
    "monitor",
    "exporter",
];
const SUFFIXES: [&str; 8] = [
    "", "-east", "-west", "-core", "-edge", "-lite", "-plus", "-next",
];
const METHODS: [&str; 12] = [
    "Get", "List", "Create", "Update", "Delete", "Search", "Check", "Compute", "Resolve", "Sync",
    "Validate", "Fetch",
];

/// Service names of the synthetic preset: `<noun>-<role><suffix>`, never ending in a digit, so
/// that the data set's pod naming rule (`<service>-<n>`) recovers the service.
fn synthetic_name(i: usize) -> String {
    let n = NOUNS[i % NOUNS.len()];
    let r = ROLES[(i / NOUNS.len()) % ROLES.len()];
    let s = SUFFIXES[(i / (NOUNS.len() * ROLES.len())) % SUFFIXES.len()];
    format!("{n}-{r}{s}")
}

fn camel(s: &str) -> String {
    s.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// A layered system of `n` gRPC services: a gateway on top, services in layers below calling
/// only deeper layers (a DAG), a few datastores at the bottom.
fn synthetic(b: &mut Builder, n: usize, rng: &mut ChaCha8Rng) {
    let n_stores = (n / 25).max(1);
    let n_svc = n.saturating_sub(n_stores).max(2);
    let layers = ((n_svc as f64).log2().ceil() as usize).clamp(2, 6);
    let mut layer_of = Vec::with_capacity(n_svc);
    let mut svc_ids = Vec::with_capacity(n_svc);
    let langs = [
        Lang::Go,
        Lang::Go,
        Lang::Java,
        Lang::Python,
        Lang::Node,
        Lang::CSharp,
    ];
    for i in 0..n_svc {
        let name = if i == 0 {
            "edge-gateway".to_string()
        } else {
            synthetic_name(i - 1)
        };
        let layer = if i == 0 {
            0
        } else {
            1 + (i - 1) * (layers - 1) / (n_svc - 1).max(1)
        };
        let lang = if i == 0 {
            Lang::Go
        } else {
            langs[rng.random_range(0..langs.len())]
        };
        let replicas = if i == 0 { 3 } else { rng.random_range(1..=3) };
        let pods = (0..replicas).map(|k| format!("{name}-{k}")).collect();
        let metric = Some(format!("{name}-grpc"));
        svc_ids.push(b.svc(&name, lang, pods, metric));
        layer_of.push(layer);
    }
    let mut store_ops = Vec::new();
    for k in 0..n_stores {
        let name = format!("{}-db", NOUNS[k % NOUNS.len()]);
        let name = if k >= NOUNS.len() {
            format!("{name}-{}", ROLES[k / NOUNS.len() % ROLES.len()])
        } else {
            name
        };
        let s = b.svc(&name, Lang::Store, vec![format!("{name}-0")], None);
        store_ops.push(b.op(s, "SELECT", 0.5, 0.5, 0.4, 0.4, LogKind::None));
    }
    // Operations, deepest layer first so that callees exist when callers are wired.
    let mut ops_by_layer: Vec<Vec<u32>> = vec![Vec::new(); layers + 1];
    let mut order: Vec<usize> = (0..n_svc).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(layer_of[i]));
    for i in order {
        let svc = svc_ids[i];
        let layer = layer_of[i];
        let n_ops = if i == 0 { 1 } else { rng.random_range(1..=3) };
        let svc_name = b.svcs[svc as usize].name.clone();
        for k in 0..n_ops {
            let method = format!(
                "{}.{}/{}",
                svc_name.replace('-', ""),
                camel(&svc_name),
                METHODS[(i + k) % METHODS.len()]
            );
            let self_ms = (0.8 * (0.9 * crate::rand_util::std_normal(rng)).exp()).max(0.05);
            let op = b.op(svc, &method, self_ms, 0.4, 0.7, 0.05, LogKind::Generic);
            let mut calls = Vec::new();
            let deeper: Vec<u32> = ops_by_layer[layer + 1..]
                .iter()
                .flatten()
                .copied()
                .collect();
            if !deeper.is_empty() && layer > 0 {
                // About 1.2 distinct callees per operation keeps traces tens of spans long.
                let k_calls = if rng.random::<f64>() < 0.35 {
                    0
                } else {
                    rng.random_range(1..=2)
                };
                for _ in 0..k_calls {
                    // Prefer the next layer.
                    let next = &ops_by_layer[layer + 1];
                    let pick = if !next.is_empty() && rng.random::<f64>() < 0.7 {
                        next[rng.random_range(0..next.len())]
                    } else {
                        deeper[rng.random_range(0..deeper.len())]
                    };
                    calls.push((pick, 1, 1, 1.0));
                }
            }
            if rng.random::<f64>() < 0.3 {
                calls.push((store_ops[rng.random_range(0..store_ops.len())], 1, 2, 1.0));
            }
            b.calls(op, &calls);
            ops_by_layer[layer].push(op);
        }
    }
    // Entry endpoints: gateway routes, each calling one or two layer-1 operations.
    let gateway = svc_ids[0];
    let first: Vec<u32> = ops_by_layer[1].clone();
    let n_routes = (first.len()).clamp(1, 40);
    let mut routes: Vec<u32> = first.clone();
    routes.shuffle(rng);
    for (r, &target) in routes.iter().take(n_routes).enumerate() {
        let op = b.op(
            gateway,
            &format!("edgegateway.EdgeGateway/Route{r}"),
            0.5,
            0.3,
            0.6,
            0.0,
            LogKind::Generic,
        );
        let mut calls = vec![(target, 1, 1, 1.0)];
        if first.len() > 1 && rng.random::<f64>() < 0.4 {
            calls.push((first[rng.random_range(0..first.len())], 1, 1, 1.0));
        }
        b.calls(op, &calls);
        let w = (1.0 * crate::rand_util::std_normal(rng)).exp();
        b.endpoints.push(Endpoint { op, weight: w });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use thinkfl_core::service_of;

    #[test]
    fn online_boutique_matches_the_aiops_deployment() {
        let cfg = SimConfig::default();
        let m = build(&cfg, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(m.nodes.len(), 6);
        assert_eq!(m.pods.len(), 42);
        assert!(m.pods.iter().any(|p| p.name == "adservice2-0"));
        for p in &m.pods {
            assert_eq!(service_of(&p.name), m.svcs[p.svc as usize].name);
        }
        let t = m.topology();
        assert!(t.calls.contains(&("frontend".into(), "cartservice".into())));
        assert!(
            t.calls
                .contains(&("cartservice".into(), "redis-cart".into()))
        );
    }

    #[test]
    fn synthetic_names_recover_services_at_scale() {
        let cfg = SimConfig {
            preset: Preset::Synthetic,
            services: 1200,
            ..SimConfig::default()
        };
        let m = build(&cfg, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(m.svcs.len(), 1200);
        let names: BTreeSet<&str> = m.svcs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), 1200, "service names are unique");
        for p in &m.pods {
            assert_eq!(
                service_of(&p.name),
                m.svcs[p.svc as usize].name,
                "{}",
                p.name
            );
        }
        let visits = m.expected_visits();
        let spans: f64 = visits.iter().sum::<f64>() * 2.0;
        assert!(
            spans < 200.0,
            "traces stay moderate: {spans} spans expected"
        );
    }

    #[test]
    fn train_ticket_has_about_forty_services() {
        let cfg = SimConfig {
            preset: Preset::TrainTicket,
            ..SimConfig::default()
        };
        let m = build(&cfg, &mut ChaCha8Rng::seed_from_u64(3));
        let services = m.svcs.iter().filter(|s| s.lang != Lang::Store).count();
        assert_eq!(services, 40);
        for p in &m.pods {
            assert_eq!(
                service_of(&p.name),
                m.svcs[p.svc as usize].name,
                "{}",
                p.name
            );
        }
    }
}
