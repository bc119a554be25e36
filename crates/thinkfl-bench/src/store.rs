//! Load benchmark of the store (`thinkfl bench store`): generates a synthetic AIOps 2022 span
//! file (seeded), then loads and indexes it with [`TelemetryStore::load`], and reports spans/s and bytes per span, both as
//! the resident-set growth of the process (`VmRSS` of `/proc/self/status`, before and after the
//! load, with the file buffer already freed) and as the store's own heap size
//! ([`TelemetryStore::heap_bytes`]). The resident growth is given raw and again after glibc's
//! `malloc_trim` returned the pages freed by the load's temporary buffers. Then it writes the
//! store's snapshot and opens the data set again as a command does (from that snapshot),
//! timing the open and checking a sample of answers against the loaded store, and writes the
//! spans as a Parquet table (`spans.parquet` beside the data set) for the peers to read. Figures
//! are printed, never asserted.

use crate::proc::{cpu_seconds, release_free_heap, resident_bytes};
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use thinkfl_store::snapshot::{SnapshotMode, fingerprint, snapshot_path};
use thinkfl_store::{LoadOptions, TelemetryStore};

/// Configuration of the store benchmark.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Spans in the generated file.
    pub spans: usize,
    /// Seed of the generator.
    pub seed: u64,
    /// Mean spans per trace (real AIOps 2022 traces have tens of spans).
    pub spans_per_trace: usize,
    /// Directory for the generated data set; a fresh temporary directory when `None`.
    pub dir: Option<PathBuf>,
}

impl BenchConfig {
    /// Default of `spans`.
    pub const DEFAULT_SPANS: usize = 5_000_000;
    /// Default of `seed`.
    pub const DEFAULT_SEED: u64 = 7;
    /// Default of `spans_per_trace`.
    pub const DEFAULT_SPANS_PER_TRACE: usize = 20;

    /// Checks the sizes; the message says which and why.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.spans == 0 || self.spans >= (1 << 31) {
            return Err(format!("spans must be in 1..2^31, got {}", self.spans));
        }
        if self.spans_per_trace == 0 {
            return Err("spans_per_trace must be at least 1".into());
        }
        Ok(())
    }
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            spans: Self::DEFAULT_SPANS,
            seed: Self::DEFAULT_SEED,
            spans_per_trace: Self::DEFAULT_SPANS_PER_TRACE,
            dir: None,
        }
    }
}

/// What [`bench_store`] measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// Spans loaded.
    pub spans: usize,
    /// Traces loaded.
    pub traces: usize,
    /// Size of the span file.
    pub file_bytes: u64,
    /// The span file.
    pub span_file: PathBuf,
    /// Threads of the load (rayon's pool).
    pub threads: usize,
    /// Seconds writing the file.
    pub generate_seconds: f64,
    /// Seconds loading and indexing it.
    pub load_seconds: f64,
    /// Spans loaded per second.
    pub spans_per_second: f64,
    /// CPU time (user + system, all threads) the load took: unlike wall time, it does not grow
    /// when other processes share the cores.
    pub load_cpu_seconds: Option<f64>,
    /// Growth of VmRSS over the load, per span (`None` where `/proc` is unavailable). It
    /// includes heap the allocator keeps after the load's temporary buffers were freed.
    pub rss_bytes_per_span: Option<f64>,
    /// The same after asking glibc to return free heap pages to the system (`malloc_trim`);
    /// `None` off glibc.
    pub rss_trimmed_bytes_per_span: Option<f64>,
    /// The store's heap (capacity of its columns and indexes) per span.
    pub heap_bytes_per_span: f64,
    /// Seconds writing the snapshot of the loaded store.
    pub snapshot_write_seconds: f64,
    /// Size of the snapshot file.
    pub snapshot_bytes: u64,
    /// Seconds of `TelemetryStore::open` from the fresh snapshot (stat of the input files,
    /// map, every checksum verified), the file being in the page cache after its writing.
    pub snapshot_open_seconds: f64,
    /// CPU time of that open (all threads).
    pub snapshot_open_cpu_seconds: Option<f64>,
    /// Growth of VmRSS over the open, per span: the mapped pages the checksums touched (page
    /// cache, shared and reclaimable) and the small heap part.
    pub snapshot_rss_bytes_per_span: Option<f64>,
    /// Heap of the opened store per span (its columns are views of the map).
    pub snapshot_heap_bytes_per_span: f64,
    /// Spans whose id, parent, children and trace the opened store answered as the loaded one
    /// (an even sample; any difference fails the run).
    pub snapshot_checked_spans: usize,
    /// The spans as a Parquet table (`thinkfl export spans`), for the peers to read.
    pub parquet_file: PathBuf,
    /// Seconds writing it from the loaded store.
    pub parquet_write_seconds: f64,
    /// CPU time of that writing (all threads).
    pub parquet_write_cpu_seconds: Option<f64>,
    /// Its size.
    pub parquet_bytes: u64,
}

/// The span file of a data set directory.
pub fn span_file(dir: &Path) -> PathBuf {
    dir.join("trace/all/trace_jaeger-span.csv")
}

const SERVICES: [&str; 10] = [
    "frontend",
    "cartservice",
    "productcatalogservice",
    "currencyservice",
    "paymentservice",
    "shippingservice",
    "emailservice",
    "checkoutservice",
    "recommendationservice",
    "adservice",
];

/// Writes `spans` synthetic spans in the AIOps 2022 span layout; returns (bytes, traces).
pub fn generate_span_csv(
    path: &Path,
    spans: usize,
    seed: u64,
    spans_per_trace: usize,
) -> Result<(u64, usize)> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
    }
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::with_capacity(1 << 22, f);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pods: Vec<String> = SERVICES
        .iter()
        .flat_map(|s| {
            (0..3)
                .map(move |i| format!("{s}-{i}"))
                .chain(std::iter::once(format!("{s}2-0")))
        })
        .collect();
    let ops: Vec<String> = SERVICES
        .iter()
        .flat_map(|s| ["Get", "List", "Put"].map(|m| format!("hipstershop.{s}/{m}")))
        .collect();
    let io = |e| Error::io(path, e);
    w.write_all(
        b"timestamp,cmdb_id,span_id,trace_id,duration,type,status_code,operation_name,parent_span\n",
    )
    .map_err(io)?;
    let mut written = 0usize;
    let mut traces = 0usize;
    let mut t0: i64 = 1_647_700_000_000;
    let mut ids: Vec<u64> = Vec::new();
    let mut line = Vec::with_capacity(256);
    while written < spans {
        let len = rng
            .random_range(1..=2 * spans_per_trace - 1)
            .min(spans - written);
        let trace: u128 = rng.random();
        t0 += rng.random_range(0..3);
        ids.clear();
        for k in 0..len {
            let id: u64 = rng.random();
            let parent = if k == 0 {
                None
            } else {
                Some(ids[rng.random_range(0..ids.len())])
            };
            ids.push(id);
            let pod = &pods[rng.random_range(0..pods.len())];
            let op = &ops[rng.random_range(0..ops.len())];
            let kind = ["rpc", "rpc", "http", "db", ""][rng.random_range(0..5)];
            let status = match rng.random_range(0..100) {
                0 => "500",
                1 => "1",
                2..=9 => "OK",
                10..=19 => "200",
                _ => "0",
            };
            line.clear();
            let ts = t0 + k as i64 * rng.random_range(0..5);
            let dur: u32 = rng.random_range(10..2_000_000);
            write!(
                line,
                "{ts},{pod},{id:016x},{trace:032x},{dur},{kind},{status},{op},"
            )
            .map_err(io)?;
            if let Some(p) = parent {
                write!(line, "{p:016x}").map_err(io)?;
            }
            line.push(b'\n');
            w.write_all(&line).map_err(io)?;
        }
        written += len;
        traces += 1;
    }
    w.flush().map_err(io)?;
    let bytes = std::fs::metadata(path).map_err(io)?.len();
    Ok((bytes, traces))
}

/// Generates the file, then loads and indexes it, timing the load.
pub fn bench_store(cfg: &BenchConfig) -> Result<BenchReport> {
    cfg.validate().map_err(Error::Options)?;
    let tmp;
    let dir = match &cfg.dir {
        Some(d) => d.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!(
                "thinkfl-bench-store-{}-{}",
                std::process::id(),
                cfg.seed
            ));
            tmp
        }
    };
    let file = span_file(&dir);
    let t = Instant::now();
    let (file_bytes, traces) = generate_span_csv(&file, cfg.spans, cfg.seed, cfg.spans_per_trace)?;
    let generate_seconds = t.elapsed().as_secs_f64();

    let before = resident_bytes();
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let (store, report) = TelemetryStore::load(&dir, &LoadOptions::default())?;
    let load_seconds = t.elapsed().as_secs_f64();
    let load_cpu_seconds = match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let after = resident_bytes();
    let trimmed = if release_free_heap() {
        resident_bytes()
    } else {
        None
    };
    if report.skipped_rows != 0 {
        return Err(Error::Data(format!(
            "the store skipped {} generated rows: {:?}",
            report.skipped_rows,
            report.warnings.first()
        )));
    }
    let n = store.span_count();
    let heap = store.heap_bytes();
    let store_traces = store.trace_count();
    let rss = match (before, after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / n as f64),
        _ => None,
    };
    let rss_trimmed = match (before, trimmed) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / n as f64),
        _ => None,
    };

    // The snapshot: written from the loaded store, then opened as a command opens the data set.
    let opts = LoadOptions::default();
    let snap = snapshot_path(&dir);
    let t = Instant::now();
    store.write_snapshot(&snap, &fingerprint(&dir, &opts)?, &report)?;
    let snapshot_write_seconds = t.elapsed().as_secs_f64();
    let snapshot_bytes = std::fs::metadata(&snap)
        .map_err(|e| Error::io(&snap, e))?
        .len();
    // The span table others read, written beside the data set (not one of its input files).
    let parquet_file = dir.join("spans.parquet");
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    thinkfl_store::write_spans_parquet(&store, &parquet_file)?;
    let parquet_write_seconds = t.elapsed().as_secs_f64();
    let parquet_write_cpu_seconds = match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let parquet_bytes = std::fs::metadata(&parquet_file)
        .map_err(|e| Error::io(&parquet_file, e))?
        .len();
    let step = (n / 1000).max(1);
    let sample: Vec<Probe> = (0..n).step_by(step).map(|i| probe(&store, i)).collect();
    drop(store);
    release_free_heap();
    let before = resident_bytes();
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let (opened, _, how) = TelemetryStore::open(&dir, &opts, SnapshotMode::Auto)?;
    let snapshot_open_seconds = t.elapsed().as_secs_f64();
    let snapshot_open_cpu_seconds = match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let snapshot_rss = match (before, resident_bytes()) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / n as f64),
        _ => None,
    };
    if how.from_snapshot.is_none() {
        return Err(Error::Data(format!(
            "the fresh snapshot was not used: {:?}",
            how.notes
        )));
    }
    for (k, want) in sample.iter().enumerate() {
        let got = probe(&opened, k * step);
        if &got != want {
            return Err(Error::Data(format!(
                "span {} differs in the snapshot: {got:?} against {want:?}",
                k * step
            )));
        }
    }
    let snapshot_heap = opened.heap_bytes();
    drop(opened);
    let out = BenchReport {
        spans: n,
        traces: store_traces,
        file_bytes,
        span_file: file,
        threads: rayon::current_num_threads(),
        generate_seconds,
        load_seconds,
        spans_per_second: n as f64 / load_seconds,
        load_cpu_seconds,
        rss_bytes_per_span: rss,
        rss_trimmed_bytes_per_span: rss_trimmed,
        heap_bytes_per_span: heap as f64 / n as f64,
        snapshot_write_seconds,
        snapshot_bytes,
        snapshot_open_seconds,
        snapshot_open_cpu_seconds,
        snapshot_rss_bytes_per_span: snapshot_rss,
        snapshot_heap_bytes_per_span: snapshot_heap as f64 / n as f64,
        snapshot_checked_spans: sample.len(),
        parquet_file,
        parquet_write_seconds,
        parquet_write_cpu_seconds,
        parquet_bytes,
    };
    debug_assert_eq!(out.traces, traces);
    Ok(out)
}

/// What a store answers about span `i`: its id, its parent's id, its children's ids and its
/// trace's length.
type Probe = (String, String, Vec<String>, usize);

fn probe(store: &TelemetryStore, i: usize) -> Probe {
    let s = store.span(thinkfl_store::SpanIdx(i as u32));
    (
        s.span_id().to_string(),
        s.parent_span().to_string(),
        store
            .children(s.span_id())
            .map(|c| c.span_id().to_string())
            .collect(),
        store.trace(s.trace_id()).count(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_file_loads_completely_and_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BenchConfig {
            spans: 5000,
            dir: Some(dir.path().to_path_buf()),
            ..BenchConfig::default()
        };
        let r = bench_store(&cfg).unwrap();
        assert_eq!(r.spans, 5000);
        let (store, _) = TelemetryStore::load(dir.path(), &LoadOptions::default()).unwrap();
        // Every non-root span's parent is in the file.
        assert_eq!(store.roots().count(), r.traces);
        let first = std::fs::read(span_file(dir.path())).unwrap();
        let other = tempfile::tempdir().unwrap();
        generate_span_csv(&span_file(other.path()), 5000, cfg.seed, 20).unwrap();
        assert_eq!(std::fs::read(span_file(other.path())).unwrap(), first);
    }
}
