//! Where seeds come from: the real AIOps 2022 sample (the shared fixtures), the repository's own
//! test data (compiled in), and a small simulated data set written in the AIOps 2022 layout for
//! the tables the sample does not have (metrics, fault durations, topology).

use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Repository test data, compiled in so that `thinkfl fuzz` runs anywhere.
pub(crate) mod repo {
    pub const PRE_SPANS: &[u8] = include_bytes!(
        "../../thinkfl-store/tests/fixtures/preprocessed/trace/all/trace_jaeger-span.csv"
    );
    pub const PRE_METRICS: &[u8] =
        include_bytes!("../../thinkfl-store/tests/fixtures/preprocessed/metric/all/metrics.csv");
    pub const PRE_LOGS: &[u8] =
        include_bytes!("../../thinkfl-store/tests/fixtures/preprocessed/log/all/logs.csv");
    pub const PRE_TOPOLOGY: &[u8] =
        include_bytes!("../../thinkfl-store/tests/fixtures/preprocessed/topology.json");
    pub const PRE_GT: &[u8] = include_bytes!(
        "../../thinkfl-store/tests/fixtures/preprocessed/groundtruth/groundtruth-2022-03-20.csv"
    );
    pub const TWIN_SPANS: &[u8] =
        include_bytes!("../../thinkfl-store/tests/fixtures/twin/trace/all/trace_jaeger-span.csv");
    pub const TWIN_OTLP: &[u8] =
        include_bytes!("../../thinkfl-store/tests/fixtures/twin.otlp.json");
    pub const TWIN_JAEGER: &[u8] =
        include_bytes!("../../thinkfl-store/tests/fixtures/twin.jaeger.json");
    pub const PAPER_METRICS: &[u8] =
        include_bytes!("../../thinkfl-tools/tests/data/paper_metrics.csv");
}

/// The seed sources of a run.
#[derive(Debug)]
pub struct Corpus {
    shared: Option<PathBuf>,
    scratch: tempfile::TempDir,
    sim: OnceLock<std::result::Result<PathBuf, String>>,
}

impl Corpus {
    /// Seeds from `shared` (a directory holding `aiops2022-sample`; `None`: only the
    /// repository's data and the simulated set).
    pub fn new(shared: Option<PathBuf>) -> Result<Self> {
        let scratch = tempfile::tempdir().map_err(|e| Error::io(&std::env::temp_dir(), e))?;
        Ok(Self {
            shared,
            scratch,
            sim: OnceLock::new(),
        })
    }

    /// The shared fixtures beside this checkout (`../shared/fixtures`), where they exist.
    pub fn default_shared() -> Option<PathBuf> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
        p.join("aiops2022-sample").is_dir().then_some(p)
    }

    /// The real AIOps 2022 sample, where present.
    pub fn sample(&self) -> Option<PathBuf> {
        let p = self.shared.as_ref()?.join("aiops2022-sample");
        p.is_dir().then_some(p)
    }

    /// A scratch directory that lives as long as the corpus.
    pub(crate) fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// A 20-minute simulated Online Boutique set with two faults, written in the AIOps 2022
    /// layout (same seed, same bytes).
    pub(crate) fn sim_dir(&self) -> Result<&Path> {
        let r = self.sim.get_or_init(|| {
            let dir = self.scratch.path().join("sim");
            let cfg = thinkfl_sim::SimConfig {
                duration_s: 1200,
                faults: 2,
                seed: 5,
                traces_per_minute: 10.0,
                ..thinkfl_sim::SimConfig::default()
            };
            let ds = thinkfl_sim::simulate_dataset(&cfg).map_err(|e| e.to_string())?;
            thinkfl_store::write_aiops(&ds, &dir).map_err(|e| e.to_string())?;
            Ok(dir)
        });
        r.as_deref()
            .map_err(|m| Error::setup("seeds", format!("simulating the seed data set: {m}")))
    }

    /// The first `lines` lines of every `*.csv` under `dir/sub` (whole files are too large to
    /// mutate quickly; a CSV's troubles show in its first rows).
    pub(crate) fn csv_excerpts(&self, dir: &Path, sub: &str, lines: usize) -> Result<Vec<Vec<u8>>> {
        let d = dir.join(sub);
        let mut out = Vec::new();
        if !d.is_dir() {
            return Ok(out);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
            .map_err(|e| Error::io(&d, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        files.sort();
        for f in files {
            out.push(excerpt(&f, lines)?);
        }
        Ok(out)
    }
}

/// The first `lines` lines of a file.
pub(crate) fn excerpt(path: &Path, lines: usize) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let end = bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .nth(lines.saturating_sub(1))
        .map_or(bytes.len(), |(i, _)| i + 1);
    Ok(bytes[..end].to_vec())
}
