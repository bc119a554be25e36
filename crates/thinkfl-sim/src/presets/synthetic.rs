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

/// Prefixes a company puts before its service names. Never `ts` (Train-Ticket's, the topology
/// the corpus holds out) and never ending in a digit.
const PREFIXES: [&str; 14] = [
    "acme", "shop", "hs", "sock", "mk", "app", "prod", "core", "pay", "web", "qa", "xo", "bk", "ms",
];
/// Names of the entry service (the gateway).
const GATEWAYS: [&str; 6] = [
    "frontend",
    "gateway",
    "edge",
    "web",
    "ui-dashboard",
    "portal",
];
/// Kinds of datastore, as the last word of a store's name.
/// (None is a role word: a store never shares a service's name.)
const STORES: [&str; 6] = ["db", "mongo", "redis", "mysql", "postgres", "elastic"];

/// How a system spells its service names. Real systems differ (`cartservice`,
/// `ts-order-service`, `payment-api`, `checkout-svc`): a model that learned to copy one style
/// must copy any, and a decision that waits behind a shared prefix (`ts-...`) must still be
/// taken on the right row. Each synthetic system draws its own style, prefix and noun order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Style {
    /// `payment-api`, `order-worker`: a role word per service.
    NounRole,
    /// `paymentservice` (Online Boutique's style).
    Joined,
    /// `payment-service`.
    DashService,
    /// `acme-payment-service` (Train-Ticket's style, with another prefix).
    PrefixService,
    /// `payment-svc`.
    Svc,
    /// `acme-payment`.
    PrefixNoun,
}

const STYLES: [Style; 6] = [
    Style::NounRole,
    Style::Joined,
    Style::DashService,
    Style::PrefixService,
    Style::Svc,
    Style::PrefixNoun,
];

/// The names of one synthetic system, drawn once.
#[derive(Debug, Clone)]
struct Naming {
    style: Style,
    prefix: &'static str,
    gateway: &'static str,
    nouns: Vec<&'static str>,
    /// The role word of each service (only [`Style::NounRole`] shows it).
    roles: Vec<&'static str>,
    /// Where the stores' kinds start in [`STORES`].
    store_kind: usize,
}

impl Naming {
    /// Draws from its own random stream, so that the rest of the system (calls, latencies,
    /// faults) is the one the same seed made before names varied.
    fn draw(rng: &ChaCha8Rng, services: usize) -> Self {
        let mut r = rng.clone();
        r.set_stream(0x6e61_6d65);
        let style = STYLES[r.random_range(0..STYLES.len())];
        let prefix = PREFIXES[r.random_range(0..PREFIXES.len())];
        let gateway = GATEWAYS[r.random_range(0..GATEWAYS.len())];
        let mut nouns = NOUNS.to_vec();
        nouns.shuffle(&mut r);
        let roles = (0..services)
            .map(|_| ROLES[r.random_range(0..ROLES.len())])
            .collect();
        let store_kind = r.random_range(0..STORES.len());
        Self {
            store_kind,
            style,
            prefix,
            gateway,
            nouns,
            roles,
        }
    }

    /// The word of service `i` (from 0, the gateway excluded): unique, since past the nouns a
    /// role word and a suffix qualify it.
    fn word(&self, i: usize) -> String {
        let n = self.nouns[i % self.nouns.len()];
        let round = i / self.nouns.len();
        if round == 0 {
            n.to_string()
        } else {
            let q = ROLES[(round - 1) % ROLES.len()];
            let s = SUFFIXES[(round - 1) / ROLES.len() % SUFFIXES.len()];
            format!("{n}-{q}{s}")
        }
    }

    /// Name of service `i`; never ends in a digit, so that the data set's pod naming rule
    /// (`<service>-<n>`) recovers the service.
    fn service(&self, i: usize) -> String {
        let w = self.word(i);
        let p = self.prefix;
        match self.style {
            Style::NounRole => format!("{w}-{}", self.roles[i % self.roles.len()]),
            Style::Joined => format!("{}service", w.replace('-', "")),
            Style::DashService => format!("{w}-service"),
            Style::PrefixService => format!("{p}-{w}-service"),
            Style::Svc => format!("{w}-svc"),
            Style::PrefixNoun => format!("{p}-{w}"),
        }
    }

    fn gateway(&self) -> String {
        let g = self.gateway;
        match self.style {
            Style::PrefixService | Style::PrefixNoun => format!("{}-{g}", self.prefix),
            Style::Svc => format!("{g}-svc"),
            _ => g.to_string(),
        }
    }

    /// Name of datastore `k`: its own noun (from the end of the order, so that small systems'
    /// stores and services differ) and a kind.
    fn store(&self, k: usize) -> String {
        let n = self.nouns[self.nouns.len() - 1 - k % self.nouns.len()];
        let kind = STORES[(k + self.store_kind) % STORES.len()];
        let name = if k >= self.nouns.len() {
            format!("{n}-{}-{kind}", ROLES[k / self.nouns.len() % ROLES.len()])
        } else {
            format!("{n}-{kind}")
        };
        match self.style {
            Style::PrefixService | Style::PrefixNoun => format!("{}-{name}", self.prefix),
            _ => name,
        }
    }
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
    let naming = Naming::draw(rng, n_svc);
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
            naming.gateway()
        } else {
            naming.service(i - 1)
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
        let name = naming.store(k);
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
    let gw_name = b.svcs[gateway as usize].name.clone();
    let (gw_pkg, gw_type) = (gw_name.replace('-', ""), camel(&gw_name));
    let first: Vec<u32> = ops_by_layer[1].clone();
    let n_routes = (first.len()).clamp(1, 40);
    let mut routes: Vec<u32> = first.clone();
    routes.shuffle(rng);
    for (r, &target) in routes.iter().take(n_routes).enumerate() {
        let op = b.op(
            gateway,
            &format!("{gw_pkg}.{gw_type}/Route{r}"),
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
    use std::collections::HashSet;

    /// Every name of a system is distinct and recovers its service from a pod name, for every
    /// style, at the corpus's sizes and well beyond the noun list.
    #[test]
    fn names_are_unique_and_end_in_a_letter() {
        let mut styles = HashSet::new();
        for seed in 0..60u64 {
            for &n in &[24usize, 80, 400] {
                let rng = ChaCha8Rng::seed_from_u64(seed);
                let naming = Naming::draw(&rng, n);
                styles.insert(naming.style);
                let n_stores = (n / 25).max(1);
                let mut names: Vec<String> = vec![naming.gateway()];
                names.extend((0..n - 1).map(|i| naming.service(i)));
                names.extend((0..n_stores).map(|k| naming.store(k)));
                let distinct: HashSet<&String> = names.iter().collect();
                assert_eq!(
                    distinct.len(),
                    names.len(),
                    "seed {seed}, {n} services: {names:?}"
                );
                for name in &names {
                    assert!(
                        name.ends_with(|c: char| c.is_ascii_lowercase()),
                        "{name} must end in a letter"
                    );
                    assert!(!name.starts_with("ts-"), "{name}: Train-Ticket's prefix");
                }
            }
        }
        assert_eq!(styles.len(), STYLES.len(), "60 seeds draw every style");
    }
}
