//! `thinkfl localize` and `thinkfl demo` through the binary, with the default local model (the
//! SmolLM2 GGUF from the model cache, and the committed adapter).

mod common;

use common::{sample, thinkfl};
use std::collections::BTreeSet;

/// `thinkfl localize` on the sample's case 0 with `extra` flags: the trajectory as JSON.
fn localize_sample(extra: &[&str]) -> serde_json::Value {
    let data = sample();
    let mut args = vec!["localize", "--data", data.to_str().unwrap(), "--case", "0"];
    args.extend_from_slice(extra);
    args.push("--json");
    serde_json::from_str(&thinkfl(&args)).unwrap()
}

/// The sample's fault case: the local model runs to a valid final list within D_max rounds,
/// naming components of the data, with every call valid.
#[test]
fn default_model_prints_a_valid_final_list_on_the_sample() {
    let t = localize_sample(&[]);
    let pred = t["prediction"].as_array().expect("a final list");
    assert!(!pred.is_empty() && pred.len() <= 3, "{pred:?}");
    // The sample's pods: the cmdb_ids of its spans and of its logs.
    let data = sample();
    let mut pods: BTreeSet<String> = BTreeSet::new();
    for (file, column) in [
        ("trace/all/trace_jaeger-span.csv", "cmdb_id"),
        ("log/all/logs.csv", "cmdb_id"),
    ] {
        let text = std::fs::read_to_string(data.join(file)).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = header.iter().position(|h| *h == column).unwrap();
        pods.extend(
            lines
                .filter_map(|l| l.split(',').nth(col))
                .map(str::to_string),
        );
    }
    for item in pred {
        let pod = item["pod"]
            .as_str()
            .unwrap_or_else(|| panic!("pod in {item}"));
        assert!(pods.contains(pod), "{pod} is not a pod of the sample");
        // The service is the pod's own (a fact the grammar forces).
        let service = item["service"]
            .as_str()
            .unwrap_or_else(|| panic!("service in {item}"));
        assert!(
            pod.starts_with(service),
            "{service} is not the service of {pod}"
        );
    }
    let calls = t["calls"].as_array().unwrap();
    assert!(calls.iter().all(|c| c["valid"] == true), "{calls:?}");
    let rounds = calls
        .iter()
        .filter(|c| c["call"]["name"] != "print_results")
        .count();
    assert!(rounds <= 10, "{rounds} tool rounds");
    assert!(t["tokens"]["cached"].as_u64().unwrap() > 0);
}

/// Without constraints the same model slips on the sample (it passes the question's timestamp
/// as a span id, and names it as a node): what the default constraints are for.
#[test]
fn unconstrained_model_fails_on_the_sample() {
    let t = localize_sample(&["--constrain", "off", "--d-max", "3"]);
    assert_eq!(t["forced_final"], true);
    assert!(
        t["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["valid"] == false)
    );
}

/// The README's first command: simulate, localize with the default model, print beside the truth.
#[test]
fn demo_localizes_cases_beside_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let text = thinkfl(&[
        "demo",
        "--duration",
        "6h",
        "--faults",
        "6",
        "--cases",
        "2",
        "--out",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert!(text.contains("model's top 3"), "{text}");
    let summary = text
        .lines()
        .find(|l| l.contains("R@1") && l.contains("median"))
        .unwrap_or_else(|| panic!("no summary line in {text}"));
    assert!(summary.contains("/2"), "{summary}");
    // Two case rows, each with a prediction (not "-") and a time.
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains('s'))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
}
