//! `thinkfl bench tools`: latency of the tools in process and throughput of the tool server on
//! loopback, on a data set of millions of spans (a synthetic Online-Boutique-like one by default,
//! seeded). Figures are printed, never asserted.

use crate::proc::threads_cpu_s;
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::json;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thinkfl_core::{MetricSource, Topology};
use thinkfl_server::loadgen::{self, LoadConfig, Probe};
use thinkfl_server::{LoadedDataset, ToolServer, ToolServerConfig, serve};
use thinkfl_store::{SpanFields, SpanIdx, StoreBuilder, TelemetryStore};
use thinkfl_tools::{OutputMode, ToolEnv, ToolRegistry, ToolsConfig};

/// Settings of one benchmark run.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolsBenchConfig {
    /// Spans of the synthetic data set (ignored when a data set is given).
    pub spans: usize,
    /// In-process `search_traces` queries.
    pub trace_queries: usize,
    /// In-process `search_fluctuating_metrics` queries.
    pub metric_queries: usize,
    /// HTTP requests of the throughput run.
    pub http_requests: usize,
    /// Keep-alive connections of the throughput run.
    pub http_connections: usize,
    /// Requests of the 1,000-connection run (with malformed requests mixed in).
    pub storm_requests: usize,
    /// Connections of that run.
    pub storm_connections: usize,
    /// Worker threads of the server runtime.
    pub server_threads: usize,
    /// Worker threads of the load client runtime.
    pub client_threads: usize,
    /// Upper bound on each HTTP run.
    pub http_deadline: Duration,
    /// Seed of the synthetic data set and the queries.
    pub seed: u64,
}

impl Default for ToolsBenchConfig {
    fn default() -> Self {
        Self {
            spans: 5_000_000,
            trace_queries: 10_000,
            metric_queries: 2_000,
            http_requests: 200_000,
            http_connections: 64,
            storm_requests: 50_000,
            storm_connections: 1_000,
            server_threads: 2,
            client_threads: 2,
            http_deadline: Duration::from_secs(60),
            seed: 7,
        }
    }
}

/// Latency summary in µs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Latency {
    fn of(mut ns: Vec<u64>) -> Self {
        if ns.is_empty() {
            return Self::default();
        }
        ns.sort_unstable();
        let q = |p: f64| ns[((ns.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
        Self {
            n: ns.len(),
            p50_us: q(0.5),
            p99_us: q(0.99),
            mean_us: ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0,
        }
    }
}

/// One HTTP run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpFigures {
    /// Keep-alive connections.
    pub connections: usize,
    /// Requests sent.
    pub sent: usize,
    /// Answers with the expected status and body.
    pub correct: usize,
    /// Answers that came back wrong.
    pub wrong: usize,
    /// Connection failures, timeouts and unparsable answers.
    pub io_errors: usize,
    /// Wall time of the run.
    pub seconds: f64,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Median latency, µs.
    pub p50_us: u32,
    /// 99th-percentile latency, µs.
    pub p99_us: u32,
    /// CPU time of the server's threads per request (µs), from /proc: independent of other
    /// load on the machine.
    pub server_cpu_us_per_request: f64,
    /// CPU time of the load client's threads per request (µs).
    pub client_cpu_us_per_request: f64,
    /// Requests per second the server would answer with two dedicated cores, from its CPU time
    /// per request (2e6 / server_cpu_us_per_request).
    pub projected_req_per_s_on_2_cores: f64,
    /// The first wrong answers, described.
    pub examples: Vec<String>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ToolsBenchReport {
    /// Spans of the data set.
    pub spans: usize,
    /// Traces of the data set.
    pub traces: usize,
    /// Metric series of the data set.
    pub series: usize,
    /// Seconds building (or taking) the store.
    pub build_seconds: f64,
    /// `search_traces` in process, plain output.
    pub search_traces_plain: Latency,
    /// `search_traces` in process, enriched output.
    pub search_traces_enriched: Latency,
    /// `search_fluctuating_metrics` in process.
    pub search_fluctuating_metrics: Latency,
    /// `search_traces` over HTTP.
    pub http_search_traces: HttpFigures,
    /// Many connections with malformed requests mixed in.
    pub http_storm: HttpFigures,
    /// Worker threads of the server runtime.
    pub server_threads: usize,
    /// Worker threads of the load client.
    pub client_threads: usize,
    /// CPUs available to the process.
    pub cpus: usize,
}

impl ToolsBenchReport {
    /// The figures as the CLI prints them.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "data: {} spans, {} traces, {} metric series (built or loaded in {:.1} s); {} CPUs",
            self.spans, self.traces, self.series, self.build_seconds, self.cpus
        );
        for (name, l) in [
            ("search_traces (plain)", &self.search_traces_plain),
            ("search_traces (enriched)", &self.search_traces_enriched),
            (
                "search_fluctuating_metrics",
                &self.search_fluctuating_metrics,
            ),
        ] {
            let _ = writeln!(
                o,
                "{name:<28} n={:<6} p50 {:>9.1} µs  p99 {:>9.1} µs  mean {:>9.1} µs",
                l.n, l.p50_us, l.p99_us, l.mean_us
            );
        }
        for (name, h) in [
            ("HTTP search_traces", &self.http_search_traces),
            ("HTTP storm (malformed mixed)", &self.http_storm),
        ] {
            let _ = writeln!(
                o,
                "{name:<28} {} conns, {} requests in {:.2} s: {:.0} req/s, p50 {} µs, p99 {} µs; correct {}, wrong {}, io errors {} (server {} threads, client {} threads)",
                h.connections,
                h.sent,
                h.seconds,
                h.requests_per_s,
                h.p50_us,
                h.p99_us,
                h.correct,
                h.wrong,
                h.io_errors,
                self.server_threads,
                self.client_threads
            );
            let _ = writeln!(
                o,
                "{:<28} CPU per request: server {:.1} µs, client {:.1} µs -> {:.0} req/s projected for the server on 2 dedicated cores",
                "",
                h.server_cpu_us_per_request,
                h.client_cpu_us_per_request,
                h.projected_req_per_s_on_2_cores
            );
            for e in &h.examples {
                let _ = writeln!(o, "    e.g. {e}");
            }
        }
        o
    }
}

const SERVICES: [(&str, &[&str]); 10] = [
    ("frontend", &["hipstershop.Frontend/Recv."]),
    (
        "cartservice",
        &[
            "hipstershop.CartService/GetCart",
            "hipstershop.CartService/AddItem",
        ],
    ),
    (
        "productcatalogservice",
        &[
            "hipstershop.ProductCatalogService/GetProduct",
            "hipstershop.ProductCatalogService/ListProducts",
        ],
    ),
    (
        "currencyservice",
        &[
            "hipstershop.CurrencyService/Convert",
            "hipstershop.CurrencyService/GetSupportedCurrencies",
        ],
    ),
    (
        "recommendationservice",
        &["hipstershop.RecommendationService/ListRecommendations"],
    ),
    ("adservice", &["hipstershop.AdService/GetAds"]),
    (
        "checkoutservice",
        &["hipstershop.CheckoutService/PlaceOrder"],
    ),
    ("shippingservice", &["hipstershop.ShippingService/GetQuote"]),
    ("paymentservice", &["hipstershop.PaymentService/Charge"]),
    (
        "emailservice",
        &["hipstershop.EmailService/SendOrderConfirmation"],
    ),
];
const NODES: usize = 6;
const KPIS: [&str; 4] = [
    "container_cpu_usage_seconds",
    "container_memory_usage_MB",
    "container_network_receive_MB.eth0",
    "container_fs_reads_MB",
];
const NODE_KPIS: [&str; 3] = ["system.cpu.pct_usage", "system.mem.used", "system.io.r_s"];

/// A seeded synthetic data set of about `spans` spans: frontend traces fanning out to the other
/// services (two spans per call, client and server, as the real data), pods on six nodes, and
/// container and node metrics every 60 s over the time range.
pub fn synthetic_store(spans: usize, seed: u64) -> TelemetryStore {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut b = StoreBuilder::new();
    b.reserve_spans(spans + 64);
    let pods: Vec<Vec<String>> = SERVICES
        .iter()
        .map(|(s, _)| (0..3).map(|i| format!("{s}-{i}")).collect())
        .collect();
    let mut topo = Topology::default();
    for (si, (s, _)) in SERVICES.iter().enumerate() {
        topo.services.push(thinkfl_core::ServiceInfo {
            name: s.to_string(),
            pods: pods[si].clone(),
        });
        for (pi, p) in pods[si].iter().enumerate() {
            topo.placement
                .insert(p.clone(), format!("node-{}", 1 + (si * 3 + pi) % NODES));
        }
    }
    topo.nodes = (1..=NODES).map(|n| format!("node-{n}")).collect();
    let start_ms: i64 = 1_647_734_400_000; // 2022-03-20 00:00 UTC
    let traces_est = (spans / 17).max(1) as i64;
    let span_ms = (86_400_000 / traces_est).max(1);
    let (mut span_id, mut parent_id, mut trace_id) = (String::new(), String::new(), String::new());
    let mut n = 0usize;
    let mut t = start_ms;
    while n < spans {
        t += span_ms;
        trace_id.clear();
        let _ = write!(trace_id, "{:032x}", rng.random::<u128>());
        let fe = &pods[0][rng.random_range(0..3)];
        let root_dur: i64 = rng.random_range(20_000..200_000);
        let root = format!("{:016x}", rng.random::<u64>());
        b.push_span(SpanFields {
            timestamp: t,
            cmdb_id: fe,
            span_id: &root,
            trace_id: &trace_id,
            duration: root_dur,
            kind: "http",
            status_code: "0",
            operation_name: SERVICES[0].1[0],
            parent_span: "",
        });
        n += 1;
        // 8 downstream calls, each a client span on the frontend and a server span on the
        // callee, some with a nested call.
        for _ in 0..8 {
            let si = rng.random_range(1..SERVICES.len());
            let op = SERVICES[si].1[rng.random_range(0..SERVICES[si].1.len())];
            let callee = &pods[si][rng.random_range(0..3)];
            let dur: i64 = rng.random_range(500..20_000);
            let ts = t + rng.random_range(0..20);
            parent_id.clear();
            let _ = write!(parent_id, "{:016x}", rng.random::<u64>());
            b.push_span(SpanFields {
                timestamp: ts,
                cmdb_id: fe,
                span_id: &parent_id,
                trace_id: &trace_id,
                duration: dur,
                kind: "rpc",
                status_code: "0",
                operation_name: op,
                parent_span: &root,
            });
            span_id.clear();
            let _ = write!(span_id, "{:016x}", rng.random::<u64>());
            b.push_span(SpanFields {
                timestamp: ts + 1,
                cmdb_id: callee,
                span_id: &span_id,
                trace_id: &trace_id,
                duration: dur - 300,
                kind: "rpc",
                status_code: "0",
                operation_name: op,
                parent_span: &parent_id,
            });
            n += 2;
            if rng.random_bool(0.1) {
                let child = format!("{:016x}", rng.random::<u64>());
                b.push_span(SpanFields {
                    timestamp: ts + 2,
                    cmdb_id: callee,
                    span_id: &child,
                    trace_id: &trace_id,
                    duration: 200,
                    kind: "db",
                    status_code: "Ok",
                    operation_name: "HGET",
                    parent_span: &span_id,
                });
                n += 1;
            }
        }
    }
    let end_s = t / 1000 + 60;
    for (si, (_, _)) in SERVICES.iter().enumerate() {
        for p in &pods[si] {
            let node = &topo.placement[p];
            let id = format!("{node}.{p}");
            for (k, kpi) in KPIS.iter().enumerate() {
                let mut ts = start_ms / 1000;
                while ts <= end_s {
                    let v = 10.0 * (k + 1) as f64 + rng.random::<f64>();
                    b.push_metric(ts, &id, kpi, v, MetricSource::Container);
                    ts += 60;
                }
            }
        }
    }
    for node in &topo.nodes {
        for kpi in NODE_KPIS {
            let mut ts = start_ms / 1000;
            while ts <= end_s {
                b.push_metric(
                    ts,
                    node,
                    kpi,
                    50.0 + rng.random::<f64>(),
                    MetricSource::Node,
                );
                ts += 60;
            }
        }
    }
    b.set_topology(Some(topo));
    b.finish()
}

fn time_calls(
    env: &ToolEnv<'_>,
    reg: &ToolRegistry,
    name: &str,
    args: &[serde_json::Value],
) -> Latency {
    let mut ns = Vec::with_capacity(args.len());
    let mut bytes = 0usize;
    for a in args {
        let t0 = Instant::now();
        let out = reg.call(env, name, a);
        ns.push(t0.elapsed().as_nanos() as u64);
        bytes += out.map(|o| o.text.len()).unwrap_or(0);
    }
    std::hint::black_box(bytes);
    Latency::of(ns)
}

/// Runs the benchmark on `store` (or a synthetic store of `cfg.spans` spans).
pub fn run(cfg: &ToolsBenchConfig, store: Option<TelemetryStore>) -> Result<ToolsBenchReport> {
    run_io(cfg, store).map_err(Error::Server)
}

fn run_io(
    cfg: &ToolsBenchConfig,
    store: Option<TelemetryStore>,
) -> std::io::Result<ToolsBenchReport> {
    let t0 = Instant::now();
    let store = store.unwrap_or_else(|| synthetic_store(cfg.spans, cfg.seed));
    let mut report = ToolsBenchReport {
        spans: store.span_count(),
        traces: store.trace_count(),
        series: store.series_count(),
        build_seconds: t0.elapsed().as_secs_f64(),
        server_threads: cfg.server_threads,
        client_threads: cfg.client_threads,
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        ..Default::default()
    };
    if store.span_count() == 0 {
        return Ok(report);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed);
    let reg = ToolRegistry::standard();
    let ids: Vec<String> = (0..cfg.trace_queries)
        .map(|_| {
            store
                .span(SpanIdx(rng.random_range(0..store.span_count() as u32)))
                .span_id()
                .to_string()
        })
        .collect();
    let trace_args: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| json!({ "parent_span_id": id }))
        .collect();
    let plain = ToolEnv::new(&store, ToolsConfig::default());
    report.search_traces_plain = time_calls(&plain, &reg, "search_traces", &trace_args);
    let enriched = ToolEnv::new(
        &store,
        ToolsConfig {
            mode: OutputMode::Enriched,
            ..Default::default()
        },
    );
    let _ = enriched.baselines(); // one pass over the spans, outside the timing
    report.search_traces_enriched = time_calls(&enriched, &reg, "search_traces", &trace_args);

    let comps: Vec<String> = {
        let t = store.topology();
        let mut c: Vec<String> = t.services.iter().map(|s| s.name.clone()).collect();
        c.extend(t.placement.keys().cloned());
        c.extend(t.nodes.iter().cloned());
        c
    };
    let (lo, hi) = store.time_range().unwrap_or((0, 1));
    let metric_args: Vec<serde_json::Value> = (0..cfg.metric_queries)
        .map(|_| {
            json!({
                "service_name": comps[rng.random_range(0..comps.len().max(1))],
                "timestamp": rng.random_range(lo..=hi.max(lo)).to_string(),
            })
        })
        .collect();
    if !comps.is_empty() {
        report.search_fluctuating_metrics =
            time_calls(&plain, &reg, "search_fluctuating_metrics", &metric_args);
    }

    // HTTP: expected bodies from the in-process tool, so every answer is checked.
    let mut probes: Vec<Probe> = ids
        .iter()
        .take(5_000)
        .map(|id| {
            let path = format!("/search_traces?parent_span_id={id}");
            match reg.call(&plain, "search_traces", &json!({ "parent_span_id": id })) {
                Ok(o) => Probe::get(&path, 200).with_body(o.text),
                Err(e) => Probe::get(&path, e.http_status()),
            }
        })
        .collect();
    let clean = Arc::new(probes.clone());
    // The storm mixes in a malformed request every fifth probe.
    let malformed = [
        Probe::get("/search_traces", 400).containing("missing field"),
        Probe::get("/search_traces?parent_span_id=zzzz", 404).containing("no span"),
        Probe::post_json("/v1/tools/call", "{\"name\": ", 400).containing("error"),
        Probe::get(
            "/search_fluctuating_metrics?service_name=frontend&timestamp=noon",
            400,
        )
        .containing("bad timestamp"),
        Probe::garbage(b"\x16\x03\x01 not http\r\n\r\n"),
    ];
    let mut storm = Vec::with_capacity(probes.len() * 5 / 4);
    for (i, p) in probes.drain(..).enumerate() {
        storm.push(p);
        if i % 4 == 3 {
            storm.push(malformed[(i / 4) % malformed.len()].clone());
        }
    }
    let storm = Arc::new(storm);

    let dataset = LoadedDataset::new("bench", store);
    let server = Arc::new(
        ToolServer::new(vec![dataset], ToolServerConfig::default())
            .map_err(std::io::Error::other)?,
    );
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.server_threads.max(1))
        .thread_name("tools-server")
        .enable_all()
        .build()?;
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let limits = server.config().limits.clone();
    let app = server.clone().router();
    let serving = server_rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        serve(listener, app, &limits, async {
            let _ = stop_rx.await;
        })
        .await
    });
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.client_threads.max(1))
        .thread_name("tools-client")
        .enable_all()
        .build()?;
    let figures = |r: loadgen::LoadReport, connections: usize, cpu: (f64, f64)| HttpFigures {
        server_cpu_us_per_request: cpu.0 * 1e6 / r.sent.max(1) as f64,
        client_cpu_us_per_request: cpu.1 * 1e6 / r.sent.max(1) as f64,
        projected_req_per_s_on_2_cores: if cpu.0 > 0.0 {
            2.0 * r.sent as f64 / cpu.0
        } else {
            0.0
        },
        connections,
        sent: r.sent,
        correct: r.correct,
        wrong: r.wrong,
        io_errors: r.io_errors,
        seconds: r.elapsed.as_secs_f64(),
        requests_per_s: r.requests_per_s(),
        p50_us: r.latency_us(0.5),
        p99_us: r.latency_us(0.99),
        examples: r.examples.clone(),
    };
    let run_load = |connections: usize, requests: usize, probes: Arc<Vec<Probe>>| {
        let lc = LoadConfig {
            addr,
            connections,
            requests,
            deadline: cfg.http_deadline,
            io_timeout: Duration::from_secs(30),
        };
        let (s0, c0) = (threads_cpu_s("tools-server"), threads_cpu_s("tools-client"));
        let r = client_rt.block_on(loadgen::run(&lc, probes));
        let cpu = (
            threads_cpu_s("tools-server") - s0,
            threads_cpu_s("tools-client") - c0,
        );
        r.map(|r| (r, cpu))
    };
    // Warm up connections and caches briefly, then measure.
    run_load(
        cfg.http_connections,
        cfg.http_connections * 10,
        clean.clone(),
    )?;
    let (r, cpu) = run_load(cfg.http_connections, cfg.http_requests, clean)?;
    report.http_search_traces = figures(r, cfg.http_connections, cpu);
    let (r, cpu) = run_load(cfg.storm_connections, cfg.storm_requests, storm)?;
    report.http_storm = figures(r, cfg.storm_connections, cpu);
    let _ = stop_tx.send(());
    let _ = server_rt.block_on(serving);
    Ok(report)
}
