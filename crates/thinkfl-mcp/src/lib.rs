//! thinkfl as a Model Context Protocol server, on the official Rust SDK (`rmcp`): the assistants
//! on-call engineers already use (Claude Desktop, Claude Code, Cursor, VS Code, any MCP client)
//! get the diagnostic tools, the incident finder and the localizer of one data set.
//!
//! - Tools: `search_traces`, `search_fluctuating_metrics`, `search_logs` and
//!   `search_anomalous_components` (the tool server's typed tools, enriched and bounded: their
//!   input schemas are generated from the same argument types), `list_incidents` and `inspect`
//!   (typed tools of this crate), and `localize` (the RoT actor with the default local model or
//!   the scripted expert, with progress notifications and cancellation).
//! - Resources: `thinkfl://dataset` (what the data set holds) and `thinkfl://incidents/{case}`
//!   (one fault case's window, anomalous traces and label).
//! - Prompt: `investigate_incident` (how to work a case with these tools).
//!
//! Every failure of a call (bad arguments, unknown span or component, bad timestamp, a timeout, a
//! cancelled or failed episode) is an MCP tool error (`isError: true`) with the text the tool
//! server would give; only an unknown tool name is a protocol error, as the MCP specification
//! says. Transports: stdio ([`serve_stdio`]) and streamable HTTP on a loopback address
//! ([`serve_http`]), with the tool server's connection limits.

#![warn(missing_docs)]

mod data_tools;
mod localize;
mod server;
mod transport;

pub use data_tools::{Inspect, InspectArgs, ListIncidents, ListIncidentsArgs, incident_report};
pub use localize::{LocalizeArgs, LocalizeModel};
pub use server::{ModelLoader, ThinkflMcp};
pub use transport::{serve_http, serve_stdio};

use std::time::Duration;
use thinkfl_tools::{AnomalyConfig, OutputMode, ToolsConfig};

/// Errors of setting the server up or of a transport (calls answer with MCP tool errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting out of range (or a listener on a non-loopback address).
    #[error("invalid MCP server config `{field}`: {msg}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        msg: String,
    },
    /// The tools' settings.
    #[error(transparent)]
    Tools(#[from] thinkfl_tools::Error),
    /// The HTTP limits, or the accept loop.
    #[error(transparent)]
    Server(#[from] thinkfl_server::Error),
    /// A tool argument the data cannot answer for (a fault case it does not have).
    #[error("{0}")]
    NotFound(String),
    /// A tool argument out of its range.
    #[error("`{field}` {msg}")]
    Argument {
        /// The argument.
        field: &'static str,
        /// Its range and the value given.
        msg: String,
    },
    /// The MCP session could not start or ended with an error.
    #[error("MCP transport: {0}")]
    Transport(String),
    /// Binding or reading the listener.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Settings of the MCP server.
#[derive(Debug, Clone, PartialEq)]
pub struct McpConfig {
    /// Tool settings; enriched output by default (millisecond rows beside the normal duration,
    /// slowest first), which is what an assistant reads best.
    pub tools: ToolsConfig,
    /// How fault cases become anomalous traces (`list_incidents`, `localize` on a case).
    pub anomaly: AnomalyConfig,
    /// Longest a diagnostic tool call may take before it answers with a timeout error.
    pub tool_timeout: Duration,
    /// Longest a `localize` call may take, waiting for the model included.
    pub localize_timeout: Duration,
    /// Connection and request limits of the HTTP transport (the request timeout is not applied
    /// to MCP streams, which stay open while a `localize` runs; the two timeouts above bound
    /// the calls instead).
    pub limits: thinkfl_server::ServeLimits,
}

impl McpConfig {
    /// Default of `tool_timeout`: the tools answer in milliseconds; 30 s only stops a
    /// pathological call.
    pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default of `localize_timeout`: loading the model and ten turns on two cores take under a
    /// minute; ten leave room for a busy machine.
    pub const DEFAULT_LOCALIZE_TIMEOUT: Duration = Duration::from_secs(600);

    /// Checks every setting, naming the first one out of range.
    pub fn validate(&self) -> Result<(), Error> {
        self.tools.validate()?;
        self.anomaly.validate()?;
        self.limits.validate()?;
        if self.tool_timeout.is_zero() {
            return Err(Error::Config {
                field: "tool_timeout",
                msg: "must be > 0".into(),
            });
        }
        if self.localize_timeout.is_zero() {
            return Err(Error::Config {
                field: "localize_timeout",
                msg: "must be > 0".into(),
            });
        }
        Ok(())
    }
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            tools: ToolsConfig {
                mode: OutputMode::Enriched,
                ..ToolsConfig::default()
            },
            anomaly: AnomalyConfig::default(),
            tool_timeout: Self::DEFAULT_TOOL_TIMEOUT,
            localize_timeout: Self::DEFAULT_LOCALIZE_TIMEOUT,
            limits: thinkfl_server::ServeLimits::default(),
        }
    }
}
