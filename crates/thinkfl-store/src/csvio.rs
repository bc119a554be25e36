//! CSV reading shared by every table reader: header lookup by name, typed fields, errors that
//! name file, line and column, and lenient skipping.

use crate::chunks::{FileBytes, record_chunks, target_bytes};
use crate::sink::RowSink;
use crate::{Error, LoadOptions, LoadReport, Result};
use rayon::prelude::*;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A malformed field: its 0-based column and what is wrong.
#[derive(Debug)]
pub(crate) struct FieldErr {
    pub col: usize,
    pub message: String,
}

/// An open CSV file whose header has been read.
#[derive(Debug)]
pub(crate) struct Csv {
    path: PathBuf,
    // Whole files in memory: line numbers are computed from byte offsets, because the csv
    // crate's own line count is off after blank lines.
    buf: FileBytes,
    /// Byte offset of the first record after the header.
    body: usize,
    pub headers: Vec<String>,
}

/// A reader of records that end at `\n` only; a `\r` before it is dropped by [`Fields`]:
/// with the default CRLF terminator the csv crate reports CRLF records one line too early.
fn reader(bytes: &[u8], has_headers: bool) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(has_headers)
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(bytes)
}

impl Csv {
    pub fn open(path: &Path) -> Result<Self> {
        let buf = FileBytes::open(path)?;
        let mut rdr = reader(&buf, true);
        let headers = rdr.byte_headers().map_err(|e| csv_err(path, 0, e))?.clone();
        let body = rdr.position().byte() as usize;
        let headers = headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = std::str::from_utf8(h).map_err(|_| Error::Parse {
                    file: path.to_path_buf(),
                    line: 1,
                    column: format!("{}", i + 1),
                    message: "header is not UTF-8".into(),
                })?;
                Ok(h.trim_start_matches('\u{feff}').trim().to_string())
            })
            .collect::<Result<Vec<_>>>()?;
        drop(rdr);
        Ok(Self {
            path: path.to_path_buf(),
            buf,
            body,
            headers,
        })
    }

    /// The position of a required header column.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.optional_column(name).ok_or_else(|| {
            Error::format(
                &self.path,
                format!(
                    "missing column {name:?} in header (found: {})",
                    self.headers.join(",")
                ),
            )
        })
    }

    pub fn optional_column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// Calls `f` on every row. A malformed row is an error naming file, line and column, or,
    /// when lenient, is skipped and counted in `report`.
    pub fn for_each(
        self,
        opts: &LoadOptions,
        report: &mut LoadReport,
        f: impl FnMut(&Fields<'_>) -> std::result::Result<(), FieldErr>,
    ) -> Result<()> {
        let range = self.body..self.buf.len();
        let line = self.first_line(self.body);
        self.read_range(range, line, opts, report, f)
    }

    /// [`Csv::for_each`] in parallel: the body is cut into pieces of whole records, each
    /// piece's rows go to a fresh sink by `f`, and the pieces are joined back
    /// in file order, so `sink` and `report` end as a sequential read leaves them, and an error
    /// is the first one of the file.
    pub fn par_for_each<S: RowSink + Default + Send>(
        self,
        opts: &LoadOptions,
        report: &mut LoadReport,
        sink: &mut S,
        f: impl Fn(&Fields<'_>, &mut S) -> std::result::Result<(), FieldErr> + Sync,
    ) -> Result<()> {
        let target = target_bytes(self.buf.len());
        self.par_for_each_by(opts, report, sink, target, f)
    }

    /// [`Csv::par_for_each`] with pieces of about `target` bytes.
    pub fn par_for_each_by<S: RowSink + Default + Send>(
        self,
        opts: &LoadOptions,
        report: &mut LoadReport,
        sink: &mut S,
        target: usize,
        f: impl Fn(&Fields<'_>, &mut S) -> std::result::Result<(), FieldErr> + Sync,
    ) -> Result<()> {
        let body = &self.buf[self.body..];
        let mut pieces = record_chunks(body, target);
        for r in &mut pieces {
            *r = r.start + self.body..r.end + self.body;
        }
        if pieces.len() <= 1 {
            return self.for_each(opts, report, |row| f(row, sink));
        }
        let newlines: Vec<u64> = pieces
            .par_iter()
            .map(|r| memchr::memchr_iter(b'\n', &self.buf[r.clone()]).count() as u64)
            .collect();
        let mut line = self.first_line(self.body);
        let firsts: Vec<u64> = newlines
            .iter()
            .map(|n| {
                let first = line;
                line += n;
                first
            })
            .collect();
        let parts: Vec<Result<(S, LoadReport)>> = pieces
            .into_par_iter()
            .zip(firsts)
            .map(|(range, first)| {
                let mut local = S::default();
                let mut r = LoadReport::default();
                self.read_range(range, first, opts, &mut r, |row| f(row, &mut local))?;
                Ok((local, r))
            })
            .collect();
        for part in parts {
            let (local, r) = part?;
            sink.join(local);
            report.merge(r);
        }
        Ok(())
    }

    /// The line number of the record at byte `at`, counted as `for_each` counts.
    fn first_line(&self, at: usize) -> u64 {
        1 + memchr::memchr_iter(b'\n', &self.buf[..at]).count() as u64
    }

    /// Reads the records of `range` (whole records), whose first byte is on line `first`.
    fn read_range(
        &self,
        range: Range<usize>,
        first: u64,
        opts: &LoadOptions,
        report: &mut LoadReport,
        mut f: impl FnMut(&Fields<'_>) -> std::result::Result<(), FieldErr>,
    ) -> Result<()> {
        let buf = &self.buf[range];
        let mut rdr = reader(buf, false);
        let mut rec = csv::ByteRecord::new();
        let width = self.headers.len();
        let (mut seen_to, mut seen_lines) = (0usize, first);
        loop {
            match rdr.read_byte_record(&mut rec) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let err = csv_err(&self.path, first - 1, e);
                    if opts.lenient {
                        report.skip(&err);
                        continue;
                    }
                    return Err(err);
                }
            }
            let line = {
                let mut start = rec.position().map_or(0, |p| p.byte() as usize);
                while start < buf.len() && matches!(buf[start], b'\n' | b'\r') {
                    start += 1;
                }
                if start >= seen_to {
                    seen_lines += memchr::memchr_iter(b'\n', &buf[seen_to..start]).count() as u64;
                    seen_to = start;
                }
                seen_lines
            };
            if rec.len() == 1 && matches!(&rec[0], b"" | b"\r") {
                continue; // a blank line
            }
            let res = if rec.len() != width {
                Err(FieldErr {
                    col: rec.len().min(width),
                    message: format!("expected {width} fields, found {}", rec.len()),
                })
            } else {
                f(&Fields {
                    rec: &rec,
                    headers: &self.headers,
                })
            };
            if let Err(fe) = res {
                let name = self.headers.get(fe.col).map_or("", String::as_str);
                let err = Error::Parse {
                    file: self.path.clone(),
                    line,
                    column: format!("{} ({name})", fe.col + 1),
                    message: fe.message,
                };
                if opts.lenient {
                    report.skip(&err);
                } else {
                    return Err(err);
                }
            }
        }
        Ok(())
    }
}

/// A `csv` crate error of a piece whose first line is line `before + 1` of the file.
fn csv_err(path: &Path, before: u64, e: csv::Error) -> Error {
    let line = e.position().map_or(0, |p| before + p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        other => Error::Parse {
            file: path.to_path_buf(),
            line,
            column: "-".into(),
            message: format!("{other:?}"),
        },
    }
}

/// The fields of one row.
#[derive(Debug)]
pub(crate) struct Fields<'a> {
    rec: &'a csv::ByteRecord,
    #[allow(dead_code)]
    headers: &'a [String],
}

impl<'a> Fields<'a> {
    pub fn str(&self, col: usize) -> std::result::Result<&'a str, FieldErr> {
        let mut b = &self.rec[col];
        if col + 1 == self.rec.len()
            && let Some(stripped) = b.strip_suffix(b"\r")
        {
            b = stripped;
        }
        std::str::from_utf8(b).map_err(|_| FieldErr {
            col,
            message: "not valid UTF-8".into(),
        })
    }

    pub fn i64(&self, col: usize) -> std::result::Result<i64, FieldErr> {
        let s = self.str(col)?;
        parse_i64(s.as_bytes()).ok_or_else(|| FieldErr {
            col,
            message: format!("expected an integer, found {s:?}"),
        })
    }

    pub fn f64(&self, col: usize) -> std::result::Result<f64, FieldErr> {
        let s = self.str(col)?;
        s.trim().parse::<f64>().map_err(|_| FieldErr {
            col,
            message: format!("expected a number, found {s:?}"),
        })
    }
}

/// Parses a decimal integer with an optional sign; no spaces, no overflow.
#[inline]
pub(crate) fn parse_i64(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(d as i64)?;
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use thinkfl_core::Dataset;

    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-z0-9]{1,6}",
            Just("12".to_string()),
            Just("-3".to_string()),
            Just("\"a,b\"".to_string()),
            Just("\"say \"\"hi\"\"\"".to_string()),
            Just("\"two\nlines\"".to_string()),
            Just("\"cr\r\nlf\"".to_string()),
            Just("x\"y".to_string()),
            Just("é".to_string()),
        ]
    }

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => prop::collection::vec(field(), 3..=3),
            1 => prop::collection::vec(field(), 0..5),
        ]
        .prop_map(|f| f.join(","))
    }

    /// Reads `path` (header `id,ts,name`) into log rows, sequentially or by pieces.
    fn read(
        path: &Path,
        lenient: bool,
        target: Option<usize>,
    ) -> (Result<()>, Dataset, LoadReport) {
        let opts = LoadOptions { lenient };
        let mut ds = Dataset::default();
        let mut report = LoadReport::default();
        let csv = Csv::open(path).unwrap();
        let row = |f: &Fields<'_>, ds: &mut Dataset| {
            let (id, ts, name) = (f.str(0)?, f.i64(1)?, f.str(2)?);
            ds.log(id, ts, "pod-0", name, "");
            Ok(())
        };
        let res = match target {
            None => csv.for_each(&opts, &mut report, |f| row(f, &mut ds)),
            Some(t) => csv.par_for_each_by(&opts, &mut report, &mut ds, t, row),
        };
        (res, ds, report)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Read by pieces of a few bytes (cut inside quoted fields, after blank lines, between
        /// CR and LF), a file gives the rows, the report and the first error of the
        /// sequential read, line and column included.
        #[test]
        fn pieces_read_as_the_sequential_reader(
            lines in prop::collection::vec(line(), 0..30),
            crlf in any::<bool>(),
            blank in any::<bool>(),
            lenient in any::<bool>(),
            target in 1usize..40,
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut text = String::from("id,ts,name");
            for (k, l) in lines.iter().enumerate() {
                text.push_str(nl);
                if blank && k % 5 == 2 {
                    text.push_str(nl);
                }
                text.push_str(l);
            }
            text.push_str(nl);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.csv");
            std::fs::write(&path, &text).unwrap();
            let (want_res, want, want_report) = read(&path, lenient, None);
            let (got_res, got, got_report) = read(&path, lenient, Some(target));
            match (&want_res, &got_res) {
                (Err(w), Err(g)) => prop_assert_eq!(w.to_string(), g.to_string()),
                (Ok(()), Ok(())) => {
                    prop_assert_eq!(&want.logs, &got.logs);
                    prop_assert_eq!(&want_report, &got_report);
                }
                other => prop_assert!(false, "readers disagree: {:?}", other),
            }
        }
    }

    #[test]
    fn an_error_after_a_quoted_newline_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "id,ts,name\na,1,\"x\ny\"\nb,2,z\nc,oops,w\n").unwrap();
        for target in [None, Some(1), Some(3)] {
            let (res, _, _) = read(&path, false, target);
            let e = res.unwrap_err().to_string();
            assert!(
                e.ends_with("t.csv:5: column 2 (ts): expected an integer, found \"oops\""),
                "{e}"
            );
        }
    }

    #[test]
    fn integers_parse_strictly() {
        assert_eq!(parse_i64(b"1647747340693"), Some(1647747340693));
        assert_eq!(parse_i64(b"-5"), Some(-5));
        for bad in [
            &b""[..],
            b"-",
            b"1.5",
            b" 1",
            b"12a",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }
}
