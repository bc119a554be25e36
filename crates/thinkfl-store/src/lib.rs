//! The telemetry store of thinkfl (DESIGN.md section 4): readers of the AIOps Challenge 2022
//! layout (raw and the preprocessed variant of the paper's repositories), of OTLP JSON and
//! Jaeger JSON trace exports, a writer of the AIOps 2022 layout, and [`TelemetryStore`], the
//! columnar, interned, indexed, immutable store every tool queries.

#![warn(missing_docs)]

pub mod aiops;
mod chunks;
mod col;
mod csvio;
mod fastspans;
pub mod jaeger;
mod json;
pub mod otlp;
mod sink;
pub mod snapshot;
pub mod spantable;
mod store;
mod strings;
pub mod summary;
pub mod topology;

pub use aiops::{AiopsWriter, read_aiops, write_aiops};
pub use jaeger::read_jaeger_json;
pub use otlp::read_otlp_json;
pub use spantable::{read_spans_parquet, write_spans_parquet};
pub use store::{LogRef, SeriesRef, SpanFields, SpanIdx, SpanRef, StoreBuilder, TelemetryStore};

use std::path::{Path, PathBuf};

/// Errors of reading and writing telemetry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A malformed row or value: names the file, the line (1-based, the header is line 1) and
    /// the column.
    #[error("{}:{line}: column {column}: {message}", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// The line, 1-based; the header is line 1.
        line: u64,
        /// The column: its 1-based number and, where known, its header name.
        column: String,
        /// What is wrong with the value.
        message: String,
    },
    /// A bad row of a table file that has no lines (Parquet): names the file, the row (1-based,
    /// counted from the file's first row) and the column.
    #[error("{}: row {row}: column {column}: {message}", file.display())]
    Row {
        /// The file.
        file: PathBuf,
        /// The row, 1-based.
        row: u64,
        /// The column's name.
        column: String,
        /// What is wrong with the value.
        message: String,
    },
    /// A snapshot that cannot be used: another format version, a changed or truncated file.
    #[error("{}: {message}", path.display())]
    Snapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A data set that is not of the expected shape (missing files or header columns).
    #[error("{}: {message}", path.display())]
    Format {
        /// The data set's directory or file.
        path: PathBuf,
        /// What is missing or wrong.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn format(path: &Path, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// A result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Options of every reader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Skip malformed rows (counting them in [`LoadReport::skipped_rows`]) instead of failing on
    /// the first one.
    pub lenient: bool,
}

impl LoadOptions {
    /// Options of a lenient load.
    pub fn lenient() -> Self {
        Self { lenient: true }
    }
}

/// What a load skipped (lenient) or noticed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoadReport {
    /// Rows skipped because they were malformed (lenient loads only).
    pub skipped_rows: usize,
    /// One line per skipped row (the first [`LoadReport::MAX_WARNINGS`]) and per notable fact.
    pub warnings: Vec<String>,
}

impl LoadReport {
    /// Warnings kept verbatim; later skipped rows are only counted.
    pub const MAX_WARNINGS: usize = 50;

    pub(crate) fn skip(&mut self, e: &Error) {
        self.skipped_rows += 1;
        if self.warnings.len() < Self::MAX_WARNINGS {
            self.warnings.push(format!("skipped: {e}"));
        }
    }

    pub(crate) fn merge(&mut self, other: LoadReport) {
        self.skipped_rows += other.skipped_rows;
        for w in other.warnings {
            if self.warnings.len() < Self::MAX_WARNINGS {
                self.warnings.push(w);
            }
        }
    }
}

impl TelemetryStore {
    /// Reads an AIOps 2022 layout directory ([`read_aiops`]) and builds the store, without
    /// materializing one `String` per field.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<(Self, LoadReport)> {
        let mut b = StoreBuilder::new();
        let report = aiops::read_aiops_into(dir, opts, &mut b)?;
        Ok((b.finish(), report))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::TelemetryStore>();
    }
}
