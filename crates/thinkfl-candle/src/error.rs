//! The one error type of `thinkfl-candle`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    /// A model configuration (config.json, GGUF metadata) the model cannot be built from.
    #[error("model config: {0}")]
    Config(String),
    /// Options of loading, generation or a benchmark that cannot work together.
    #[error("options: {0}")]
    Options(String),
    /// Tensors, weights or caches whose shapes do not fit together.
    #[error("shape: {0}")]
    Shape(String),
    /// A path this model, device or CPU does not offer (a kernel the CPU lacks, training
    /// without f32 weights).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A generation request the engine cannot serve (`request` is its index in the batch).
    #[error("request {request}: {message}")]
    Request { request: usize, message: String },
    /// Sampling parameters of a request that no sampler can follow.
    #[error("request {request}: {source}")]
    Params {
        request: usize,
        #[source]
        source: thinkfl_llm::Error,
    },
    /// A request's grammar that does not compile.
    #[error("grammar of request {request}: {source}")]
    Grammar {
        request: usize,
        #[source]
        source: thinkfl_llm::grammar::GrammarError,
    },
    /// A configuration that cannot be written as JSON.
    #[error("serializing: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("fetching model: {0}")]
    Fetch(String),
    /// A PEFT adapter directory that cannot be read or does not fit the model.
    #[error("adapter {path}: {message}")]
    Adapter { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Model {
            path: path.into(),
            message: message.into(),
        }
    }
    pub(crate) fn adapter(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Adapter {
            path: path.into(),
            message: message.into(),
        }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<Error> for thinkfl_llm::Error {
    fn from(e: Error) -> Self {
        match e {
            // The caller's own parameters: say so in the caller's terms.
            Error::Params { source, .. } => source,
            e => thinkfl_llm::Error::backend(e),
        }
    }
}
