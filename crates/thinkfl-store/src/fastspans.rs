//! Fast path of the span file reader: a span CSV without any `"` (the AIOps 2022 span files
//! never quote) is split by hand, on `\n` and `,`, with no allocation per field, and in parallel
//! by chunks of lines when the rows go to a [`StoreBuilder`]. Files with quotes take the `csv`
//! crate path; both give the same rows and the same errors (tested).

use crate::csvio::parse_i64;
use crate::sink::{RowSink, SPAN_HEADER};
use crate::store::{SpanFields, StoreBuilder};
use crate::{Error, LoadOptions, LoadReport, Result};
use rayon::prelude::*;
use std::path::Path;

/// The header of an unquoted span file: column positions of [`SPAN_HEADER`], the number of
/// columns, and where the body starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    cols: [usize; 9],
    width: usize,
    body: usize,
}

impl Layout {
    /// Byte offset of the first line after the header.
    pub fn body(&self) -> usize {
        self.body
    }
}

/// Reads the header line.
pub(crate) fn layout(path: &Path, text: &str) -> Result<Layout> {
    let (head, body) = match memchr::memchr(b'\n', text.as_bytes()) {
        Some(i) => (&text[..i], i + 1),
        None => (text, text.len()),
    };
    let head = head.trim_end_matches('\r').trim_start_matches('\u{feff}');
    let names: Vec<&str> = head.split(',').map(str::trim).collect();
    let mut cols = [0usize; 9];
    for (k, want) in SPAN_HEADER.iter().enumerate() {
        cols[k] = names.iter().position(|h| h == want).ok_or_else(|| {
            Error::format(
                path,
                format!(
                    "missing column {want:?} in header (found: {})",
                    names.join(",")
                ),
            )
        })?;
    }
    Ok(Layout {
        cols,
        width: names.len(),
        body,
    })
}

/// Parses the lines of `text` (whole lines, no header), the first of which is line
/// `first_line` of the file, into `sink`.
pub(crate) fn parse_lines(
    path: &Path,
    text: &str,
    first_line: u64,
    lay: &Layout,
    opts: &LoadOptions,
    report: &mut LoadReport,
    sink: &mut impl RowSink,
) -> Result<()> {
    let bytes = text.as_bytes();
    let mut pos = 0usize;
    let mut line = first_line;
    let mut bounds: Vec<(usize, usize)> = Vec::with_capacity(lay.width + 1);
    while pos < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i);
        let mut stop = end;
        if stop > pos && bytes[stop - 1] == b'\r' {
            stop -= 1;
        }
        if stop > pos {
            bounds.clear();
            let mut a = pos;
            while let Some(i) = memchr::memchr(b',', &bytes[a..stop]) {
                bounds.push((a, a + i));
                a += i + 1;
            }
            bounds.push((a, stop));
            if let Err((col, message)) = row(text, &bounds, lay, sink) {
                let name = SPAN_HEADER
                    .iter()
                    .zip(lay.cols)
                    .find(|(_, c)| *c == col)
                    .map_or("", |(n, _)| n);
                let err = Error::Parse {
                    file: path.to_path_buf(),
                    line,
                    column: format!("{} ({name})", col + 1),
                    message,
                };
                if opts.lenient {
                    report.skip(&err);
                } else {
                    return Err(err);
                }
            }
        }
        line += 1;
        pos = end + 1;
    }
    Ok(())
}

#[inline]
fn row(
    text: &str,
    b: &[(usize, usize)],
    lay: &Layout,
    sink: &mut impl RowSink,
) -> std::result::Result<(), (usize, String)> {
    if b.len() != lay.width {
        return Err((
            b.len().min(lay.width),
            format!("expected {} fields, found {}", lay.width, b.len()),
        ));
    }
    let f = |k: usize| {
        let (x, y) = b[lay.cols[k]];
        &text[x..y]
    };
    let int = |k: usize| {
        let s = f(k);
        parse_i64(s.as_bytes())
            .ok_or_else(|| (lay.cols[k], format!("expected an integer, found {s:?}")))
    };
    // Checked in the order of the `csv` path, so both report the same first error.
    let timestamp = int(0)?;
    let span_id = f(2);
    if span_id.is_empty() {
        return Err((lay.cols[2], "must not be empty".into()));
    }
    let duration = int(4)?;
    sink.span(SpanFields {
        timestamp,
        cmdb_id: f(1),
        span_id,
        trace_id: f(3),
        duration,
        kind: f(5),
        status_code: f(6),
        operation_name: f(7),
        parent_span: f(8),
    });
    Ok(())
}

/// Parses the body in parallel chunks of whole lines, each into its own builder, then appends
/// the builders in file order. Each chunk checks its own bytes (no quote, valid UTF-8);
/// `Ok(false)`, with nothing appended, when one fails.
pub(crate) fn parse_parallel(
    path: &Path,
    buf: &[u8],
    opts: &LoadOptions,
    report: &mut LoadReport,
    sink: &mut StoreBuilder,
) -> Result<bool> {
    let head_end = memchr::memchr(b'\n', buf).map_or(buf.len(), |i| i + 1);
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        return Ok(false);
    };
    if head.contains('"') {
        return Ok(false);
    }
    let lay = layout(path, head)?;
    let body = &buf[head_end..];
    let parts = (rayon::current_num_threads() * 4).max(1);
    let target = body.len() / parts + 1;
    let mut cuts = vec![0usize];
    while *cuts.last().expect("non-empty") < body.len() {
        let from = (cuts.last().expect("non-empty") + target).min(body.len());
        let cut = memchr::memchr(b'\n', &body[from..]).map_or(body.len(), |i| from + i + 1);
        cuts.push(cut);
    }
    let ranges: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
    let newlines: Vec<u64> = ranges
        .par_iter()
        .map(|&(a, b)| memchr::memchr_iter(b'\n', &body[a..b]).count() as u64)
        .collect();
    let mut first = Vec::with_capacity(ranges.len());
    let mut line = 2u64; // the header is line 1
    for n in &newlines {
        first.push(line);
        line += n;
    }
    type Chunk = Option<(StoreBuilder, LoadReport)>;
    let results: Vec<Result<Chunk>> = ranges
        .par_iter()
        .zip(first.par_iter())
        .zip(newlines.par_iter())
        .map(|((&(a, b), &first), &n)| {
            let bytes = &body[a..b];
            if memchr::memchr(b'"', bytes).is_some() {
                return Ok(None);
            }
            let Ok(text) = std::str::from_utf8(bytes) else {
                return Ok(None);
            };
            let mut local = StoreBuilder::new();
            local.reserve_spans(n as usize + 1);
            let mut r = LoadReport::default();
            parse_lines(path, text, first, &lay, opts, &mut r, &mut local)?;
            Ok(Some((local, r)))
        })
        .collect();
    if results.iter().any(|r| matches!(r, Ok(None))) {
        return Ok(false);
    }
    for res in results {
        let (local, r) = res?.expect("checked above");
        sink.append(local);
        report.merge(r);
    }
    Ok(true)
}
/// Reads a whole span file by the fast path into `sink`; `Ok(false)`, with nothing read, when
/// the file has quotes or invalid UTF-8 and needs the `csv` crate.
pub(crate) fn read_whole(
    path: &Path,
    buf: &[u8],
    opts: &LoadOptions,
    report: &mut LoadReport,
    sink: &mut impl RowSink,
) -> Result<bool> {
    if memchr::memchr(b'"', buf).is_some() {
        return Ok(false);
    }
    let Ok(text) = std::str::from_utf8(buf) else {
        return Ok(false);
    };
    let lay = layout(path, text)?;
    parse_lines(path, &text[lay.body()..], 2, &lay, opts, report, sink)?;
    Ok(true)
}
