//! A client of OpenAI-compatible chat-completion servers: vLLM, llama.cpp's `llama-server`,
//! ollama, and hosted APIs.
//!
//! Reference: the OpenAI chat completions API (`POST /v1/chat/completions`, `tools`,
//! `tool_calls[].function.arguments` as a JSON string). Servers differ in the details, so the
//! response parser accepts `arguments` as a string or an object, a `null` content, and a missing
//! `usage`; tool calls a server leaves in the text are left for [`crate::parse`].

use crate::{ChatModel, ChatRequest, ChatResponse, Error, Result, StopReason};
use serde_json::{Value, json};
use std::time::Duration;
use thinkfl_core::{Message, Role, ToolCall};

/// How tool results are sent back to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolRole {
    /// As `role: "tool"` messages answering the previous assistant tool calls (the API's way).
    #[default]
    Tool,
    /// As `role: "user"` messages, for servers whose templates reject the tool role.
    User,
}

/// Configuration of one OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Server root, with or without the trailing `/v1` (`http://127.0.0.1:8000`).
    pub base_url: String,
    /// The `model` field of requests.
    pub model: String,
    /// Bearer token; defaults to `$OPENAI_API_KEY` when set.
    pub api_key: Option<String>,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Retries after a connection error, a 429 or a 5xx.
    pub max_retries: u32,
    /// First backoff; doubled after every retry.
    pub backoff: Duration,
    /// Send the tool schemas in the `tools` field. Off for servers without tool support: the
    /// caller then renders the tools into the system prompt itself.
    pub native_tools: bool,
    /// `tool_choice` of requests that carry tools: `auto`, `required` (servers such as llama.cpp
    /// then constrain the reply to a valid call) or `none`; unset leaves the server's default.
    pub tool_choice: Option<String>,
    /// How tool results are sent back (see [`ToolRole`]).
    pub tool_role: ToolRole,
    /// Extra fields merged into every request body, for server extensions (vLLM's
    /// `guided_json`, llama.cpp's `grammar`, `top_k`...).
    pub extra_body: serde_json::Map<String, Value>,
    /// The body field that carries a request's grammar in GBNF (`grammar` for llama.cpp's
    /// server and llama-cpp-python's); unset, grammars are not sent (OpenAI's API has none).
    pub grammar_field: Option<String>,
}

impl OpenAiConfig {
    /// Whole-request timeout of [`OpenAiConfig::new`].
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
    /// Retries of [`OpenAiConfig::new`].
    pub const DEFAULT_MAX_RETRIES: u32 = 3;
    /// First backoff of [`OpenAiConfig::new`].
    pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);

    /// The settings for `model` on the server at `base_url`, the rest at their defaults.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            timeout: Self::DEFAULT_TIMEOUT,
            max_retries: Self::DEFAULT_MAX_RETRIES,
            backoff: Self::DEFAULT_BACKOFF,
            native_tools: true,
            tool_choice: None,
            tool_role: ToolRole::Tool,
            extra_body: Default::default(),
            grammar_field: None,
        }
    }

    /// Parses the CLI form `openai:URL#MODEL[#grammar[=FIELD]]` (the `openai:` prefix is
    /// optional). `#grammar` sends grammars in the `grammar` field, as llama.cpp's server takes
    /// them; `#grammar=FIELD` in another field.
    pub fn from_spec(spec: &str) -> Result<Self> {
        let spec = spec.strip_prefix("openai:").unwrap_or(spec);
        let mut parts = spec.split('#');
        let url = parts.next().unwrap_or_default();
        let model = parts.next().ok_or_else(|| {
            Error::Request(format!(
                "expected openai:URL#MODEL, got {spec:?} (no '#MODEL')"
            ))
        })?;
        if !(url.starts_with("http://") || url.starts_with("https://")) || model.is_empty() {
            return Err(Error::Request(format!(
                "expected openai:http(s)://HOST[:PORT]#MODEL, got {spec:?}"
            )));
        }
        let mut cfg = Self::new(url, model);
        for opt in parts {
            match opt.split_once('=') {
                None if opt == "grammar" => cfg.grammar_field = Some("grammar".into()),
                Some(("grammar", field)) if !field.is_empty() => {
                    cfg.grammar_field = Some(field.to_string())
                }
                _ => {
                    return Err(Error::Request(format!(
                        "unknown option {opt:?} in {spec:?} (known: #grammar, #grammar=FIELD)"
                    )));
                }
            }
        }
        Ok(cfg)
    }

    /// Checks that a model is named and the timeout is positive.
    pub fn validate(&self) -> Result<()> {
        if self.model.is_empty() {
            return Err(Error::Request("model name is empty".into()));
        }
        if self.timeout.is_zero() {
            return Err(Error::Request("timeout must be positive".into()));
        }
        Ok(())
    }

    fn endpoint(&self) -> String {
        let base = self.base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        format!("{base}/v1/chat/completions")
    }
}

/// A [`ChatModel`] on an OpenAI-compatible server.
#[derive(Debug)]
pub struct OpenAiClient {
    config: OpenAiConfig,
    agent: ureq::Agent,
    name: String,
}

impl OpenAiClient {
    /// A client of the server `config` names, after [`OpenAiConfig::validate`].
    pub fn new(config: OpenAiConfig) -> Result<Self> {
        config.validate()?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        let name = format!("openai:{}", config.model);
        Ok(Self {
            config,
            agent,
            name,
        })
    }

    /// The settings the client was built with.
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    /// The JSON body of a request.
    pub fn request_body(&self, request: &ChatRequest) -> Value {
        let p = &request.params;
        let mut body = json!({
            "model": self.config.model,
            "messages": encode_messages(&request.messages, self.config.tool_role),
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "seed": p.seed,
            "stream": false,
        });
        if !p.stop.is_empty() {
            body["stop"] = json!(p.stop);
        }
        if let (Some(field), Some(g)) = (&self.config.grammar_field, &p.grammar) {
            body[field.as_str()] = json!(g.to_gbnf());
        }
        for (k, v) in &self.config.extra_body {
            body[k] = v.clone();
        }
        if self.config.native_tools && !request.tools.is_empty() {
            body["tools"] = json!(request.tools);
            if let Some(choice) = &self.config.tool_choice {
                body["tool_choice"] = json!(choice);
            }
        }
        body
    }

    fn post_once(&self, body: &Value) -> std::result::Result<Value, (bool, String)> {
        let mut req = self.agent.post(self.config.endpoint());
        if let Some(key) = &self.config.api_key {
            req = req.header("Authorization", &format!("Bearer {key}"));
        }
        let mut resp = match req.send_json(body) {
            Ok(r) => r,
            // Connection refused, reset, timed out: worth another try.
            Err(e) => return Err((true, format!("{}: {e}", self.config.endpoint()))),
        };
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| (true, format!("reading the response: {e}")))?;
        if !(200..300).contains(&status) {
            let retry = status == 429 || status >= 500;
            return Err((
                retry,
                format!(
                    "HTTP {status} from {}: {}",
                    self.config.endpoint(),
                    clip(&text)
                ),
            ));
        }
        serde_json::from_str(&text).map_err(|e| {
            (
                false,
                format!("response is not JSON ({e}): {}", clip(&text)),
            )
        })
    }
}

impl ChatModel for OpenAiClient {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let body = self.request_body(request);
        let mut backoff = self.config.backoff;
        let mut attempt = 0;
        loop {
            match self.post_once(&body) {
                Ok(v) => return decode_response(&v),
                Err((retry, msg)) if retry && attempt < self.config.max_retries => {
                    attempt += 1;
                    tracing::warn!(
                        "{msg}; retry {attempt}/{} in {backoff:?}",
                        self.config.max_retries
                    );
                    std::thread::sleep(backoff);
                    backoff *= 2;
                }
                Err((_, msg)) => return Err(Error::backend(msg)),
            }
        }
    }
}

/// Messages in the API's shape. Assistant tool calls get ids `call_N` so that the tool messages
/// that follow can answer them.
pub fn encode_messages(messages: &[Message], tool_role: ToolRole) -> Vec<Value> {
    let mut out = Vec::with_capacity(messages.len());
    let mut next_id = 0usize;
    let mut pending: std::collections::VecDeque<String> = Default::default();
    for m in messages {
        match m.role {
            Role::Assistant if !m.tool_calls.is_empty() => {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        let id = format!("call_{next_id}");
                        next_id += 1;
                        pending.push_back(id.clone());
                        json!({"id": id, "type": "function", "function": {
                            "name": c.name, "arguments": c.arguments.to_string()}})
                    })
                    .collect();
                out.push(json!({"role": "assistant", "content": m.content, "tool_calls": calls}));
            }
            Role::Tool => match tool_role {
                ToolRole::Tool => {
                    let mut v = json!({"role": "tool", "content": m.content});
                    if let Some(id) = pending.pop_front() {
                        v["tool_call_id"] = json!(id);
                    }
                    if let Some(name) = &m.name {
                        v["name"] = json!(name);
                    }
                    out.push(v);
                }
                ToolRole::User => {
                    let label = m.name.as_deref().unwrap_or("tool");
                    out.push(json!({"role": "user", "content": format!("<tool_response name=\"{label}\">\n{}\n</tool_response>", m.content)}));
                }
            },
            role => out.push(json!({"role": role.as_str(), "content": m.content})),
        }
    }
    out
}

/// Decodes a chat-completion response.
pub fn decode_response(v: &Value) -> Result<ChatResponse> {
    let choice = v.get("choices").and_then(|c| c.get(0)).ok_or_else(|| {
        Error::backend(format!("response has no choices: {}", clip(&v.to_string())))
    })?;
    let message = choice.get("message").cloned().unwrap_or(Value::Null);
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut tool_calls = Vec::new();
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for c in calls {
            match crate::parse::call_from_value(c.clone()) {
                Ok(call) => tool_calls.push(call),
                // A structured call we cannot read is kept as text, so the actor reports it.
                Err(e) => tool_calls.push(ToolCall {
                    name: String::new(),
                    arguments: json!({"_error": e}),
                }),
            }
        }
    }
    let stop = match choice.get("finish_reason").and_then(Value::as_str) {
        Some("length") => StopReason::Length,
        _ => StopReason::EndOfTurn,
    };
    let usage = v.get("usage");
    let count = |k: &str| {
        usage
            .and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize
    };
    Ok(ChatResponse {
        text,
        tool_calls,
        stop,
        prompt_tokens: count("prompt_tokens"),
        cached_prompt_tokens: usage
            .and_then(|u| u.pointer("/prompt_tokens_details/cached_tokens"))
            .and_then(|n| n.as_u64())
            .unwrap_or(0) as usize,
        completion_tokens: count("completion_tokens"),
        logprobs: None,
        token_ids: None,
    })
}

fn clip(s: &str) -> &str {
    crate::prefix_at_most(s, 500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parsing_and_endpoint() {
        let c = OpenAiConfig::from_spec("openai:http://127.0.0.1:8000/v1#qwen").unwrap();
        assert_eq!(c.model, "qwen");
        assert_eq!(c.endpoint(), "http://127.0.0.1:8000/v1/chat/completions");
        let c = OpenAiConfig::from_spec("http://h:1/#m").unwrap();
        assert_eq!(c.endpoint(), "http://h:1/v1/chat/completions");
        assert!(OpenAiConfig::from_spec("openai:http://h:1").is_err());
        assert!(OpenAiConfig::from_spec("openai:ftp://h#m").is_err());
        assert_eq!(c.grammar_field, None);
        let c = OpenAiConfig::from_spec("openai:http://h:1#m#grammar").unwrap();
        assert_eq!(
            (c.model.as_str(), c.grammar_field.as_deref()),
            ("m", Some("grammar"))
        );
        let c = OpenAiConfig::from_spec("openai:http://h:1#m#grammar=guided_grammar").unwrap();
        assert_eq!(c.grammar_field.as_deref(), Some("guided_grammar"));
        let e = OpenAiConfig::from_spec("openai:http://h:1#m#fast").unwrap_err();
        assert!(e.to_string().contains("unknown option \"fast\""), "{e}");
    }

    #[test]
    fn grammars_are_sent_only_where_configured() {
        let mut cfg = OpenAiConfig::new("http://h:1", "m");
        let mut req = ChatRequest {
            messages: vec![Message::user("q")],
            tools: vec![],
            params: crate::SamplingParams::greedy(8),
        };
        req.params.grammar = Some(crate::grammar::Grammar::lit("yes"));
        let body = OpenAiClient::new(cfg.clone()).unwrap().request_body(&req);
        assert!(body.get("grammar").is_none());
        cfg.grammar_field = Some("grammar".into());
        let body = OpenAiClient::new(cfg).unwrap().request_body(&req);
        assert_eq!(body["grammar"], "root ::= \"yes\"\n");
    }

    #[test]
    fn tool_messages_answer_assistant_calls() {
        let mut a = Message::assistant("");
        a.tool_calls = vec![ToolCall {
            name: "search_traces".into(),
            arguments: json!({"parent_span_id": "x"}),
        }];
        let msgs = vec![
            Message::user("q"),
            a,
            Message::tool("search_traces", "rows"),
        ];
        let enc = encode_messages(&msgs, ToolRole::Tool);
        assert_eq!(enc[1]["tool_calls"][0]["id"], "call_0");
        assert_eq!(
            enc[1]["tool_calls"][0]["function"]["arguments"],
            "{\"parent_span_id\":\"x\"}"
        );
        assert_eq!(enc[2]["tool_call_id"], "call_0");
        let enc = encode_messages(&msgs, ToolRole::User);
        assert_eq!(enc[2]["role"], "user");
        assert!(enc[2]["content"].as_str().unwrap().contains("rows"));
    }

    #[test]
    fn responses_with_string_or_object_arguments() {
        let v = json!({"choices": [{"message": {"content": null, "tool_calls": [
            {"id": "1", "type": "function", "function": {"name": "a", "arguments": "{\"k\": 1}"}},
            {"id": "2", "type": "function", "function": {"name": "b", "arguments": {"k": 2}}}]},
            "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 7, "completion_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 5}}});
        let r = decode_response(&v).unwrap();
        assert_eq!(r.text, "");
        assert_eq!(r.cached_prompt_tokens, 5);
        assert_eq!(r.tool_calls[0].arguments, json!({"k": 1}));
        assert_eq!(r.tool_calls[1].name, "b");
        assert_eq!((r.prompt_tokens, r.completion_tokens), (7, 3));
        assert!(decode_response(&json!({"error": "x"})).is_err());
        let r = decode_response(
            &json!({"choices": [{"message": {"content": "hi"}, "finish_reason": "length"}]}),
        )
        .unwrap();
        assert_eq!(r.stop, StopReason::Length);
    }

    #[test]
    fn unreachable_server_is_an_error_after_retries() {
        // Port 9 (discard) on loopback: nothing listens there in the test environment.
        let mut cfg = OpenAiConfig::new("http://127.0.0.1:9", "m");
        cfg.max_retries = 1;
        cfg.backoff = Duration::from_millis(1);
        cfg.timeout = Duration::from_secs(2);
        let client = OpenAiClient::new(cfg).unwrap();
        let err = client.chat(&ChatRequest {
            messages: vec![Message::user("hi")],
            tools: vec![],
            params: Default::default(),
        });
        assert!(matches!(err, Err(Error::Backend { .. })));
    }
}
