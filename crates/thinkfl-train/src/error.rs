//! The one error type of the crate.

use std::path::{Path, PathBuf};

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("config: {0}")]
    Config(String),
    #[error("tensor: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("model: {0}")]
    Model(#[from] thinkfl_candle::Error),
    #[error("actor: {0}")]
    Actor(#[from] thinkfl_agent::Error),
    /// A checkpoint or optimizer state that does not fit the run it is resumed into.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Training data that cannot train: too few fault cases, no queries, no sequences.
    #[error("training data: {0}")]
    Data(String),
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
    pub fn file(path: &Path, msg: impl Into<String>) -> Self {
        Error::File {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}
