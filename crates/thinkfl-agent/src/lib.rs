//! The Recursion-of-Thought (RoT) actor of ThinkFL (Zhang et al., "ThinkFL: Self-Refining Failure
//! Localization for Microservice Systems via Reinforcement Fine-Tuning", arXiv 2504.18776,
//! section 4.1) and a scripted expert that plays the same protocol without a language model.
//!
//! An episode starts from the entry span of an anomalous trace and runs three phases, as the
//! paper's coordinator does: initial think (descend the trace tree until a first answer), rethink
//! ("inspect deeper" with traces, metrics and logs until a second answer) and final review (print
//! the ranked root causes). At most `d_max` assistant turns are spent before a forced final print.
//! Nothing a model writes can crash an episode: unparseable calls, unknown tools and bad
//! arguments come back to it as error text and are recorded in the trajectory for the grader.

#![warn(missing_docs)]

pub mod actor;
pub mod config;
pub mod constrain;
pub mod episode;
pub mod expert;
pub mod prompts;
pub mod report;

pub use actor::{Actor, Recorded, question_span};
pub use config::ActorConfig;
pub use constrain::Constrain;
pub use episode::Episode;
pub use expert::ExpertPolicy;
pub use prompts::{Phase, PromptSet, QuestionSpan};
pub use report::summary;

/// Errors of the actor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting out of its range.
    #[error("invalid actor config: {field}: {msg}")]
    Config {
        /// The field's name.
        field: &'static str,
        /// What its range is and what it was.
        msg: String,
    },
    /// A question the data cannot answer (its span is not in the store).
    #[error("query: {0}")]
    Query(String),
    /// The model failed; its error as text.
    #[error("model: {0}")]
    Model(String),
}

impl From<thinkfl_llm::Error> for Error {
    fn from(e: thinkfl_llm::Error) -> Self {
        Error::Model(e.to_string())
    }
}

/// Writes trajectories as JSON lines.
pub fn write_trajectories<'a, W: std::io::Write>(
    mut w: W,
    trajs: impl IntoIterator<Item = &'a thinkfl_core::Trajectory>,
) -> std::io::Result<()> {
    for t in trajs {
        serde_json::to_writer(&mut w, t)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}
