//! Classic failure-localization methods as [`Diagnoser`]s, side by side with the ThinkFL actor
//! (DESIGN.md section 8): span-tree descent, MicroRank, TraceRCA, N-sigma, BARO, MicroRCA-style
//! personalized PageRank, and a seeded random floor. Each module is headed by its reference.
//!
//! Every method sees the same case window and query and never the ground truth. Trace-based
//! methods share the robust normal durations of [`common::Context`] (built once per store) and
//! every method turns its component scores into node, service and pod items with the same level
//! rule ([`common::rank_components`]), so that a comparison is about the evidence each uses.

#![warn(missing_docs)]

pub mod baro;
pub mod common;
pub mod descent;
pub mod metric;
pub mod microrank;
pub mod microrca;
pub mod nsigma;
pub mod random;
pub mod tracerca;

pub use common::{CommonConfig, Context, candidates};
pub use random::{
    RandomRanker, expected_recall_at, expected_reciprocal_rank, reciprocal_rank_moments,
};

use std::sync::Arc;
use thinkfl_store::TelemetryStore;
use thinkfl_tools::Diagnoser;

/// Errors of this crate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A setting out of its range.
    #[error("invalid config field `{field}`: {msg}")]
    Config {
        /// The field's name.
        field: &'static str,
        /// What its range is and what it was.
        msg: String,
    },
    /// A method name not in [`METHODS`].
    #[error("unknown method {0:?} (known: {known})", known = METHODS.join(", "))]
    UnknownMethod(String),
}

/// Every method by name, in the order reports list them.
pub const METHODS: [&str; 7] = [
    "descent",
    "microrank",
    "tracerca",
    "nsigma",
    "baro",
    "microrca",
    "random",
];

/// Builds the baselines named in `names` on one store, sharing one [`Context`]; `seed` drives
/// the random method.
pub fn build(
    store: &TelemetryStore,
    names: &[&str],
    common: CommonConfig,
    seed: u64,
) -> Result<Vec<Box<dyn Diagnoser>>, Error> {
    for n in names {
        if !METHODS.contains(n) {
            return Err(Error::UnknownMethod(n.to_string()));
        }
    }
    let ctx = Arc::new(Context::new(store, common)?);
    names
        .iter()
        .map(|&n| -> Result<Box<dyn Diagnoser>, Error> {
            Ok(match n {
                "descent" => Box::new(descent::Descent::new(ctx.clone(), Default::default())?),
                "microrank" => {
                    Box::new(microrank::MicroRank::new(ctx.clone(), Default::default())?)
                }
                "tracerca" => Box::new(tracerca::TraceRca::new(ctx.clone(), Default::default())?),
                "nsigma" => Box::new(nsigma::NSigma::new(ctx.clone(), Default::default())?),
                "baro" => Box::new(baro::baro(ctx.clone(), Default::default())?),
                "microrca" => Box::new(microrca::MicroRca::new(ctx.clone(), Default::default())?),
                "random" => Box::new(RandomRanker::new(ctx.clone(), seed)),
                other => return Err(Error::UnknownMethod(other.to_string())),
            })
        })
        .collect()
}
