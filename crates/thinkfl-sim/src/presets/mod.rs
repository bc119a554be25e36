//! The systems the simulator runs, one file a system, as candle keeps one file a model: each
//! describes its services, operations and entry points to a [`Builder`], which places the pods.

mod online_boutique;
mod synthetic;
mod train_ticket;

use crate::config::{Preset, SimConfig};
use crate::model::{Builder, Model};
use rand_chacha::ChaCha8Rng;

/// Builds the model of a preset. Placement, per-pod speeds and noisy pods come from `rng`.
pub(crate) fn build(cfg: &SimConfig, rng: &mut ChaCha8Rng) -> Model {
    let mut b = Builder::default();
    match cfg.preset {
        Preset::OnlineBoutique => online_boutique::build(&mut b),
        Preset::TrainTicket => train_ticket::build(&mut b),
        Preset::Synthetic => synthetic::build(&mut b, cfg.services, rng),
    }
    let n_nodes = match cfg.preset {
        Preset::OnlineBoutique => 6,
        Preset::TrainTicket => 8,
        Preset::Synthetic => 0,
    };
    b.finish(cfg, n_nodes, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Lang;
    use rand::SeedableRng;
    use std::collections::BTreeSet;
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
