//! Snapshots of a loaded store beside its data set (`DIR/.thinkfl/store.snap`), and
//! [`TelemetryStore::open`], which every command uses: the snapshot when it was made from the
//! data set's files as they are now, the CSV files otherwise (then the snapshot is rebuilt).
//!
//! A snapshot records each input file's size and modification time and whether the load was
//! lenient; a file added, removed, resized or touched makes it stale. Its bytes are checked
//! on every open; a snapshot of another format version, or one whose bytes changed, is never
//! used: [`SnapshotMode::Auto`] rebuilds it and says why.

use crate::aiops::input_files;
use crate::{Error, LoadOptions, LoadReport, Result, TelemetryStore};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

pub use crate::store::snapshot::{FileStamp, Fingerprint, SNAPSHOT_VERSION, reseal};

/// Where a data set's snapshot lives.
pub fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(".thinkfl").join("store.snap")
}

/// The data set's input files as they are now.
pub fn fingerprint(dir: &Path, opts: &LoadOptions) -> Result<Fingerprint> {
    let mut files = Vec::new();
    for p in input_files(dir)? {
        let m = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?;
        let t = m
            .modified()
            .map_err(|e| Error::io(&p, e))?
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let rel = p.strip_prefix(dir).unwrap_or(&p);
        files.push(FileStamp {
            path: rel.to_string_lossy().into_owned(),
            len: m.len(),
            modified: (t.as_secs(), t.subsec_nanos()),
        });
    }
    Ok(Fingerprint {
        files,
        lenient: opts.lenient,
    })
}

/// Why a snapshot made from `then` does not stand for the data set as it is `now`; `None`
/// when it does. A strict load's snapshot serves a lenient open, and a lenient load that
/// skipped nothing serves a strict one: both loads give the same store then.
fn stale(then: &Fingerprint, skipped: usize, now: &Fingerprint) -> Option<String> {
    if then.lenient != now.lenient && skipped > 0 {
        return Some(format!(
            "made by a lenient load that skipped {skipped} rows; this load is strict"
        ));
    }
    for f in &now.files {
        match then.files.iter().find(|g| g.path == f.path) {
            None => return Some(format!("{} is new", f.path)),
            Some(g) if g != f => return Some(format!("{} changed", f.path)),
            Some(_) => {}
        }
    }
    if let Some(g) = then
        .files
        .iter()
        .find(|g| !now.files.iter().any(|f| f.path == g.path))
    {
        return Some(format!("{} is gone", g.path));
    }
    (then.files != now.files).then(|| "the input files are read in another order".into())
}

/// When [`TelemetryStore::open`] uses and writes a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Use the snapshot when it is fresh; otherwise load the CSV files and write one when a
    /// snapshot was there (stale, corrupt, another version) or the input files hold at least
    /// [`AUTO_SNAPSHOT_BYTES`].
    #[default]
    Auto,
    /// Load the CSV files and write a snapshot whatever there was.
    Rebuild,
    /// Load the CSV files; neither read nor write a snapshot.
    Off,
}

/// Input size from which [`SnapshotMode::Auto`] writes a snapshot of a data set that had
/// none: below it a CSV load takes well under a second, and a data set directory is left as
/// it was.
pub const AUTO_SNAPSHOT_BYTES: u64 = 64 << 20;

/// How [`TelemetryStore::open`] got the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opened {
    /// The snapshot the store was opened from; `None` when the CSV files were loaded.
    pub from_snapshot: Option<PathBuf>,
    /// The snapshot written after a CSV load.
    pub wrote: Option<PathBuf>,
    /// What happened to a snapshot that was not used or not written, one line each.
    pub notes: Vec<String>,
}

impl TelemetryStore {
    /// Opens a data set directory: from its snapshot when that is fresh (see the module
    /// documentation), else by [`TelemetryStore::load`], writing or rebuilding the snapshot as
    /// `mode` says. A snapshot that cannot be written (a read-only directory) is a note, not
    /// an error; the load's own errors are errors.
    pub fn open(
        dir: &Path,
        opts: &LoadOptions,
        mode: SnapshotMode,
    ) -> Result<(Self, LoadReport, Opened)> {
        let mut opened = Opened::default();
        if mode == SnapshotMode::Off {
            let (store, report) = Self::load(dir, opts)?;
            return Ok((store, report, opened));
        }
        let path = snapshot_path(dir);
        let now = if dir.is_dir() {
            fingerprint(dir, opts)?
        } else {
            // Let the load say what is wrong with the directory.
            return Self::load(dir, opts).map(|(s, r)| (s, r, opened));
        };
        let existed = path.is_file();
        if existed && mode == SnapshotMode::Auto {
            match Self::open_snapshot(&path) {
                Ok((store, meta)) => {
                    match stale(&meta.fingerprint, meta.report.skipped_rows, &now) {
                        None => {
                            opened.from_snapshot = Some(path);
                            return Ok((store, meta.report, opened));
                        }
                        Some(why) => opened.notes.push(format!(
                            "{}: stale ({why}); loading the CSV files",
                            path.display()
                        )),
                    }
                }
                Err(e) => opened
                    .notes
                    .push(format!("{e}; not used, loading the CSV files")),
            }
        }
        let (store, report) = Self::load(dir, opts)?;
        let big = now.files.iter().map(|f| f.len).sum::<u64>() >= AUTO_SNAPSHOT_BYTES;
        if mode == SnapshotMode::Rebuild || existed || big {
            // Files that changed during the load would make a snapshot of neither version.
            match fingerprint(dir, opts) {
                Ok(after) if after == now => match store.write_snapshot(&path, &now, &report) {
                    Ok(()) => opened.wrote = Some(path),
                    Err(e) => opened.notes.push(format!("snapshot not written: {e}")),
                },
                Ok(_) => opened
                    .notes
                    .push("the data set changed during the load; snapshot not written".into()),
                Err(e) => opened.notes.push(format!("snapshot not written: {e}")),
            }
        }
        Ok((store, report, opened))
    }
}
