//! `TelemetryStore::open`: a fresh snapshot stands for the CSV load; a stale, changed or
//! other-version snapshot is noticed, said, and rebuilt; a lenient snapshot never serves a
//! strict open that would fail.

use std::fs;
use std::path::Path;
use thinkfl_core::{Dataset, FaultCase, Level, LogRecord, MetricPoint, MetricSource, Span};
use thinkfl_store::snapshot::{SnapshotMode, snapshot_path};
use thinkfl_store::{LoadOptions, TelemetryStore, write_aiops};

const STRICT: LoadOptions = LoadOptions { lenient: false };
const LENIENT: LoadOptions = LoadOptions { lenient: true };

fn dataset() -> Dataset {
    let mut ds = Dataset::default();
    for i in 0..200i64 {
        ds.spans.push(Span {
            timestamp: 1_647_700_000_000 + (i * 13) % 97,
            cmdb_id: format!("svc{}-0", i % 4),
            span_id: format!("{:016x}", i + 1),
            trace_id: format!("{:032x}", i / 10),
            duration: 100 + i,
            kind: "rpc".into(),
            status_code: "0".into(),
            operation_name: format!("op{}", i % 3),
            parent_span: if i % 10 == 0 {
                String::new()
            } else {
                format!("{:016x}", i)
            },
        });
        ds.metrics.push(MetricPoint {
            timestamp: 1_647_700_000 + i,
            cmdb_id: format!("node-{}", i % 2),
            kpi_name: "system.cpu.pct_usage".into(),
            value: i as f64 * 0.25,
            source: MetricSource::Node,
        });
        ds.logs.push(LogRecord {
            log_id: format!("l{i}"),
            timestamp: 1_647_700_000 + i % 50,
            cmdb_id: format!("svc{}-0", i % 4),
            log_name: "log_app".into(),
            value: format!("line {i}, \"quoted\""),
        });
    }
    ds.faults.push(FaultCase {
        timestamp: 1_647_700_050,
        level: Level::Pod,
        cmdb_id: "svc1-0".into(),
        failure_type: "k8s容器cpu负载".into(),
        duration: Some(300),
    });
    ds
}

fn log_file(dir: &Path) -> std::path::PathBuf {
    dir.join("log/all/log_filebeat-testbed-log-service.csv")
}

fn append(path: &Path, line: &str) {
    let mut text = fs::read_to_string(path).unwrap();
    text.push_str(line);
    fs::write(path, text).unwrap();
}

/// The CSV load's rows, for comparison.
fn csv_rows(dir: &Path, opts: &LoadOptions) -> Dataset {
    TelemetryStore::load(dir, opts).unwrap().0.to_dataset()
}

#[test]
fn a_fresh_snapshot_opens_as_the_csv_load_and_a_changed_data_set_rebuilds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_aiops(&dataset(), dir).unwrap();

    // Small data sets get no snapshot unasked.
    let (_, _, o) = TelemetryStore::open(dir, &STRICT, SnapshotMode::Auto).unwrap();
    assert_eq!((o.from_snapshot.as_ref(), o.wrote.as_ref()), (None, None));
    assert!(!dir.join(".thinkfl").exists());

    let (_, _, o) = TelemetryStore::open(dir, &STRICT, SnapshotMode::Rebuild).unwrap();
    assert_eq!(o.wrote, Some(snapshot_path(dir)));
    let (s, report, o) = TelemetryStore::open(dir, &STRICT, SnapshotMode::Auto).unwrap();
    assert_eq!(o.from_snapshot, Some(snapshot_path(dir)), "{:?}", o.notes);
    assert!(s.mapped_bytes() > 0);
    assert_eq!(report.skipped_rows, 0);
    assert_eq!(s.to_dataset(), csv_rows(dir, &STRICT));
    assert_eq!(s.faults()[0].failure_type, "k8s容器cpu负载");

    // Off neither reads nor writes it.
    let (s, _, o) = TelemetryStore::open(dir, &STRICT, SnapshotMode::Off).unwrap();
    assert_eq!(s.mapped_bytes(), 0);
    assert_eq!(o, Default::default());

    // A changed file: stale, said, loaded from CSV and rebuilt.
    append(&log_file(dir), "lnew,1647700001,svc9-0,log_app,new line\n");
    let (s, _, o) = TelemetryStore::open(dir, &STRICT, SnapshotMode::Auto).unwrap();
    assert_eq!(o.from_snapshot, None);
    assert!(
        o.notes[0].contains("stale (log/all/log_filebeat-testbed-log-service.csv changed)"),
        "{:?}",
        o.notes
    );
    assert_eq!(o.wrote, Some(snapshot_path(dir)));
    assert_eq!(s.log_count(), 201);
    let (s, _, o) = TelemetryStore::open(dir, &STRICT, SnapshotMode::Auto).unwrap();
    assert!(o.from_snapshot.is_some());
    assert_eq!(s.to_dataset(), csv_rows(dir, &STRICT));

    // A new input file.
    fs::create_dir_all(dir.join("groundtruth")).unwrap();
    fs::write(
        dir.join("groundtruth/more.csv"),
        "timestamp,level,cmdb_id,failure_type\n1647700070,pod,svc2-0,k8s容器内存负载\n",
    )
    .unwrap();
    let (s, _, o) = TelemetryStore::open(dir, &STRICT, SnapshotMode::Auto).unwrap();
    assert!(
        o.notes[0].contains("groundtruth/more.csv is new"),
        "{:?}",
        o.notes
    );
    assert_eq!(s.faults().len(), 2);
    // And gone again.
    fs::remove_file(dir.join("groundtruth/more.csv")).unwrap();
    let (s, _, o) = TelemetryStore::open(dir, &STRICT, SnapshotMode::Auto).unwrap();
    assert!(
        o.notes[0].contains("groundtruth/more.csv is gone"),
        "{:?}",
        o.notes
    );
    assert_eq!(s.faults().len(), 1);
}

#[test]
fn a_changed_or_other_version_snapshot_is_never_used() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_aiops(&dataset(), dir).unwrap();
    TelemetryStore::open(dir, &STRICT, SnapshotMode::Rebuild).unwrap();
    let path = snapshot_path(dir);
    let good = fs::read(&path).unwrap();
    let want = csv_rows(dir, &STRICT);

    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    fs::write(&path, &bad).unwrap();
    let (s, _, o) = TelemetryStore::open(dir, &STRICT, SnapshotMode::Auto).unwrap();
    assert_eq!(o.from_snapshot, None);
    assert!(o.notes[0].contains("checksum mismatch"), "{:?}", o.notes);
    assert_eq!(s.to_dataset(), want);
    assert_eq!(fs::read(&path).unwrap(), good, "rebuilt byte for byte");

    let mut old = good.clone();
    old[8..12].copy_from_slice(&0u32.to_le_bytes());
    fs::write(&path, &old).unwrap();
    let (s, _, o) = TelemetryStore::open(dir, &STRICT, SnapshotMode::Auto).unwrap();
    assert_eq!(o.from_snapshot, None);
    assert!(
        o.notes[0].contains("written by snapshot format version 0; this build reads version 1"),
        "{:?}",
        o.notes
    );
    assert_eq!(s.to_dataset(), want);

    fs::write(&path, &good[..good.len() / 3]).unwrap();
    let (_, _, o) = TelemetryStore::open(dir, &STRICT, SnapshotMode::Auto).unwrap();
    assert_eq!(o.from_snapshot, None, "a truncated snapshot opened");
    let (_, _, o) = TelemetryStore::open(dir, &STRICT, SnapshotMode::Auto).unwrap();
    assert!(o.from_snapshot.is_some(), "{:?}", o.notes);
}

#[test]
fn a_lenient_snapshot_does_not_serve_a_strict_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_aiops(&dataset(), dir).unwrap();
    append(&log_file(dir), "lbad,soon,svc1-0,log_app,x\n");

    let strict_err = TelemetryStore::load(dir, &STRICT).unwrap_err().to_string();
    let (want, want_report) = TelemetryStore::load(dir, &LENIENT).unwrap();
    assert_eq!(want_report.skipped_rows, 1);

    let (_, report, o) = TelemetryStore::open(dir, &LENIENT, SnapshotMode::Rebuild).unwrap();
    assert!(o.wrote.is_some());
    assert_eq!(report, want_report);
    // Strict: the snapshot skipped a row, so the CSV files are read, and fail as they do.
    let e = TelemetryStore::open(dir, &STRICT, SnapshotMode::Auto).unwrap_err();
    assert_eq!(e.to_string(), strict_err);
    assert!(
        strict_err.contains("log_filebeat-testbed-log-service.csv:202: column 2"),
        "{strict_err}"
    );
    // Lenient again: from the snapshot, with the load's report.
    let (s, report, o) = TelemetryStore::open(dir, &LENIENT, SnapshotMode::Auto).unwrap();
    assert!(o.from_snapshot.is_some(), "{:?}", o.notes);
    assert_eq!(report, want_report);
    assert_eq!(s.to_dataset(), want.to_dataset());
}

#[test]
fn a_strict_snapshot_serves_a_lenient_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_aiops(&dataset(), dir).unwrap();
    TelemetryStore::open(dir, &STRICT, SnapshotMode::Rebuild).unwrap();
    let (_, report, o) = TelemetryStore::open(dir, &LENIENT, SnapshotMode::Auto).unwrap();
    assert!(o.from_snapshot.is_some(), "{:?}", o.notes);
    assert_eq!(report.skipped_rows, 0);
}
