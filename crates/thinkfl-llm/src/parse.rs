//! Tool calls out of model text.
//!
//! Models write tool calls in several dialects, and a small model mixes them up. Accepted:
//! - Hermes/Qwen style `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, several per turn;
//! - the ThinkFL paper's unbalanced `<tool_call>{...}<tool_call>` and an unterminated tag at the
//!   end of the text;
//! - `arguments` as an object or as a JSON-encoded string, `parameters` as its alias, and the
//!   OpenAI nesting `{"function": {"name", "arguments"}}`;
//! - ReAct `Action: NAME` followed by `Action Input: {...}`.
//!
//! A call that is recognisably attempted but cannot be decoded is returned as a [`CallError`] so
//! the actor can tell the model what was wrong instead of aborting the episode.

use serde_json::Value;
use thinkfl_core::ToolCall;

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// A recognised but undecodable tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The text of the attempted call.
    pub raw: String,
    /// What was wrong, phrased for the model.
    pub message: String,
}

/// One tool call found in the text, decoded or not.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCall {
    /// The text of the call as the model wrote it.
    pub raw: String,
    /// The decoded call, or what is wrong with it.
    pub call: Result<ToolCall, CallError>,
}

/// Every tool call in `text`, in order of appearance.
pub fn parse_tool_calls(text: &str) -> Vec<ParsedCall> {
    let tagged = parse_tagged(text);
    if !tagged.is_empty() {
        return tagged;
    }
    parse_react(text)
}

fn parse_tagged(text: &str) -> Vec<ParsedCall> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let body_start = start + OPEN.len();
        let after = &rest[body_start..];
        // The body ends at a closing tag, the next opening tag (the paper's unbalanced form), or
        // the end of the text, whichever comes first.
        let end = [after.find(CLOSE), after.find(OPEN)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(after.len());
        let body = after[..end].trim();
        if !body.is_empty() {
            out.push(decode_body(body));
        }
        let mut next = body_start + end;
        if rest[next..].starts_with(CLOSE) {
            next += CLOSE.len();
        }
        rest = &rest[next..];
    }
    out
}

fn parse_react(text: &str) -> Vec<ParsedCall> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if let Some(name) = line.strip_prefix("Action:") {
            let name = name.trim().trim_matches('`').to_string();
            // The input may follow on the same logical block, possibly spanning lines.
            let mut input = String::new();
            let mut j = i + 1;
            while j < lines.len() {
                let l = lines[j].trim();
                if let Some(first) = l.strip_prefix("Action Input:") {
                    input.push_str(first.trim());
                    j += 1;
                    while j < lines.len()
                        && !lines[j].trim().starts_with("Action:")
                        && json_object_span(&input).is_none()
                    {
                        input.push('\n');
                        input.push_str(lines[j]);
                        j += 1;
                    }
                    break;
                }
                if l.starts_with("Action:") {
                    break;
                }
                j += 1;
            }
            let raw = format!("Action: {name}\nAction Input: {input}");
            let call = if name.is_empty() {
                Err(CallError {
                    raw: raw.clone(),
                    message: "`Action:` names no tool".into(),
                })
            } else {
                let input = input.trim();
                let arguments = if input.is_empty() {
                    Ok(Value::Object(Default::default()))
                } else {
                    match json_object_span(input) {
                        Some((a, b)) => parse_json(&input[a..b]),
                        None => Err(format!("`Action Input` is not a JSON object: {input}")),
                    }
                };
                arguments
                    .and_then(normalize_arguments)
                    .map(|arguments| ToolCall {
                        name: name.clone(),
                        arguments,
                    })
                    .map_err(|message| CallError {
                        raw: raw.clone(),
                        message,
                    })
            };
            out.push(ParsedCall { raw, call });
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn decode_body(body: &str) -> ParsedCall {
    let raw = body.to_string();
    let call = decode_call_json(body).map_err(|message| CallError {
        raw: raw.clone(),
        message,
    });
    ParsedCall { raw, call }
}

fn decode_call_json(body: &str) -> Result<ToolCall, String> {
    let body = strip_code_fence(body);
    let (a, b) = json_object_span(body)
        .ok_or_else(|| format!("expected a JSON object, got: {}", clip(body)))?;
    let value = parse_json(&body[a..b])?;
    call_from_value(value)
}

/// Decodes `{"name", "arguments"}` (or its aliases) into a call.
pub fn call_from_value(value: Value) -> Result<ToolCall, String> {
    let Value::Object(mut obj) = value else {
        return Err("a tool call must be a JSON object with \"name\" and \"arguments\"".into());
    };
    if let Some(Value::Object(f)) = obj.remove("function") {
        return call_from_value(Value::Object(f));
    }
    let name = match obj.remove("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(other) => return Err(format!("\"name\" must be a non-empty string, got {other}")),
        None => return Err("the tool call has no \"name\"".into()),
    };
    let arguments = obj
        .remove("arguments")
        .or_else(|| obj.remove("parameters"))
        .or_else(|| obj.remove("args"))
        .unwrap_or(Value::Object(Default::default()));
    Ok(ToolCall {
        name,
        arguments: normalize_arguments(arguments)?,
    })
}

/// Arguments as an object; a JSON-encoded string is decoded.
fn normalize_arguments(arguments: Value) -> Result<Value, String> {
    match arguments {
        Value::Object(_) => Ok(arguments),
        Value::Null => Ok(Value::Object(Default::default())),
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(Value::Object(Default::default()));
            }
            match parse_json(s)? {
                v @ Value::Object(_) => Ok(v),
                other => Err(format!("\"arguments\" must be a JSON object, got {other}")),
            }
        }
        other => Err(format!("\"arguments\" must be a JSON object, got {other}")),
    }
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| format!("invalid JSON ({e}): {}", clip(s)))
}

fn strip_code_fence(s: &str) -> &str {
    let s = s.trim();
    let Some(inner) = s.strip_prefix("```") else {
        return s;
    };
    let inner = inner.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    inner.strip_suffix("```").unwrap_or(inner).trim()
}

/// Byte range of the first balanced `{...}` in `s`, honouring JSON strings and escapes.
pub fn json_object_span(s: &str) -> Option<(usize, usize)> {
    let start = s.find('{')?;
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in s[start..].char_indices() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some((start, start + i + 1));
                }
            }
            _ => {}
        }
    }
    None
}

fn clip(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_string();
    }
    format!("{}...", crate::prefix_at_most(s, MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(text: &str) -> Vec<ToolCall> {
        parse_tool_calls(text)
            .into_iter()
            .map(|p| p.call.expect("decodes"))
            .collect()
    }

    #[test]
    fn hermes_tags_with_object_and_string_arguments() {
        let calls = ok(r#"I will look.
<tool_call>{"name": "search_traces", "arguments": {"parent_span_id": "ab"}}</tool_call>
<tool_call>{"name":"search_logs","arguments":"{\"service_name\": \"cartservice\", \"timestamp\": 5}"}</tool_call>"#);
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].name, "search_traces");
        assert_eq!(calls[0].arguments, json!({"parent_span_id": "ab"}));
        assert_eq!(
            calls[1].arguments,
            json!({"service_name": "cartservice", "timestamp": 5})
        );
    }

    #[test]
    fn unbalanced_and_unterminated_tags() {
        let calls = ok(
            r#"<tool_call>{"name": "a", "arguments": {}}<tool_call>{"name": "b", "arguments": {"x": "}"}}"#,
        );
        assert_eq!(
            calls.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(calls[1].arguments, json!({"x": "}"}));
    }

    #[test]
    fn openai_nesting_and_aliases_and_fences() {
        let calls = ok(
            "<tool_call>```json\n{\"function\": {\"name\": \"f\", \"parameters\": {\"k\": 1}}}\n```</tool_call>",
        );
        assert_eq!(calls[0].name, "f");
        assert_eq!(calls[0].arguments, json!({"k": 1}));
    }

    #[test]
    fn react_action_lines() {
        let calls = ok(
            "Thought: go down\nAction: search_traces\nAction Input: {\"parent_span_id\": \"d1\"}\n",
        );
        assert_eq!(calls[0].name, "search_traces");
        assert_eq!(calls[0].arguments, json!({"parent_span_id": "d1"}));
        let multi = ok(
            "Action: print_results\nAction Input: {\"root_causes\": [\n {\"service\": \"x\"}\n]}",
        );
        assert_eq!(
            multi[0].arguments,
            json!({"root_causes": [{"service": "x"}]})
        );
    }

    #[test]
    fn malformed_calls_are_errors_not_panics() {
        for bad in [
            "<tool_call>{\"name\": \"a\", \"arguments\": {</tool_call>",
            "<tool_call>not json</tool_call>",
            "<tool_call>{\"arguments\": {}}</tool_call>",
            "<tool_call>{\"name\": 3}</tool_call>",
            "<tool_call>{\"name\": \"a\", \"arguments\": [1]}</tool_call>",
            "<tool_call>{\"name\": \"a\", \"arguments\": \"{bad\"}</tool_call>",
            "Action: search_traces\nAction Input: span d1",
        ] {
            let parsed = parse_tool_calls(bad);
            assert_eq!(parsed.len(), 1, "{bad}");
            let err = parsed[0].call.as_ref().expect_err(bad);
            assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn plain_text_has_no_calls() {
        assert!(parse_tool_calls("The root cause is cartservice.").is_empty());
        assert!(parse_tool_calls("").is_empty());
        assert!(parse_tool_calls("<tool_call></tool_call>").is_empty());
    }

    #[test]
    fn unicode_near_clip_boundary_does_not_panic() {
        let long = format!("<tool_call>{}</tool_call>", "错".repeat(300));
        assert!(parse_tool_calls(&long)[0].call.is_err());
    }
}
