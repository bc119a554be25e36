//! The benchmarks of thinkfl, out of the library crates they measure: the store's load
//! ([`store`]), the tools in process and the tool server on loopback ([`tools`]), the model's
//! prefill and decode ([`model`]), grammar-constrained rollouts ([`rollouts`]), one LoRA
//! training step ([`train`]) and the simulator ([`sim`]), with one reader of the process
//! figures `/proc` gives ([`proc`]). Their figures are printed, never asserted.
//!
//! The HTTP load client that [`tools`] drives stays in `thinkfl-server`
//! (`thinkfl_server::loadgen`): the server's own tests send their malformed and concurrent
//! requests with it, and a test client of a crate belongs to that crate.

#![warn(missing_docs)]

pub mod model;
pub mod proc;
pub mod rollouts;
pub mod sim;
pub mod store;
pub mod tools;
pub mod train;

use std::path::PathBuf;

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Sizes or settings a run cannot use.
    #[error("bench options: {0}")]
    Options(String),
    /// Reading or writing a file of the run.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A run whose own data did not come out as generated (a bug of the generator or the
    /// reader, not of the machine).
    #[error("bench data: {0}")]
    Data(String),
    /// Loading the store.
    #[error(transparent)]
    Store(#[from] thinkfl_store::Error),
    /// The model.
    #[error(transparent)]
    Model(#[from] thinkfl_candle::Error),
    /// A tensor operation of the benchmark itself.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// The simulator.
    #[error(transparent)]
    Sim(#[from] thinkfl_sim::Error),
    /// The speed peer (llama.cpp's `llama-bench`) failed or printed what cannot be read.
    #[error("{}: {message}", exe.display())]
    Peer {
        /// The peer's executable.
        exe: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The tool server or its load client failed.
    #[error("tool server: {0}")]
    Server(#[source] std::io::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// What the benchmarks return.
pub type Result<T> = std::result::Result<T, Error>;
