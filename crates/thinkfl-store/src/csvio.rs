//! CSV reading shared by every table reader: header lookup by name, typed fields, errors that
//! name file, line and column, and lenient skipping.

use crate::{Error, LoadOptions, LoadReport, Result};
use std::io::Cursor;
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
    rdr: csv::Reader<Cursor<Vec<u8>>>,
    pub headers: Vec<String>,
}

impl Csv {
    pub fn open(path: &Path) -> Result<Self> {
        // Whole files in memory: line numbers are computed from byte offsets, because the csv
        // crate's own line count is off after blank lines.
        let file = Cursor::new(std::fs::read(path).map_err(|e| Error::io(path, e))?);
        // Records end at `\n` only, and a `\r` before it is dropped by [`Fields`]: with the
        // default CRLF terminator the csv crate reports CRLF records one line too early.
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(file);
        let headers = rdr.byte_headers().map_err(|e| csv_err(path, e))?.clone();
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
        Ok(Self {
            path: path.to_path_buf(),
            rdr,
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
        mut self,
        opts: &LoadOptions,
        report: &mut LoadReport,
        mut f: impl FnMut(&Fields<'_>) -> std::result::Result<(), FieldErr>,
    ) -> Result<()> {
        let mut rec = csv::ByteRecord::new();
        let width = self.headers.len();
        let (mut seen_to, mut seen_lines) = (0usize, 1u64);
        loop {
            match self.rdr.read_byte_record(&mut rec) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let err = csv_err(&self.path, e);
                    if opts.lenient {
                        report.skip(&err);
                        continue;
                    }
                    return Err(err);
                }
            }
            let line = {
                let buf = self.rdr.get_ref().get_ref();
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

fn csv_err(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map_or(0, |p| p.line());
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
    use super::parse_i64;

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
