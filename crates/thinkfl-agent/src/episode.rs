//! One RoT episode as a state machine: it says which chat request comes next and digests the
//! model's reply. The runner drives many episodes in lockstep, so that a batched backend serves
//! all of them at once (GRPO rollouts, evaluation).

use crate::config::ActorConfig;
use crate::constrain::{Components, Constrain, TurnFacts, span_ids_in, turn_grammar};
use crate::prompts::{Phase, PromptSet, QuestionSpan};
use std::sync::Arc;
use std::time::Instant;
use thinkfl_core::{CallRecord, Message, RootCause, ToolCall, Trajectory};
use thinkfl_llm::parse::{ParsedCall, parse_tool_calls};
use thinkfl_llm::{ChatRequest, ChatResponse, SamplingParams};
use thinkfl_tools::SearchAnomalousComponents;
use thinkfl_tools::tools::PrintResults;
use thinkfl_tools::{ToolEnv, ToolRegistry};

/// One episode in progress.
#[derive(Debug)]
pub struct Episode {
    phase: Phase,
    messages: Vec<Message>,
    traj: Trajectory,
    /// Assistant turns spent outside the final review; bounded by `d_max`.
    rounds: usize,
    last_answer: Option<Vec<RootCause>>,
    done: bool,
    seed: u64,
    turn: u64,
    /// Span ids seen so far (the entry span, then result rows), in order.
    known_spans: Vec<String>,
    /// Span ids already passed to `search_traces`.
    queried_spans: Vec<String>,
    /// Component names of the data, for constrained turns.
    components: Arc<Components>,
    /// The question's time, s.
    question_ts: i64,
    /// The grammar each assistant turn was decoded under (`None`: free), in order.
    grammars: Vec<Option<thinkfl_llm::grammar::Grammar>>,
}

impl Episode {
    /// A new episode for `question`: the system prompt and the question, in the initial phase.
    /// `seed` seeds its sampling (each turn derives its own stream from it).
    pub fn new(
        cfg: &ActorConfig,
        registry: &ToolRegistry,
        question: &QuestionSpan,
        components: Arc<Components>,
        seed: u64,
    ) -> Self {
        let set = cfg.prompt_set;
        let schemas = registry.openai_schemas_of(set.tools(Phase::Rethink));
        let system = set.system(if cfg.native_tools {
            None
        } else {
            Some(&schemas)
        });
        let messages = vec![
            Message::system(system),
            Message::user(set.question(question)),
        ];
        let traj = Trajectory {
            query_span: Some(question.span_id.clone()),
            ..Default::default()
        };
        Self {
            phase: Phase::InitialThink,
            messages,
            traj,
            rounds: 0,
            last_answer: None,
            done: false,
            seed,
            turn: 0,
            known_spans: vec![question.span_id.clone()],
            queried_spans: Vec::new(),
            components,
            question_ts: question.timestamp_ms.div_euclid(1000),
            grammars: Vec::new(),
        }
    }

    /// The grammar of the next turn, where the settings constrain it.
    fn grammar(&self, cfg: &ActorConfig) -> Option<thinkfl_llm::grammar::Grammar> {
        let applies = match cfg.constrain {
            Constrain::Off => false,
            Constrain::Final => self.phase == Phase::FinalReview,
            Constrain::Calls => true,
        };
        if !applies || cfg.prompt_set != PromptSet::Ours || cfg.native_tools {
            return None;
        }
        let unqueried: Vec<String> = self
            .known_spans
            .iter()
            .filter(|s| !self.queried_spans.contains(s))
            .cloned()
            .collect();
        let facts = TurnFacts {
            unqueried_spans: unqueried,
            question_ts: Some(self.question_ts),
            global_done: self.traj.calls.iter().any(|c| {
                c.valid
                    && c.call
                        .as_ref()
                        .is_some_and(|c| c.name == SearchAnomalousComponents::NAME)
            }),
            touched: self.traj.path.clone(),
            final_review: self.phase == Phase::FinalReview,
        };
        // An episode opens with the global view: it costs one call, every later decision reads
        // it, and a small model left to choose would follow the example call of the system
        // prompt instead (observed: 0 of 6 questions after 40 primed sequences).
        let mut tools = cfg.prompt_set.tools(self.phase).to_vec();
        if self.turn == 0 && !facts.global_done && tools.contains(&SearchAnomalousComponents::NAME)
        {
            tools.retain(|t| *t == SearchAnomalousComponents::NAME);
        }
        turn_grammar(&tools, &self.components, &facts)
    }

    /// Whether the episode is over (a final answer, or the forced print after `D_max` calls).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The phase the episode is in.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The conversation so far.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The next request, or `None` when the episode is over.
    pub fn request(&self, cfg: &ActorConfig, registry: &ToolRegistry) -> Option<ChatRequest> {
        if self.done {
            return None;
        }
        let tools = if cfg.native_tools {
            registry.openai_schemas_of(cfg.prompt_set.tools(self.phase))
        } else {
            Vec::new()
        };
        let grammar = self.grammar(cfg);
        // A cap below the grammar's longest string would cut a valid call into invalid JSON;
        // the grammar bounds the output anyway.
        let max_tokens = match &grammar {
            Some(g) => cfg.max_tokens_per_turn.max(g.max_len()),
            None => cfg.max_tokens_per_turn,
        };
        Some(ChatRequest {
            messages: self.messages.clone(),
            tools,
            params: SamplingParams {
                temperature: cfg.temperature,
                top_p: cfg.top_p,
                max_tokens,
                stop: cfg.prompt_set.stop_strings(),
                // Each turn samples with its own stream, derived from the episode's seed.
                seed: self.seed.wrapping_mul(1_000_003).wrapping_add(self.turn),
                grammar,
            },
        })
    }

    /// Digests one model reply, decoded under `grammar` (the one [`Episode::request`] gave):
    /// runs its tool calls, moves through the phases, and ends the episode when the final
    /// answer is printed or the budget is spent.
    pub fn observe(
        &mut self,
        cfg: &ActorConfig,
        registry: &ToolRegistry,
        env: &ToolEnv<'_>,
        grammar: Option<thinkfl_llm::grammar::Grammar>,
        resp: ChatResponse,
        model_ms: f64,
    ) {
        if self.done {
            return;
        }
        // Kept so that training can tell the model's choices from the bytes it forced.
        self.grammars.push(grammar);
        self.turn += 1;
        self.traj.timings.model_ms += model_ms;
        self.traj.tokens.prompt += resp.prompt_tokens as u64;
        self.traj.tokens.completion += resp.completion_tokens as u64;
        self.traj.tokens.cached += resp.cached_prompt_tokens as u64;

        let mut assistant = Message::assistant(resp.text.clone());
        assistant.tool_calls = resp.tool_calls.clone();
        self.messages.push(assistant);

        let parsed: Vec<ParsedCall> = if resp.tool_calls.is_empty() {
            parse_tool_calls(&resp.text)
        } else {
            resp.tool_calls
                .iter()
                .map(|c| ParsedCall {
                    raw: serde_json::to_string(c).unwrap_or_default(),
                    call: Ok(c.clone()),
                })
                .collect()
        };
        let set = cfg.prompt_set;
        let phase = self.phase;
        let allowed = set.tools(phase);

        if parsed.is_empty() {
            self.traj.calls.push(CallRecord {
                call: None,
                raw: thinkfl_llm::prefix_at_most(&resp.text, 400).to_string(),
                valid: false,
                error: Some("no tool call".into()),
            });
            self.messages.push(Message::user(set.no_call(phase)));
        }

        let mut printed: Option<Vec<RootCause>> = None;
        let mut tool_results = 0;
        for (i, p) in parsed.into_iter().enumerate() {
            let t0 = Instant::now();
            if i >= cfg.max_calls_per_turn {
                let error = format!(
                    "Error: at most {} tool calls per reply; this one was not run.",
                    cfg.max_calls_per_turn
                );
                self.record_error(p.call.ok(), p.raw, error, "tool");
                continue;
            }
            let call = match p.call {
                Ok(c) => c,
                Err(e) => {
                    let error = format!("Error: could not read the tool call: {}", e.message);
                    self.record_error(None, p.raw, error, "tool");
                    continue;
                }
            };
            let name = call.name.trim().to_string();
            if !allowed.contains(&name.as_str()) {
                let error = if registry.get(&name).is_some() {
                    format!(
                        "Error: {name} is not available now. Available tools: {}.",
                        allowed.join(", ")
                    )
                } else {
                    format!(
                        "Error: unknown tool {name:?}. Available tools: {}.",
                        allowed.join(", ")
                    )
                };
                self.record_error(Some(call), p.raw, error, &name);
                continue;
            }
            if name == "print_results" {
                match PrintResults::parse(&call.arguments) {
                    Ok(list) => {
                        let text = format!("Recorded {} root causes.", list.len());
                        self.traj.calls.push(CallRecord {
                            call: Some(call),
                            raw: p.raw,
                            valid: true,
                            error: None,
                        });
                        self.messages.push(Message::tool("print_results", text));
                        printed = Some(list);
                    }
                    Err(e) => self.record_error(Some(call), p.raw, e.to_string(), "print_results"),
                }
                self.traj.timings.tool_ms += t0.elapsed().as_secs_f64() * 1e3;
                // Anything after the answer in the same reply is moot.
                break;
            }
            match registry.call(env, &name, &call.arguments) {
                Ok(out) => {
                    for c in &out.touched {
                        self.traj.touch(c);
                    }
                    if name == "search_traces" {
                        if let Some(id) = parent_span_arg(&call.arguments)
                            && !self.queried_spans.contains(&id)
                        {
                            self.queried_spans.push(id);
                        }
                        for id in span_ids_in(&out.text, env.store) {
                            if !self.known_spans.contains(&id) {
                                self.known_spans.push(id);
                            }
                        }
                    }
                    self.traj.calls.push(CallRecord {
                        call: Some(call),
                        raw: p.raw,
                        valid: true,
                        error: None,
                    });
                    self.messages.push(Message::tool(name, out.text));
                    tool_results += 1;
                }
                Err(e) => self.record_error(Some(call), p.raw, e.to_string(), &name),
            }
            self.traj.timings.tool_ms += t0.elapsed().as_secs_f64() * 1e3;
        }
        if tool_results > 0
            && printed.is_none()
            && let Some(prompt) = set.after_tool(phase)
        {
            self.messages.push(Message::user(prompt));
        }

        if let Some(list) = printed {
            self.last_answer = Some(list);
            match phase {
                Phase::InitialThink => self.enter(Phase::Rethink, cfg),
                Phase::Rethink => self.enter(Phase::FinalReview, cfg),
                Phase::FinalReview => return self.end(),
            }
            return;
        }
        match phase {
            // One chance in the final review; without a valid print the last answer stands.
            Phase::FinalReview => self.end(),
            _ => {
                self.rounds += 1;
                if self.rounds >= cfg.d_max {
                    self.traj.forced_final = true;
                    self.enter(Phase::FinalReview, cfg);
                }
            }
        }
    }

    /// The tool calls so far, valid or not, in order (a served episode reports whether a
    /// reply's calls ran).
    pub fn calls(&self) -> &[CallRecord] {
        &self.traj.calls
    }

    /// Span ids the episode has passed to `search_traces`, in order.
    pub fn queried_spans(&self) -> &[String] {
        &self.queried_spans
    }

    fn record_error(&mut self, call: Option<ToolCall>, raw: String, error: String, tool: &str) {
        self.messages.push(Message::tool(tool, error.clone()));
        self.traj.calls.push(CallRecord {
            call,
            raw,
            valid: false,
            error: Some(error),
        });
    }

    fn enter(&mut self, phase: Phase, cfg: &ActorConfig) {
        self.phase = phase;
        self.messages
            .push(Message::user(cfg.prompt_set.phase_prompt(phase)));
    }

    fn end(&mut self) {
        self.done = true;
        self.phase = Phase::FinalReview;
    }

    /// The finished trajectory and the grammar of each of its assistant messages, in order.
    pub fn finish_recorded(mut self) -> (Trajectory, Vec<Option<thinkfl_llm::grammar::Grammar>>) {
        let grammars = std::mem::take(&mut self.grammars);
        (self.finish(), grammars)
    }

    /// The finished trajectory: messages, calls, path, final answer, tokens, timings.
    pub fn finish(mut self) -> Trajectory {
        self.traj.prediction = self.last_answer.take();
        self.traj.messages = self.messages;
        self.traj.timings.total_ms = self.traj.timings.model_ms + self.traj.timings.tool_ms;
        self.traj
    }
}

/// The span id a `search_traces` call asked for (arguments as an object or a JSON string).
fn parent_span_arg(args: &serde_json::Value) -> Option<String> {
    let obj = match args {
        serde_json::Value::String(s) => serde_json::from_str(s).ok()?,
        other => other.clone(),
    };
    obj.get("parent_span_id")?
        .as_str()
        .map(|s| s.trim().to_string())
}
