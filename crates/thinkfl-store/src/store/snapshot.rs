//! The store on disk: every column and index of a [`TelemetryStore`] in one file that is
//! memory-mapped on open, so that opening parses nothing and sorts nothing.
//!
//! Layout (little-endian):
//!
//! ```text
//! 0   magic "TFLSTORE"
//! 8   format version (u32), then the number of sections (u32)
//! 16  meta offset (u64), meta length (u64)
//! 32  checksum of bytes 0..32, the section table and the meta
//! 64  section table: per section (offset, bytes, values, checksum), u64 each
//!     meta: JSON (what the snapshot was made from, load report, faults, topology, series)
//!     sections, each at a multiple of 64 bytes: the raw column
//! ```
//!
//! Every section's checksum is verified on open (in parallel): a snapshot whose bytes changed is
//! refused, never used. The version is read before anything else, so a snapshot of another
//! format version gets an error that says so.

use super::{SeriesMeta, TelemetryStore};
use crate::col::{Col, Pod};
use crate::strings::{Pool, StrColumn};
use crate::{Error, LoadReport, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thinkfl_core::{FaultCase, MetricSource, Topology};

/// Format version this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;
const MAGIC: [u8; 8] = *b"TFLSTORE";
const HEADER: usize = 64;
const ALIGN: usize = 64;

/// One input file as it was when the snapshot was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    /// Path relative to the data set's directory.
    pub path: String,
    /// Size in bytes.
    pub len: u64,
    /// Modification time: seconds and nanoseconds since the epoch.
    pub modified: (u64, u32),
}

/// What a snapshot was made from: the data set's input files, and whether the load was
/// lenient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Every input file, in reading order.
    pub files: Vec<FileStamp>,
    /// Whether the load skipped malformed rows instead of failing.
    pub lenient: bool,
}

/// The snapshot's JSON part: everything that is not a long column.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub fingerprint: Fingerprint,
    pub report: LoadReport,
    faults: Vec<FaultCase>,
    topology: Topology,
    topology_derived: bool,
    /// (width when fixed, strings) of each string column, in section order.
    strs: Vec<(Option<usize>, usize)>,
    /// (cmdb symbol, kpi symbol, source, first point, end point) of each series.
    series: Vec<(u32, u32, MetricSource, u32, u32)>,
}

/// Names of the sections, in file order (they appear in error messages).
const SECTIONS: [&str; 33] = [
    "names.bytes",
    "names.ends",
    "names.sorted",
    "traces.bytes",
    "traces.ends",
    "traces.sorted",
    "ts",
    "dur",
    "cmdb",
    "kind",
    "status",
    "op",
    "span_id.bytes",
    "span_id.ends",
    "trace",
    "parent",
    "by_id",
    "time",
    "by_cmdb",
    "by_trace",
    "trace_starts",
    "by_parent",
    "roots",
    "p_ts",
    "p_val",
    "log_id.bytes",
    "log_id.ends",
    "l_ts",
    "l_cmdb",
    "l_name",
    "l_value.bytes",
    "l_value.ends",
    "logs_by_cmdb",
];

/// A checksum that every change of one 8-byte word changes: each lane's step is a bijection
/// of its state for a given word. Blocks are hashed in parallel and combined in order, so the
/// value does not depend on the number of threads.
pub(crate) fn checksum(b: &[u8]) -> u64 {
    const BLOCK: usize = 1 << 20;
    const P: u64 = 0x9E37_79B9_7F4A_7C15;
    fn block(b: &[u8]) -> u64 {
        let mut l = [
            0x243F_6A88_85A3_08D3u64,
            0x1319_8A2E_0370_7344,
            0xA409_3822_299F_31D0,
            0x082E_FA98_EC4E_6C89,
        ];
        let mut words = b.chunks_exact(32);
        for c in &mut words {
            for (i, lane) in l.iter_mut().enumerate() {
                let w = u64::from_le_bytes(c[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
                *lane = (*lane ^ w).wrapping_mul(P).rotate_left(29);
            }
        }
        let rest = words.remainder();
        for (i, c) in rest.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            l[i] = (l[i] ^ u64::from_le_bytes(w))
                .wrapping_mul(P)
                .rotate_left(29);
        }
        let mut h = b.len() as u64;
        for lane in l {
            h = (h ^ lane).wrapping_mul(P).rotate_left(31);
        }
        h
    }
    b.par_chunks(BLOCK)
        .map(block)
        .collect::<Vec<u64>>()
        .into_iter()
        .fold(b.len() as u64 ^ P, |h, x| {
            (h ^ x).wrapping_mul(P).rotate_left(27)
        })
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::Snapshot {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The sections of a store, as byte slices with their value counts, in [`SECTIONS`] order.
fn sections(s: &TelemetryStore) -> Vec<(&[u8], usize)> {
    fn c<T: Pod>(col: &Col<T>) -> (&[u8], usize) {
        (col.as_bytes(), col.len())
    }
    let mut out = Vec::with_capacity(SECTIONS.len());
    for pool in [&s.names, &s.traces] {
        out.push(c(&pool.strings.bytes));
        out.push(c(&pool.strings.ends));
        out.push(c(&pool.sorted));
    }
    out.extend([
        c(&s.ts),
        c(&s.dur),
        c(&s.cmdb),
        c(&s.kind),
        c(&s.status),
        c(&s.op),
    ]);
    out.extend([c(&s.span_id.bytes), c(&s.span_id.ends)]);
    out.extend([
        c(&s.trace),
        c(&s.parent),
        c(&s.by_id),
        c(&s.time),
        c(&s.by_cmdb),
        c(&s.by_trace),
        c(&s.trace_starts),
        c(&s.by_parent),
        c(&s.roots),
        c(&s.p_ts),
        c(&s.p_val),
        c(&s.log_id.bytes),
        c(&s.log_id.ends),
        c(&s.l_ts),
        c(&s.l_cmdb),
        c(&s.l_name),
        c(&s.l_value.bytes),
        c(&s.l_value.ends),
        c(&s.logs_by_cmdb),
    ]);
    debug_assert_eq!(out.len(), SECTIONS.len());
    out
}

fn pad(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

impl TelemetryStore {
    /// Writes the store to `path` (atomically: a temporary file beside it, then a rename, so
    /// that a process that has the old snapshot mapped keeps reading the old bytes).
    /// `fingerprint` and `report` say what it was loaded from and what the load skipped.
    pub fn write_snapshot(
        &self,
        path: &Path,
        fingerprint: &Fingerprint,
        report: &LoadReport,
    ) -> Result<()> {
        if cfg!(target_endian = "big") {
            return Err(bad(
                path,
                "snapshots are written on little-endian machines only",
            ));
        }
        let meta = Meta {
            fingerprint: fingerprint.clone(),
            report: report.clone(),
            faults: self.faults.clone(),
            topology: self.topology.clone(),
            topology_derived: self.topology_derived,
            strs: [
                &self.names.strings,
                &self.traces.strings,
                &self.span_id,
                &self.log_id,
                &self.l_value,
            ]
            .iter()
            .map(|s| (s.width, s.len))
            .collect(),
            series: self
                .series
                .iter()
                .map(|m| (m.cmdb, m.kpi, m.source, m.start, m.end))
                .collect(),
        };
        let meta = serde_json::to_vec(&meta).expect("meta serializes");
        let secs = sections(self);
        let sums: Vec<u64> = secs.par_iter().map(|(b, _)| checksum(b)).collect();
        let table_len = secs.len() * 32;
        let meta_at = HEADER + table_len;
        let mut at = pad(meta_at + meta.len());
        let mut table = Vec::with_capacity(table_len);
        for ((b, n), sum) in secs.iter().zip(&sums) {
            for v in [at as u64, b.len() as u64, *n as u64, *sum] {
                table.extend_from_slice(&v.to_le_bytes());
            }
            at = pad(at + b.len());
        }
        let mut head = Vec::with_capacity(HEADER);
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        head.extend_from_slice(&(secs.len() as u32).to_le_bytes());
        head.extend_from_slice(&(meta_at as u64).to_le_bytes());
        head.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        let sum = checksum(&[&head[..], &table, &meta].concat());
        head.extend_from_slice(&sum.to_le_bytes());
        head.resize(HEADER, 0);

        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let tmp = tmp_path(path);
        let write = || -> std::io::Result<()> {
            let f = std::fs::File::create(&tmp)?;
            let mut w = std::io::BufWriter::with_capacity(1 << 22, f);
            w.write_all(&head)?;
            w.write_all(&table)?;
            w.write_all(&meta)?;
            let mut pos = meta_at + meta.len();
            let zeros = [0u8; ALIGN];
            for (b, _) in &secs {
                w.write_all(&zeros[..pad(pos) - pos])?;
                w.write_all(b)?;
                pos = pad(pos) + b.len();
            }
            // No fsync: a snapshot torn by a crash fails its checksums and is rebuilt.
            w.flush()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(&tmp, e));
        }
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Opens a snapshot file as it is, fresh or not (commands use [`TelemetryStore::open`],
    /// which checks that it stands for the data set's files first).
    pub fn from_snapshot(path: &Path) -> Result<Self> {
        Self::open_snapshot(path).map(|(s, _)| s)
    }

    /// Opens a snapshot written by [`TelemetryStore::write_snapshot`]: maps the file, checks
    /// its version, structure and every checksum, and returns the store (whose columns are
    /// views of the map) with the snapshot's meta. Any mismatch is an [`Error::Snapshot`]
    /// naming what is wrong.
    pub(crate) fn open_snapshot(path: &Path) -> Result<(Self, Meta)> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read only; snapshots are replaced by rename, never rewritten in
        // place, so its pages do not change while mapped (see `Col`'s `Deref`).
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&f) }
            .map_err(|e| Error::io(path, e))?;
        let map = Arc::new(map);
        let b: &[u8] = &map;
        if b.len() < HEADER || b[..8] != MAGIC {
            return Err(bad(
                path,
                "not a thinkfl store snapshot (no TFLSTORE header)",
            ));
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let version = u32_at(8);
        if version != SNAPSHOT_VERSION {
            return Err(bad(
                path,
                format!(
                    "written by snapshot format version {version}; this build reads version \
                     {SNAPSHOT_VERSION}"
                ),
            ));
        }
        if cfg!(target_endian = "big") {
            return Err(bad(
                path,
                "snapshots are read on little-endian machines only",
            ));
        }
        let count = u32_at(12) as usize;
        let (meta_at, meta_len) = (u64_at(16) as usize, u64_at(24) as usize);
        if count != SECTIONS.len()
            || meta_at != HEADER + count * 32
            || meta_at.checked_add(meta_len).is_none_or(|e| e > b.len())
        {
            return Err(bad(path, "truncated or malformed header"));
        }
        let table = &b[HEADER..meta_at];
        let meta_bytes = &b[meta_at..meta_at + meta_len];
        if checksum(&[&b[..32], table, meta_bytes].concat()) != u64_at(32) {
            return Err(bad(path, "header checksum mismatch (the file was changed)"));
        }
        let meta: Meta = serde_json::from_slice(meta_bytes)
            .map_err(|e| bad(path, format!("meta does not parse: {e}")))?;
        let entries: Vec<[usize; 4]> = (0..count)
            .map(|k| std::array::from_fn(|j| u64_at(HEADER + k * 32 + j * 8) as usize))
            .collect();
        for (k, &[at, len, _, _]) in entries.iter().enumerate() {
            if at.checked_add(len).is_none_or(|e| e > b.len()) {
                return Err(bad(
                    path,
                    format!("section {} lies past the end", SECTIONS[k]),
                ));
            }
        }
        let wrong: Option<usize> = entries
            .par_iter()
            .enumerate()
            .find_first(|&(_, &[at, len, _, sum])| checksum(&b[at..at + len]) != sum as u64)
            .map(|(k, _)| k);
        if let Some(k) = wrong {
            return Err(bad(
                path,
                format!(
                    "checksum mismatch in section {} (the file was changed)",
                    SECTIONS[k]
                ),
            ));
        }
        let mut k = 0usize;
        fn col<T: Pod>(
            map: &Arc<memmap2::Mmap>,
            path: &Path,
            e: [usize; 4],
            name: &str,
        ) -> Result<Col<T>> {
            let [at, len, n, _] = e;
            if n.checked_mul(std::mem::size_of::<T>()) != Some(len) {
                return Err(bad(path, format!("section {name} has a wrong size")));
            }
            Col::mapped(map, at, n)
                .ok_or_else(|| bad(path, format!("section {name} is misaligned")))
        }
        macro_rules! take {
            () => {{
                k += 1;
                col(&map, path, entries[k - 1], SECTIONS[k - 1])?
            }};
        }
        let mut strs = meta.strs.iter().copied();
        let mut strcol = |bytes: Col<u8>, ends: Col<u64>| -> Result<StrColumn> {
            let (width, len) = strs
                .next()
                .ok_or_else(|| bad(path, "meta lacks a string column"))?;
            let fits = match width {
                Some(w) => ends.is_empty() && w.checked_mul(len) == Some(bytes.len()),
                None => ends.len() == len && ends.last().is_none_or(|&e| e as usize == bytes.len()),
            };
            if !fits {
                return Err(bad(path, "a string column's sizes disagree"));
            }
            Ok(StrColumn {
                bytes,
                ends,
                width,
                len,
            })
        };
        let names = Pool {
            strings: strcol(take!(), take!())?,
            sorted: take!(),
        };
        let traces = Pool {
            strings: strcol(take!(), take!())?,
            sorted: take!(),
        };
        let (ts, dur, cmdb, kind, status, op) =
            (take!(), take!(), take!(), take!(), take!(), take!());
        let span_id = strcol(take!(), take!())?;
        let store = TelemetryStore {
            names,
            traces,
            ts,
            dur,
            cmdb,
            kind,
            status,
            op,
            span_id,
            trace: take!(),
            parent: take!(),
            by_id: take!(),
            time: take!(),
            by_cmdb: take!(),
            by_trace: take!(),
            trace_starts: take!(),
            by_parent: take!(),
            roots: take!(),
            series: meta
                .series
                .iter()
                .map(|&(cmdb, kpi, source, start, end)| SeriesMeta {
                    cmdb,
                    kpi,
                    source,
                    start,
                    end,
                })
                .collect(),
            p_ts: take!(),
            p_val: take!(),
            log_id: strcol(take!(), take!())?,
            l_ts: take!(),
            l_cmdb: take!(),
            l_name: take!(),
            l_value: strcol(take!(), take!())?,
            logs_by_cmdb: take!(),
            faults: meta.faults.clone(),
            topology: meta.topology.clone(),
            topology_derived: meta.topology_derived,
            mapped: 0,
        };
        store.check_shape().map_err(|m| bad(path, m))?;
        store.check_contents().map_err(|m| bad(path, m))?;
        let mut store = store;
        store.mapped = map.len();
        Ok((store, meta))
    }

    /// The sizes that must agree in a store (a snapshot that passed its checksums but was
    /// written by a broken build must not index out of range later).
    fn check_shape(&self) -> std::result::Result<(), String> {
        let n = self.ts.len();
        let spans = [
            ("dur", self.dur.len()),
            ("cmdb", self.cmdb.len()),
            ("kind", self.kind.len()),
            ("status", self.status.len()),
            ("op", self.op.len()),
            ("span_id", self.span_id.len()),
            ("trace", self.trace.len()),
            ("parent", self.parent.len()),
            ("by_id", self.by_id.len()),
            ("time", self.time.len()),
            ("by_cmdb", self.by_cmdb.len()),
            ("by_trace", self.by_trace.len()),
        ];
        for (name, len) in spans {
            if len != n {
                return Err(format!("{name} has {len} rows, ts has {n}"));
            }
        }
        let logs = self.l_ts.len();
        for (name, len) in [
            ("log_id", self.log_id.len()),
            ("l_cmdb", self.l_cmdb.len()),
            ("l_name", self.l_name.len()),
            ("l_value", self.l_value.len()),
            ("logs_by_cmdb", self.logs_by_cmdb.len()),
        ] {
            if len != logs {
                return Err(format!("{name} has {len} rows, l_ts has {logs}"));
            }
        }
        if self.trace_starts.len() != self.traces.len() + 1
            || self.p_val.len() != self.p_ts.len()
            || self.by_parent.len() > n
            || self.roots.len() > n
            || self.names.sorted.len() != self.names.len()
            || self.traces.sorted.len() != self.traces.len()
            || self
                .series
                .iter()
                .any(|m| m.start > m.end || m.end as usize > self.p_ts.len())
        {
            return Err("index sizes disagree".into());
        }
        Ok(())
    }

    /// Bytes of the snapshot file this store maps (0 for a store built from rows): they count
    /// in the resident set once touched, but belong to the page cache, not the heap.
    pub fn mapped_bytes(&self) -> usize {
        self.mapped
    }
}

/// Gives changed snapshot bytes fresh checksums (every section's, then the header's), so that
/// they get past the checksums to the structure and contents checks behind them: the fuzzer
/// and the tests use it to stand for a snapshot written by a broken build. Sections that lie
/// outside the bytes keep their old checksums. `false` when there is no header to seal.
pub fn reseal(b: &mut [u8]) -> bool {
    if b.len() < HEADER || b[..8] != MAGIC {
        return false;
    }
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let count = u32::from_le_bytes(b[12..16].try_into().expect("4 bytes")) as usize;
    let table_end = count
        .checked_mul(32)
        .and_then(|t| t.checked_add(HEADER))
        .filter(|&e| e <= b.len());
    let Some(table_end) = table_end else {
        return false;
    };
    for k in 0..count {
        let e = HEADER + k * 32;
        let (at, len) = (u64_at(b, e) as usize, u64_at(b, e + 8) as usize);
        if let Some(end) = at.checked_add(len).filter(|&end| end <= b.len()) {
            let sum = checksum(&b[at..end]);
            b[e + 24..e + 32].copy_from_slice(&sum.to_le_bytes());
        }
    }
    let (meta_at, meta_len) = (u64_at(b, 16) as usize, u64_at(b, 24) as usize);
    if meta_at != table_end {
        return false;
    }
    let Some(meta_end) = meta_at.checked_add(meta_len).filter(|&e| e <= b.len()) else {
        return false;
    };
    let sum = checksum(&[&b[..32], &b[HEADER..meta_end]].concat());
    b[32..40].copy_from_slice(&sum.to_le_bytes());
    true
}

/// A temporary name beside `path`, unique to this process.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use thinkfl_core::{Dataset, LogRecord, MetricPoint, Span};

    fn store() -> TelemetryStore {
        let mut ds = Dataset::default();
        for i in 0..300i64 {
            ds.spans.push(Span {
                timestamp: (i * 37) % 101,
                cmdb_id: format!("pod{}-0", i % 7),
                span_id: if i % 50 == 3 {
                    format!("odd{i}")
                } else {
                    format!("{:016x}", i % 290)
                },
                trace_id: format!("t{}", i / 9),
                duration: i,
                kind: "rpc".into(),
                status_code: ["0", "500", ""][i as usize % 3].into(),
                operation_name: format!("op{}", i % 5),
                parent_span: match i % 9 {
                    0 => String::new(),
                    8 => "gone".into(),
                    _ => format!("{:016x}", i - 1),
                },
            });
            ds.metrics.push(MetricPoint {
                timestamp: 1000 - i,
                cmdb_id: format!("node-{}", i % 3),
                kpi_name: format!("k{}", i % 4),
                value: i as f64 / 7.0,
                source: MetricSource::Node,
            });
            ds.logs.push(LogRecord {
                log_id: format!("l{i}"),
                timestamp: i % 13,
                cmdb_id: format!("pod{}-0", i % 7),
                log_name: "app".into(),
                value: "x".repeat(i as usize % 5),
            });
        }
        TelemetryStore::from_dataset(ds)
    }

    fn fp() -> Fingerprint {
        Fingerprint {
            files: vec![FileStamp {
                path: "trace/all/x.csv".into(),
                len: 3,
                modified: (5, 6),
            }],
            lenient: true,
        }
    }

    /// Every column and index comes back byte for byte, and so do the meta's parts.
    #[test]
    fn every_section_round_trips_exactly() {
        let a = store();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let report = LoadReport {
            skipped_rows: 2,
            warnings: vec!["w".into()],
        };
        a.write_snapshot(&path, &fp(), &report).unwrap();
        let (b, meta) = TelemetryStore::open_snapshot(&path).unwrap();
        for (k, (x, y)) in sections(&a).iter().zip(sections(&b)).enumerate() {
            assert_eq!(x.0, y.0, "section {}", SECTIONS[k]);
            assert_eq!(x.1, y.1, "section {}", SECTIONS[k]);
        }
        assert_eq!(meta.fingerprint, fp());
        assert_eq!(meta.report, report);
        assert_eq!(b.faults, a.faults);
        assert_eq!(b.topology, a.topology);
        assert_eq!(b.topology_derived, a.topology_derived);
        assert_eq!(format!("{:?}", b.series), format!("{:?}", a.series));
        assert_eq!(
            b.heap_bytes(),
            b.series.capacity() * std::mem::size_of::<SeriesMeta>()
        );
        assert!(b.mapped_bytes() > 0 && a.mapped_bytes() == 0);
    }

    /// A changed byte anywhere (header, table, meta, every section) is refused.
    #[test]
    fn any_changed_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        store()
            .write_snapshot(&path, &fp(), &LoadReport::default())
            .unwrap();
        let good = std::fs::read(&path).unwrap();
        let (_, meta) = TelemetryStore::open_snapshot(&path).unwrap();
        let _ = meta;
        // Positions in every part of the file: the header fields, the table, the meta, and
        // one byte of each section.
        let count = SECTIONS.len();
        let mut at: Vec<usize> = (0..40).collect();
        at.extend((HEADER..HEADER + count * 32).step_by(7));
        let meta_at = HEADER + count * 32;
        at.extend([meta_at, meta_at + 10]);
        for k in 0..count {
            let e = HEADER + k * 32;
            let off = u64::from_le_bytes(good[e..e + 8].try_into().unwrap()) as usize;
            let len = u64::from_le_bytes(good[e + 8..e + 16].try_into().unwrap()) as usize;
            if len > 0 {
                at.push(off + len / 2);
            }
        }
        for &i in &at {
            let mut bytes = good.clone();
            bytes[i] ^= 0x10;
            std::fs::write(&path, &bytes).unwrap();
            assert!(
                TelemetryStore::open_snapshot(&path).is_err(),
                "byte {i} changed, snapshot opened"
            );
        }
        for cut in [0, 7, 63, good.len() / 2, good.len() - 1] {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(
                TelemetryStore::open_snapshot(&path).is_err(),
                "cut at {cut}"
            );
        }
        std::fs::write(&path, &good).unwrap();
        assert!(TelemetryStore::open_snapshot(&path).is_ok());
    }

    /// Where section `name` lies in snapshot bytes.
    fn section(bytes: &[u8], name: &str) -> std::ops::Range<usize> {
        let k = SECTIONS.iter().position(|s| *s == name).unwrap();
        let e = HEADER + k * 32;
        let at = u64::from_le_bytes(bytes[e..e + 8].try_into().unwrap()) as usize;
        let len = u64::from_le_bytes(bytes[e + 8..e + 16].try_into().unwrap()) as usize;
        at..at + len
    }

    fn u32s(bytes: &mut [u8], r: std::ops::Range<usize>, i: usize) -> &mut [u8] {
        &mut bytes[r.start + 4 * i..r.start + 4 * i + 4]
    }

    /// Bytes changed and given fresh checksums (what a broken build would write) are refused
    /// by the contents check, which names what is wrong; the same bytes resealed unchanged
    /// open.
    #[test]
    fn resealed_changes_are_refused_by_the_contents_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let a = store();
        a.write_snapshot(&path, &fp(), &LoadReport::default())
            .unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut same = good.clone();
        assert!(reseal(&mut same));
        assert_eq!(same, good, "resealing unchanged bytes changes nothing");
        // Row 290 carries the id of row 0 (ids repeat every 290 rows): a parent must resolve
        // to the first row of its id, row 0.
        assert_eq!(a.span_id.get(290), a.span_id.get(0));
        let child = (0..300).find(|&i| a.parent[i] == 0).unwrap();
        type Edit = Box<dyn Fn(&mut Vec<u8>)>;
        let edits: Vec<(&str, Edit)> = vec![
            (
                "index time",
                Box::new(|b| {
                    let r = section(b, "time");
                    let (x, y) = (
                        b[r.start..r.start + 4].to_vec(),
                        b[r.start + 4..r.start + 8].to_vec(),
                    );
                    b[r.start..r.start + 4].copy_from_slice(&y);
                    b[r.start + 4..r.start + 8].copy_from_slice(&x);
                }),
            ),
            (
                "cmdb: value 4294967295 out of range",
                Box::new(|b| {
                    let r = section(b, "cmdb");
                    u32s(b, r, 0).copy_from_slice(&u32::MAX.to_le_bytes());
                }),
            ),
            (
                "names: not UTF-8",
                Box::new(|b| {
                    let r = section(b, "names.bytes");
                    b[r.start] = 0xff;
                }),
            ),
            (
                "parent code out of range or unresolved",
                Box::new(move |b| {
                    let r = section(b, "parent");
                    u32s(b, r, child).copy_from_slice(&290u32.to_le_bytes());
                }),
            ),
            (
                "trace_starts do not count",
                Box::new(|b| {
                    let r = section(b, "trace_starts");
                    u32s(b, r, 1).copy_from_slice(&0u32.to_le_bytes());
                }),
            ),
            (
                "index by_id",
                Box::new(|b| {
                    let r = section(b, "by_id");
                    let x = b[r.start..r.start + 4].to_vec();
                    b.copy_within(r.start + 4..r.start + 8, r.start);
                    b[r.start + 4..r.start + 8].copy_from_slice(&x);
                }),
            ),
            (
                "a series' timestamps are not ascending",
                Box::new(|b| {
                    // The first series has 25 points: its second goes before its first.
                    let r = section(b, "p_ts");
                    let t = i64::from_le_bytes(b[r.start..r.start + 8].try_into().unwrap());
                    b[r.start + 8..r.start + 16].copy_from_slice(&(t - 1_000_000).to_le_bytes());
                }),
            ),
        ];
        for (want, edit) in &edits {
            let mut b = good.clone();
            edit(&mut b);
            assert_ne!(b, good, "{want}: the edit changed nothing");
            assert!(reseal(&mut b));
            std::fs::write(&path, &b).unwrap();
            let e = TelemetryStore::from_snapshot(&path)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("s.snap") && e.contains(want),
                "want {want:?}, got {e}"
            );
        }
    }

    #[test]
    fn another_version_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        store()
            .write_snapshot(&path, &fp(), &LoadReport::default())
            .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&0u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let e = TelemetryStore::from_snapshot(&path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("s.snap: written by snapshot format version 0; this build reads version 1"),
            "{e}"
        );
    }

    #[test]
    fn the_checksum_changes_with_any_word_and_not_with_threads() {
        let b: Vec<u8> = (0..(3 << 20) + 13).map(|i| (i * 31 % 251) as u8).collect();
        let h = checksum(&b);
        for i in [0, 8, 31, 32, 1 << 20, (3 << 20) + 12] {
            let mut c = b.clone();
            c[i] ^= 1;
            assert_ne!(checksum(&c), h, "byte {i}");
        }
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(one.install(|| checksum(&b)), h);
        assert_ne!(checksum(&b[..b.len() - 1]), h);
    }
}
