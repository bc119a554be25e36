//! `thinkfl corpus build`: a small corpus, its manifest, and no silent overwrite.

mod common;

use common::thinkfl;
use std::process::Command;

#[test]
fn corpus_build_small_writes_data_sets_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("corpus");
    let o = out.to_str().unwrap();
    let text = thinkfl(&[
        "corpus", "build", "--out", o, "--seed", "2", "--scale", "small",
    ]);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("corpus.json")).unwrap()).unwrap();
    let sets = m["datasets"].as_array().unwrap();
    // One progress line per simulated data set, one per excerpt, then the summary.
    let simulated = sets.iter().filter(|e| e["excerpt_of"].is_null()).count();
    assert_eq!(
        text.lines().filter(|l| l.starts_with('[')).count(),
        simulated,
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains("-excerpt: ")).count(),
        sets.len() - simulated,
        "{text}"
    );
    assert!(sets.len() > simulated, "no excerpt written: {text}");
    assert!(text.contains("held out entirely"), "{text}");
    assert_eq!(m["seed"], 2);
    assert_eq!(m["scale"], "small");
    for e in sets {
        let path = out.join(e["path"].as_str().unwrap());
        assert!(path.join("groundtruth.csv").is_file(), "{path:?}");
        assert!(["train", "held_out"].contains(&e["role"].as_str().unwrap()));
    }
    // A held-out Train-Ticket data set is a data set like any other.
    let tt = sets
        .iter()
        .find(|e| e["topology"] == "train-ticket")
        .expect("train-ticket held out");
    assert_eq!(tt["role"], "held_out");
    let inspect = thinkfl(&[
        "inspect",
        out.join(tt["path"].as_str().unwrap()).to_str().unwrap(),
    ]);
    assert!(inspect.contains("ts-"), "{inspect}");
    // Not over an existing corpus without --force.
    let again = Command::new(env!("CARGO_BIN_EXE_thinkfl"))
        .args(["corpus", "build", "--out", o, "--scale", "small"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a corpus"));
    thinkfl(&[
        "corpus", "build", "--out", o, "--seed", "3", "--scale", "small", "--force",
    ]);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("corpus.json")).unwrap()).unwrap();
    assert_eq!(m["seed"], 3);
    // No data set of the replaced corpus is left behind.
    let listed: std::collections::BTreeSet<String> = m["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    for role in ["train", "held_out"] {
        for d in std::fs::read_dir(out.join(role)).unwrap() {
            let name = format!("{role}/{}", d.unwrap().file_name().to_string_lossy());
            assert!(listed.contains(&name), "{name} left over");
        }
    }
}

#[test]
fn simulate_takes_the_code_level_fault_types() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    thinkfl(&[
        "simulate",
        "--duration",
        "30m",
        "--faults",
        "4",
        "--traces-per-minute",
        "20",
        "--fault-types",
        "code",
        "--difficulty",
        "hard",
        "--out",
        d,
    ]);
    let gt = std::fs::read_to_string(dir.path().join("groundtruth.csv")).unwrap();
    let rows: Vec<&str> = gt.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{gt}");
    assert!(
        rows.iter()
            .all(|r| r.ends_with(",code exception") || r.ends_with(",error response")),
        "{gt}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_thinkfl"))
        .args(["simulate", "--fault-types", "nope", "--out", d])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
