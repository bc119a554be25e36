//! Synthetic layered systems of any size, with generated service names.

use crate::model::{Builder, Endpoint, Lang, LogKind};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

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
pub(super) fn build(b: &mut Builder, n: usize, rng: &mut ChaCha8Rng) {
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
