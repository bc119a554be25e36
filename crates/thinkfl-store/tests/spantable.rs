//! Parquet span tables: ours round-trip every column exactly (against the CSV load and against
//! a naive reference of random spans), tables written by pandas+pyarrow, polars and DuckDB
//! (`scripts/span_tables.py fixtures`) read as the CSV they came from, and bad tables or rows
//! are named by file, row and column.

use parquet::data_type::{ByteArray, ByteArrayType, Int32Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thinkfl_core::{Dataset, Span};
use thinkfl_store::{
    Error, LoadOptions, TelemetryStore, read_aiops, read_spans_parquet, write_spans_parquet,
};

const STRICT: LoadOptions = LoadOptions { lenient: false };

fn fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parquet")
        .join(p)
}

fn csv_spans() -> Vec<Span> {
    let (ds, report) = read_aiops(&fixture("csv"), &STRICT).unwrap();
    assert_eq!(report.skipped_rows, 0);
    assert_eq!(ds.spans.len(), 240);
    ds.spans
}

#[test]
fn tables_written_by_pandas_polars_and_duckdb_read_as_their_csv() {
    let want = csv_spans();
    // The fixture has the awkward values the readers must carry over.
    assert!(want.iter().any(|s| s.kind.is_empty()));
    assert!(want.iter().any(|s| s.status_code.is_empty()));
    assert!(want.iter().any(|s| s.operation_name.contains(",")));
    assert!(want.iter().any(|s| !s.operation_name.is_ascii()));
    for f in ["pandas-pyarrow", "polars", "duckdb"] {
        let (ds, report) = read_spans_parquet(&fixture(&format!("{f}.parquet")), &STRICT)
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(report.skipped_rows, 0, "{f}");
        assert_eq!(ds.spans.len(), want.len(), "{f}");
        for (i, (got, w)) in ds.spans.iter().zip(&want).enumerate() {
            assert_eq!(got, w, "{f}: row {}", i + 1);
        }
    }
}

#[test]
fn a_text_timestamp_column_is_refused_by_name() {
    let p = fixture("duckdb-text.parquet");
    let e = read_spans_parquet(&p, &STRICT).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Format { .. }), "{msg}");
    assert!(msg.contains("duckdb-text.parquet"), "{msg}");
    assert!(
        msg.contains("\"timestamp\"") && msg.contains("integer"),
        "{msg}"
    );
}

#[test]
fn our_table_round_trips_the_csv_load_exactly() {
    let (store, _) = TelemetryStore::load(&fixture("csv"), &STRICT).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sub/spans.parquet");
    assert_eq!(write_spans_parquet(&store, &out).unwrap(), 240);
    let (ds, report) = read_spans_parquet(&out, &STRICT).unwrap();
    assert_eq!(report.skipped_rows, 0);
    assert_eq!(ds.spans, csv_spans());
    assert_eq!(ds.spans, store.to_dataset().spans);
    // A directory of parts reads as their concatenation in name order.
    std::fs::copy(&out, dir.path().join("sub/spans2.parquet")).unwrap();
    std::fs::write(dir.path().join("sub/notes.txt"), "not a part").unwrap();
    let (both, _) = read_spans_parquet(&dir.path().join("sub"), &STRICT).unwrap();
    assert_eq!(both.spans.len(), 480);
    assert_eq!(both.spans[240..], ds.spans[..]);
}

#[test]
fn an_empty_store_writes_a_table_that_reads_empty() {
    let store = TelemetryStore::from_dataset(Dataset::default());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("empty.parquet");
    assert_eq!(write_spans_parquet(&store, &out).unwrap(), 0);
    let (ds, _) = read_spans_parquet(&out, &STRICT).unwrap();
    assert!(ds.spans.is_empty());
}

/// (timestamp in ns, span_id, duration, status_code) of one row of [`write_loose`].
type LooseRow<'a> = (Option<i64>, Option<&'a str>, Option<i32>, Option<i64>);

/// A table of optional columns with an int32 duration and an integer status, as a user's own
/// pipeline might write it; `None` cells are nulls.
fn write_loose(path: &Path, rows: &[LooseRow<'_>]) {
    let schema = parse_message_type(
        "message t {
          optional int64 timestamp (TIMESTAMP(NANOS, true));
          optional binary span_id (UTF8);
          optional int32 duration;
          optional int64 status_code;
          optional binary cmdb_id (UTF8);
          optional binary trace_id (UTF8);
          optional binary type (UTF8);
          optional binary operation_name (UTF8);
          optional binary parent_span (UTF8);
        }",
    )
    .unwrap();
    let props = Arc::new(WriterProperties::builder().build());
    let f = std::fs::File::create(path).unwrap();
    let mut w = SerializedFileWriter::new(f, Arc::new(schema), props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let defs =
        |p: &dyn Fn(usize) -> bool| -> Vec<i16> { (0..rows.len()).map(|i| p(i) as i16).collect() };
    let mut col = 0;
    while let Some(mut c) = rg.next_column().unwrap() {
        match col {
            0 | 3 => {
                let get = |i: usize| if col == 0 { rows[i].0 } else { rows[i].3 };
                let v: Vec<i64> = (0..rows.len()).filter_map(get).collect();
                c.typed::<parquet::data_type::Int64Type>()
                    .write_batch(&v, Some(&defs(&|i| get(i).is_some())), None)
                    .unwrap();
            }
            2 => {
                let v: Vec<i32> = rows.iter().filter_map(|r| r.2).collect();
                c.typed::<Int32Type>()
                    .write_batch(&v, Some(&defs(&|i| rows[i].2.is_some())), None)
                    .unwrap();
            }
            1 => {
                let v: Vec<ByteArray> = rows
                    .iter()
                    .filter_map(|r| r.1)
                    .map(ByteArray::from)
                    .collect();
                c.typed::<ByteArrayType>()
                    .write_batch(&v, Some(&defs(&|i| rows[i].1.is_some())), None)
                    .unwrap();
            }
            _ => {
                // cmdb_id, trace_id, type, operation_name, parent_span: all null.
                c.typed::<ByteArrayType>()
                    .write_batch(&[], Some(&vec![0; rows.len()]), None)
                    .unwrap();
            }
        }
        c.close().unwrap();
        col += 1;
    }
    rg.close().unwrap();
    w.close().unwrap();
}

#[test]
fn nulls_integers_and_nanosecond_timestamps_of_a_loose_table() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("loose.parquet");
    let ns = 1_647_747_340_693_123_456i64;
    write_loose(
        &p,
        &[
            (Some(ns), Some("a1"), Some(7), Some(0)),
            (Some(-1), Some("a2"), Some(8), None),
            (None, Some("a3"), Some(9), Some(500)),
            (Some(ns), None, Some(1), Some(1)),
            (Some(ns), Some("a5"), None, Some(1)),
        ],
    );
    let e = read_spans_parquet(&p, &STRICT).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: row 3: column timestamp: null; an integer is required",
            p.display()
        )
    );
    let (ds, report) = read_spans_parquet(&p, &LoadOptions::lenient()).unwrap();
    assert_eq!(report.skipped_rows, 3);
    assert!(report.warnings[1].contains("row 4: column span_id: must not be empty"));
    assert!(report.warnings[2].contains("row 5: column duration: null"));
    let row = |ts, id: &str, dur, status: &str| Span {
        timestamp: ts,
        cmdb_id: String::new(),
        span_id: id.into(),
        trace_id: String::new(),
        duration: dur,
        kind: String::new(),
        status_code: status.into(),
        operation_name: String::new(),
        parent_span: String::new(),
    };
    // ns to ms rounds toward minus infinity, as pandas' integer division does.
    assert_eq!(
        ds.spans,
        vec![row(1_647_747_340_693, "a1", 7, "0"), row(-1, "a2", 8, ""),]
    );
}

#[test]
fn missing_columns_and_files_that_are_not_parquet_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("spans.parquet");
    std::fs::write(&p, "timestamp,cmdb_id\n1,a\n").unwrap();
    let msg = read_spans_parquet(&p, &STRICT).unwrap_err().to_string();
    assert!(msg.starts_with(&p.display().to_string()), "{msg}");
    assert!(msg.contains("not a readable Parquet file"), "{msg}");

    let schema = parse_message_type("message t { required int64 timestamp; }").unwrap();
    let f = std::fs::File::create(&p).unwrap();
    let w = SerializedFileWriter::new(f, Arc::new(schema), Default::default()).unwrap();
    w.close().unwrap();
    let msg = read_spans_parquet(&p, &STRICT).unwrap_err().to_string();
    assert!(msg.contains("no column \"cmdb_id\""), "{msg}");

    let empty = tempfile::tempdir().unwrap();
    let msg = read_spans_parquet(empty.path(), &STRICT)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no *.parquet file"), "{msg}");
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9]{1,12}",
        "[ -~]{0,20}",
        "\\PC{0,8}",
        Just("a,\"b\"\nc".to_string()),
    ]
}

fn span() -> impl Strategy<Value = Span> {
    (
        any::<i64>(),
        text(),
        "[0-9a-f]{1,16}",
        text(),
        any::<i64>(),
        text(),
        text(),
        text(),
        text(),
    )
        .prop_map(
            |(ts, cmdb, id, trace, dur, kind, status, op, parent)| Span {
                timestamp: ts,
                cmdb_id: cmdb,
                span_id: id,
                trace_id: trace,
                duration: dur,
                kind,
                status_code: status,
                operation_name: op,
                parent_span: parent,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Naive reference: the spans given to the store, in order, field for field.
    #[test]
    fn random_spans_round_trip(spans in prop::collection::vec(span(), 0..60)) {
        let store = TelemetryStore::from_dataset(Dataset {
            spans: spans.clone(),
            ..Dataset::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        write_spans_parquet(&store, &p).unwrap();
        let (ds, report) = read_spans_parquet(&p, &STRICT).unwrap();
        prop_assert_eq!(report.skipped_rows, 0);
        prop_assert_eq!(ds.spans, spans);
    }
}
