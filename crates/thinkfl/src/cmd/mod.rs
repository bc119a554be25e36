//! One module per subcommand.
pub mod bench;
pub mod bench_store;
pub mod bench_tools;
pub mod bench_train;
pub mod chat;
pub mod corpus;
pub mod demo;
pub mod env;
pub mod eval;
pub mod export_spans;
pub mod fuzz;
pub mod import;
pub mod incidents;
pub mod inspect;
pub mod localize;
pub mod model;
pub mod models;
pub mod report;
pub mod serve;
pub mod simulate;
pub mod tools;
pub mod train;

use std::path::Path;
use std::sync::OnceLock;
use thinkfl_store::snapshot::SnapshotMode;
use thinkfl_store::{LoadOptions, LoadReport, TelemetryStore};

/// The `--snapshot` setting of this run (set once by `main`).
static SNAPSHOT: OnceLock<SnapshotMode> = OnceLock::new();

/// Sets the `--snapshot` setting of every data set this run opens.
pub fn set_snapshot_mode(mode: SnapshotMode) {
    let _ = SNAPSHOT.set(mode);
}

/// Opens a data set as every command does: from its snapshot when that is fresh, else from its
/// CSV files (see `thinkfl_store::snapshot`); says on stderr why a snapshot was not used and
/// where one was written.
pub fn open_store(
    dir: &Path,
    opts: &LoadOptions,
) -> thinkfl_store::Result<(TelemetryStore, LoadReport)> {
    let mode = SNAPSHOT.get().copied().unwrap_or_default();
    let (store, report, opened) = TelemetryStore::open(dir, opts, mode)?;
    for n in &opened.notes {
        eprintln!("snapshot: {n}");
    }
    if let Some(p) = &opened.wrote {
        eprintln!("snapshot: wrote {}", p.display());
    }
    Ok((store, report))
}
