//! The evaluation on a simulated Online Boutique: 60 fault cases over all 15 types and the three
//! levels, every method, the random floor against its closed form, and determinism.

use std::sync::OnceLock;
use thinkfl_baselines::{CommonConfig, METHODS, build};
use thinkfl_eval::{EvalConfig, Report, evaluate};
use thinkfl_sim::{SimConfig, simulate_dataset};
use thinkfl_store::TelemetryStore;
use thinkfl_tools::Diagnoser;

fn sim_config(faults: usize, seed: u64) -> SimConfig {
    SimConfig {
        seed,
        faults,
        // Slots of 7 minutes: faults of 2-3 minutes with quiet time around them.
        duration_s: 600 + faults as i64 * 420,
        traces_per_minute: 20.0,
        ..SimConfig::default()
    }
}

fn store_of(cfg: &SimConfig) -> TelemetryStore {
    TelemetryStore::from_dataset(simulate_dataset(cfg).expect("simulation runs"))
}

fn run(store: &TelemetryStore, seed: u64) -> Report {
    let methods = build(store, &METHODS, CommonConfig::default(), seed).unwrap();
    let refs: Vec<&dyn Diagnoser> = methods.iter().map(|m| m.as_ref()).collect();
    evaluate(
        store,
        &refs,
        &EvalConfig::default(),
        "simulated online-boutique",
        seed,
        &(),
    )
    .unwrap()
}

fn big() -> &'static (TelemetryStore, Report) {
    static BIG: OnceLock<(TelemetryStore, Report)> = OnceLock::new();
    BIG.get_or_init(|| {
        let store = store_of(&sim_config(60, 11));
        let report = run(&store, 5);
        (store, report)
    })
}

#[test]
fn covers_every_type_and_level() {
    let (store, r) = big();
    assert_eq!(r.cases, 60);
    assert_eq!(r.fault_types.len(), 15, "{:?}", r.fault_types);
    assert_eq!(r.levels.len(), 3, "{:?}", r.levels);
    assert_eq!(store.faults().len(), 60);
    for m in METHODS {
        let mr = r.method(m).unwrap_or_else(|| panic!("{m} missing"));
        assert_eq!(mr.cases.len(), 60);
        assert_eq!(
            mr.cases_with_errors,
            0,
            "{m}: {:?}",
            mr.cases
                .iter()
                .flat_map(|c| &c.errors)
                .take(3)
                .collect::<Vec<_>>()
        );
    }
    println!("{}", r.to_markdown());
}

#[test]
fn random_matches_its_closed_form() {
    let (_, r) = big();
    let e = r.random_expectation.as_ref().expect("random ran");
    let got = &r.method("random").unwrap().overall;
    println!(
        "random MRR strict {:.4} (expected {:.4} ± {:.4}), lenient {:.4} (expected {:.4} ± {:.4}), {} candidates",
        got.strict.mrr,
        e.strict_mrr,
        e.strict_mrr_se,
        got.lenient.mrr,
        e.lenient_mrr,
        e.lenient_mrr_se,
        e.candidates
    );
    // Three standard errors: a wrong harness (fusion, matching, candidate set) lands far outside.
    assert!((got.strict.mrr - e.strict_mrr).abs() <= 3.0 * e.strict_mrr_se + 1e-9);
    assert!((got.lenient.mrr - e.lenient_mrr).abs() <= 3.0 * e.lenient_mrr_se + 1e-9);
}

#[test]
fn classic_baselines_beat_random() {
    let (_, r) = big();
    let floor = r.method("random").unwrap().overall.clone();
    for m in METHODS.iter().filter(|m| **m != "random") {
        let o = &r.method(m).unwrap().overall;
        println!(
            "{m}: MRR strict {:.3} lenient {:.3} (random {:.3} / {:.3})",
            o.strict.mrr, o.lenient.mrr, floor.strict.mrr, floor.lenient.mrr
        );
        assert!(
            o.lenient.mrr > floor.lenient.mrr,
            "{m} lenient MRR {} <= random {}",
            o.lenient.mrr,
            floor.lenient.mrr
        );
        assert!(
            o.strict.mrr > floor.strict.mrr,
            "{m} strict MRR {} <= random {}",
            o.strict.mrr,
            floor.strict.mrr
        );
    }
}

#[test]
fn same_seed_same_report() {
    let cfg = sim_config(8, 3);
    let a = run(&store_of(&cfg), 9).without_timings();
    let b = run(&store_of(&cfg), 9).without_timings();
    assert_eq!(a, b);
    assert_eq!(a.to_json().unwrap(), b.to_json().unwrap());
    // Another seed moves the random method.
    let c = run(&store_of(&cfg), 10).without_timings();
    assert_ne!(
        a.method("random").unwrap().cases,
        c.method("random").unwrap().cases
    );
}
