//! What a tool call runs against: the store, the settings, and lazily computed baselines.

use crate::baseline::Baselines;
use crate::descent::DescentRule;
use crate::nsigma::NSigmaConfig;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use thinkfl_store::TelemetryStore;

/// How tool results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OutputMode {
    /// Row for row what the paper's tool server returns (what released ThinkFL models saw).
    #[default]
    Plain,
    /// Compact rows, durations in ms beside the normal duration of the operation, slowest first.
    Enriched,
}

impl OutputMode {
    /// The lowercase name used on the command line and in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputMode::Plain => "plain",
            OutputMode::Enriched => "enriched",
        }
    }
}

impl fmt::Display for OutputMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutputMode {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "plain" => Ok(OutputMode::Plain),
            "enriched" => Ok(OutputMode::Enriched),
            _ => Err(crate::Error::UnknownMode(s.to_string())),
        }
    }
}

/// Settings of the tools.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolsConfig {
    /// How results are written.
    pub mode: OutputMode,
    /// Most rows in one result; the rest is summarized as "... N more rows".
    pub max_rows: usize,
    /// Hard cap on the bytes of one result, a last guard against pathological data (very long
    /// operation names or log lines).
    pub max_output_bytes: usize,
    /// The n-sigma rule of `search_fluctuating_metrics`.
    pub nsigma: NSigmaConfig,
    /// Half width (s) of the window `search_logs` looks at.
    pub log_window_s: i64,
    /// Longest log example printed, in characters.
    pub max_log_example_chars: usize,
    /// Which child span the enriched `search_traces` names as carrying its parent's delay.
    pub descent: DescentRule,
}

impl ToolsConfig {
    /// Default [`ToolsConfig::max_rows`].
    pub const DEFAULT_MAX_ROWS: usize = 100;
    /// Default [`ToolsConfig::max_output_bytes`]: 64 KiB.
    pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 * 1024;
    /// Default [`ToolsConfig::log_window_s`]: ten minutes either side.
    pub const DEFAULT_LOG_WINDOW_S: i64 = 600;
    /// Default [`ToolsConfig::max_log_example_chars`].
    pub const DEFAULT_MAX_LOG_EXAMPLE_CHARS: usize = 200;

    /// Checks every field's range (and the n-sigma settings); the error names the field.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |field: &'static str, msg: String| Err(crate::Error::Config { field, msg });
        if self.max_rows == 0 {
            return bad("max_rows", "must be at least 1".into());
        }
        if self.max_output_bytes < 256 {
            return bad(
                "max_output_bytes",
                format!("must be at least 256, got {}", self.max_output_bytes),
            );
        }
        if self.log_window_s <= 0 {
            return bad(
                "log_window_s",
                format!("must be > 0, got {}", self.log_window_s),
            );
        }
        if self.max_log_example_chars == 0 {
            return bad("max_log_example_chars", "must be at least 1".into());
        }
        self.descent.validate()?;
        self.nsigma.validate()
    }
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            mode: OutputMode::Plain,
            max_rows: Self::DEFAULT_MAX_ROWS,
            max_output_bytes: Self::DEFAULT_MAX_OUTPUT_BYTES,
            nsigma: NSigmaConfig::default(),
            log_window_s: Self::DEFAULT_LOG_WINDOW_S,
            max_log_example_chars: Self::DEFAULT_MAX_LOG_EXAMPLE_CHARS,
            descent: DescentRule::default(),
        }
    }
}

enum BaselineSource<'a> {
    Borrowed(&'a Baselines),
    Shared(&'a OnceLock<Baselines>),
    Lazy(OnceLock<Baselines>),
}

/// The context of tool calls: borrowed, so that a server shares one store across threads and an
/// actor builds one per episode for free.
pub struct ToolEnv<'a> {
    /// The data the tools query.
    pub store: &'a TelemetryStore,
    /// The tools' settings.
    pub config: ToolsConfig,
    baselines: BaselineSource<'a>,
}

impl fmt::Debug for ToolEnv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolEnv")
            .field("spans", &self.store.span_count())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<'a> ToolEnv<'a> {
    /// Baselines are computed on first use (one pass over the spans) if the enriched mode needs them.
    pub fn new(store: &'a TelemetryStore, config: ToolsConfig) -> Self {
        Self {
            store,
            config,
            baselines: BaselineSource::Lazy(OnceLock::new()),
        }
    }

    /// Reuses baselines computed once for many environments over the same store.
    pub fn with_baselines(
        store: &'a TelemetryStore,
        config: ToolsConfig,
        baselines: &'a Baselines,
    ) -> Self {
        Self {
            store,
            config,
            baselines: BaselineSource::Borrowed(baselines),
        }
    }

    /// Shares baselines computed on first use across environments (a server's requests).
    pub fn with_shared_baselines(
        store: &'a TelemetryStore,
        config: ToolsConfig,
        cell: &'a OnceLock<Baselines>,
    ) -> Self {
        Self {
            store,
            config,
            baselines: BaselineSource::Shared(cell),
        }
    }

    /// The output mode of [`ToolEnv::config`].
    pub fn mode(&self) -> OutputMode {
        self.config.mode
    }

    /// Median duration of every (service, operation), computed on first use (one pass over the
    /// spans) unless the environment was given them.
    pub fn baselines(&self) -> &Baselines {
        match &self.baselines {
            BaselineSource::Borrowed(b) => b,
            BaselineSource::Shared(cell) => cell.get_or_init(|| Baselines::compute(self.store)),
            BaselineSource::Lazy(cell) => cell.get_or_init(|| Baselines::compute(self.store)),
        }
    }
}
