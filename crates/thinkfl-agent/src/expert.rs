//! A scripted expert that plays the actor's protocol through the same tools, without a language
//! model. Where the prompt set offers `search_anomalous_components` (ours), it first takes the
//! global view of the incident (every pod scored by its metrics, self latency, own errors and
//! error logs, and its node's metrics, against their recent normal: [`thinkfl_tools::suspects`]),
//! then descends the trace tree into the child that carries the most excess latency (or failed),
//! checks the metrics of its top suspect, and ranks the suspects with the descent's deepest pod
//! as extra evidence. Without the global tool (the paper's prompt set) it ranks the descent's
//! deepest pod, its callee and its callers, as the paper's walk does.
//!
//! It is a [`ChatModel`], so it drops into the actor in place of a model: a strong non-LLM
//! reference, a test double for the actor, and the oracle whose trajectories prime a model
//! before GRPO (stage 0). It reads the conversation only to know where it stands; its decisions
//! come from the store (the same facts the tools print).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use thinkfl_core::{FaultCase, Level, Message, Role, RootCause, service_of};
use thinkfl_llm::parse::parse_tool_calls;
use thinkfl_llm::{ChatModel, ChatRequest, ChatResponse};
use thinkfl_store::{SpanRef, TelemetryStore};
use thinkfl_tools::nsigma::{NSigmaConfig, fluctuation};
use thinkfl_tools::suspects::{Suspect, SuspectConfig, rank_suspects};
use thinkfl_tools::tools::search_anomalous_components::evidence;
use thinkfl_tools::{Baselines, DescentRule, SearchAnomalousComponents};

/// Settings of the expert.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpertConfig {
    /// Which child the descent follows: the rule the enriched `search_traces` states under its
    /// rows, so that the expert's trajectories never contradict what the tool printed.
    pub descent: DescentRule,
    /// Deepest descent (search_traces calls); keeps the plan inside `d_max`.
    pub max_depth: usize,
    /// Deepest descent when the global view is available: it already weighs every trace of the
    /// window, and each descent costs a model a tool result's tokens.
    pub max_depth_with_global: usize,
    /// Added to the suspect score of the pod where the question's own trace descent ends.
    pub descent_bonus: f64,
    /// The global view's settings.
    pub suspects: SuspectConfig,
}

impl Default for ExpertConfig {
    fn default() -> Self {
        Self {
            descent: DescentRule::default(),
            max_depth: 6,
            max_depth_with_global: 4,
            descent_bonus: 1.0,
            suspects: SuspectConfig::default(),
        }
    }
}

/// The scripted expert policy.
pub struct ExpertPolicy {
    store: Arc<TelemetryStore>,
    /// The global view per question time: every turn after the first asks for it again.
    suspects: Mutex<HashMap<i64, Arc<Vec<Suspect>>>>,
    baselines: Baselines,
    config: ExpertConfig,
    nsigma: NSigmaConfig,
    /// Hindsight ([`ExpertPolicy::with_hindsight`]): the truth of each training question, by
    /// its entry span id. Empty at inference.
    hindsight: HashMap<String, FaultCase>,
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
    global: usize,
    prints: usize,
}

impl ExpertPolicy {
    /// Root causes in an answer: the eval reports R@1..3 and longer lists only cost tokens.
    pub const MAX_ANSWERS: usize = 3;

    /// The expert over `store`, computing the store's normal durations (a pass over every span).
    pub fn new(store: Arc<TelemetryStore>, config: ExpertConfig) -> Self {
        let baselines = Baselines::compute(&store);
        Self::with_baselines(store, baselines, config)
    }

    /// With the store's normal durations computed already (a pass over every span).
    pub fn with_baselines(
        store: Arc<TelemetryStore>,
        baselines: Baselines,
        config: ExpertConfig,
    ) -> Self {
        Self {
            store,
            suspects: Mutex::new(HashMap::new()),
            baselines,
            config,
            nsigma: NSigmaConfig::default(),
            hindsight: HashMap::new(),
        }
    }

    /// An oracle that knows each training question's truth (by its entry span id) and ranks the
    /// suspect standing for it first, when the episode showed it: its descent, its check of the
    /// top suspect's metrics and its reasons stay the expert's, only the order of the final
    /// ranking follows the truth. Stage 0 then imitates decisions that the evidence on screen
    /// supports but the expert's fixed weights misjudge (hindsight relabelling), instead of
    /// only the expert's right answers: the student can learn to beat its teacher. Without the
    /// global view (the paper's prompt set) it changes nothing. Never for inference or
    /// evaluation: it reads the answer.
    pub fn with_hindsight(mut self, truths: impl IntoIterator<Item = (String, FaultCase)>) -> Self {
        self.hindsight = truths.into_iter().collect();
        self
    }

    /// Latency a span carries beyond its operation's normal duration (µs).
    fn excess(&self, s: &SpanRef<'_>) -> f64 {
        self.config.descent.excess_us(&self.baselines, s)
    }

    /// The descent from the entry span: each step follows the child that carries its parent's
    /// delay ([`DescentRule::slow_child`]).
    fn chain(&self, entry: &str, max_depth: usize) -> Vec<String> {
        let mut chain = vec![entry.to_string()];
        while chain.len() < max_depth {
            let Some(cur) = self.store.span_by_id(chain.last().unwrap()) else {
                break;
            };
            match self
                .config
                .descent
                .slow_child(&self.store, &self.baselines, &cur)
            {
                Some(c) => chain.push(c.span_id().to_string()),
                None => break,
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
                    "search_anomalous_components" => p.global += 1,
                    "print_results" => p.prints += 1,
                    _ => {}
                }
            }
        }
        p
    }

    /// Whether the conversation offers the global view (our prompt set's system prompt lists it).
    fn has_global(messages: &[Message]) -> bool {
        messages
            .iter()
            .any(|m| m.role == Role::System && m.content.contains(SearchAnomalousComponents::NAME))
    }

    /// The answer with the global view: suspects by score, the descent's deepest pod raised by
    /// `descent_bonus`, then at most [`Self::MAX_ANSWERS`] items that each cover something the
    /// earlier ones do not (a pod item names its service and node too, so a second pod of the
    /// same service on the same node adds nothing).
    fn fused_ranking(
        &self,
        suspects: &[Suspect],
        deepest: Option<&str>,
        seen: &HashSet<&str>,
        chain_pods: &[String],
        truth: Option<&FaultCase>,
    ) -> Vec<RootCause> {
        let mut scored: Vec<(f64, &Suspect)> = suspects
            .iter()
            // What the tools showed: an answer names what the episode found.
            .filter(|s| seen.contains(s.pod.as_str()))
            .map(|s| {
                let mut bonus = if deepest == Some(s.pod.as_str()) {
                    self.config.descent_bonus
                } else {
                    0.0
                };
                if truth.is_some_and(|t| stands_for(s, t)) {
                    // Above any score: hindsight ranks the truth first.
                    bonus += 1e9;
                }
                (s.score + bonus, s)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.pod.cmp(&b.1.pod)));
        let mut out: Vec<RootCause> = Vec::new();
        for (_, s) in &scored {
            if out.len() >= Self::MAX_ANSWERS {
                break;
            }
            let covered = out
                .iter()
                .any(|o| o.service.as_deref() == Some(s.service.as_str()) && o.node == s.node);
            if covered {
                continue;
            }
            // The strongest departure alone: a reason is read by people and written, token by
            // token, by a small model.
            let mut reason = evidence(s)
                .split("; ")
                .next()
                .unwrap_or_default()
                .to_string();
            if deepest == Some(s.pod.as_str()) {
                reason = if reason.is_empty() {
                    "slowest span".into()
                } else {
                    format!("slowest span; {reason}")
                };
            }
            out.push(RootCause {
                node: s.node.clone(),
                service: Some(s.service.clone()),
                pod: Some(s.pod.clone()),
                reason: Some(clip(&reason, REASON_CHARS)),
            });
        }
        // The final list ranks as many touched pods as it can (the grammar asks for it): then
        // the suspects a covered pod hid, then the pods of the descent, deepest first.
        for (_, s) in &scored {
            if out.len() >= Self::MAX_ANSWERS {
                break;
            }
            if !out.iter().any(|o| o.pod.as_deref() == Some(s.pod.as_str())) {
                out.push(RootCause {
                    node: s.node.clone(),
                    service: Some(s.service.clone()),
                    pod: Some(s.pod.clone()),
                    reason: Some("also departs".into()),
                });
            }
        }
        for pod in chain_pods {
            if out.len() >= Self::MAX_ANSWERS {
                break;
            }
            if !out.iter().any(|o| o.pod.as_deref() == Some(pod.as_str())) {
                let reason = if deepest == Some(pod.as_str()) {
                    "slowest span"
                } else {
                    "on the slow path"
                };
                out.push(self.item(pod, reason.into()));
            }
        }
        out
    }

    fn suspects_at(&self, t: i64) -> Arc<Vec<Suspect>> {
        let mut cache = self.suspects.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache.get(&t) {
            return s.clone();
        }
        let s = Arc::new(rank_suspects(
            &self.store,
            &self.baselines,
            t,
            &self.config.suspects,
        ));
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(t, s.clone());
        s
    }

    fn next_call(&self, messages: &[Message]) -> (String, String) {
        let Some(entry) = self.entry_span(messages) else {
            return ("print_results".into(), print_args(&[]));
        };
        let t = self
            .store
            .span_by_id(&entry)
            .map(|s| s.timestamp().div_euclid(1000))
            .unwrap_or(0);
        let global = Self::has_global(messages);
        let depth = if global {
            self.config.max_depth_with_global
        } else {
            self.config.max_depth
        };
        let chain = self.chain(&entry, depth.max(1));
        let p = Self::progress(messages);
        if global && p.prints == 0 && p.global == 0 {
            return (
                SearchAnomalousComponents::NAME.into(),
                format!("{{\"timestamp\":{t}}}"),
            );
        }
        if p.prints == 0 && p.traces < chain.len() {
            return (
                "search_traces".into(),
                format!("{{\"parent_span_id\":\"{}\"}}", chain[p.traces]),
            );
        }
        let deepest = chain
            .last()
            .and_then(|id| self.store.span_by_id(id))
            .map(|s| s.cmdb_id().to_string());
        if !global {
            if p.prints == 1
                && p.metrics == 0
                && let Some(pod) = &deepest
            {
                return metrics_call(service_of(pod), t);
            }
            let ranking = self.ranking(&chain, p.prints >= 1);
            return ("print_results".into(), print_args(&ranking));
        }
        let suspects = self.suspects_at(t);
        let seen: HashSet<&str> = messages
            .iter()
            // Tool results and the question (its entry span's pod is touched too).
            .filter(|m| m.role == Role::Tool || m.role == Role::User)
            .flat_map(|m| {
                m.content
                    .split(|c: char| c == ',' || c == '"' || c.is_whitespace())
            })
            .collect();
        // Pods of the descent that the tools showed, deepest first.
        let mut chain_pods: Vec<String> = Vec::new();
        for id in chain.iter().rev() {
            if let Some(s) = self.store.span_by_id(id)
                && seen.contains(s.cmdb_id())
                && !chain_pods.iter().any(|p| p == s.cmdb_id())
            {
                chain_pods.push(s.cmdb_id().to_string());
            }
        }
        let truth = self.hindsight.get(&entry);
        let ranking = self.fused_ranking(&suspects, deepest.as_deref(), &seen, &chain_pods, truth);
        if p.prints == 1
            && p.metrics == 0
            && let Some(pod) = ranking.first().and_then(|r| r.pod.clone())
        {
            return metrics_call(&pod, t);
        }
        // The first two answers are the current top suspect (the final review's list is the
        // one graded); the whole list would only cost tokens twice more.
        let shown = if p.prints < 2 { 1 } else { ranking.len() };
        (
            "print_results".into(),
            print_args(&ranking[..shown.min(ranking.len())]),
        )
    }
}

/// Whether a suspect pod stands for the fault at the fault's level (as the grader's strict
/// matching reads an item naming the pod with its service and node).
fn stands_for(s: &Suspect, truth: &FaultCase) -> bool {
    let want = truth.cmdb_id.trim();
    match truth.level {
        Level::Pod => s.pod == want,
        Level::Service => s.service == want,
        Level::Node => s.node.as_deref() == Some(want),
    }
}

/// Characters of a reason the expert writes (the grammar admits up to
/// [`crate::constrain::MAX_REASON_CHARS`]).
const REASON_CHARS: usize = 48;

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn metrics_call(name: &str, t: i64) -> (String, String) {
    (
        "search_fluctuating_metrics".into(),
        format!(
            "{{\"service_name\":{},\"timestamp\":{t}}}",
            serde_json::Value::from(name)
        ),
    )
}

/// `print_results` arguments with each item's keys in the constrained order: the pod first, so
/// that its node and service (facts of the data) follow it, then the reason.
pub fn print_args(items: &[RootCause]) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let mut out = String::from("{\"root_causes\":[");
    for (i, rc) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        let mut fields: Vec<String> = Vec::new();
        if let Some(p) = &rc.pod {
            fields.push(format!("\"pod\":{}", q(p)));
        }
        if let Some(n) = &rc.node {
            fields.push(format!("\"node\":{}", q(n)));
        }
        if let Some(s) = &rc.service {
            fields.push(format!("\"service\":{}", q(s)));
        }
        if let Some(r) = &rc.reason {
            fields.push(format!("\"reason\":{}", q(r)));
        }
        out.push_str(&fields.join(","));
        out.push('}');
    }
    out.push_str("]}");
    out
}

impl ChatModel for ExpertPolicy {
    fn name(&self) -> &str {
        "expert"
    }

    fn chat(&self, request: &ChatRequest) -> thinkfl_llm::Result<ChatResponse> {
        let (name, arguments) = self.next_call(&request.messages);
        // `name` before `arguments`, as the system prompt's example writes it.
        let text =
            format!("<tool_call>{{\"name\": \"{name}\", \"arguments\": {arguments}}}</tool_call>");
        Ok(ChatResponse::from_text(text))
    }
}
