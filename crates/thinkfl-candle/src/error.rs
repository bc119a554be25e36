//! The one error type of `thinkfl-candle`.

use std::path::PathBuf;

/// Errors of loading, running and training a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A model file or directory that cannot be read as a model (missing files or tensors,
    /// wrong dtypes).
    #[error("{path}: {message}")]
    Model {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tokenizer that does not load, or text it cannot encode or decode.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A chat template that does not compile or render.
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
    Request {
        /// Index of the request in the batch.
        request: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Sampling parameters of a request that no sampler can follow.
    #[error("request {request}: {source}")]
    Params {
        /// Index of the request in the batch.
        request: usize,
        /// The parameters' error.
        #[source]
        source: thinkfl_llm::Error,
    },
    /// A request's grammar that does not compile.
    #[error("grammar of request {request}: {source}")]
    Grammar {
        /// Index of the request in the batch.
        request: usize,
        /// The compiler's error.
        #[source]
        source: thinkfl_llm::grammar::GrammarError,
    },
    /// A configuration that cannot be written as JSON.
    #[error("serializing: {0}")]
    Serialize(#[from] serde_json::Error),
    /// A model that could not be found or downloaded.
    #[error("fetching model: {0}")]
    Fetch(String),
    /// A PEFT adapter directory that cannot be read or does not fit the model.
    #[error("adapter {path}: {message}")]
    Adapter {
        /// The adapter directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// A result with this crate's [`Error`].
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

impl From<crate::kernels::Error> for Error {
    fn from(e: crate::kernels::Error) -> Self {
        match e {
            crate::kernels::Error::Shape(m) => Error::Shape(m),
            crate::kernels::Error::Unsupported(m) => Error::Unsupported(m),
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
