//! Shared by the CLI tests: running the binary, and the real AIOps 2022 sample.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Runs the `thinkfl` binary; its standard output, after asserting that it succeeded.
pub fn thinkfl(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_thinkfl"))
        .args(args)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "thinkfl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The real AIOps 2022 fault case in `../shared/fixtures`.
pub fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/aiops2022-sample")
}

/// A small simulated Online Boutique data set in `dir`: one hour, six faults, seed 5.
pub fn simulate_small(dir: &std::path::Path) {
    thinkfl(&[
        "simulate",
        "--duration",
        "60m",
        "--faults",
        "6",
        "--seed",
        "5",
        "--traces-per-minute",
        "20",
        "--out",
        dir.to_str().unwrap(),
    ]);
}
