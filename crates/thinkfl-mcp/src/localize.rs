//! The `localize` tool: its typed arguments, the question they name, the model wrapper that
//! reports each turn and stops a cancelled episode, and the structured answer.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use thinkfl_core::{FaultCase, Role, Trajectory};
use thinkfl_llm::{ChatModel, ChatRequest, ChatResponse};
use thinkfl_store::TelemetryStore;
use thinkfl_tools::Query;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// Which localizer `localize` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LocalizeModel {
    /// thinkfl's trained localizer: SmolLM2-135M with its LoRA adapter, on this machine's CPU
    /// (tens of seconds).
    #[default]
    Default,
    /// The scripted expert (the teacher of the trained model): milliseconds.
    Expert,
}

impl LocalizeModel {
    /// The name a call gives.
    pub fn as_str(self) -> &'static str {
        match self {
            LocalizeModel::Default => "default",
            LocalizeModel::Expert => "expert",
        }
    }
}

/// Arguments of `localize`: exactly one of `case`, `trace_id`, `span_id`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalizeArgs {
    /// Fault case index (as list_incidents lists them): start from its first anomalous trace.
    #[serde(default)]
    pub case: Option<usize>,
    /// Start from the entry span of this trace.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Start from this span.
    #[serde(default)]
    pub span_id: Option<String>,
    /// "default" (the trained local model) or "expert" (the scripted expert); default "default".
    #[serde(default)]
    pub model: Option<LocalizeModel>,
    /// Most tool rounds before the final answer (1 to 20; default 10).
    #[serde(default)]
    pub d_max: Option<usize>,
}

impl LocalizeArgs {
    /// Most tool rounds a call may ask for (the actor's default is 10).
    pub const MAX_D_MAX: usize = 20;
}

/// The question `args` names, with its fault case when it names one; the error is the text of
/// the tool error (no case, span or trace of that name; none or several of them given).
pub(crate) fn pick_query(
    store: &TelemetryStore,
    case_queries: &[Vec<Query>],
    args: &LocalizeArgs,
) -> Result<(Query, Option<FaultCase>), String> {
    let given = [
        args.case.is_some(),
        args.trace_id.is_some(),
        args.span_id.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        return Err(format!(
            "give exactly one of `case`, `trace_id` or `span_id` (got {given})"
        ));
    }
    if let Some(d) = args.d_max
        && !(1..=LocalizeArgs::MAX_D_MAX).contains(&d)
    {
        return Err(format!(
            "`d_max` must be 1 to {}, got {d}",
            LocalizeArgs::MAX_D_MAX
        ));
    }
    if let Some(n) = args.case {
        let Some(case) = store.faults().get(n) else {
            return Err(crate::data_tools::no_case_message(n, store.faults().len()));
        };
        let q = case_queries
            .get(n)
            .and_then(|qs| qs.first())
            .ok_or_else(|| {
                format!(
                    "fault case {n} has no anomalous trace in its window; give a span_id instead"
                )
            })?;
        return Ok((q.clone(), Some(case.clone())));
    }
    if let Some(t) = &args.trace_id {
        return Query::of_trace(store, t)
            .map(|q| (q, None))
            .ok_or_else(|| format!("no trace {t:?} in this data set"));
    }
    let s = args.span_id.as_deref().unwrap_or_default();
    Query::of_span(store, s)
        .map(|q| (q, None))
        .ok_or_else(|| format!("no span {s:?} in this data set"))
}

/// What the model wrapper reports at the start of each turn: its number and what happened last.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Turn {
    pub number: usize,
    pub message: String,
}

/// A chat model that reports each turn and refuses to start one once its token is cancelled: the
/// actor then ends the episode with a model error, at most one turn after the cancellation (a
/// turn is not interrupted mid-generation).
pub(crate) struct Watched {
    inner: Arc<dyn ChatModel>,
    cancel: CancellationToken,
    turns: AtomicUsize,
    progress: UnboundedSender<Turn>,
}

impl Watched {
    pub(crate) fn new(
        inner: Arc<dyn ChatModel>,
        cancel: CancellationToken,
        progress: UnboundedSender<Turn>,
    ) -> Self {
        Self {
            inner,
            cancel,
            turns: AtomicUsize::new(0),
            progress,
        }
    }

    pub(crate) fn turns(&self) -> usize {
        self.turns.load(Ordering::Relaxed)
    }
}

/// "turn 3, after: {"name": "search_traces", ...}": the last call the model wrote, bounded.
fn describe(number: usize, request: Option<&ChatRequest>) -> String {
    let last = request.and_then(|r| {
        r.messages
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant)
            .map(|m| {
                m.tool_calls
                    .first()
                    .map(|c| format!("{} {}", c.name, c.arguments))
                    .unwrap_or_else(|| m.content.clone())
            })
    });
    match last {
        None => format!("model turn {number}: reading the question"),
        Some(text) => {
            let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
            format!(
                "model turn {number}, after: {}",
                thinkfl_llm::prefix_at_most(&one_line, 160)
            )
        }
    }
}

impl ChatModel for Watched {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn chat(&self, request: &ChatRequest) -> thinkfl_llm::Result<ChatResponse> {
        let mut out = self.chat_batch(std::slice::from_ref(request))?;
        out.pop()
            .ok_or_else(|| thinkfl_llm::Error::backend("the model answered nothing"))
    }

    fn chat_batch(&self, requests: &[ChatRequest]) -> thinkfl_llm::Result<Vec<ChatResponse>> {
        if self.cancel.is_cancelled() {
            return Err(thinkfl_llm::Error::backend("the episode was cancelled"));
        }
        let number = self.turns.fetch_add(1, Ordering::Relaxed) + 1;
        // The receiver is gone only when the call has already answered; nothing to tell then.
        let _ = self.progress.send(Turn {
            number,
            message: describe(number, requests.first()),
        });
        self.inner.chat_batch(requests)
    }
}

/// The structured answer of `localize`: the question, the ranked root causes, the evidence path
/// and every call the episode made.
pub(crate) fn answer_json(
    q: &Query,
    case: Option<&FaultCase>,
    t: &Trajectory,
    model: &str,
    turns: usize,
) -> Value {
    let calls: Vec<Value> = t
        .calls
        .iter()
        .map(|c| {
            json!({
                "tool": c.call.as_ref().map(|c| c.name.as_str()),
                "arguments": c.call.as_ref().map(|c| &c.arguments),
                "valid": c.valid,
                "error": c.error,
            })
        })
        .collect();
    json!({
        "model": model,
        "query": {
            "case": case.map(|_| q.case),
            "trace_id": q.trace_id,
            "span_id": q.span_id,
            "pod": q.cmdb_id,
            "operation": q.operation_name,
            "timestamp_ms": q.timestamp_ms,
        },
        "answered": t.prediction.is_some(),
        "root_causes": t.prediction.clone().unwrap_or_default(),
        "evidence_path": t.path,
        "calls": calls,
        "forced_final": t.forced_final,
        "model_turns": turns,
        "tokens": t.tokens,
        "time_ms": t.timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use thinkfl_core::{Message, ToolCall};

    #[test]
    fn turns_describe_the_last_call_on_one_bounded_line() {
        assert_eq!(describe(1, None), "model turn 1: reading the question");
        let mut m = Message::assistant("x");
        m.tool_calls = vec![ToolCall {
            name: "search_traces".into(),
            arguments: json!({"parent_span_id": "ab"}),
        }];
        let r = ChatRequest {
            messages: vec![Message::user("q"), m],
            tools: vec![],
            params: Default::default(),
        };
        assert_eq!(
            describe(2, Some(&r)),
            r#"model turn 2, after: search_traces {"parent_span_id":"ab"}"#
        );
        let long = ChatRequest {
            messages: vec![Message::assistant("a\nb ".repeat(200))],
            tools: vec![],
            params: Default::default(),
        };
        let d = describe(3, Some(&long));
        assert!(d.starts_with("model turn 3, after: a b a b"), "{d}");
        assert!(d.len() <= "model turn 3, after: ".len() + 160, "{d}");
    }
}
