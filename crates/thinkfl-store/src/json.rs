//! What the JSON trace formats (OTLP in [`crate::otlp`], Jaeger in [`crate::jaeger`]) share:
//! every span is first taken as a raw slice of the input, so that its errors name the line and
//! column in the file and a lenient load can skip it alone; the span `type` from
//! semantic-convention attributes; and pod placement from `k8s.node.name` kept in a topology
//! derived from the spans.

use crate::topology::Observed;
use crate::{Error, LoadOptions, LoadReport, Result};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::path::Path;
use thinkfl_core::Dataset;

/// (line, column), 1-based, of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (u64, u64) {
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() as u64 + 1;
    let col = match before.rfind('\n') {
        Some(nl) => before[nl + 1..].chars().count() as u64 + 1,
        None => before.chars().count() as u64 + 1,
    };
    (line, col)
}

/// Byte offset of `raw` (a slice borrowed from `text`) in `text`.
fn offset_of(text: &str, raw: &RawValue) -> usize {
    (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize)
}

/// Parses the whole document; syntax errors name line and column.
pub(crate) fn parse_doc<'a, T: serde::Deserialize<'a>>(path: &Path, text: &'a str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Parse {
        file: path.to_path_buf(),
        line: e.line() as u64,
        column: e.column().to_string(),
        message: e.to_string(),
    })
}

/// One item of a document, located in the file.
pub(crate) struct Item<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    pub raw: &'a RawValue,
    /// Where it is in the document, for messages: `resourceSpans[0].scopeSpans[1].spans[3]`.
    pub where_: String,
}

impl Item<'_> {
    /// Deserializes the item; an error names the line and column inside the file.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(self.raw.get()).map_err(|e| {
            let (line, col) = line_col(self.text, offset_of(self.text, self.raw));
            let (l, c) = if e.line() <= 1 {
                (line, col + e.column() as u64 - 1)
            } else {
                (line + e.line() as u64 - 1, e.column() as u64)
            };
            Error::Parse {
                file: self.path.to_path_buf(),
                line: l,
                column: c.to_string(),
                message: format!("{}: {e}", self.where_),
            }
        })
    }

    /// An error about a field of this item, located at the item's start.
    pub fn error(&self, field: &str, message: impl Into<String>) -> Error {
        let (line, col) = line_col(self.text, offset_of(self.text, self.raw));
        Error::Parse {
            file: self.path.to_path_buf(),
            line,
            column: format!("{col} ({field})"),
            message: format!("{}: {}", self.where_, message.into()),
        }
    }
}

/// Runs `f` on an item: strict loads fail on its error, lenient loads count and skip it.
pub(crate) fn each<T>(
    opts: &LoadOptions,
    report: &mut LoadReport,
    out: &mut Vec<T>,
    f: impl FnOnce() -> Result<T>,
) -> Result<()> {
    match f() {
        Ok(v) => {
            out.push(v);
            Ok(())
        }
        Err(e) if opts.lenient => {
            report.skip(&e);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A trace or span id as lowercase hex. OTLP/JSON writes hex; the protobuf JSON mapping of some
/// exporters writes base64 of the bytes, which is converted.
pub(crate) fn normalize_id(s: &str, bytes: usize) -> Option<String> {
    let s = s.trim();
    if s.len() == bytes * 2 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(s.to_ascii_lowercase());
    }
    let raw = base64_decode(s)?;
    (raw.len() == bytes).then(|| raw.iter().map(|b| format!("{b:02x}")).collect())
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// An integer written as a JSON number or as a decimal string (OTLP/JSON writes 64-bit integers
/// as strings).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum IntLike {
    Num(i64),
    Str(String),
}

impl IntLike {
    pub fn get(&self) -> Option<i64> {
        match self {
            IntLike::Num(n) => Some(*n),
            IntLike::Str(s) => s.trim().parse().ok(),
        }
    }
}

/// `type` of the AIOps data from semantic-convention attributes: `rpc` with `rpc.system`, `db`
/// with `db.system` or `db.type`, `http` with an `http.*` method or status, else empty.
pub(crate) fn kind_from(has: impl Fn(&str) -> bool) -> &'static str {
    if has("rpc.system") {
        "rpc"
    } else if has("db.system") || has("db.type") {
        "db"
    } else if has("http.method")
        || has("http.request.method")
        || has("http.status_code")
        || has("http.response.status_code")
    {
        "http"
    } else {
        ""
    }
}

/// Keeps pod placement read from trace attributes: the topology is derived from the spans and
/// the placement added to it.
pub(crate) fn with_placement(mut ds: Dataset, placement: BTreeMap<String, String>) -> Dataset {
    if placement.is_empty() {
        return ds;
    }
    let mut observed = Observed::new();
    observed.spans(&ds.spans);
    let mut t = observed.finish();
    for (pod, node) in placement {
        t.nodes.push(node.clone());
        t.placement.insert(pod, node);
    }
    t.normalize();
    ds.topology = Some(t);
    ds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_or_base64() {
        assert_eq!(
            normalize_id("00F067AA0BA902B7", 8).as_deref(),
            Some("00f067aa0ba902b7")
        );
        // base64 of the 8 bytes 00 f0 67 aa 0b a9 02 b7
        assert_eq!(
            normalize_id("APBnqgupArc=", 8).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(normalize_id("!!", 8), None);
    }

    #[test]
    fn positions_are_one_based() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
