//! verl's parquet rows, written with parquet's column writer (no Arrow: the rows are a handful
//! of strings and integers, and Arrow would double the build for one file format). Every field
//! is required; `prompt` is the standard three-level list of `{role, content}` structs, which
//! pyarrow reads back as a list of dicts.

use crate::Error;
use crate::export::{AGENT_NAME, DATA_SOURCE, Row, label_text};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::path::Path;
use std::sync::Arc;

/// One leaf column, in schema order.
enum Leaf {
    Str(Vec<String>),
    /// A leaf inside the `prompt` list: values and their repetition levels.
    ListStr(Vec<String>, Vec<i16>),
    Int(Vec<i64>),
}

fn schema(tools: &[&str]) -> String {
    let mut kw = String::new();
    for t in tools {
        kw.push_str(&format!(
            "required group {t} {{ required group create_kwargs {{ required binary dataset (UTF8); required int64 case; required binary query_span (UTF8); }} }}\n"
        ));
    }
    format!(
        "message verl_row {{
  required binary data_source (UTF8);
  required binary agent_name (UTF8);
  required group prompt (LIST) {{
    repeated group list {{
      required group element {{
        required binary role (UTF8);
        required binary content (UTF8);
      }}
    }}
  }}
  required binary ability (UTF8);
  required group reward_model {{
    required binary style (UTF8);
    required binary ground_truth (UTF8);
  }}
  required group extra_info {{
    required binary split (UTF8);
    required int64 index;
    required binary dataset (UTF8);
    required int64 case;
    required binary query_span (UTF8);
    required group tools_kwargs {{
      {kw}
    }}
  }}
}}"
    )
}

fn leaves(rows: &[&Row], tools: &[&str]) -> Vec<Leaf> {
    let col = |f: &dyn Fn(&Row) -> String| Leaf::Str(rows.iter().map(|r| f(r)).collect());
    let dataset = |r: &Row| r.label.dataset.clone().unwrap_or_default();
    let span = |r: &Row| r.label.query_span.clone().unwrap_or_default();
    let cases = || Leaf::Int(rows.iter().map(|r| r.label.case as i64).collect());
    let (mut role, mut content, mut rep) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        for (i, m) in r.prompt.iter().enumerate() {
            role.push(m.role.as_str().to_string());
            content.push(m.content.clone());
            rep.push(if i == 0 { 0 } else { 1 });
        }
    }
    let mut out = vec![
        col(&|_| DATA_SOURCE.to_string()),
        col(&|_| AGENT_NAME.to_string()),
        Leaf::ListStr(role, rep.clone()),
        Leaf::ListStr(content, rep),
        col(&|_| "failure_localization".to_string()),
        col(&|_| "rule".to_string()),
        col(&|r| label_text(&r.label)),
        col(&|r| r.split.as_str().to_string()),
        Leaf::Int((0..rows.len() as i64).collect()),
        col(&dataset),
        cases(),
        col(&span),
    ];
    for _ in tools {
        out.push(col(&dataset));
        out.push(cases());
        out.push(col(&span));
    }
    out
}

/// Writes `rows` as one row group of verl's layout.
pub(crate) fn write_verl(path: &Path, rows: &[&Row], tools: &[&str]) -> Result<(), Error> {
    if rows.iter().any(|r| r.prompt.is_empty()) {
        return Err(Error::invalid("prompt", "a row without messages"));
    }
    let err = |e: parquet::errors::ParquetError| Error::write(path, e);
    let schema = Arc::new(parse_message_type(&schema(tools)).map_err(err)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::UNCOMPRESSED)
            .set_created_by("thinkfl export rl-dataset".into())
            .build(),
    );
    let file = std::fs::File::create(path).map_err(|e| Error::write(path, e))?;
    let mut w = SerializedFileWriter::new(file, schema, props).map_err(err)?;
    let mut rg = w.next_row_group().map_err(err)?;
    for leaf in leaves(rows, tools) {
        let mut c = rg
            .next_column()
            .map_err(err)?
            .ok_or_else(|| Error::write(path, "schema has fewer columns than rows carry"))?;
        match leaf {
            Leaf::Str(v) => {
                let v: Vec<ByteArray> = v
                    .into_iter()
                    .map(|s| ByteArray::from(s.into_bytes()))
                    .collect();
                c.typed::<ByteArrayType>()
                    .write_batch(&v, None, None)
                    .map_err(err)?;
            }
            Leaf::ListStr(v, rep) => {
                let def = vec![1i16; v.len()];
                let v: Vec<ByteArray> = v
                    .into_iter()
                    .map(|s| ByteArray::from(s.into_bytes()))
                    .collect();
                c.typed::<ByteArrayType>()
                    .write_batch(&v, Some(&def), Some(&rep))
                    .map_err(err)?;
            }
            Leaf::Int(v) => {
                c.typed::<Int64Type>()
                    .write_batch(&v, None, None)
                    .map_err(err)?;
            }
        }
        c.close().map_err(err)?;
    }
    if rg.next_column().map_err(err)?.is_some() {
        return Err(Error::write(
            path,
            "schema has more columns than rows carry",
        ));
    }
    rg.close().map_err(err)?;
    w.close().map_err(err)?;
    Ok(())
}
