//! Harness of the store snapshot reader (`DIR/.thinkfl/store.snap`, opened by every command
//! through `TelemetryStore::open`). Each input is tried twice: as it is, and resealed (fresh
//! checksums over the changed bytes, as a broken build would write them), so that mutations
//! reach the structure and contents checks behind the checksums, not only the checksums.
//!
//! Contracts: a refused snapshot is an error naming the file; a snapshot that opens answers
//! every query exactly as a store built afresh from its own rows does (so no index can be out of
//! order or out of range); raw bytes that open (changes in padding only) answer as one of the
//! seeds does; and `TelemetryStore::open` on each seed data set with the input as its snapshot
//! succeeds, and when it does not use the snapshot its store is the CSV files' store.

use crate::seeds::{Corpus, repo};
use crate::{Error, Harness, Result, Target, Verdict};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use thinkfl_store::snapshot::{SnapshotMode, reseal, snapshot_path};
use thinkfl_store::{LoadOptions, TelemetryStore};

/// Every query's answer on every key of the store, as text. Row positions are file order, so
/// they compare across two stores with the same rows.
fn answers(s: &TelemetryStore) -> String {
    let mut o = String::new();
    let idx = |it: &mut dyn Iterator<Item = thinkfl_store::SpanRef<'_>>| -> Vec<u32> {
        it.map(|r| r.idx().0).collect()
    };
    let _ = writeln!(
        o,
        "counts {} {} {} {} {}",
        s.span_count(),
        s.trace_count(),
        s.point_count(),
        s.log_count(),
        s.series_count()
    );
    let mut ids = BTreeSet::new();
    for sp in s.spans() {
        let _ = writeln!(
            o,
            "{:?} parent {:?}",
            sp.to_span(),
            sp.parent().map(|p| p.idx().0)
        );
        ids.insert(sp.span_id());
        ids.insert(sp.parent_span());
    }
    for id in ids {
        let _ = writeln!(
            o,
            "id {id:?} first {:?} all {:?} children {:?}",
            s.span_by_id(id).map(|r| r.idx().0),
            idx(&mut s.spans_by_id(id)),
            idx(&mut s.children(id)),
        );
    }
    for t in s.trace_ids() {
        let _ = writeln!(o, "trace {t:?} {:?}", idx(&mut s.trace(t)));
    }
    let _ = writeln!(o, "roots {:?}", idx(&mut s.roots()));
    let range = s.time_range();
    let _ = writeln!(o, "time range {range:?}");
    if let Some((lo, hi)) = range {
        let (lo, hi) = (lo.saturating_mul(1000), hi.saturating_mul(1000));
        let mid = lo / 2 + hi / 2;
        for (a, b) in [
            (i64::MIN, i64::MAX),
            (lo, mid),
            (mid, hi.saturating_add(1000)),
        ] {
            let _ = writeln!(o, "between {a} {b} {:?}", idx(&mut s.spans_between(a, b)));
        }
    }
    let _ = writeln!(o, "calls {:?}", s.caller_callee_components());
    for c in s.span_components() {
        let _ = writeln!(
            o,
            "pod {c:?} {:?}",
            idx(&mut s.spans_of(c, i64::MIN, i64::MAX))
        );
    }
    for ser in s.all_series() {
        let _ = writeln!(
            o,
            "series {:?} {:?} {:?} {:?} {:?} found {:?}",
            ser.cmdb_id(),
            ser.kpi(),
            ser.source(),
            ser.timestamps(),
            ser.values(),
            s.series(ser.cmdb_id(), ser.kpi()).map(|f| f.len())
        );
        let _ = writeln!(o, "of {:?}", s.series_of(ser.cmdb_id()).len());
    }
    for l in s.logs() {
        let _ = writeln!(o, "{:?}", l.to_record());
    }
    for c in s.log_components() {
        let logs: Vec<&str> = s
            .logs_of(c, i64::MIN, i64::MAX)
            .map(|l| l.log_id())
            .collect();
        let _ = writeln!(o, "logs of {c:?} {logs:?}");
    }
    let _ = writeln!(o, "faults {:?}", s.faults());
    o
}

/// One seed data set: its directory and what its CSV files load to.
struct Set {
    dir: PathBuf,
    answers: String,
}

struct SnapshotHarness {
    sets: Vec<Set>,
    /// Where `from_snapshot` reads the input (outside every data set).
    loose: PathBuf,
}

impl SnapshotHarness {
    /// Opens `bytes` as a snapshot; `Ok(None)` when refused the right way.
    fn open(&self, bytes: &[u8]) -> std::result::Result<Option<TelemetryStore>, String> {
        let _ = std::fs::write(&self.loose, bytes);
        match TelemetryStore::from_snapshot(&self.loose) {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                let m = e.to_string();
                if m.contains("store.snap") {
                    Ok(None)
                } else {
                    Err(format!("refusal does not name the snapshot: {m}"))
                }
            }
        }
    }
}

impl Harness for SnapshotHarness {
    fn run(&mut self, input: &[u8]) -> Verdict {
        let mut sealed = input.to_vec();
        let resealed = reseal(&mut sealed) && sealed != input;
        let (mut accepted, mut raw_accepted) = (false, false);
        for (bytes, fresh_sums) in [(input, false), (&sealed[..], true)] {
            if fresh_sums && !resealed {
                continue;
            }
            let store = match self.open(bytes) {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(m) => return Verdict::Finding(m),
            };
            accepted = true;
            raw_accepted |= !fresh_sums;
            let got = answers(&store);
            let rebuilt = answers(&TelemetryStore::from_dataset(store.to_dataset()));
            if got != rebuilt {
                return Verdict::Finding(format!(
                    "an opened snapshot (resealed: {fresh_sums}) answers unlike the store built \
                     from its own rows: first difference {}",
                    first_difference(&got, &rebuilt)
                ));
            }
            if !fresh_sums && !self.sets.iter().any(|s| s.answers == got) {
                return Verdict::Finding(
                    "changed bytes passed the checksums and gave a store no seed has".into(),
                );
            }
        }
        // The way commands open a data set: whatever the snapshot, the open succeeds, and a
        // snapshot not used leaves the CSV files' store.
        // One seed data set per input (which one is a function of the input): a CSV load per
        // set and input would cost more than everything else here.
        if let Some(set) = self.sets.get(input.len() % self.sets.len().max(1)) {
            let path = snapshot_path(&set.dir);
            let _ = std::fs::write(&path, input);
            match TelemetryStore::open(&set.dir, &LoadOptions::default(), SnapshotMode::Auto) {
                Ok((store, _, opened)) => {
                    if opened.from_snapshot.is_none() && answers(&store) != set.answers {
                        return Verdict::Finding(format!(
                            "{}: the CSV load after a refused snapshot differs from the CSV files",
                            set.dir.display()
                        ));
                    }
                    if opened.from_snapshot.is_some() && !raw_accepted {
                        return Verdict::Finding(
                            "TelemetryStore::open used a snapshot that from_snapshot refused"
                                .into(),
                        );
                    }
                }
                Err(e) => {
                    return Verdict::Finding(format!(
                        "{}: open failed on a data set whose CSV files are good: {e}",
                        set.dir.display()
                    ));
                }
            }
        }
        if accepted {
            Verdict::Accepted
        } else {
            Verdict::Rejected
        }
    }
}

fn first_difference(a: &str, b: &str) -> String {
    a.lines()
        .zip(b.lines())
        .find(|(x, y)| x != y)
        .map(|(x, y)| format!("{x:?} against {y:?}"))
        .unwrap_or_else(|| format!("{} lines against {}", a.lines().count(), b.lines().count()))
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
    let p = dir.join(rel);
    let parent = p.parent().expect("a file in a directory");
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))
}

const DICT: &[&str] = &[
    "TFLSTORE",
    "\u{0}\u{0}\u{0}\u{0}",
    "\u{ff}\u{ff}\u{ff}\u{ff}",
    "\"fingerprint\"",
    "\"lenient\":true",
    "\"skipped_rows\":1",
    "\"topology_derived\":false",
    "\"strs\":[[16,0]]",
    "\"series\":[]",
    "\"faults\":[]",
    "null",
    "[]",
    "{}",
    "\"container\"",
];

/// Seeds: snapshots of four small data sets (the repository's preprocessed and span-only
/// fixtures, the real sample's spans and ground truth, and a simulated set with every metric
/// table, logs and faults), each written by `TelemetryStore::open` beside its CSV files.
pub(crate) fn snapshot(corpus: &Corpus) -> Result<Target> {
    let root = corpus.scratch().join("store-snapshot");
    let mut dirs = Vec::new();
    let pre = root.join("preprocessed");
    write(&pre, "trace/all/trace_jaeger-span.csv", repo::PRE_SPANS)?;
    write(&pre, "metric/all/metrics.csv", repo::PRE_METRICS)?;
    write(&pre, "log/all/logs.csv", repo::PRE_LOGS)?;
    write(&pre, "topology.json", repo::PRE_TOPOLOGY)?;
    write(&pre, "groundtruth/groundtruth-2022-03-20.csv", repo::PRE_GT)?;
    dirs.push(pre);
    let twin = root.join("twin");
    write(&twin, "trace/all/trace_jaeger-span.csv", repo::TWIN_SPANS)?;
    dirs.push(twin);
    if let Some(s) = corpus.sample() {
        let d = root.join("sample");
        for rel in ["trace/all/trace_jaeger-span.csv", "groundtruth.csv"] {
            let p = s.join(rel);
            write(&d, rel, &std::fs::read(&p).map_err(|e| Error::io(&p, e))?)?;
        }
        dirs.push(d);
    }
    let sim = root.join("sim");
    // The simulator's shortest set (10 minutes), thinly traced: small enough that a snapshot
    // is opened, queried and rebuilt in milliseconds.
    let cfg = thinkfl_sim::SimConfig {
        duration_s: 600,
        warmup_s: 120,
        faults: 1,
        seed: 3,
        traces_per_minute: 2.0,
        ..thinkfl_sim::SimConfig::default()
    };
    let mut ds = thinkfl_sim::simulate_dataset(&cfg)
        .map_err(|e| Error::setup("store-snapshot", format!("simulating: {e}")))?;
    // A slice of each table keeps every kind of row (all metric sources, logs, faults) and
    // keeps an input's open, queries and rebuild in a few milliseconds.
    ds.spans.truncate(300);
    ds.logs.truncate(100);
    let mut per_source = std::collections::HashMap::new();
    ds.metrics.retain(|m| {
        let n = per_source.entry(m.source).or_insert(0usize);
        *n += 1;
        *n <= 100
    });
    thinkfl_store::write_aiops(&ds, &sim).map_err(|e| Error::setup("store-snapshot", e))?;
    dirs.push(sim);

    let mut sets = Vec::new();
    let mut seeds = Vec::new();
    for dir in dirs {
        let (store, _, opened) =
            TelemetryStore::open(&dir, &LoadOptions::default(), SnapshotMode::Rebuild)
                .map_err(|e| Error::setup("store-snapshot", e))?;
        let path = opened.wrote.ok_or_else(|| {
            Error::setup(
                "store-snapshot",
                format!("{}: no snapshot written: {:?}", dir.display(), opened.notes),
            )
        })?;
        seeds.push(std::fs::read(&path).map_err(|e| Error::io(&path, e))?);
        sets.push(Set {
            answers: answers(&store),
            dir,
        });
    }
    let loose = root.join("loose").join("store.snap");
    std::fs::create_dir_all(root.join("loose")).map_err(|e| Error::io(&root, e))?;
    Ok(Target::new(
        "store-snapshot",
        seeds,
        DICT,
        SnapshotHarness { sets, loose },
    ))
}
