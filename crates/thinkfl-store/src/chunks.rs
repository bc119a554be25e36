//! Cutting a CSV body into pieces that several threads parse at once. A cut must fall where the
//! `csv` crate (quoting on, `""` escapes, records ending at `\n`) starts a record, and a `\n`
//! inside a quoted field is not one: whether a given line start is a record start depends on
//! every quote before it. Right after a `\n`, the reader is either at a record start or inside
//! a quoted field, so each piece is run from both states at once (in parallel, and only pieces
//! with a `"` need a scan at all), and then one pass in file order picks the real state of each
//! piece's start and drops the cuts that fall inside a quoted field.

use rayon::prelude::*;
use std::fs::File;
use std::ops::{Deref, Range};
use std::path::Path;

use crate::{Error, Result};

/// The reader's state after a `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// At the start of a record.
    Record,
    /// Inside a quoted field.
    Quoted,
}

/// The `csv` crate's parser states that matter for record boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    StartField,
    InField,
    InQuoted,
    /// A `"` seen inside a quoted field: either the closing quote or the first of `""`.
    QuoteInQuoted,
}

/// The state after running `bytes` (which end with `\n`, or are the file's last piece) from
/// `start`.
fn run(bytes: &[u8], start: After) -> After {
    let mut s = match start {
        After::Record => State::StartField,
        After::Quoted => State::InQuoted,
    };
    for &b in bytes {
        s = match (s, b) {
            (State::StartField, b'"') => State::InQuoted,
            (State::StartField | State::InField | State::QuoteInQuoted, b',' | b'\n') => {
                State::StartField
            }
            (State::StartField | State::InField, _) => State::InField,
            (State::InQuoted, b'"') => State::QuoteInQuoted,
            (State::InQuoted, _) => State::InQuoted,
            (State::QuoteInQuoted, b'"') => State::InQuoted,
            (State::QuoteInQuoted, _) => State::InField,
        };
    }
    if s == State::InQuoted {
        After::Quoted
    } else {
        After::Record
    }
}

/// Ranges of `body` (which starts at a record start) that each hold whole records, in order,
/// about `target` bytes each (a piece grows to the next record end).
pub(crate) fn record_chunks(body: &[u8], target: usize) -> Vec<Range<usize>> {
    let target = target.max(1);
    let mut pieces = Vec::new();
    let mut a = 0usize;
    while a < body.len() {
        let from = (a + target).min(body.len());
        let b = memchr::memchr(b'\n', &body[from..]).map_or(body.len(), |i| from + i + 1);
        pieces.push(a..b);
        a = b;
    }
    // Each piece's end state from either start state; a piece without a quote keeps its start
    // state, because only a `"` can open or close a quoted field.
    let ends: Vec<Option<(After, After)>> = pieces
        .par_iter()
        .map(|r| {
            let bytes = &body[r.clone()];
            memchr::memchr(b'"', bytes)
                .map(|_| (run(bytes, After::Record), run(bytes, After::Quoted)))
        })
        .collect();
    let mut out: Vec<Range<usize>> = Vec::with_capacity(pieces.len());
    let mut state = After::Record;
    for (r, end) in pieces.into_iter().zip(ends) {
        match (state, out.last_mut()) {
            (After::Quoted, Some(last)) => last.end = r.end,
            _ => out.push(r.clone()),
        }
        state = match (end, state) {
            (None, s) => s,
            (Some((e, _)), After::Record) => e,
            (Some((_, e)), After::Quoted) => e,
        };
    }
    out
}

/// How many pieces a body of `len` bytes is cut into: enough for every thread to steal work,
/// and none smaller than a megabyte, whose parse would cost less than its merge.
pub(crate) fn target_bytes(len: usize) -> usize {
    const MIN: usize = 1 << 20;
    #[cfg(test)]
    {
        let forced = TEST_TARGET.load(std::sync::atomic::Ordering::Relaxed);
        if forced > 0 {
            return forced;
        }
    }
    let parts = rayon::current_num_threads() * 4;
    (len / parts.max(1) + 1).max(MIN)
}

/// Piece size forced by tests, so that small files are read in many pieces (0: not forced).
/// Results never depend on it, so tests running beside one that sets it are unaffected.
#[cfg(test)]
pub(crate) static TEST_TARGET: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// A file's bytes: memory-mapped when it is large (no copy out of the page cache and no
/// zeroed buffer to fault in), read into memory otherwise.
#[derive(Debug)]
pub(crate) enum FileBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Read(v) => v,
        }
    }
}

impl FileBytes {
    /// Reads or maps `path`.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        const MAP_FROM: u64 = 1 << 20;
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        if len >= MAP_FROM {
            // SAFETY: the map is read only and private to this load. Another process that
            // truncates or rewrites the file while it is loaded changes what we read (as a
            // `read` racing a writer would) or faults the load; data set files are written
            // before they are loaded, not during.
            let m =
                unsafe { memmap2::MmapOptions::new().map(&f) }.map_err(|e| Error::io(path, e))?;
            #[cfg(unix)]
            let _ = m.advise(memmap2::Advice::Sequential);
            return Ok(FileBytes::Mapped(m));
        }
        let mut v = Vec::with_capacity(len as usize);
        use std::io::Read as _;
        let mut f = f;
        f.read_to_end(&mut v).map_err(|e| Error::io(path, e))?;
        Ok(FileBytes::Read(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The records the `csv` crate reads from `bytes`, field by field.
    fn records(bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(bytes);
        let mut rec = csv::ByteRecord::new();
        let mut out = Vec::new();
        while rdr.read_byte_record(&mut rec).unwrap() {
            out.push(rec.iter().map(<[u8]>::to_vec).collect());
        }
        out
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                4 => Just(&b"ab"[..]),
                2 => Just(&b","[..]),
                2 => Just(&b"\n"[..]),
                1 => Just(&b"\r\n"[..]),
                2 => Just(&b"\""[..]),
                1 => Just(&b"\"\""[..]),
                1 => Just(&b"\"x\ny\""[..]),
            ],
            0..60,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// The pieces cover the body in order, and reading each on its own gives the records
        /// of the whole body: no cut falls inside a record.
        #[test]
        fn pieces_read_as_the_whole(body in body(), target in 1usize..24) {
            let chunks = record_chunks(&body, target);
            let mut at = 0;
            for c in &chunks {
                prop_assert_eq!(c.start, at);
                prop_assert!(c.end > c.start);
                at = c.end;
            }
            prop_assert_eq!(at, body.len());
            let pieces: Vec<_> = chunks.iter().flat_map(|c| records(&body[c.clone()])).collect();
            prop_assert_eq!(pieces, records(&body));
        }
    }

    #[test]
    fn a_quoted_newline_is_not_a_cut() {
        let body = b"a,\"x\ny\"\nb,c\n";
        let chunks = record_chunks(body, 1);
        assert_eq!(chunks, vec![0..8, 8..12]);
    }
}
