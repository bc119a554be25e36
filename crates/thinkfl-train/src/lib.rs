//! Training of the thinkfl localizer (DESIGN.md section 7; Zhang et al., "ThinkFL",
//! arXiv 2504.18776, section 4.2): LoRA adapters on the project's differentiable llama forward,
//! supervised priming on rejection-sampled expert trajectories, and progressive GRPO whose
//! rewards come from `thinkfl-grader`.
//!
//! * [`lora`]: adapters and the [`lora::Policy`] (reference = adapters off);
//! * [`loss`]: token log-probs, SFT and GRPO losses;
//! * [`optim`]: AdamW with checkpointable state;
//! * [`checkpoint`]: atomic checkpoints and resume;
//! * [`peft`]: PEFT export/import and merged weights;
//! * [`watch`]: how often the policy makes the teacher's decisions, on training and held-out
//!   questions, while it trains;
//! * [`config`]: the stages file; [`trainer`]: the loops; [`log`]: the JSON-lines log and its report.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod free;
pub mod log;
pub mod lora;
pub mod loss;
pub mod optim;
pub mod peft;
pub mod run;
pub mod trainer;
pub mod watch;

pub use error::{Error, Result};
pub use lora::{LoraConfig, Policy};
