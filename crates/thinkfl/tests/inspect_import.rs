//! `thinkfl inspect` on the real AIOps 2022 sample (snapshot) and `thinkfl import` of the
//! OTLP/Jaeger fixtures, run through the binary.

use std::path::Path;
use std::process::Command;

const SAMPLE: &str = "../../../shared/fixtures/aiops2022-sample";

fn thinkfl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_thinkfl"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("thinkfl runs")
}

#[test]
fn inspect_the_real_sample() {
    let out = thinkfl(&["inspect", SAMPLE]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!(String::from_utf8(out.stdout).unwrap());
}

#[test]
fn import_then_inspect_each_format() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../thinkfl-store/tests/fixtures");
    for (from, input) in [
        ("otlp", fixtures.join("twin.otlp.json")),
        ("jaeger", fixtures.join("twin.jaeger.json")),
        ("aiops2022", fixtures.join("twin")),
        (
            "aiops2022",
            Path::new(env!("CARGO_MANIFEST_DIR")).join(SAMPLE),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out_dir = dir.path().join("out");
        let out = thinkfl(&[
            "import",
            "--from",
            from,
            input.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8(out.stdout).unwrap();
        assert!(said.starts_with("imported "), "{said}");
        let out = thinkfl(&["inspect", out_dir.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let want = if input.ends_with("aiops2022-sample") {
            "spans     26 in 1 traces"
        } else {
            "spans     6 in 2 traces"
        };
        assert!(text.contains(want), "{from}: {text}");
        // A second import into the same directory is refused rather than mixing files.
        let again = thinkfl(&[
            "import",
            "--from",
            from,
            input.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        assert!(!again.status.success());
    }
}

#[test]
fn a_bad_row_is_reported_and_lenient_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("in/trace/all");
    std::fs::create_dir_all(&trace).unwrap();
    std::fs::write(
        trace.join("trace_jaeger-span.csv"),
        "timestamp,cmdb_id,span_id,trace_id,duration,type,status_code,operation_name,parent_span\n\
         1,frontend-0,a1,t1,10,rpc,0,op,\n\
         x,frontend-0,a2,t1,10,rpc,0,op,a1\n",
    )
    .unwrap();
    let input = dir.path().join("in");
    let out = thinkfl(&["inspect", input.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("trace_jaeger-span.csv:3: column 1 (timestamp)"),
        "{err}"
    );
    let out = thinkfl(&["inspect", "--lenient", input.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped 1 malformed rows"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("spans     1 in 1 traces"));
}

/// `--snapshot rebuild` writes the data set's snapshot, the next command opens it (same
/// output), a changed input file makes it stale (said on stderr, rebuilt), and
/// `--snapshot off` leaves it alone.
#[test]
fn inspect_opens_the_snapshot_and_notices_a_changed_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join(SAMPLE);
    let out = thinkfl(&[
        "import",
        "--from",
        "aiops2022",
        sample.to_str().unwrap(),
        "--out",
        data.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = data.to_str().unwrap();
    let csv = thinkfl(&["--snapshot", "off", "inspect", d]);
    assert!(!data.join(".thinkfl").exists());
    let built = thinkfl(&["inspect", d, "--snapshot", "rebuild"]);
    let err = String::from_utf8_lossy(&built.stderr);
    assert!(
        err.contains("snapshot: wrote") && err.contains(".thinkfl/store.snap"),
        "{err}"
    );
    let opened = thinkfl(&["inspect", d]);
    assert!(opened.status.success());
    assert_eq!(String::from_utf8_lossy(&opened.stderr), "");
    for out in [&built, &opened] {
        assert_eq!(out.stdout, csv.stdout);
    }
    // A log line more: stale, and the output follows the file.
    let log = data.join("log/all/log_filebeat-testbed-log-service.csv");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("extra,1647705600,frontend-2,log_frontend,one more\n");
    std::fs::write(&log, text).unwrap();
    let stale = thinkfl(&["inspect", d]);
    let err = String::from_utf8_lossy(&stale.stderr);
    assert!(
        err.contains("stale (log/all/log_filebeat-testbed-log-service.csv changed)"),
        "{err}"
    );
    assert_ne!(stale.stdout, csv.stdout);
    assert_eq!(
        stale.stdout,
        thinkfl(&["--snapshot", "off", "inspect", d]).stdout
    );
}

#[test]
fn export_spans_to_parquet_then_import_gives_the_same_spans() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../thinkfl-store/tests/fixtures");
    let src = fixtures.join("parquet/csv");
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("spans.parquet");
    let out = thinkfl(&[
        "export",
        "spans",
        "--data",
        src.to_str().unwrap(),
        "--out",
        table.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.starts_with("wrote 240 spans to "), "{said}");
    let back = dir.path().join("back");
    let out = thinkfl(&[
        "import",
        "--from",
        "parquet",
        table.to_str().unwrap(),
        "--out",
        back.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.starts_with("imported 240 spans, 0 metric points"),
        "{said}"
    );
    // The rewritten CSV is the source's, byte for byte (same writer, same rows, same order).
    let csv = "trace/all/trace_jaeger-span.csv";
    assert_eq!(
        std::fs::read_to_string(back.join(csv)).unwrap(),
        std::fs::read_to_string(src.join(csv)).unwrap()
    );
    // A table a user's tool got wrong is named, and nothing is written.
    let bad = dir.path().join("bad");
    let out = thinkfl(&[
        "import",
        "--from",
        "parquet",
        fixtures
            .join("parquet/duckdb-text.parquet")
            .to_str()
            .unwrap(),
        "--out",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("duckdb-text.parquet") && err.contains("timestamp"),
        "{err}"
    );
    assert!(!bad.exists());
}
