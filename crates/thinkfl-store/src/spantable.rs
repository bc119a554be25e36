//! Span tables in Parquet: [`write_spans_parquet`] writes a store's spans as one flat table of
//! the AIOps 2022 span columns (what pandas, polars and DuckDB read without a plug-in), and
//! [`read_spans_parquet`] reads such a table, also one written by others (pyarrow, polars,
//! DuckDB), for `thinkfl import --from parquet`.
//!
//! Written through parquet's column writer, not Arrow: the table is nine flat columns, and the
//! `arrow` crates would add a large build for one file format (the workspace already compiles
//! `parquet` without them for verl's rows). What others write differs from what we write, so
//! the reader takes columns by name in any order (others ignored), optional columns (a null
//! string is the empty string, as a CSV's empty cell), dictionary pages, 32- or 64-bit integers,
//! `timestamp` as a TIMESTAMP in ms, µs or ns (turned into ms), `status_code` as text or
//! integer, and the codecs the three writers use by default (snappy: pyarrow, DuckDB; zstd:
//! polars). A null where a value is needed (timestamp, duration, span_id) is a bad row naming
//! the file, row and column, skipped under `--lenient`.

use crate::{Error, LoadOptions, LoadReport, Result, TelemetryStore};
use parquet::basic::{Compression, ConvertedType, LogicalType, TimeUnit, Type as Physical};
use parquet::column::reader::{ColumnReader, get_typed_column_reader};
use parquet::data_type::{ByteArray, ByteArrayType, DataType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::ColumnDescriptor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thinkfl_core::{Dataset, Span};

/// The table's columns: those of the AIOps 2022 span CSV, in its order.
pub const SPAN_COLUMNS: [&str; 9] = crate::sink::SPAN_HEADER;

/// Spans per row group: big enough that per-group overhead is small, small enough that a
/// reader holds one group's columns (about 100 MB at 1M spans) at a time.
pub const ROW_GROUP_SPANS: usize = 1 << 20;

const SCHEMA: &str = "message span {
  required int64 timestamp;
  required binary cmdb_id (UTF8);
  required binary span_id (UTF8);
  required binary trace_id (UTF8);
  required int64 duration;
  required binary type (UTF8);
  required binary status_code (UTF8);
  required binary operation_name (UTF8);
  required binary parent_span (UTF8);
}";

fn pq(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> Error + '_ {
    move |e| Error::format(path, format!("Parquet: {e}"))
}

/// Writes every span of `store`, in the store's row order (the files' order), to `path` as a
/// snappy-compressed Parquet table of [`SPAN_COLUMNS`]; returns the spans written. Integers are
/// plain int64 (ms and µs as in the CSV, so a reader gets the numbers `read_csv` gives), strings
/// UTF-8, every column required (a root's `parent_span` is the empty string, as in the CSV).
pub fn write_spans_parquet(store: &TelemetryStore, path: &Path) -> Result<usize> {
    let err = pq(path);
    let schema = Arc::new(parse_message_type(SCHEMA).map_err(&err)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_size(ROW_GROUP_SPANS)
            .set_created_by(format!("thinkfl {}", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = SerializedFileWriter::new(file, schema, props).map_err(&err)?;
    let n = store.span_count();
    let mut start = 0;
    while start < n {
        let end = (start + ROW_GROUP_SPANS).min(n);
        let rows = || (start..end).map(|i| store.span(crate::SpanIdx(i as u32)));
        let mut rg = w.next_row_group().map_err(&err)?;
        for name in SPAN_COLUMNS {
            let mut c = rg
                .next_column()
                .map_err(&err)?
                .ok_or_else(|| Error::format(path, "schema lost a column"))?;
            let int =
                |f: fn(&crate::SpanRef<'_>) -> i64| -> Vec<i64> { rows().map(|s| f(&s)).collect() };
            let text = |f: for<'a> fn(&crate::SpanRef<'a>) -> &'a str| -> Vec<ByteArray> {
                rows().map(|s| ByteArray::from(f(&s).as_bytes())).collect()
            };
            match name {
                "timestamp" | "duration" => {
                    let v = int(if name == "timestamp" {
                        |s| s.timestamp()
                    } else {
                        |s| s.duration()
                    });
                    c.typed::<Int64Type>()
                        .write_batch(&v, None, None)
                        .map_err(&err)?;
                }
                _ => {
                    let v = text(match name {
                        "cmdb_id" => |s| s.cmdb_id(),
                        "span_id" => |s| s.span_id(),
                        "trace_id" => |s| s.trace_id(),
                        "type" => |s| s.kind(),
                        "status_code" => |s| s.status_code(),
                        "operation_name" => |s| s.operation_name(),
                        _ => |s| s.parent_span(),
                    });
                    c.typed::<ByteArrayType>()
                        .write_batch(&v, None, None)
                        .map_err(&err)?;
                }
            }
            c.close().map_err(&err)?;
        }
        rg.close().map_err(&err)?;
        start = end;
    }
    w.close().map_err(&err)?;
    Ok(n)
}

/// One column of a row group, decoded: `None` where the value is null.
enum Values {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
}

/// How a column's stored integers become the table's: ms for `timestamp`, as-is otherwise.
#[derive(Clone, Copy)]
enum Scale {
    Same,
    /// Divide by this (µs or ns timestamps into ms), rounding toward minus infinity as
    /// pandas' `// 10**k` does.
    Div(i64),
}

/// Reads a span table: one Parquet file, or every `*.parquet` file of a directory in name
/// order (the parts DuckDB, Spark or polars write for one table), into a data set of spans.
pub fn read_spans_parquet(input: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport)> {
    let files = if input.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(input)
            .map_err(|e| Error::io(input, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        v.sort();
        if v.is_empty() {
            return Err(Error::format(input, "no *.parquet file in this directory"));
        }
        v
    } else {
        vec![input.to_path_buf()]
    };
    let mut ds = Dataset::default();
    let mut report = LoadReport::default();
    for f in &files {
        read_file(f, opts, &mut ds.spans, &mut report)?;
    }
    Ok((ds, report))
}

fn read_file(
    path: &Path,
    opts: &LoadOptions,
    out: &mut Vec<Span>,
    report: &mut LoadReport,
) -> Result<()> {
    let err = pq(path);
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| Error::format(path, format!("not a readable Parquet file: {e}")))?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    // Leaf index and how to read it, for each of SPAN_COLUMNS.
    let mut cols = Vec::with_capacity(SPAN_COLUMNS.len());
    for name in SPAN_COLUMNS {
        let found = schema
            .columns()
            .iter()
            .position(|c| c.path().parts().len() == 1 && c.name() == name);
        let Some(i) = found else {
            return Err(Error::format(
                path,
                format!(
                    "no column {name:?}; a span table has the columns {}",
                    SPAN_COLUMNS.join(", ")
                ),
            ));
        };
        let d = schema.column(i);
        if d.max_rep_level() > 0 {
            return Err(Error::format(
                path,
                format!("column {name:?} is repeated (a list); span columns are flat"),
            ));
        }
        check_type(path, name, &d)?;
        cols.push((i, d));
    }
    let mut row0 = 0u64;
    for g in 0..reader.num_row_groups() {
        let rg = reader.get_row_group(g).map_err(&err)?;
        let rows = rg.metadata().num_rows() as usize;
        let mut vals = Vec::with_capacity(cols.len());
        for (i, d) in &cols {
            vals.push(read_column(path, rg.as_ref(), *i, d, rows)?);
        }
        out.reserve(rows);
        for r in 0..rows {
            match row(&vals, r) {
                Ok(s) => out.push(s),
                Err((col, message)) => {
                    let e = Error::Row {
                        file: path.to_path_buf(),
                        row: row0 + r as u64 + 1,
                        column: SPAN_COLUMNS[col].to_string(),
                        message,
                    };
                    if opts.lenient {
                        report.skip(&e);
                    } else {
                        return Err(e);
                    }
                }
            }
        }
        row0 += rows as u64;
    }
    Ok(())
}

/// Refuses a column whose type cannot hold the field, before any row is read.
fn check_type(path: &Path, name: &str, d: &ColumnDescriptor) -> Result<()> {
    let t = d.physical_type();
    let ok = match name {
        "timestamp" | "duration" => matches!(t, Physical::INT64 | Physical::INT32),
        // pandas writes an all-numeric status column as integers.
        "status_code" => matches!(t, Physical::BYTE_ARRAY | Physical::INT64 | Physical::INT32),
        _ => t == Physical::BYTE_ARRAY,
    };
    if ok {
        Ok(())
    } else {
        let want = match name {
            "timestamp" | "duration" => "an integer (int32 or int64)",
            "status_code" => "text or an integer",
            _ => "text (binary/UTF-8)",
        };
        Err(Error::format(
            path,
            format!("column {name:?} is stored as {t}; expected {want}"),
        ))
    }
}

/// The divisor that turns a `timestamp` column into ms.
fn scale_of(name: &str, d: &ColumnDescriptor) -> Scale {
    if name != "timestamp" {
        return Scale::Same;
    }
    match d.logical_type_ref() {
        Some(LogicalType::Timestamp { unit, .. }) => match unit {
            TimeUnit::MILLIS => Scale::Same,
            TimeUnit::MICROS => Scale::Div(1_000),
            TimeUnit::NANOS => Scale::Div(1_000_000),
        },
        _ => match d.converted_type() {
            ConvertedType::TIMESTAMP_MICROS => Scale::Div(1_000),
            _ => Scale::Same,
        },
    }
}

/// Reads all `rows` values of leaf `i` into one vector, nulls as `None`.
fn read_column(
    path: &Path,
    rg: &dyn RowGroupReader,
    i: usize,
    d: &ColumnDescriptor,
    rows: usize,
) -> Result<Values> {
    let name = d.name();
    let err = |e: parquet::errors::ParquetError| {
        Error::format(path, format!("column {name:?}: Parquet: {e}"))
    };
    let reader = rg.get_column_reader(i).map_err(err)?;
    let optional = d.max_def_level() > 0;
    let scale = scale_of(name, d);
    let ints = |v: Vec<i64>, defs: Option<Vec<i16>>| {
        let v = v.into_iter().map(|x| match scale {
            Scale::Same => x,
            Scale::Div(k) => x.div_euclid(k),
        });
        Values::Int(spread(v, defs, d.max_def_level(), rows))
    };
    Ok(match reader {
        ColumnReader::Int64ColumnReader(_) => {
            let (v, defs) = read_all::<Int64Type>(reader, optional, rows).map_err(err)?;
            let v = ints(v, defs);
            if name == "status_code" {
                int_text(v)
            } else {
                v
            }
        }
        ColumnReader::Int32ColumnReader(_) => {
            let (v, defs) = read_all::<Int32Type>(reader, optional, rows).map_err(err)?;
            let v = ints(v.into_iter().map(i64::from).collect(), defs);
            if name == "status_code" {
                int_text(v)
            } else {
                v
            }
        }
        ColumnReader::ByteArrayColumnReader(_) => {
            let (v, defs) = read_all::<ByteArrayType>(reader, optional, rows).map_err(err)?;
            let mut text = Vec::with_capacity(v.len());
            for b in v {
                // Bad UTF-8 is a file-level fault (the writer's), so it names the column only.
                let s = std::str::from_utf8(b.data()).map_err(|e| {
                    Error::format(path, format!("column {name:?}: not UTF-8 text: {e}"))
                })?;
                text.push(s.to_string());
            }
            Values::Text(spread(text.into_iter(), defs, d.max_def_level(), rows))
        }
        // check_type let only these three through.
        _ => unreachable!("column {name} passed check_type"),
    })
}

fn int_text(v: Values) -> Values {
    match v {
        Values::Int(v) => Values::Text(v.into_iter().map(|x| x.map(|x| x.to_string())).collect()),
        t => t,
    }
}

/// A column chunk as stored: its non-null values and, for an optional column, one definition
/// level per row.
type Leaf<V> = (Vec<V>, Option<Vec<i16>>);

/// Reads the column to its end: values (non-null only) and, for an optional column, one
/// definition level per row.
fn read_all<T: DataType>(
    reader: ColumnReader,
    optional: bool,
    rows: usize,
) -> parquet::errors::Result<Leaf<T::T>> {
    let mut r = get_typed_column_reader::<T>(reader);
    let mut values = Vec::with_capacity(rows);
    let mut defs = optional.then(|| Vec::with_capacity(rows));
    let mut done = 0;
    while done < rows {
        let (records, _, _) = r.read_records(rows - done, defs.as_mut(), None, &mut values)?;
        if records == 0 {
            break;
        }
        done += records;
    }
    if done != rows {
        return Err(parquet::errors::ParquetError::General(format!(
            "the row group says {rows} rows, the column holds {done}"
        )));
    }
    Ok((values, defs))
}

/// Places the non-null `values` at the rows whose definition level is the maximum.
fn spread<X>(
    values: impl Iterator<Item = X>,
    defs: Option<Vec<i16>>,
    max_def: i16,
    rows: usize,
) -> Vec<Option<X>> {
    match defs {
        None => values.map(Some).collect(),
        Some(defs) => {
            let mut values = values;
            let mut out = Vec::with_capacity(rows);
            for d in defs {
                out.push(if d == max_def { values.next() } else { None });
            }
            out
        }
    }
}

/// Row `r` of a row group as a span, or (column, what is wrong).
fn row(vals: &[Values], r: usize) -> std::result::Result<Span, (usize, String)> {
    let int = |c: usize| match &vals[c] {
        Values::Int(v) => v[r].ok_or((c, "null; an integer is required".to_string())),
        Values::Text(_) => unreachable!("integer columns are read as integers"),
    };
    let text = |c: usize| match &vals[c] {
        Values::Text(v) => v[r].clone().unwrap_or_default(),
        Values::Int(_) => unreachable!("text columns are read as text"),
    };
    let span_id = text(2);
    if span_id.is_empty() {
        return Err((2, "must not be empty (or null)".to_string()));
    }
    Ok(Span {
        timestamp: int(0)?,
        cmdb_id: text(1),
        span_id,
        trace_id: text(3),
        duration: int(4)?,
        kind: text(5),
        status_code: text(6),
        operation_name: text(7),
        parent_span: text(8),
    })
}
