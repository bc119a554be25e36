//! The typed [`Tool`] trait, its object-safe form [`DynTool`], the [`ToolRegistry`], and the
//! OpenAI function schemas generated from the argument types (schemars).
//!
//! A model's bad call never panics and never aborts an episode: it becomes a [`ToolError`] whose
//! text tells the model what to fix.

use crate::env::ToolEnv;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;

/// A tool result: the text the model reads, and the components it mentioned (in its arguments
/// and its rows), in order of first appearance: the episode's reasoning path grows from them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolOutput {
    /// The text returned to the model.
    pub text: String,
    /// Components named in the arguments and the rows, in order of first appearance.
    pub touched: Vec<String>,
}

impl ToolOutput {
    /// An output with `text` and no touched components.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            touched: Vec::new(),
        }
    }

    /// Records a component unless empty or already recorded.
    pub fn touch(&mut self, component: &str) {
        if !component.is_empty() && !self.touched.iter().any(|c| c == component) {
            self.touched.push(component.to_string());
        }
    }
}

/// A typed tool error; `not_found` marks errors about things absent from the data (HTTP 404)
/// rather than malformed requests (HTTP 400).
pub trait ToolFailure: std::error::Error {
    /// Whether the error is about something absent from the data; `false` unless overridden.
    fn not_found(&self) -> bool {
        false
    }
}

/// A diagnostic tool with typed arguments.
pub trait Tool: Send + Sync + 'static {
    /// Arguments as the model writes them; the schema the model sees is generated from this type
    /// (field doc comments become descriptions).
    type Args: DeserializeOwned + JsonSchema;
    /// What the tool returns on success.
    type Output: Into<ToolOutput>;
    /// What the tool fails with; its `Display` is what the model reads.
    type Error: ToolFailure;
    /// The name calls use (`search_traces`).
    fn name(&self) -> &'static str;
    /// The description in the tool's schema.
    fn description(&self) -> &'static str;
    /// Runs the tool on typed arguments.
    fn call(&self, env: &ToolEnv<'_>, args: Self::Args) -> Result<Self::Output, Self::Error>;
}

/// Why a call failed; `Display` is the text returned to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// A call of a tool the registry does not have.
    UnknownTool {
        /// The name called.
        name: String,
        /// The registry's tool names.
        known: Vec<String>,
    },
    /// Arguments that are not JSON or do not match the tool's schema.
    BadArguments {
        /// The tool called.
        tool: String,
        /// What was wrong (serde's message).
        message: String,
        /// A one-line reminder of the arguments: `{"a": string, "b"?: integer}`.
        expected: String,
    },
    /// Well-formed arguments that name something absent from the data.
    NotFound {
        /// The tool called.
        tool: String,
        /// The tool's message.
        message: String,
    },
    /// Well-formed arguments the tool refuses for another reason.
    Invalid {
        /// The tool called.
        tool: String,
        /// The tool's message.
        message: String,
    },
}

impl ToolError {
    /// The HTTP status this error maps to: 404 for unknown tools and absent data, 400 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            ToolError::UnknownTool { .. } | ToolError::NotFound { .. } => 404,
            ToolError::BadArguments { .. } | ToolError::Invalid { .. } => 400,
        }
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolError::UnknownTool { name, known } => write!(
                f,
                "Error: unknown tool {name:?}. The tools are: {}.",
                known.join(", ")
            ),
            ToolError::BadArguments {
                tool,
                message,
                expected,
            } => write!(
                f,
                "Error: invalid arguments for {tool}: {message}. Expected arguments: {expected}."
            ),
            ToolError::NotFound { tool, message } | ToolError::Invalid { tool, message } => {
                write!(f, "Error: {tool}: {message}.")
            }
        }
    }
}

impl std::error::Error for ToolError {}

/// Object-safe form of [`Tool`]: JSON arguments in, text out.
pub trait DynTool: Send + Sync {
    /// The tool's name.
    fn name(&self) -> &str;
    /// The tool's description.
    fn description(&self) -> &str;
    /// JSON schema of the arguments.
    fn parameters(&self) -> Value;
    /// `{"type": "function", "function": {"name", "description", "parameters"}}`.
    fn openai_schema(&self) -> Value {
        serde_json::json!({
            "type": "function",
            "function": {
                "name": self.name(),
                "description": self.description(),
                "parameters": self.parameters(),
            }
        })
    }
    /// Calls the tool. `args` may be an object or, as models often write it, a string holding
    /// a JSON object.
    fn call_json(&self, env: &ToolEnv<'_>, args: &Value) -> Result<ToolOutput, ToolError>;
}

/// The JSON schema of `T` as a function's `parameters`: inlined, without `$schema`, `title` or
/// `additionalProperties` (as the paper's schemas; unknown arguments are still rejected).
pub fn parameters_schema<T: JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
        s.meta_schema = None;
        s.inline_subschemas = true;
    });
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut v = schema.to_value();
    strip_schema_noise(&mut v);
    v
}

fn strip_schema_noise(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("$schema");
            m.remove("title");
            m.remove("additionalProperties");
            m.remove("$defs");
            // `Option<String>` fields: the paper's schemas say "string" and give no default.
            if m.get("default") == Some(&Value::Null) {
                m.remove("default");
            }
            if let Some(Value::Array(types)) = m.get("type") {
                let non_null: Vec<&Value> = types
                    .iter()
                    .filter(|t| t.as_str() != Some("null"))
                    .collect();
                if non_null.len() == 1 && types.len() == 2 {
                    let t = non_null[0].clone();
                    m.insert("type".into(), t);
                }
            }
            for (_, x) in m.iter_mut() {
                strip_schema_noise(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_schema_noise),
        _ => {}
    }
}

/// `{"a": string, "b": array}`: a one-line reminder of the arguments, from the schema.
fn expected_shape(schema: &Value) -> String {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return "{}".into();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let fields: Vec<String> = props
        .iter()
        .map(|(k, p)| {
            let ty = shape_of(p);
            let opt = if required.contains(&k.as_str()) {
                ""
            } else {
                "?"
            };
            format!("\"{k}\"{opt}: {ty}")
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// The type of one property as the reminder shows it: its type, or its allowed values
/// (`"default"|"expert"`) for an enum, which schemars writes as `oneOf` consts, under an
/// `anyOf` with null when optional.
fn shape_of(p: &Value) -> String {
    match p.get("type") {
        Some(Value::String(t)) => return t.clone(),
        Some(Value::Array(ts)) => {
            if let Some(t) = ts.iter().filter_map(Value::as_str).find(|t| *t != "null") {
                return t.to_string();
            }
        }
        _ => {}
    }
    let mut consts = Vec::new();
    collect_consts(p, &mut consts);
    if !consts.is_empty() {
        return consts.join("|");
    }
    ["anyOf", "oneOf"]
        .iter()
        .filter_map(|k| p.get(*k).and_then(Value::as_array))
        .flatten()
        .map(shape_of)
        .find(|t| t != "null" && t != "any")
        .unwrap_or_else(|| "any".into())
}

/// The `const` and `enum` values under `p`'s alternatives, as JSON text.
fn collect_consts(p: &Value, out: &mut Vec<String>) {
    if let Some(c) = p.get("const") {
        out.push(c.to_string());
    }
    if let Some(Value::Array(vs)) = p.get("enum") {
        out.extend(vs.iter().filter(|v| !v.is_null()).map(Value::to_string));
    }
    for k in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = p.get(k) {
            alts.iter().for_each(|a| collect_consts(a, out));
        }
    }
}

/// Turns a string-encoded argument object into the object; leaves anything else as is.
fn normalize_arguments(args: &Value) -> Result<std::borrow::Cow<'_, Value>, String> {
    match args {
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Ok(std::borrow::Cow::Owned(Value::Object(Default::default())));
            }
            serde_json::from_str::<Value>(t)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| format!("arguments are a string that is not valid JSON ({e})"))
        }
        Value::Null => Ok(std::borrow::Cow::Owned(Value::Object(Default::default()))),
        other => Ok(std::borrow::Cow::Borrowed(other)),
    }
}

impl<T: Tool> DynTool for T {
    fn name(&self) -> &str {
        Tool::name(self)
    }
    fn description(&self) -> &str {
        Tool::description(self)
    }
    fn parameters(&self) -> Value {
        parameters_schema::<T::Args>()
    }
    fn call_json(&self, env: &ToolEnv<'_>, args: &Value) -> Result<ToolOutput, ToolError> {
        let typed: T::Args = parse_arguments(Tool::name(self), args)?;
        match self.call(env, typed) {
            Ok(out) => {
                let mut out: ToolOutput = out.into();
                bound_bytes(&mut out.text, env.config.max_output_bytes);
                Ok(out)
            }
            Err(e) => {
                let tool = Tool::name(self).to_string();
                let mut message = e.to_string();
                bound_bytes(&mut message, MAX_ERROR_MESSAGE_BYTES);
                Err(if e.not_found() {
                    ToolError::NotFound { tool, message }
                } else {
                    ToolError::Invalid { tool, message }
                })
            }
        }
    }
}

/// Typed arguments of tool `tool` from what a caller sent: an object, or a string holding one (as
/// models often write it); a mismatch is a [`ToolError::BadArguments`] that says what was wrong and
/// what the schema expects. Tools outside the registry (the MCP server's `localize`) parse their
/// arguments with it too, so every tool answers a bad call the same way.
pub fn parse_arguments<A: DeserializeOwned + JsonSchema>(
    tool: &str,
    args: &Value,
) -> Result<A, ToolError> {
    let bad = |mut message: String| {
        bound_bytes(&mut message, MAX_ERROR_MESSAGE_BYTES);
        ToolError::BadArguments {
            tool: tool.to_string(),
            message,
            expected: expected_shape(&parameters_schema::<A>()),
        }
    };
    let args = normalize_arguments(args).map_err(bad)?;
    if !args.is_object() {
        return Err(bad(format!(
            "arguments must be a JSON object, got {}",
            json_kind(&args)
        )));
    }
    A::deserialize(args.as_ref()).map_err(|e| bad(e.to_string()))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Most bytes of a tool error's message. Messages quote the arguments they refuse, and an
/// argument can be megabytes long (`thinkfl fuzz`'s hostile sizes send 10 MB); the model needs
/// the reason, not its argument back.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1024;

/// Cuts `text` to at most `max` bytes at a line (or char) boundary, saying so.
pub fn bound_bytes(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let total = text.len();
    let note_room = 64;
    let mut cut = max.saturating_sub(note_room);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    if let Some(nl) = text[..cut].rfind('\n') {
        cut = nl + 1;
    }
    text.truncate(cut);
    if !text.ends_with('\n') && !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&format!(
        "... output truncated ({} of {} bytes shown)",
        cut, total
    ));
}

/// The tools by name, in registration order.
#[derive(Default)]
pub struct ToolRegistry {
    tools: Vec<Box<dyn DynTool>>,
}

impl fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool, replacing one of the same name.
    pub fn register(&mut self, tool: impl DynTool + 'static) {
        self.tools.retain(|t| t.name() != tool.name());
        self.tools.push(Box::new(tool));
    }

    /// The tool named `name`.
    pub fn get(&self, name: &str) -> Option<&dyn DynTool> {
        self.tools
            .iter()
            .find(|t| t.name() == name)
            .map(|t| t.as_ref())
    }

    /// Tool names, in registration order.
    pub fn names(&self) -> Vec<&str> {
        self.tools.iter().map(|t| t.name()).collect()
    }

    /// The OpenAI function schemas of all tools, in registration order.
    pub fn openai_schemas(&self) -> Vec<Value> {
        self.tools.iter().map(|t| t.openai_schema()).collect()
    }

    /// The OpenAI function schemas of the named tools (unknown names are skipped).
    pub fn openai_schemas_of(&self, names: &[&str]) -> Vec<Value> {
        names
            .iter()
            .filter_map(|n| self.get(n))
            .map(|t| t.openai_schema())
            .collect()
    }

    /// Calls a tool by name; a name with surrounding whitespace still resolves.
    pub fn call(
        &self,
        env: &ToolEnv<'_>,
        name: &str,
        args: &Value,
    ) -> Result<ToolOutput, ToolError> {
        let tool = self
            .get(name.trim())
            .ok_or_else(|| ToolError::UnknownTool {
                name: {
                    let mut n = name.to_string();
                    bound_bytes(&mut n, MAX_ERROR_MESSAGE_BYTES);
                    n
                },
                known: self.names().iter().map(|s| s.to_string()).collect(),
            })?;
        tool.call_json(env, args)
    }
}
