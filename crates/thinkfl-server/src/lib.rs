//! HTTP servers of thinkfl (DESIGN.md sections 5.1 and 9). For now the tool server: the paper's
//! GET endpoints (`/search_traces`, `/search_fluctuating_metrics`, `/search_logs`,
//! `/check_trace`, data sets selected by `cloudbed_id`, as LLM4AIOps/ThinkFL's
//! `tool_server_all.py` serves them) so that its released clients run against ours, plus
//! `GET /v1/tools` (OpenAI function schemas) and `POST /v1/tools/call`.
//!
//! Robustness: loopback by default, request bodies bounded, header-read and request timeouts, a
//! cap on open connections, every bad request a 4xx with a JSON body `{"error": ...}`, and tool
//! calls guarded so that a panic becomes a 500 instead of a dead worker.

#![warn(missing_docs)]

pub mod loadgen;
pub mod serve;
pub mod tool_server;

pub use serve::{ServeLimits, run_blocking, serve, serve_blocking};
pub use tool_server::{LoadedDataset, ToolServer, ToolServerConfig};

/// Errors of setting a server up (requests answer with HTTP errors instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A server without a data set to answer for.
    #[error("no data set given")]
    NoDatasets,
    /// Two data sets with one id: requests could not tell them apart.
    #[error("two data sets are both named {0:?} (the id is the directory name); rename one")]
    DuplicateId(String),
    /// A data set that does not load.
    #[error("loading {path}: {source}")]
    Load {
        /// Its directory.
        path: String,
        /// What the store said.
        #[source]
        source: thinkfl_store::Error,
    },
    /// Tool settings out of range.
    #[error(transparent)]
    Config(#[from] thinkfl_tools::Error),
    /// A serving limit out of range.
    #[error("invalid server config `{field}`: {msg}")]
    Limits {
        /// The limit, as [`ServeLimits`] names it.
        field: &'static str,
        /// What is wrong with it.
        msg: String,
    },
}
