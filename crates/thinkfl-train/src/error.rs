//! The one error type of the crate.

use std::path::{Path, PathBuf};

/// A result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Errors of training: files, config, tensors, the model, the actor, checkpoints, data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file read but wrong: a config that does not parse, a checkpoint of another run.
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A setting out of its range.
    #[error("config: {0}")]
    Config(String),
    /// A tensor operation failed.
    #[error("tensor: {0}")]
    Candle(#[from] candle_core::Error),
    /// Loading or running the model failed.
    #[error("model: {0}")]
    Model(#[from] thinkfl_candle::Error),
    /// An episode failed.
    #[error("actor: {0}")]
    Actor(#[from] thinkfl_agent::Error),
    /// A checkpoint or optimizer state that does not fit the run it is resumed into.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Training data that cannot train: too few fault cases, no sequences.
    #[error("training data: {0}")]
    Data(String),
    /// No training case of a data set has an anomalous trace to ask about. Apart from the
    /// others: a corpus skips such a data set (a sparse excerpt, weak faults), a run on that
    /// data set alone cannot train.
    #[error("training data: no anomalous-trace queries in the training cases")]
    NoQueries,
    /// A batch or sequence whose parts disagree, or that trains no token.
    #[error("batch: {0}")]
    Batch(String),
    /// Writing JSON (logs, checkpoint state, adapter config).
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A caller's per-step hook failed (a log write, the watch, a progress display).
    #[error("{0}")]
    Hook(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    /// A caller's hook error, its source kept.
    pub fn hook(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Hook(e.into())
    }
    /// A file that was read but is wrong (`msg` says how).
    pub fn file(path: &Path, msg: impl Into<String>) -> Self {
        Error::File {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}
