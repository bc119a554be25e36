//! A scripted expert that plays the actor's protocol through the same tools, without a language
//! model: it descends the trace tree into the child that carries the most excess latency (or
//! failed), checks the metrics of the suspect's service (they come with its nodes'), and ranks the suspect, its
//! callee and its caller.
//!
//! It is a [`ChatModel`], so it drops into the actor in place of a model: a strong non-LLM
//! reference, a test double for the actor, and the oracle whose trajectories prime a model
//! before GRPO (stage 0). It reads the conversation only to know where it stands; its decisions
//! come from the store (the same facts the tools print).

use std::sync::Arc;
use thinkfl_core::{Message, Role, RootCause, service_of};
use thinkfl_llm::parse::parse_tool_calls;
use thinkfl_llm::{ChatModel, ChatRequest, ChatResponse, StopReason};
use thinkfl_store::{SpanRef, TelemetryStore};
use thinkfl_tools::Baselines;
use thinkfl_tools::nsigma::{NSigmaConfig, fluctuation};

/// Settings of the expert.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpertConfig {
    /// A child is followed when its excess latency is at least this share of its parent's.
    pub follow_share: f64,
    /// Fewest samples for a per-operation baseline to be trusted; below it, raw durations count.
    pub min_baseline_samples: usize,
    /// Deepest descent (search_traces calls); keeps the plan inside `d_max`.
    pub max_depth: usize,
}

impl Default for ExpertConfig {
    fn default() -> Self {
        Self {
            follow_share: 0.3,
            min_baseline_samples: 5,
            max_depth: 6,
        }
    }
}

/// The scripted expert policy.
pub struct ExpertPolicy {
    store: Arc<TelemetryStore>,
    baselines: Baselines,
    config: ExpertConfig,
    nsigma: NSigmaConfig,
}

impl std::fmt::Debug for ExpertPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpertPolicy")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Progress {
    traces: usize,
    metrics: usize,
    prints: usize,
}

impl ExpertPolicy {
    /// Root causes in an answer: the eval reports R@1..3 and longer lists only cost tokens.
    pub const MAX_ANSWERS: usize = 3;

    pub fn new(store: Arc<TelemetryStore>, config: ExpertConfig) -> Self {
        let baselines = Baselines::compute(&store);
        Self {
            store,
            baselines,
            config,
            nsigma: NSigmaConfig::default(),
        }
    }

    /// Latency a span carries beyond its operation's normal duration (µs).
    fn excess(&self, s: &SpanRef<'_>) -> f64 {
        let d = s.duration() as f64;
        match self.baselines.get(s.cmdb_id(), s.operation_name()) {
            Some(b) if b.count >= self.config.min_baseline_samples => (d - b.median_us).max(0.0),
            _ => d,
        }
    }

    /// The descent from the entry span: each step follows the child with the most excess latency
    /// (a failed child first) while it explains a fair share of its parent's.
    fn chain(&self, entry: &str) -> Vec<String> {
        let mut chain = vec![entry.to_string()];
        while chain.len() < self.config.max_depth {
            let Some(cur) = self.store.span_by_id(chain.last().unwrap()) else {
                break;
            };
            let parent_excess = self.excess(&cur).max(1.0);
            let best = self
                .store
                .children(cur.span_id())
                .map(|c| {
                    let failed = !c.status_ok();
                    (failed, self.excess(&c), c.span_id().to_string())
                })
                .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(b.2.cmp(&a.2)));
            match best {
                Some((failed, ex, id))
                    if failed || ex >= self.config.follow_share * parent_excess =>
                {
                    chain.push(id)
                }
                _ => break,
            }
        }
        chain
    }

    fn node_of(&self, pod: &str) -> Option<String> {
        self.store.topology().node_of(pod).map(str::to_string)
    }

    /// How many series of a component deviate beyond n sigma around `t` (s).
    fn deviating(&self, component: &str, t: i64) -> usize {
        self.store
            .series_of(component)
            .iter()
            .filter_map(|s| fluctuation(s.timestamps(), s.values(), t, &self.nsigma))
            .filter(|f| f.max_sigma > self.nsigma.n_sigma)
            .count()
    }

    fn item(&self, pod: &str, reason: String) -> RootCause {
        RootCause {
            node: self.node_of(pod),
            service: Some(service_of(pod).to_string()),
            pod: Some(pod.to_string()),
            reason: Some(reason),
        }
    }

    /// The ranked answer: the deepest slow span's pod (with its service and node), its slowest
    /// callee, then the callers up the chain.
    fn ranking(&self, chain: &[String], with_metrics: bool) -> Vec<RootCause> {
        let spans: Vec<SpanRef<'_>> = chain
            .iter()
            .filter_map(|id| self.store.span_by_id(id))
            .collect();
        let Some(last) = spans.last() else {
            return Vec::new();
        };
        let t = last.timestamp() / 1000;
        let mut out: Vec<RootCause> = Vec::new();
        let push = |rc: RootCause, out: &mut Vec<RootCause>| {
            if !out.iter().any(|o| o.pod == rc.pod) {
                out.push(rc);
            }
        };
        // Terse reasons: the expert's turns are what a small model learns to write (stage 0),
        // and every token of them costs decode time at inference.
        let mut reason = format!(
            "deepest slow span, {:.0} ms",
            last.duration() as f64 / 1000.0
        );
        if with_metrics {
            let pod_dev = self.deviating(last.cmdb_id(), t);
            let node_dev = self
                .node_of(last.cmdb_id())
                .map(|n| self.deviating(&n, t))
                .unwrap_or(0);
            reason.push_str(&format!(
                "; {pod_dev} metrics off on pod, {node_dev} on node"
            ));
        }
        push(self.item(last.cmdb_id(), reason), &mut out);
        if let Some(callee) = self
            .store
            .children(last.span_id())
            .max_by(|a, b| self.excess(a).total_cmp(&self.excess(b)))
        {
            push(
                self.item(callee.cmdb_id(), "callee of the slow span".to_string()),
                &mut out,
            );
        }
        for s in spans.iter().rev().skip(1) {
            push(
                self.item(s.cmdb_id(), "caller on the slow path".to_string()),
                &mut out,
            );
        }
        out.truncate(Self::MAX_ANSWERS);
        out
    }

    fn entry_span(&self, messages: &[Message]) -> Option<String> {
        let q = messages.iter().find(|m| m.role == Role::User)?;
        q.content
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|t| t.len() >= 8)
            .find(|t| self.store.span_by_id(t).is_some())
            .map(str::to_string)
    }

    fn progress(messages: &[Message]) -> Progress {
        let mut p = Progress::default();
        for m in messages.iter().filter(|m| m.role == Role::Assistant) {
            for c in parse_tool_calls(&m.content)
                .into_iter()
                .filter_map(|c| c.call.ok())
            {
                match c.name.as_str() {
                    "search_traces" => p.traces += 1,
                    "search_fluctuating_metrics" | "search_logs" => p.metrics += 1,
                    "print_results" => p.prints += 1,
                    _ => {}
                }
            }
        }
        p
    }

    fn next_call(&self, messages: &[Message]) -> serde_json::Value {
        let Some(entry) = self.entry_span(messages) else {
            return serde_json::json!({"name": "print_results", "arguments": {"root_causes": []}});
        };
        let chain = self.chain(&entry);
        let p = Self::progress(messages);
        if p.prints == 0 && p.traces < chain.len() {
            return serde_json::json!({"name": "search_traces", "arguments": {"parent_span_id": chain[p.traces]}});
        }
        if p.prints == 1 {
            let last = self.store.span_by_id(chain.last().unwrap());
            let checks: Vec<(String, i64)> = last
                // One call: a service's metrics come with those of the nodes hosting it.
                .map(|s| vec![(service_of(s.cmdb_id()).to_string(), s.timestamp() / 1000)])
                .unwrap_or_default();
            if let Some((name, t)) = checks.get(p.metrics) {
                return serde_json::json!({"name": "search_fluctuating_metrics", "arguments": {"service_name": name, "timestamp": t}});
            }
        }
        let ranking = self.ranking(&chain, p.prints >= 1);
        serde_json::json!({"name": "print_results", "arguments": {"root_causes": ranking}})
    }
}

impl ChatModel for ExpertPolicy {
    fn name(&self) -> &str {
        "expert"
    }

    fn chat(&self, request: &ChatRequest) -> thinkfl_llm::Result<ChatResponse> {
        let call = self.next_call(&request.messages);
        // `name` before `arguments`, as the system prompt's example writes it (serde_json would
        // sort the keys).
        let text = format!(
            "<tool_call>{{\"name\": {}, \"arguments\": {}}}</tool_call>",
            call["name"], call["arguments"]
        );
        Ok(ChatResponse {
            text,
            tool_calls: Vec::new(),
            stop: StopReason::EndOfTurn,
            prompt_tokens: 0,
            cached_prompt_tokens: 0,
            completion_tokens: 0,
            logprobs: None,
            token_ids: None,
        })
    }
}
