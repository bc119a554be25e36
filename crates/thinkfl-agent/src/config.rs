//! Settings of the actor.

use crate::constrain::Constrain;
use crate::prompts::PromptSet;
use thinkfl_tools::{OutputMode, ToolsConfig};

/// Settings of one RoT episode.
#[derive(Debug, Clone, PartialEq)]
pub struct ActorConfig {
    /// Most tool calls in an episode (`D_max` of the paper) before the forced final print.
    pub d_max: usize,
    /// Most tool calls executed from one assistant turn; the rest are answered with an error.
    pub max_calls_per_turn: usize,
    /// Which prompts the model sees.
    pub prompt_set: PromptSet,
    /// How tool results are written: `Plain` is what released ThinkFL checkpoints saw,
    /// `Enriched` helps small models (normal durations beside observed ones).
    pub tool_mode: OutputMode,
    /// Most rows in one tool result; small models need short contexts.
    pub max_rows: usize,
    /// Hard cap on the bytes of one tool result.
    pub max_tool_output_bytes: usize,
    /// Sampling temperature; 0 is greedy.
    pub temperature: f32,
    /// Nucleus sampling: the smallest set of tokens whose probability reaches `top_p`; 1 keeps
    /// every token.
    pub top_p: f32,
    /// Most tokens of one assistant turn.
    pub max_tokens_per_turn: usize,
    /// Send tool schemas in the request's `tools` field (servers with native tool calling)
    /// instead of in the system prompt.
    pub native_tools: bool,
    /// Seed of the sampler; episode `i` of a batch uses `seed + i`.
    pub seed: u64,
    /// Which turns are decoded under a grammar of the admissible calls (backends that support
    /// it: the local models). See [`crate::constrain`].
    pub constrain: Constrain,
}

impl ActorConfig {
    /// The tool settings an episode runs with (output mode and size limits from this config):
    /// one definition for the actor and for anything that serves its episodes elsewhere.
    pub fn tools_config(&self) -> ToolsConfig {
        ToolsConfig {
            mode: self.tool_mode,
            max_rows: self.max_rows,
            max_output_bytes: self.max_tool_output_bytes,
            ..ToolsConfig::default()
        }
    }

    /// Default [`ActorConfig::d_max`]: the paper's ten tool calls.
    pub const DEFAULT_D_MAX: usize = 10;
    /// Default [`ActorConfig::max_calls_per_turn`].
    pub const DEFAULT_MAX_CALLS_PER_TURN: usize = 3;
    // Small on purpose: the default model is a 135M one on a CPU, where every prompt token costs
    // prefill time and long contexts blur its attention; the same values shape its training
    // episodes (configs/stages.toml). 160 tokens fit a three-item print_results.
    /// Default [`ActorConfig::max_rows`].
    pub const DEFAULT_MAX_ROWS: usize = 4;
    /// Default [`ActorConfig::max_tool_output_bytes`].
    pub const DEFAULT_MAX_TOOL_OUTPUT_BYTES: usize = 640;
    /// Default [`ActorConfig::max_tokens_per_turn`].
    pub const DEFAULT_MAX_TOKENS_PER_TURN: usize = 160;

    /// Settings for the released ThinkFL checkpoints: their prompts and plain tool output.
    pub fn thinkfl_compatible() -> Self {
        Self {
            prompt_set: PromptSet::ThinkFl,
            tool_mode: OutputMode::Plain,
            max_rows: 100,
            max_tool_output_bytes: 16 * 1024,
            max_tokens_per_turn: 512,
            ..Self::default()
        }
    }

    /// Checks every field's range; the error names the field.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |field: &'static str, msg: &str| {
            Err(crate::Error::Config {
                field,
                msg: msg.to_string(),
            })
        };
        if self.d_max == 0 {
            return bad("d_max", "must be at least 1");
        }
        if self.max_calls_per_turn == 0 {
            return bad("max_calls_per_turn", "must be at least 1");
        }
        if self.max_rows == 0 {
            return bad("max_rows", "must be at least 1");
        }
        if self.max_tool_output_bytes < 256 {
            return bad("max_tool_output_bytes", "must be at least 256");
        }
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature", "must be a finite number >= 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", "must be in (0, 1]");
        }
        if self.max_tokens_per_turn == 0 {
            return bad("max_tokens_per_turn", "must be at least 1");
        }
        Ok(())
    }
}

impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            d_max: Self::DEFAULT_D_MAX,
            max_calls_per_turn: Self::DEFAULT_MAX_CALLS_PER_TURN,
            prompt_set: PromptSet::Ours,
            tool_mode: OutputMode::Enriched,
            max_rows: Self::DEFAULT_MAX_ROWS,
            max_tool_output_bytes: Self::DEFAULT_MAX_TOOL_OUTPUT_BYTES,
            temperature: 0.0,
            top_p: 1.0,
            max_tokens_per_turn: Self::DEFAULT_MAX_TOKENS_PER_TURN,
            native_tools: false,
            seed: 0,
            constrain: Constrain::default(),
        }
    }
}
