//! Worked examples of every formula of DESIGN.md section 6, with the design's constants.

use super::*;
use proptest::prelude::*;
use serde_json::json;
use thinkfl_core::{CallRecord, Level, RootCause, ToolCall};

fn truth(level: Level, id: &str) -> FaultCase {
    FaultCase {
        timestamp: 1_647_747_326,
        level,
        cmdb_id: id.into(),
        failure_type: "k8s容器网络延迟".into(),
        duration: None,
    }
}

fn rc(node: Option<&str>, service: Option<&str>, pod: Option<&str>) -> RootCause {
    RootCause {
        node: node.map(Into::into),
        service: service.map(Into::into),
        pod: pod.map(Into::into),
        reason: None,
    }
}

fn svc(s: &str) -> RootCause {
    rc(None, Some(s), None)
}

fn path(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

fn call(name: &str, args: serde_json::Value, valid: bool) -> CallRecord {
    CallRecord {
        call: Some(ToolCall {
            name: name.into(),
            arguments: args,
        }),
        raw: String::new(),
        valid,
        error: (!valid).then(|| "bad call".into()),
    }
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn defaults_are_the_designs_and_validate() {
    let c = GraderConfig::default();
    assert_eq!((c.r_max, c.d_max), (10, 10));
    assert_eq!(c.route_mu, 1.0);
    assert_eq!((c.lambda_invalid, c.lambda_duplicate), (0.5, 0.5));
    assert_eq!(
        (
            c.diversity_new_correct,
            c.diversity_new_incorrect,
            c.diversity_seen
        ),
        (1.0, 0.3, 0.1)
    );
    assert_eq!((c.stage1_recall, c.stage1_format), (1.0, 1.0));
    assert_eq!((c.stage2_recall, c.stage2_diversity), (1.0, 0.8));
    assert_eq!(
        (c.stage3_recall, c.stage3_route, c.stage3_hallucination),
        (1.0, 0.2, 0.2)
    );
    assert_eq!(c.recall_matching, Matching::Strict);
    c.validate().unwrap();
    // A config file naming only some fields keeps the defaults for the rest.
    let partial: GraderConfig = serde_json::from_str(r#"{"r_max": 5}"#).unwrap();
    assert_eq!(partial.r_max, 5);
    assert_eq!(partial.d_max, 10);
    assert!(serde_json::from_str::<GraderConfig>(r#"{"rmax": 5}"#).is_err());
}

#[test]
fn validate_names_the_bad_field() {
    let bad = |f: fn(&mut GraderConfig)| {
        let mut c = GraderConfig::default();
        f(&mut c);
        match c.validate() {
            Err(Error::Config { field, .. }) => field,
            Ok(()) => panic!("accepted"),
        }
    };
    assert_eq!(bad(|c| c.r_max = 0), "r_max");
    assert_eq!(bad(|c| c.d_max = 0), "d_max");
    assert_eq!(bad(|c| c.lambda_invalid = -0.1), "lambda_invalid");
    assert_eq!(bad(|c| c.stage2_diversity = f64::NAN), "stage2_diversity");
    assert_eq!(bad(|c| c.route_mu = f64::INFINITY), "route_mu");
}

#[test]
fn recall_worked_examples() {
    let c = GraderConfig::default();
    close(recall(&c, Some(0)), 1.0);
    close(recall(&c, Some(3)), 0.7);
    close(recall(&c, Some(9)), 0.1);
    // Rank at or past r_max: nothing, so a miss never outscores a late hit.
    close(recall(&c, Some(10)), 0.0);
    close(recall(&c, Some(25)), 0.0);
    close(recall(&c, None), 0.0);
    let c5 = GraderConfig {
        r_max: 5,
        ..GraderConfig::default()
    };
    close(recall(&c5, Some(2)), 0.6);
    close(recall(&c5, Some(5)), 0.0);
}

#[test]
fn strict_matching_uses_the_fault_level_field() {
    let pod_fault = truth(Level::Pod, "cartservice-1");
    let pred = vec![
        svc("cartservice"),
        rc(Some("node-3"), None, Some("cartservice-0")),
        rc(None, Some("cartservice"), Some("cartservice-1")),
    ];
    assert_eq!(first_match(&pred, &pod_fault, Matching::Strict), Some(2));
    // At service level any item naming the service, or a pod of it, matches.
    assert_eq!(first_match(&pred, &pod_fault, Matching::Lenient), Some(0));

    let svc_fault = truth(Level::Service, "recommendationservice");
    let pod_only = vec![rc(None, None, Some("recommendationservice-1"))];
    assert_eq!(first_match(&pod_only, &svc_fault, Matching::Strict), None);
    assert_eq!(
        first_match(&pod_only, &svc_fault, Matching::Lenient),
        Some(0)
    );
    // Second-deployment pod names belong to the service too.
    let pod2 = vec![rc(None, None, Some("recommendationservice2-0"))];
    assert_eq!(first_match(&pod2, &svc_fault, Matching::Lenient), Some(0));

    let node_fault = truth(Level::Node, "node-3");
    let on_node = vec![
        rc(None, Some("cartservice"), Some("cartservice-1")),
        rc(Some("node-3"), None, None),
    ];
    assert_eq!(
        first_match(&on_node, &node_fault, Matching::Strict),
        Some(1)
    );
    assert_eq!(
        first_match(&on_node, &node_fault, Matching::Lenient),
        Some(1)
    );
    // Whitespace around a name is not a different component.
    assert_eq!(
        first_match(
            &[rc(Some(" node-3 "), None, None)],
            &node_fault,
            Matching::Strict
        ),
        Some(0)
    );
}

#[test]
fn no_match_gives_zero_recall() {
    let c = GraderConfig::default();
    let t = Trajectory {
        path: path(&["frontend-2", "adservice-0"]),
        prediction: Some(vec![svc("adservice"), svc("frontend")]),
        calls: vec![call("print_results", json!({}), true)],
        ..Default::default()
    };
    let g = grade(&c, &t, &truth(Level::Service, "cartservice"));
    assert_eq!(g.rank, None);
    assert_eq!(g.lenient_rank, None);
    close(g.recall, 0.0);
    // Path of 2 without the fault: route is effort, 2 / D_max.
    close(g.route, 0.2);
    close(g.hallucination, 0.0);
    close(g.format, 1.0);
    close(g.stage1, 1.0);
    close(g.stage3, 0.2 * 0.2);
}

#[test]
fn route_worked_examples() {
    let c = GraderConfig::default();
    let p = path(&["frontend-2", "checkoutservice-0", "cartservice-1", "node-3"]);
    // i = 3, L = 4: 3 / (4 - 1) = 1.
    close(route(&c, &p, &truth(Level::Pod, "cartservice-1")), 1.0);
    // i = 1, L = 4: 1 / 3.
    close(route(&c, &p, &truth(Level::Pod, "frontend-2")), 1.0 / 3.0);
    // i = 2, L = 4: 2 / 3.
    close(
        route(&c, &p, &truth(Level::Service, "checkoutservice")),
        2.0 / 3.0,
    );
    close(route(&c, &p, &truth(Level::Node, "node-3")), 1.0);
    // Missed: L / D_max = 0.4; a long missed path is capped at 1.
    close(route(&c, &p, &truth(Level::Pod, "paymentservice-0")), 0.4);
    let long: Vec<String> = (0..12).map(|i| format!("svc{i}-0")).collect();
    close(
        route(&c, &long, &truth(Level::Pod, "paymentservice-0")),
        1.0,
    );
    // Empty path: nothing found, no effort.
    close(route(&c, &[], &truth(Level::Pod, "paymentservice-0")), 0.0);
    // A path of one entry that is the fault: max(L - mu, 1) keeps the denominator at 1.
    close(
        route(
            &c,
            &path(&["cartservice-1"]),
            &truth(Level::Pod, "cartservice-1"),
        ),
        1.0,
    );
    // mu = 0 asks the fault to be the very last entry.
    let c0 = GraderConfig {
        route_mu: 0.0,
        ..GraderConfig::default()
    };
    close(route(&c0, &p, &truth(Level::Pod, "cartservice-1")), 0.75);
}

#[test]
fn route_service_fault_matched_by_a_pod_in_the_path() {
    let c = GraderConfig::default();
    let p = path(&[
        "frontend-0",
        "recommendationservice-1",
        "productcatalogservice-0",
        "node-2",
        "node-4",
    ]);
    let t = truth(Level::Service, "recommendationservice");
    assert_eq!(path_position(&p, &t), Some(2));
    // i = 2, L = 5: 2 / 4.
    close(route(&c, &p, &t), 0.5);
    // A pod fault is not matched by another pod, nor by its service's name.
    let pod_fault = truth(Level::Pod, "recommendationservice-0");
    assert_eq!(path_position(&p, &pod_fault), None);
    assert_eq!(
        path_position(&path(&["recommendationservice"]), &pod_fault),
        None
    );
    // A node fault is not matched by a pod hosted on it.
    assert_eq!(path_position(&p, &truth(Level::Node, "node-3")), None);
}

#[test]
fn hallucination_worked_example() {
    let c = GraderConfig::default();
    let p = path(&["frontend-2", "cartservice-1", "node-3"]);
    let mut dup = rc(None, Some("cartservice"), Some("cartservice-1"));
    dup.reason = Some("said again, with another reason".into());
    let pred = vec![
        rc(None, Some("cartservice"), Some("cartservice-1")), // valid: the service via its pod
        rc(Some("node-3"), None, None),                       // valid
        dup,                                                  // duplicate of the first
        svc("paymentservice"),                                // outside the path
        RootCause::default(),                                 // names nothing
    ];
    let n = hallucination_counts(&pred, &p);
    assert_eq!(
        n,
        HallucinationCounts {
            items: 5,
            invalid: 2,
            duplicate: 1
        }
    );
    // 0.5 * 2/5 + 0.5 * 1/5.
    close(hallucination(&c, &n), 0.3);
}

#[test]
fn hallucination_items_outside_the_path() {
    let p = path(&["frontend-2", "cartservice-1"]);
    // One component of the item outside the path is enough: cartservice-0 was never seen.
    let n = hallucination_counts(&[rc(None, Some("cartservice"), Some("cartservice-0"))], &p);
    assert_eq!(n.invalid, 1);
    // A node is present only when it was touched itself, not through the pods it hosts.
    let n = hallucination_counts(&[rc(Some("node-3"), None, None)], &p);
    assert_eq!(n.invalid, 1);
    // Every item outside the path and every item a repeat: H = l1 + l2 = 1.
    let pred = vec![svc("adservice"), svc("adservice")];
    let n = hallucination_counts(&pred, &p);
    assert_eq!(
        n,
        HallucinationCounts {
            items: 2,
            invalid: 2,
            duplicate: 1
        }
    );
    close(hallucination(&GraderConfig::default(), &n), 0.5 + 0.25);
    // Empty path: every named item is outside it.
    let n = hallucination_counts(&[svc("frontend")], &[]);
    assert_eq!(n.invalid, 1);
}

#[test]
fn hallucination_duplicates_ignore_reason_and_whitespace() {
    let p = path(&["cartservice-1"]);
    let mut a = rc(None, Some("cartservice"), None);
    a.reason = Some("cpu".into());
    let b = rc(None, Some(" cartservice "), None);
    let c = rc(None, Some("cartservice"), Some("cartservice-1"));
    let n = hallucination_counts(&[a, b, c], &p);
    // c names a pod too, so it is a different item.
    assert_eq!(
        n,
        HallucinationCounts {
            items: 3,
            invalid: 0,
            duplicate: 1
        }
    );
    close(hallucination(&GraderConfig::default(), &n), 0.5 / 3.0);
    // An empty list has no hallucination.
    close(
        hallucination(&GraderConfig::default(), &hallucination_counts(&[], &p)),
        0.0,
    );
}

#[test]
fn format_worked_examples() {
    let calls = vec![
        call("search_traces", json!({"parent_span_id": "a"}), true),
        call("search_tracez", json!({}), false),
        call(
            "search_fluctuating_metrics",
            json!({"service_name": "x", "timestamp": 1}),
            true,
        ),
        call("print_results", json!({"root_causes": []}), true),
    ];
    close(format(&calls, true), 0.75);
    close(format(&calls[..1], true), 1.0);
    // No final answer: 0 however clean the calls.
    close(format(&calls[..1], false), 0.0);
    close(format(&[], false), 0.0);
    // An answer with no tool calls (e.g. from a structured-output backend): nothing was invalid.
    close(format(&[], true), 1.0);
    let unparsed = CallRecord {
        call: None,
        raw: "<tool_call>{oops".into(),
        valid: false,
        error: Some("bad JSON".into()),
    };
    close(format(&[unparsed, calls[3].clone()], true), 0.5);
}

#[test]
fn full_trajectory_worked_example() {
    let c = GraderConfig::default();
    let t = Trajectory {
        case: Some(4),
        query_span: Some("abc".into()),
        path: path(&[
            "frontend-2",
            "checkoutservice-2",
            "paymentservice-0",
            "node-5",
        ]),
        prediction: Some(vec![
            svc("checkoutservice"),
            rc(None, Some("paymentservice"), Some("paymentservice-0")),
            svc("adservice"),
        ]),
        calls: vec![
            call("search_traces", json!({"parent_span_id": "a"}), true),
            call("search_traces", json!({"parent_span_id": "b"}), true),
            call("search_traces", json!({}), false),
            call(
                "search_fluctuating_metrics",
                json!({"service_name": "paymentservice-0", "timestamp": 1}),
                true,
            ),
            call("print_results", json!({"root_causes": []}), true),
        ],
        ..Default::default()
    };
    let g = grade(&c, &t, &truth(Level::Pod, "paymentservice-0"));
    assert_eq!(g.rank, Some(1));
    assert_eq!(g.lenient_rank, Some(1));
    close(g.recall, 0.9);
    assert_eq!((g.route_position, g.path_len), (Some(3), 4));
    close(g.route, 1.0);
    assert_eq!(
        g.counts,
        HallucinationCounts {
            items: 3,
            invalid: 1,
            duplicate: 0
        }
    );
    close(g.hallucination, 0.5 / 3.0);
    assert_eq!((g.calls, g.valid_calls), (5, 4));
    close(g.format, 0.8);
    assert_eq!(g.diversity, None);
    close(g.stage1, 0.9 + 0.8);
    assert_eq!(g.stage2, None);
    close(g.stage3, 0.9 + 0.2 * 1.0 - 0.2 * (0.5 / 3.0));
    close(g.score(Stage::One), 1.7);
    close(g.score(Stage::Two), 0.9);
    close(g.score(Stage::Three), g.stage3);
    // The breakdown serializes (training logs and reports carry it).
    let j = serde_json::to_value(&g).unwrap();
    assert_eq!(j["rank"], 1);
}

#[test]
fn no_answer_scores_only_route() {
    let c = GraderConfig::default();
    let t = Trajectory {
        path: path(&["frontend-2", "cartservice-1", "redis-cart-0"]),
        prediction: None,
        calls: vec![call("search_traces", json!({"parent_span_id": "a"}), true)],
        ..Default::default()
    };
    let g = grade(&c, &t, &truth(Level::Pod, "cartservice-1"));
    assert_eq!(g.rank, None);
    close(g.recall, 0.0);
    close(g.format, 0.0);
    close(g.hallucination, 0.0);
    // i = 2, L = 3: 2 / 2.
    close(g.route, 1.0);
    close(g.stage1, 0.0);
    close(g.stage3, 0.2);
}

#[test]
fn rank_past_r_max_earns_nothing() {
    let c = GraderConfig::default();
    let mut pred: Vec<RootCause> = (0..10).map(|i| svc(&format!("svc{i}"))).collect();
    pred.push(svc("cartservice"));
    let t = Trajectory {
        path: path(&["cartservice-0"]),
        prediction: Some(pred),
        ..Default::default()
    };
    let g = grade(&c, &t, &truth(Level::Service, "cartservice"));
    assert_eq!(g.rank, Some(10));
    close(g.recall, 0.0);
    // Ten of eleven items name services never touched.
    assert_eq!(g.counts.invalid, 10);
}

#[test]
fn diversity_worked_examples() {
    let c = GraderConfig::default();
    let fault = truth(Level::Service, "cartservice");
    let mk = |calls: Vec<CallRecord>, first: &str| Trajectory {
        case: Some(7),
        query_span: Some("q1".into()),
        path: path(&["frontend-0", "cartservice-0"]),
        prediction: Some(vec![svc(first), svc("cartservice")]),
        calls,
        ..Default::default()
    };
    let descend = vec![
        call("search_traces", json!({"parent_span_id": "a"}), true),
        call("print_results", json!({}), true),
    ];
    let with_metrics = vec![
        call("search_traces", json!({"parent_span_id": "a"}), true),
        call(
            "search_fluctuating_metrics",
            json!({"service_name": "cartservice", "timestamp": 1}),
            true,
        ),
        call("print_results", json!({}), true),
    ];
    let mut cache = DiversityCache::new();
    // New and right (rank 0): A = 1.0; stage 2 = 1.0 + 0.8.
    let g = grade_with_diversity(&c, &mk(descend.clone(), "cartservice"), &fault, &mut cache);
    assert_eq!(g.diversity, Some(1.0));
    close(g.stage2.unwrap(), 1.8);
    // The same sequence again, still right: C = 0.1.
    let g = grade_with_diversity(&c, &mk(descend.clone(), "cartservice"), &fault, &mut cache);
    assert_eq!(g.diversity, Some(0.1));
    close(g.score(Stage::Two), 1.0 + 0.08);
    // A new sequence with the fault only second (not "correct"): B = 0.3, R = 0.9.
    let g = grade_with_diversity(
        &c,
        &mk(with_metrics.clone(), "frontend"),
        &fault,
        &mut cache,
    );
    assert_eq!(g.diversity, Some(0.3));
    close(g.stage2.unwrap(), 0.9 + 0.24);
    assert_eq!(cache.distinct("7/q1"), 2);
    // Another question has its own cache.
    let mut other = mk(descend.clone(), "cartservice");
    other.query_span = Some("q2".into());
    let g = grade_with_diversity(&c, &other, &fault, &mut cache);
    assert_eq!(g.diversity, Some(1.0));
    assert_eq!(cache.questions(), 2);
    cache.forget("7/q2");
    assert_eq!(cache.questions(), 1);
}

#[test]
fn diversity_key_with_arguments() {
    let c = GraderConfig {
        diversity_key: DiversityKey::NamesAndArguments,
        ..GraderConfig::default()
    };
    let t = |args: serde_json::Value| Trajectory {
        calls: vec![call("search_fluctuating_metrics", args, true)],
        prediction: Some(vec![]),
        ..Default::default()
    };
    let fault = truth(Level::Service, "cartservice");
    let mut cache = DiversityCache::new();
    let a = t(json!({"service_name": "cartservice", "timestamp": 1}));
    let a_reordered: serde_json::Value =
        serde_json::from_str(r#"{"timestamp": 1, "service_name": "cartservice"}"#).unwrap();
    let b = t(json!({"service_name": "frontend", "timestamp": 1}));
    assert_eq!(
        grade_with_diversity(&c, &a, &fault, &mut cache).diversity,
        Some(0.3)
    );
    // Same arguments in another key order: the same sequence.
    assert_eq!(
        grade_with_diversity(&c, &t(a_reordered), &fault, &mut cache).diversity,
        Some(0.1)
    );
    // Different arguments: new under this key, seen under the names-only key.
    assert_eq!(
        grade_with_diversity(&c, &b, &fault, &mut cache).diversity,
        Some(0.3)
    );
    let names = GraderConfig::default();
    let mut cache = DiversityCache::new();
    grade_with_diversity(&names, &a, &fault, &mut cache);
    assert_eq!(
        grade_with_diversity(&names, &b, &fault, &mut cache).diversity,
        Some(0.1)
    );
}

#[test]
fn stage_numbers_round_trip() {
    for s in Stage::ALL {
        assert_eq!(Stage::from_number(s.number()), Some(s));
    }
    assert_eq!(Stage::from_number(0), None);
}

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "(a|b|c)service".prop_map(|s| s),
        "(a|b|c)service-[0-2]".prop_map(|s| s),
        "node-[1-3]".prop_map(|s| s),
    ]
}

fn arb_item() -> impl Strategy<Value = RootCause> {
    (
        proptest::option::of("node-[1-3]"),
        proptest::option::of("(a|b|c)service"),
        proptest::option::of("(a|b|c)service-[0-2]"),
    )
        .prop_map(|(n, s, p)| RootCause {
            node: n,
            service: s,
            pod: p,
            reason: None,
        })
}

proptest! {
    #[test]
    fn factors_stay_in_range(
        items in proptest::collection::vec(arb_item(), 0..12),
        p in proptest::collection::vec(arb_name(), 0..14),
        target in arb_name(),
    ) {
        let c = GraderConfig::default();
        let fault = FaultCase { level: thinkfl_core::Component::classify(&target).level, ..truth(Level::Pod, &target) };
        let t = Trajectory { path: p.clone(), prediction: Some(items.clone()), ..Default::default() };
        let g = grade(&c, &t, &fault);
        prop_assert!((0.0..=1.0).contains(&g.recall));
        prop_assert!((0.0..=1.0).contains(&g.route));
        prop_assert!((0.0..=1.0).contains(&g.hallucination));
        // The lenient match is never later than the strict one.
        if let Some(r) = g.rank { prop_assert!(g.lenient_rank.is_some_and(|l| l <= r)); }
        // Naive reference of the counts.
        let mut inv = 0; let mut dup = 0;
        for (k, it) in items.iter().enumerate() {
            let comps: Vec<(Level, &str)> = [(Level::Node, &it.node), (Level::Service, &it.service), (Level::Pod, &it.pod)]
                .into_iter().filter_map(|(l, f)| f.as_deref().map(|f| (l, f))).collect();
            let present = |l: Level, f: &str| p.iter().any(|e| e == f || (l == Level::Service && thinkfl_core::service_of(e) == f));
            if comps.is_empty() || comps.iter().any(|&(l, f)| !present(l, f)) { inv += 1; }
            if items[..k].iter().any(|o| o.node == it.node && o.service == it.service && o.pod == it.pod) { dup += 1; }
        }
        prop_assert_eq!(g.counts, HallucinationCounts { items: items.len(), invalid: inv, duplicate: dup });
    }

    #[test]
    fn recall_never_grows_with_rank(r in 0usize..30) {
        let c = GraderConfig::default();
        prop_assert!(recall(&c, Some(r)) >= recall(&c, Some(r + 1)));
        prop_assert!(recall(&c, Some(r)) >= recall(&c, None));
    }
}
