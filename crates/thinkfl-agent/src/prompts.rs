//! The prompts of the three RoT phases, in two sets: our own (short, for small local models) and
//! one compatible with the released ThinkFL checkpoints (the system prompt, question and phase
//! prompts of LLM4AIOps/ThinkFL's README and coordinator, which those models were trained on).

use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// Which prompts the actor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PromptSet {
    /// Ours: short, one tool call per reply, tool outputs in the enriched mode.
    #[default]
    Ours,
    /// Compatible with the released ThinkFL checkpoints.
    ThinkFl,
}

impl FromStr for PromptSet {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ours" | "thinkfl-small" => Ok(PromptSet::Ours),
            "thinkfl" | "paper" => Ok(PromptSet::ThinkFl),
            _ => Err(crate::Error::Config {
                field: "prompt_set",
                msg: format!("unknown prompt set {s:?} (ours|thinkfl)"),
            }),
        }
    }
}

impl fmt::Display for PromptSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PromptSet::Ours => "ours",
            PromptSet::ThinkFl => "thinkfl",
        })
    }
}

/// The phases of an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Descend the trace tree until a first answer is printed.
    InitialThink,
    /// "Inspect deeper": traces, metrics and logs until a second answer.
    Rethink,
    /// Review and print the final ranked answer.
    FinalReview,
}

/// The entry span a question starts from, as the prompts show it.
#[derive(Debug, Clone, PartialEq)]
pub struct QuestionSpan {
    /// Start of the entry span, ms since the epoch.
    pub timestamp_ms: i64,
    /// The pod that emitted it.
    pub cmdb_id: String,
    /// Its span id.
    pub span_id: String,
    /// Its trace id.
    pub trace_id: String,
    /// Its duration, µs.
    pub duration_us: i64,
    /// `http`, `rpc`... as in the data.
    pub kind: String,
    /// Its status code, as written.
    pub status_code: String,
    /// Its operation.
    pub operation_name: String,
    /// Median duration of the same operation over every pod of the same service, µs, where
    /// known.
    pub normal_us: Option<f64>,
}

impl PromptSet {
    /// Tools the model may call in a phase.
    pub fn tools(self, phase: Phase) -> &'static [&'static str] {
        match (self, phase) {
            (_, Phase::FinalReview) => &["print_results"],
            (PromptSet::ThinkFl, Phase::InitialThink) => &["search_traces", "print_results"],
            (PromptSet::ThinkFl, Phase::Rethink) => &[
                "search_traces",
                "search_fluctuating_metrics",
                "print_results",
            ],
            (PromptSet::Ours, _) => &[
                "search_anomalous_components",
                "search_traces",
                "search_fluctuating_metrics",
                "search_logs",
                "print_results",
            ],
        }
    }

    /// The system prompt. `schemas` are the OpenAI function schemas of the tools of the phase;
    /// `None` when the backend receives them natively.
    pub fn system(self, schemas: Option<&[Value]>) -> String {
        match self {
            PromptSet::Ours => {
                let mut s = String::from(
                    "You are an SRE agent. You find the root cause of a failure in a microservice system by \
exploring its traces, metrics and logs with tools, then you print a ranked list of root causes.\n",
                );
                if schemas.is_some() {
                    s.push_str(
                        "\nTools:\n\
- search_anomalous_components(timestamp): pods whose metrics, spans, logs or node depart most from normal, most suspect first.\n\
- search_traces(parent_span_id): the child spans of a span, slowest first, with their normal duration.\n\
- search_fluctuating_metrics(service_name, timestamp): metrics of a service, pod or node beyond 3 sigma.\n\
- search_logs(service_name, timestamp): error and warning logs of a service or pod.\n\
- print_results(root_causes): your answer, a list of {\"pod\", \"node\", \"service\", \"reason\"}, most likely first.\n",
                    );
                }
                s.push_str(
                    "\nCall exactly one tool per reply, on one line, like this:\n\
<tool_call>{\"name\": \"search_traces\", \"arguments\": {\"parent_span_id\": \"SPAN_ID\"}}</tool_call>\n\
Start with the anomalous components, descend into the child span that is much slower than normal or \
failed, and rank the pods whose own evidence is strongest; a pod's answer names its service and node.",
                );
                s
            }
            PromptSet::ThinkFl => {
                let mut s = String::from(
                    "You are a software operations engineer. Your task is to systematically diagnose and identify the root cause of software failures.\n\n",
                );
                if let Some(schemas) = schemas {
                    s.push_str("You have the following tools:\n\n");
                    s.push_str(&Value::Array(schemas.to_vec()).to_string());
                    s.push_str(
                        "\n\nThe parameters for these tools should be filled as a JSON object, with JSON keys as parameter names and key values as parameter content.\n\n",
                    );
                }
                let names = self.tools(Phase::Rethink).join(", ");
                s.push_str(&format!(
                    "You must insert the following command once in your reply to call the tool:\n\n<tool_call>{{'name': tool name, **can and must only** be one of [{names}], 'arguments': tool input}}<tool_call>"
                ));
                s
            }
        }
    }

    /// The question: the entry span of an anomalous trace.
    pub fn question(self, q: &QuestionSpan) -> String {
        match self {
            PromptSet::Ours => {
                let normal = q
                    .normal_us
                    .map(|n| format!("{:.1}", n / 1000.0))
                    .unwrap_or_else(|| "-".into());
                format!(
                    "An anomalous trace started at timestamp {} (s). Its entry span:\n\
span_id,cmdb_id,operation_name,duration_ms,normal_ms,status_code\n{},{},{},{:.1},{},{}\n\
Find the root cause.",
                    q.timestamp_ms / 1000,
                    q.span_id,
                    q.cmdb_id,
                    q.operation_name,
                    q.duration_us as f64 / 1000.0,
                    normal,
                    if q.status_code.is_empty() {
                        "-"
                    } else {
                        &q.status_code
                    },
                )
            }
            PromptSet::ThinkFl => {
                // The paper's coordinator pastes the row as pandas prints a one-row DataFrame.
                let header = [
                    "timestamp",
                    "cmdb_id",
                    "span_id",
                    "trace_id",
                    "duration",
                    "type",
                    "status_code",
                    "operation_name",
                    "parent_span",
                ];
                let row = [
                    q.timestamp_ms.to_string(),
                    q.cmdb_id.clone(),
                    q.span_id.clone(),
                    q.trace_id.clone(),
                    q.duration_us.to_string(),
                    q.kind.clone(),
                    q.status_code.clone(),
                    q.operation_name.clone(),
                    "NaN".to_string(),
                ];
                let mut h = String::from(" ");
                let mut r = String::from("0");
                for (name, value) in header.iter().zip(&row) {
                    let w = name.len().max(value.len()) + 2;
                    h.push_str(&format!("{name:>w$}"));
                    r.push_str(&format!("{value:>w$}"));
                }
                format!(
                    "Please read the following root trace and identify corresponding root cause service.\n\
A possible approach is to recursively search for the traces you suspect have issues, and combine with metrics data to confirm the root cause.\n{h}\n{r}"
                )
            }
        }
    }

    /// A user message after each tool result, if the set has one.
    pub fn after_tool(self, phase: Phase) -> Option<&'static str> {
        match (self, phase) {
            (PromptSet::Ours, _) => None,
            (PromptSet::ThinkFl, Phase::InitialThink) => Some(
                "Please continue to further identify the root cause service.\nYou may use the provided tools or choose not to.\nIf you use the trace tool, we often find that the root cause originates from a specific downstream trace.\nIf you have already define the root cause service, just call the print_result function.",
            ),
            (PromptSet::ThinkFl, _) => Some(
                "Please continue to further identify the root cause service.\nYou may inspect deeper by search trace tool or combine with metrics data to confirm the root cause.\nIf you use the trace tool, we often find that the root cause originates from a specific downstream trace.\nIf you have already define the root cause service, just call the print_result function.",
            ),
        }
    }

    /// The message that opens a phase after the first.
    pub fn phase_prompt(self, phase: Phase) -> &'static str {
        match (self, phase) {
            (_, Phase::InitialThink) => "",
            (PromptSet::Ours, Phase::Rethink) => {
                "Inspect deeper: check the metrics or logs of your top suspect, or descend further, then call print_results again."
            }
            (PromptSet::Ours, Phase::FinalReview) => {
                "Review what you found and call print_results with the final ranked root causes, most likely first."
            }
            (PromptSet::ThinkFl, Phase::Rethink) => {
                "We think it's better to inspect more deeper into the trace tree. So, even you have already define the root cause service, you must use the following tool to inspect more deeper to confirm that there are no deeper root cause."
            }
            (PromptSet::ThinkFl, Phase::FinalReview) => {
                "Please rethink the above think process and return the correct root cause and reason by the print_result function."
            }
        }
    }

    /// Told to a model that replied without a usable tool call.
    pub fn no_call(self, phase: Phase) -> String {
        format!(
            "Error: no tool call found. Reply with one tool call, e.g. <tool_call>{{\"name\": \"{}\", \"arguments\": {{...}}}}</tool_call>. Available tools: {}.",
            if phase == Phase::FinalReview {
                "print_results"
            } else {
                "search_traces"
            },
            self.tools(phase).join(", ")
        )
    }

    /// Stop strings that end a turn early without cutting a call.
    pub fn stop_strings(self) -> Vec<String> {
        match self {
            PromptSet::Ours => vec!["</tool_call>".to_string()],
            // The paper's models close a call with a second `<tool_call>`, which cannot be told
            // apart from an opening tag by a stop string; they end turns with EOS.
            PromptSet::ThinkFl => Vec::new(),
        }
    }
}
