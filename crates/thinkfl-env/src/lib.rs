//! The reinforcement-learning environment of thinkfl as a service (DESIGN.md section 9): what
//! only thinkfl has (the diagnostic tools over a telemetry store, the Recursion-of-Thought
//! episode protocol and the multi-factor grader) for the RL engines users already run
//! (OpenRLHF, TRL, verl), which generate on their GPUs and call us over loopback HTTP.
//!
//! - [`EnvService`] holds the loaded data sets and the episodes in flight: create an episode for
//!   a fault case and query, step it with the model's raw text (the same
//!   [`thinkfl_agent::Episode`] the local actor plays: parse the call, run the tool, answer with
//!   the observation, `done` on the final `print_results` or `d_max`), and grade it with a stage
//!   reward of the curriculum or the MRR-only control ([`thinkfl_grader::Reward`]), stage 2
//!   against a diversity cache per training run. Abandoned episodes expire after a TTL.
//! - [`http`] puts it on axum with the tool server's limits (loopback, bounded bodies, timeouts,
//!   JSON errors), plus OpenRLHF's remote reward contract `POST /get_reward`.
//! - [`export`] writes the training and held-out cases as the engines' inputs (OpenRLHF JSONL,
//!   a TRL dataset, verl parquet) with the very prompts an episode starts from.
//! - [`replay`] replays an episode's assistant texts through the in-process actor and grades it:
//!   the reference the served rewards are checked against.
//!
//! It is its own crate beside `thinkfl-server` because it needs the actor and the grader, which
//! the tool server (whose clients are the paper's scripts) has no use for; it reuses the tool
//! server's data set loading and accept loop.

#![warn(missing_docs)]

pub mod bench;
pub mod data;
pub mod export;
pub mod http;
mod parquet_out;
pub mod replay;
pub mod service;

pub use data::EnvDataset;
pub use service::{EnvConfig, EnvService, Label};

/// Errors of the environment. Requests map them to HTTP statuses ([`Error::http_status`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting or a request field out of range; names the field.
    #[error("{field}: {msg}")]
    Invalid {
        /// The field, as the request or the config names it.
        field: &'static str,
        /// What is wrong with it.
        msg: String,
    },
    /// An episode id that is not (or no longer) known.
    #[error("no episode {0:?} (finished episodes expire after the TTL; abandoned ones too)")]
    UnknownEpisode(String),
    /// A data set id that is not loaded.
    #[error("unknown dataset {id:?}; loaded: {loaded}")]
    UnknownDataset {
        /// The id asked for.
        id: String,
        /// The ids loaded, comma separated.
        loaded: String,
    },
    /// The episode table is full.
    #[error("too many episodes in flight ({0}); finish or delete some, or raise --max-episodes")]
    Full(usize),
    /// A step on an episode that has ended.
    #[error("episode {0} is over; grade it or delete it")]
    Over(String),
    /// Loading a data set or a server setting failed.
    #[error(transparent)]
    Server(#[from] thinkfl_server::Error),
    /// The actor refused its settings or a query.
    #[error(transparent)]
    Agent(#[from] thinkfl_agent::Error),
    /// Writing an export.
    #[error("{path}: {msg}")]
    Write {
        /// The file.
        path: String,
        /// What failed.
        msg: String,
    },
}

impl Error {
    pub(crate) fn invalid(field: &'static str, msg: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            msg: msg.into(),
        }
    }

    pub(crate) fn write(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Error::Write {
            path: path.display().to_string(),
            msg: e.to_string(),
        }
    }

    /// The HTTP status a request that failed with this error gets.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Invalid { .. } | Error::Agent(_) => 422,
            Error::UnknownEpisode(_) | Error::UnknownDataset { .. } => 404,
            Error::Full(_) => 503,
            Error::Over(_) => 409,
            Error::Server(_) | Error::Write { .. } => 500,
        }
    }
}
