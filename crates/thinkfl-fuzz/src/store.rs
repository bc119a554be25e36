//! Harnesses of thinkfl-store's readers: each input is written where the AIOps 2022 layout
//! expects the file and the directory is loaded twice, into a `Dataset` (`read_aiops`) and
//! into the indexed `TelemetryStore` (whose span reader is a separate, parallel one); both must
//! take or refuse the same input and, when they take it, hold the same rows.

use crate::seeds::{Corpus, excerpt, repo};
use crate::{Error, Harness, Result, Target, Verdict, names_file};
use std::path::{Path, PathBuf};
use thinkfl_store::{LoadOptions, TelemetryStore, read_aiops};

const CSV_DICT: &[&str] = &[
    ",",
    "\"",
    "\"\"",
    "\n",
    "\r\n",
    "\r",
    ",,",
    "\u{feff}",
    "\\",
    "\"a,b\"",
    "\n\n",
    "timestamp",
    "cmdb_id",
    "span_id",
    "trace_id",
    "parent_span",
    "kpi_name",
    "value",
    "level",
    "service",
    "node",
    "pod",
    "node-1",
    "frontend-2",
    "frontend",
    "frontend-2.cartservice-0",
];

const JSON_DICT: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "false",
    "\"\"",
    "{}",
    "[]",
    "\\u0000",
    "\\ud800",
    "\\\"",
    "1e999",
    "-0",
    "\"traceId\"",
    "\"spanId\"",
    "\"parentSpanId\"",
    "\"startTimeUnixNano\"",
    "\"endTimeUnixNano\"",
    "\"attributes\"",
    "\"stringValue\"",
    "\"intValue\"",
    "\"resource\"",
    "\"service.name\"",
    "\"k8s.pod.name\"",
    "\"spans\"",
    "\"traceID\"",
    "\"spanID\"",
    "\"references\"",
    "\"CHILD_OF\"",
    "\"processID\"",
    "\"processes\"",
    "\"serviceName\"",
    "\"tags\"",
    "\"startTime\"",
    "\"duration\"",
    "\"status\"",
    "\"code\"",
    "\"edges\"",
    "\"services\"",
    "\"pods\"",
    "\"nodes\"",
];

/// A data set directory with one file that each input replaces.
#[derive(Debug)]
struct Layout {
    dir: PathBuf,
    file: PathBuf,
    /// A second file that the part of an input after [`SPLIT`] goes to (ground truth's
    /// fault durations).
    side: Option<PathBuf>,
}

/// Where an input is cut in two for a harness with a side file.
const SPLIT: &[u8] = b"\n--side--\n";

impl Layout {
    fn new(root: &Path, name: &str, rel: &str, side: Option<&str>) -> Result<Self> {
        let dir = root.join(name);
        let file = dir.join(rel);
        let parent = file.parent().expect("a relative path with a file name");
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        Ok(Self {
            side: side.map(|s| dir.join(s)),
            dir,
            file,
        })
    }

    fn write(&self, input: &[u8]) {
        let (main, side) = match (&self.side, find(input, SPLIT)) {
            (Some(_), Some(at)) => (&input[..at], Some(&input[at + SPLIT.len()..])),
            _ => (input, None),
        };
        // Scratch files under our own temp dir: a failed write is the machine's problem, not a
        // finding, and shows as a rejection naming the file.
        let _ = std::fs::write(&self.file, main);
        if let Some(path) = &self.side {
            match side {
                Some(bytes) => {
                    let _ = std::fs::write(path, bytes);
                }
                None => {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }

    fn file_name(&self) -> String {
        self.file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Loads `dir` both ways and checks that they agree.
fn load_both(layout: &Layout) -> Verdict {
    let strict = LoadOptions::default();
    let a = read_aiops(&layout.dir, &strict);
    let b = TelemetryStore::load(&layout.dir, &strict);
    // The lenient load must not panic either; what it keeps is not compared.
    let _ = read_aiops(&layout.dir, &LoadOptions::lenient());
    match (a, b) {
        (Ok((ds, _)), Ok((store, _))) => {
            let (x, y) = (
                (ds.spans.len(), ds.metrics.len(), ds.logs.len()),
                (store.span_count(), store.point_count(), store.log_count()),
            );
            if x == y {
                Verdict::Accepted
            } else {
                Verdict::Finding(format!(
                    "read_aiops kept (spans, points, logs) = {x:?}, TelemetryStore::load {y:?}"
                ))
            }
        }
        (Err(ea), Err(eb)) => {
            let side = layout
                .side
                .as_ref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned());
            let (ea, eb) = (ea.to_string(), eb.to_string());
            for e in [&ea, &eb] {
                let named = e.contains(&layout.file_name())
                    || side.as_deref().is_some_and(|s| e.contains(s));
                if !named {
                    return names_file(e, &layout.file_name());
                }
            }
            Verdict::Rejected
        }
        (Ok(_), Err(e)) => Verdict::Finding(format!(
            "read_aiops took the input, TelemetryStore::load refused it: {e}"
        )),
        (Err(e), Ok(_)) => Verdict::Finding(format!(
            "TelemetryStore::load took the input, read_aiops refused it: {e}"
        )),
    }
}

struct LayoutHarness(Layout);

impl Harness for LayoutHarness {
    fn run(&mut self, input: &[u8]) -> Verdict {
        self.0.write(input);
        load_both(&self.0)
    }
}

/// The span table: the sample's and the repository's span files and a simulated one.
pub(crate) fn spans(corpus: &Corpus) -> Result<Target> {
    let mut seeds = vec![repo::PRE_SPANS.to_vec(), repo::TWIN_SPANS.to_vec()];
    if let Some(s) = corpus.sample() {
        seeds.extend(corpus.csv_excerpts(&s, "trace/all", 30)?);
    }
    seeds.extend(corpus.csv_excerpts(corpus.sim_dir()?, "trace/all", 40)?);
    let layout = Layout::new(
        corpus.scratch(),
        "spans-csv",
        "trace/all/trace_jaeger-span.csv",
        None,
    )?;
    Ok(Target::new(
        "spans-csv",
        seeds,
        CSV_DICT,
        LayoutHarness(layout),
    ))
}

/// One of the other tables of the layout (metrics, logs, ground truth, topology).
pub(crate) fn csv_table(corpus: &Corpus, name: &'static str) -> Result<Target> {
    let sim = corpus.sim_dir()?;
    let mut seeds = Vec::new();
    let (rel, side) = match name {
        "metric-csv" => {
            for sub in ["metric/container", "metric/node", "metric/istio"] {
                seeds.extend(corpus.csv_excerpts(sim, sub, 40)?);
            }
            ("metric/container/kpi_container.csv", None)
        }
        "service-metric-csv" => {
            seeds.extend(corpus.csv_excerpts(sim, "metric/service", 40)?);
            ("metric/service/metric_service.csv", None)
        }
        "preprocessed-metric-csv" => {
            seeds.push(repo::PRE_METRICS.to_vec());
            seeds.push(excerpt_bytes(repo::PAPER_METRICS, 40));
            ("metric/all/metrics.csv", None)
        }
        "log-csv" => {
            seeds.push(repo::PRE_LOGS.to_vec());
            if let Some(s) = corpus.sample() {
                seeds.extend(corpus.csv_excerpts(&s, "log/all", 30)?);
            }
            seeds.extend(corpus.csv_excerpts(sim, "log/all", 30)?);
            ("log/all/logs.csv", None)
        }
        "groundtruth-csv" => {
            seeds.push(repo::PRE_GT.to_vec());
            if let Some(s) = corpus.sample() {
                seeds.push(excerpt(&s.join("groundtruth.csv"), 20)?);
            }
            let gt = excerpt(&sim.join("groundtruth.csv"), 20)?;
            let durations = excerpt(&sim.join(thinkfl_store::aiops::FAULT_DURATIONS), 20)?;
            seeds.push(gt.clone());
            let mut both = gt;
            both.extend_from_slice(SPLIT);
            both.extend_from_slice(&durations);
            seeds.push(both);
            (
                "groundtruth.csv",
                Some(thinkfl_store::aiops::FAULT_DURATIONS),
            )
        }
        "topology-json" => {
            seeds.push(repo::PRE_TOPOLOGY.to_vec());
            let p = sim.join("topology.json");
            seeds.push(std::fs::read(&p).map_err(|e| Error::io(&p, e))?);
            ("topology.json", None)
        }
        _ => return Err(Error::setup(name, "not a table of the layout")),
    };
    if seeds.is_empty() {
        return Err(Error::setup(name, "no seeds"));
    }
    let dict = if name == "topology-json" {
        JSON_DICT
    } else {
        CSV_DICT
    };
    let layout = Layout::new(corpus.scratch(), name, rel, side)?;
    Ok(Target::new(name, seeds, dict, LayoutHarness(layout)))
}

fn excerpt_bytes(bytes: &[u8], lines: usize) -> Vec<u8> {
    let end = bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .nth(lines.saturating_sub(1))
        .map_or(bytes.len(), |(i, _)| i + 1);
    bytes[..end].to_vec()
}

struct ImportHarness {
    path: PathBuf,
    otlp: bool,
}

impl Harness for ImportHarness {
    fn run(&mut self, input: &[u8]) -> Verdict {
        let _ = std::fs::write(&self.path, input);
        let read = |opts: &LoadOptions| {
            if self.otlp {
                thinkfl_store::read_otlp_json(&self.path, opts)
            } else {
                thinkfl_store::read_jaeger_json(&self.path, opts)
            }
        };
        let _ = read(&LoadOptions::lenient());
        match read(&LoadOptions::default()) {
            Ok((ds, _)) => {
                // The store's indexes (parents, traces) are built from what the import kept.
                let store = TelemetryStore::from_dataset(ds);
                let _ = store.trace_count();
                Verdict::Accepted
            }
            Err(e) => names_file(&e.to_string(), "export.json"),
        }
    }
}

/// OTLP or Jaeger JSON exports.
pub(crate) fn import(corpus: &Corpus, name: &'static str) -> Result<Target> {
    let otlp = name == "otlp-json";
    let seeds = vec![if otlp {
        repo::TWIN_OTLP.to_vec()
    } else {
        repo::TWIN_JAEGER.to_vec()
    }];
    let dir = corpus.scratch().join(name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(Target::new(
        name,
        seeds,
        JSON_DICT,
        ImportHarness {
            path: dir.join("export.json"),
            otlp,
        },
    ))
}
