//! `thinkfl eval` through the binary: on the real AIOps 2022 sample, and on a small simulated
//! data set twice with one seed.

mod common;

use common::{sample, thinkfl};
use std::path::Path;
use std::process::Command;

fn report_without_timings(dir: &Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    for m in v["methods"].as_array_mut().unwrap() {
        m["latency"] = serde_json::Value::Null;
        for c in m["cases"].as_array_mut().unwrap() {
            c["wall_ms"] = serde_json::Value::Null;
        }
    }
    v
}

#[test]
fn eval_on_the_real_sample() {
    let data = sample();
    let out = tempfile::tempdir().unwrap();
    let text = thinkfl(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--methods",
        "descent,random",
        "--out",
        out.path().to_str().unwrap(),
        "--quiet",
    ]);
    assert!(text.contains("| descent |"), "{text}");
    assert!(text.contains("random MRR: strict"), "{text}");
    let r = report_without_timings(out.path());
    let descent = &r["methods"][0];
    assert_eq!(descent["method"], "descent");
    assert!(
        descent["cases"][0]["lenient_rank"]
            .as_u64()
            .is_some_and(|k| k < 3)
    );
    for f in ["report.md", "report.html"] {
        assert!(out.path().join(f).is_file());
    }
}

#[test]
fn eval_unknown_method_is_a_clear_error() {
    let data = sample();
    let out = Command::new(env!("CARGO_BIN_EXE_thinkfl"))
        .args([
            "eval",
            "--data",
            data.to_str().unwrap(),
            "--methods",
            "descent,oracle",
            "--out",
            "/nonexistent/x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("oracle") && err.contains("microrank"), "{err}");
}

#[test]
fn eval_same_seed_same_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sim");
    thinkfl(&[
        "simulate",
        "--duration",
        "40m",
        "--faults",
        "4",
        "--seed",
        "3",
        "--traces-per-minute",
        "20",
        "--out",
        data.to_str().unwrap(),
    ]);
    let run = |name: &str| {
        let out = tmp.path().join(name);
        thinkfl(&[
            "eval",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--seed",
            "9",
            "--quiet",
        ]);
        report_without_timings(&out)
    };
    let (a, b) = (run("a"), run("b"));
    assert_eq!(a, b);
    assert_eq!(a["cases"], 4);
    assert_eq!(a["methods"].as_array().unwrap().len(), 7);
}

#[test]
fn eval_selects_cases_and_held_out_splits() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sim");
    common::simulate_small(&data);
    let cases_of = |dir: &Path| -> Vec<u64> {
        let r = report_without_timings(dir);
        r["methods"][0]["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["case"].as_u64().unwrap())
            .collect()
    };
    let out = tmp.path().join("picked");
    let d = data.to_str().unwrap();
    thinkfl(&[
        "eval",
        "--data",
        d,
        "--methods",
        "descent",
        "--cases",
        "4,1",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(cases_of(&out), [4, 1]);
    let split = tmp.path().join("split.json");
    std::fs::write(
        &split,
        r#"{"train_cases": [0, 2, 3, 4], "held_out_cases": [5, 1]}"#,
    )
    .unwrap();
    let out = tmp.path().join("held");
    thinkfl(&[
        "eval",
        "--data",
        d,
        "--methods",
        "descent",
        "--held-out",
        split.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(cases_of(&out), [5, 1]);
    // A split of another data set is refused, naming the file.
    std::fs::write(&split, r#"{"held_out_cases": [9]}"#).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_thinkfl"))
        .args([
            "eval",
            "--data",
            d,
            "--methods",
            "descent",
            "--held-out",
            split.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("split.json") && err.contains("case 9"),
        "{err}"
    );
}

#[test]
fn all_stands_for_the_baselines_inside_a_list() {
    let data = sample();
    let out = tempfile::tempdir().unwrap();
    thinkfl(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--methods",
        "descent,all,expert",
        "--out",
        out.path().to_str().unwrap(),
        "--quiet",
    ]);
    let r = report_without_timings(out.path());
    let names: Vec<&str> = r["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    // Each baseline once (descent is not repeated by `all`), then the expert.
    assert_eq!(names.len(), 8, "{names:?}");
    assert_eq!(names[0], "descent");
    assert_eq!(names.last(), Some(&"expert"));
    assert_eq!(names.iter().filter(|n| **n == "descent").count(), 1);
}
