//! Chat templates: the model's own Jinja template (GGUF `tokenizer.chat_template`, or
//! `chat_template` in `tokenizer_config.json`) rendered with minijinja and its Python-compatible
//! methods (`.strip()`, `.items()`, ...), as `transformers`' `apply_chat_template` does.
//!
//! Templates that know nothing of tools (SmolLM2's, for one) get the ChatML tool-calling format
//! popularised by Hermes and Qwen2.5: the tool signatures inside `<tools></tools>` in the system
//! message, calls written as `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, and tool
//! results returned in a user turn inside `<tool_response></tool_response>`.

use crate::error::{Error, Result};
use crate::tokenizer::Tok;
use candle_core::quantized::gguf_file;
use serde::Serialize;
use thinkfl_core::{Message, Role};

/// ChatML, for models that ship no template.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A chat template ready to render.
#[derive(Debug)]
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
    source: String,
    /// Whether the template renders `tools` itself.
    pub supports_tools: bool,
    bos_token: String,
    eos_token: String,
}

#[derive(Serialize)]
struct TplFunction<'a> {
    name: &'a str,
    arguments: &'a serde_json::Value,
}

#[derive(Serialize)]
struct TplToolCall<'a> {
    r#type: &'static str,
    function: TplFunction<'a>,
}

#[derive(Serialize)]
struct TplMessage<'a> {
    role: &'a str,
    content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<TplToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

fn tools_block(tools: &[serde_json::Value]) -> String {
    let mut s = String::from(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    );
    for t in tools {
        s.push('\n');
        s.push_str(&serde_json::to_string(t).unwrap_or_default());
    }
    s.push_str("\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
    s
}

/// A tool call as the text a model writes.
pub fn tool_call_text(name: &str, arguments: &serde_json::Value) -> String {
    format!(
        "<tool_call>\n{}\n</tool_call>",
        serde_json::json!({"name": name, "arguments": arguments})
    )
}

impl ChatTemplate {
    /// Compiles a Jinja chat template (minijinja with Python string methods and
    /// `raise_exception`); `bos_token` and `eos_token` come from `tok`.
    pub fn new(source: &str, tok: &Tok) -> Result<Self> {
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| Error::Template(format!("cannot parse template: {e}")))?;
        Ok(ChatTemplate {
            env,
            source: source.to_string(),
            supports_tools: source.contains("tools"),
            bos_token: tok.bos_token.clone().unwrap_or_default(),
            eos_token: tok.eos_token.clone().unwrap_or_default(),
        })
    }

    /// The built-in ChatML template, for models that ship none.
    pub fn chatml(tok: &Tok) -> Self {
        Self::new(CHATML_TEMPLATE, tok).expect("the built-in ChatML template parses")
    }

    /// The GGUF's `tokenizer.chat_template`, or ChatML when it has none.
    pub fn from_gguf(ct: &gguf_file::Content, tok: &Tok) -> Result<Self> {
        match ct
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
        {
            Some(src) => Self::new(src, tok),
            None => Ok(Self::chatml(tok)),
        }
    }

    /// The `chat_template` of a `tokenizer_config.json` (a string, or the `default` entry of a
    /// list of named templates), or ChatML when it has none.
    pub fn from_tokenizer_config(cfg: &serde_json::Value, tok: &Tok) -> Result<Self> {
        match cfg.get("chat_template") {
            Some(serde_json::Value::String(s)) => Self::new(s, tok),
            // A list of named templates: take "default".
            Some(serde_json::Value::Array(list)) => {
                let src = list
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .and_then(|t| t.get("template"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| {
                        Error::Template("chat_template list has no `default` entry".into())
                    })?;
                Self::new(src, tok)
            }
            _ => Ok(Self::chatml(tok)),
        }
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The prompt text for `messages`. With `add_generation_prompt` it ends where the assistant's
    /// reply starts.
    pub fn render(
        &self,
        messages: &[Message],
        tools: &[serde_json::Value],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let native = self.supports_tools;
        let mut msgs: Vec<TplMessage> = Vec::with_capacity(messages.len() + 1);
        if !native && !tools.is_empty() && messages.first().map(|m| m.role) != Some(Role::System) {
            msgs.push(TplMessage {
                role: "system",
                content: tools_block(tools),
                tool_calls: vec![],
                name: None,
            });
        }
        for (i, m) in messages.iter().enumerate() {
            if native {
                msgs.push(TplMessage {
                    role: m.role.as_str(),
                    content: m.content.clone(),
                    tool_calls: m
                        .tool_calls
                        .iter()
                        .map(|c| TplToolCall {
                            r#type: "function",
                            function: TplFunction {
                                name: &c.name,
                                arguments: &c.arguments,
                            },
                        })
                        .collect(),
                    name: m.name.as_deref(),
                });
                continue;
            }
            let (role, content) = match m.role {
                Role::System if i == 0 && !tools.is_empty() => {
                    ("system", format!("{}\n\n{}", m.content, tools_block(tools)))
                }
                Role::Tool => (
                    "user",
                    format!("<tool_response>\n{}\n</tool_response>", m.content),
                ),
                Role::Assistant if !m.tool_calls.is_empty() => {
                    let mut s = m.content.clone();
                    for c in &m.tool_calls {
                        if !s.is_empty() {
                            s.push('\n');
                        }
                        s.push_str(&tool_call_text(&c.name, &c.arguments));
                    }
                    ("assistant", s)
                }
                r => (r.as_str(), m.content.clone()),
            };
            msgs.push(TplMessage {
                role,
                content,
                tool_calls: vec![],
                name: None,
            });
        }
        let tpl = self
            .env
            .get_template("chat")
            .map_err(|e| Error::Template(e.to_string()))?;
        let ctx = minijinja::context! {
            messages => msgs,
            tools => if native && !tools.is_empty() { Some(tools) } else { None },
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        };
        tpl.render(ctx)
            .map_err(|e| Error::Template(format!("rendering: {e:#}")))
    }

    /// The token ids of a whole conversation and, per token, whether the assistant generated it
    /// (the content of assistant messages and the end-of-turn token that closes them). Training
    /// computes its loss on those tokens only.
    ///
    /// Spans come from rendering growing prefixes of the conversation, so the template must be
    /// prefix-consistent (ChatML templates are); otherwise this is an error.
    pub fn render_with_mask(
        &self,
        tok: &Tok,
        messages: &[Message],
        tools: &[serde_json::Value],
    ) -> Result<(Vec<u32>, Vec<bool>)> {
        let full = self.render(messages, tools, false)?;
        let mut spans = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if m.role != Role::Assistant {
                continue;
            }
            let before = self.render(&messages[..i], tools, true)?;
            let upto = self.render(&messages[..=i], tools, false)?;
            if !upto.starts_with(&before) || !full.starts_with(&upto) {
                return Err(Error::Template(format!(
                    "the template is not prefix-consistent at message {i}; cannot find the assistant's tokens"
                )));
            }
            let start = before.len();
            let rest = &upto[start..];
            let end = match (!self.eos_token.is_empty())
                .then(|| rest.find(&self.eos_token))
                .flatten()
            {
                Some(k) => start + k + self.eos_token.len(),
                None => upto.len(),
            };
            spans.push((start, end));
        }
        let (ids, offsets) = tok.encode_with_offsets(&full)?;
        let mask = offsets
            .iter()
            .map(|&(s, _)| spans.iter().any(|&(a, b)| s >= a && s < b))
            .collect();
        Ok((ids, mask))
    }
}
