//! The actor end to end on the real AIOps 2022 sample, with the scripted expert and with
//! scripted misbehaving models.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use thinkfl_agent::expert::ExpertConfig;
use thinkfl_agent::{Actor, ActorConfig, ExpertPolicy, Phase, PromptSet};
use thinkfl_core::{Level, service_of};
use thinkfl_llm::{ChatModel, ChatRequest, ChatResponse, StopReason};
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_tools::{AnomalyConfig, Query, case_queries};

fn sample() -> Arc<TelemetryStore> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/aiops2022-sample");
    let (store, _) = TelemetryStore::load(&dir, &LoadOptions::default()).expect("sample loads");
    Arc::new(store)
}

fn entry_query(store: &TelemetryStore) -> Query {
    let root = store.roots().next().expect("a root span");
    Query {
        case: 0,
        trace_id: root.trace_id().into(),
        span_id: root.span_id().into(),
        timestamp_ms: root.timestamp(),
        cmdb_id: root.cmdb_id().into(),
        operation_name: root.operation_name().into(),
    }
}

/// A model that replies from a script, repeating the last line when it runs out.
struct Scripted {
    lines: Vec<String>,
    next: Mutex<usize>,
    seen: Mutex<Vec<ChatRequest>>,
}

impl Scripted {
    fn new(lines: &[&str]) -> Self {
        Self {
            lines: lines.iter().map(|s| s.to_string()).collect(),
            next: Mutex::new(0),
            seen: Mutex::new(Vec::new()),
        }
    }
}

impl ChatModel for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn chat(&self, request: &ChatRequest) -> thinkfl_llm::Result<ChatResponse> {
        self.seen.lock().unwrap().push(request.clone());
        let mut n = self.next.lock().unwrap();
        let text = self.lines[(*n).min(self.lines.len() - 1)].clone();
        *n += 1;
        Ok(ChatResponse {
            text,
            tool_calls: vec![],
            stop: StopReason::EndOfTurn,
            prompt_tokens: 10,
            cached_prompt_tokens: 0,
            completion_tokens: 5,
            logprobs: None,
            token_ids: None,
        })
    }
}

#[test]
fn expert_finds_recommendationservice_on_the_real_sample() {
    let store = sample();
    let q = entry_query(&store);
    assert_eq!(q.span_id, "d1b3f238e544e3f0");
    let actor = Actor::new(
        ExpertPolicy::new(store.clone(), ExpertConfig::default()),
        ActorConfig::default(),
    )
    .unwrap();
    let t = actor.run(&store, &q).unwrap();
    let pred = t.prediction.clone().expect("the expert prints an answer");
    let top3: Vec<&str> = pred
        .iter()
        .take(3)
        .filter_map(|r| r.service_or_pod_service())
        .collect();
    assert!(top3.contains(&"recommendationservice"), "top 3: {top3:?}");
    // It walked the real tree down to recommendationservice-1's slow ListProducts call.
    assert!(
        t.path.iter().any(|p| p == "recommendationservice-1"),
        "path {:?}",
        t.path
    );
    assert!(t.calls.iter().all(|c| c.valid), "{:?}", t.calls);
    assert!(!t.forced_final);
    // Three phases: two answers before the final one.
    let prints = t
        .calls
        .iter()
        .filter(|c| c.call.as_ref().is_some_and(|c| c.name == "print_results"))
        .count();
    assert_eq!(prints, 3);
    // Strictly at the service level the first item matches the ground truth.
    assert_eq!(pred[0].at(Level::Service), Some("recommendationservice"));
    assert_eq!(
        service_of(pred[0].pod.as_deref().unwrap()),
        "recommendationservice"
    );
}

#[test]
fn hindsight_ranks_the_truth_first_only_where_the_episode_showed_it() {
    let store = sample();
    let q = entry_query(&store);
    let run = |truth: Option<thinkfl_core::FaultCase>| {
        let mut expert = ExpertPolicy::new(store.clone(), ExpertConfig::default());
        if let Some(t) = truth {
            expert = expert.with_hindsight([(q.span_id.clone(), t)]);
        }
        Actor::new(expert, ActorConfig::default())
            .unwrap()
            .run(&store, &q)
            .unwrap()
    };
    let plain = run(None);
    let pred = plain.prediction.clone().unwrap();
    assert!(pred.len() >= 2, "{pred:?}");
    let second = pred[1].pod.clone().unwrap();
    let fault = |cmdb_id: &str, level| thinkfl_core::FaultCase {
        timestamp: q.timestamp_ms / 1000,
        level,
        cmdb_id: cmdb_id.into(),
        failure_type: "k8s容器cpu负载".into(),
        duration: None,
    };
    // The expert's second pod as the truth: it moves to the front, and the top suspect's
    // metrics check follows it; the descent is the expert's own.
    let hs = run(Some(fault(&second, Level::Pod)));
    let hpred = hs.prediction.clone().unwrap();
    assert_eq!(hpred[0].pod.as_deref(), Some(second.as_str()));
    assert!(
        hpred
            .iter()
            .skip(1)
            .all(|r| r.pod.as_deref() != Some(second.as_str()))
    );
    let calls = |t: &thinkfl_core::Trajectory, name: &str| -> Vec<String> {
        t.calls
            .iter()
            .filter_map(|c| c.call.as_ref())
            .filter(|c| c.name == name)
            .map(|c| c.arguments.to_string())
            .collect()
    };
    assert_eq!(calls(&hs, "search_traces"), calls(&plain, "search_traces"));
    let metrics = calls(&hs, "search_fluctuating_metrics");
    assert!(metrics.iter().any(|a| a.contains(&second)), "{metrics:?}");
    // A truth the episode never showed changes nothing; so does a truth of another question.
    let unseen = run(Some(fault("node-99", Level::Node)));
    assert_eq!(unseen.prediction, plain.prediction);
    let other = ExpertPolicy::new(store.clone(), ExpertConfig::default())
        .with_hindsight([("0000000000000000".to_string(), fault(&second, Level::Pod))]);
    let t = Actor::new(other, ActorConfig::default())
        .unwrap()
        .run(&store, &q)
        .unwrap();
    assert_eq!(t.prediction, plain.prediction);
}

#[test]
fn queries_of_the_sample_case_start_at_its_entry_span() {
    let store = sample();
    let qs = case_queries(&store, 0, &AnomalyConfig::default());
    assert!(qs.iter().any(|q| q.span_id == "d1b3f238e544e3f0"), "{qs:?}");
}

#[test]
fn malformed_output_ends_in_a_recorded_episode_within_d_max() {
    let store = sample();
    let q = entry_query(&store);
    let long = "ha".repeat(5000);
    let scripts: Vec<Vec<&str>> = vec![
        vec!["I think it is the cart."],
        vec![
            "<tool_call>{\"name\": \"search_traces\", \"arguments\": {\"parent_span_id\": </tool_call>",
        ],
        vec!["<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>"],
        vec!["<tool_call>{\"name\": \"search_traces\", \"arguments\": {\"span\": 1}}</tool_call>"],
        vec![
            "<tool_call>{\"name\": \"search_traces\", \"arguments\": {\"parent_span_id\": \"nope\"}}</tool_call>",
        ],
        vec![
            "<tool_call>{\"name\": \"search_traces\", \"arguments\": {\"parent_span_id\": \"d1b3f238e544e3f0\"}}</tool_call>",
        ],
        vec![
            "<tool_call>{\"name\": \"print_results\", \"arguments\": {\"root_causes\": []}}</tool_call>",
        ],
        vec![&long],
    ];
    for script in scripts {
        let model = Scripted::new(&script);
        let cfg = ActorConfig {
            d_max: 4,
            ..ActorConfig::default()
        };
        let actor = Actor::new(model, cfg).unwrap();
        let t = actor.run(&store, &q).unwrap();
        assert!(t.prediction.is_none(), "{script:?}");
        assert!(t.forced_final, "{script:?}");
        // d_max rounds plus the final review.
        assert_eq!(
            t.messages
                .iter()
                .filter(|m| m.role == thinkfl_core::Role::Assistant)
                .count(),
            5,
            "{script:?}"
        );
        assert!(t.calls.iter().any(|c| !c.valid), "{script:?}");
        assert_eq!(actor.model().seen.lock().unwrap().len(), 5);
    }
}

#[test]
fn a_valid_print_moves_through_the_phases() {
    let store = sample();
    let q = entry_query(&store);
    let print = "<tool_call>{\"name\": \"print_results\", \"arguments\": {\"root_causes\": [{\"service\": \"recommendationservice\"}]}}</tool_call>";
    let model = Scripted::new(&[
        "<tool_call>{\"name\": \"search_traces\", \"arguments\": \"{\\\"parent_span_id\\\": \\\"d1b3f238e544e3f0\\\"}\"}</tool_call>",
        print,
        "<tool_call>{\"name\": \"search_fluctuating_metrics\", \"arguments\": {\"service_name\": \"recommendationservice\", \"timestamp\": 1647747340}}</tool_call>",
        print,
        print,
    ]);
    let actor = Actor::new(model, ActorConfig::default()).unwrap();
    let t = actor.run(&store, &q).unwrap();
    assert_eq!(
        t.prediction.as_ref().unwrap()[0].service.as_deref(),
        Some("recommendationservice")
    );
    assert!(t.calls.iter().all(|c| c.valid), "{:#?}", t.calls);
    assert_eq!(
        t.path.first().map(String::as_str),
        Some("frontend-2"),
        "{:?}",
        t.path
    );
    assert!(
        t.path.iter().any(|p| p == "recommendationservice"),
        "{:?}",
        t.path
    );
    assert_eq!(t.calls.len(), 5);
    let seen = actor.model().seen.lock().unwrap();
    // The rethink and final prompts were sent after the first and second answers.
    let last_user = |r: &ChatRequest| {
        r.messages
            .iter()
            .rev()
            .find(|m| m.role == thinkfl_core::Role::User)
            .unwrap()
            .content
            .clone()
    };
    assert_eq!(
        last_user(&seen[2]),
        PromptSet::Ours.phase_prompt(Phase::Rethink)
    );
    assert_eq!(
        last_user(&seen[4]),
        PromptSet::Ours.phase_prompt(Phase::FinalReview)
    );
}

#[test]
fn thinkfl_prompt_set_restricts_tools_per_phase() {
    let store = sample();
    let q = entry_query(&store);
    let model = Scripted::new(&[
        "<tool_call>{'name': 'x'}<tool_call>",
        "<tool_call>{\"name\": \"search_fluctuating_metrics\", \"arguments\": {\"service_name\": \"frontend\", \"timestamp\": \"1647747340693\"}}<tool_call>",
    ]);
    let cfg = ActorConfig {
        d_max: 2,
        ..ActorConfig::thinkfl_compatible()
    };
    let actor = Actor::new(model, cfg).unwrap();
    let t = actor.run(&store, &q).unwrap();
    assert!(
        t.calls[1]
            .error
            .as_deref()
            .unwrap()
            .contains("not available now"),
        "{:?}",
        t.calls[1]
    );
    let seen = actor.model().seen.lock().unwrap();
    assert!(
        seen[0].messages[0]
            .content
            .contains("\"name\":\"search_traces\"")
    );
    assert!(seen[0].messages[1].content.contains("d1b3f238e544e3f0"));
}

/// Passes requests to a model and keeps each request with its reply.
struct Recording<M> {
    inner: M,
    seen: Mutex<Vec<(ChatRequest, ChatResponse)>>,
}

impl<M: ChatModel> ChatModel for Recording<M> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn chat(&self, request: &ChatRequest) -> thinkfl_llm::Result<ChatResponse> {
        let r = self.inner.chat(request)?;
        self.seen.lock().unwrap().push((request.clone(), r.clone()));
        Ok(r)
    }
}

/// Under the default constraints every turn carries a grammar, the expert's own calls (the
/// format the default model was primed on) are strings of it, and the slips of a small model
/// are not: the question's timestamp as a span id, a span queried twice, a repeated key.
#[test]
fn constrained_turns_admit_the_experts_calls_and_nothing_broken() {
    let store = sample();
    let q = entry_query(&store);
    let model = Recording {
        inner: ExpertPolicy::new(store.clone(), ExpertConfig::default()),
        seen: Mutex::new(Vec::new()),
    };
    let actor = Actor::new(model, ActorConfig::default()).unwrap();
    let t = actor.run(&store, &q).unwrap();
    assert!(t.calls.iter().all(|c| c.valid), "{:?}", t.calls);
    let seen = actor.model().seen.lock().unwrap();
    assert_eq!(
        seen.len(),
        9,
        "the global view, 4 descents, a print, a metrics call, a print, the final print"
    );
    for (req, resp) in seen.iter() {
        let g = req
            .params
            .grammar
            .as_ref()
            .expect("a grammar on every turn");
        assert!(g.compile().unwrap().accepts(&resp.text), "{}", resp.text);
        // Room for the longest call the grammar admits.
        assert!(req.params.max_tokens >= g.max_len());
    }
    let nfa_of = |turn: usize| {
        let g = seen[turn].0.params.grammar.as_ref().expect("a grammar");
        g.compile().unwrap()
    };
    let first = nfa_of(0);
    let call = |id: &str| {
        format!(
            r#"<tool_call>{{"name": "search_traces", "arguments": {{"parent_span_id":"{id}"}}}}</tool_call>"#
        )
    };
    let ts = (q.timestamp_ms / 1000).to_string();
    // The first turn is the global view, nothing else.
    assert!(!first.accepts(&call("d1b3f238e544e3f0")));
    assert!(!first.accepts(&call(&ts)));
    // The global view at the question's time, and at no other (no digits to invent).
    let global = |t: &str| {
        format!(
            r#"<tool_call>{{"name": "search_anomalous_components", "arguments": {{"timestamp":{t}}}}}</tool_call>"#
        )
    };
    assert!(first.accepts(&global(&ts)));
    assert!(!first.accepts(&global("1647000000")));
    // Once taken, it is not offered again; the descent after it may go down to a child of the
    // entry span, not back to it.
    let second = nfa_of(1);
    assert!(second.accepts(&call("d1b3f238e544e3f0")));
    assert!(!second.accepts(&call(&ts)));
    let third = nfa_of(2);
    assert!(!third.accepts(&global(&ts)));
    assert!(!third.accepts(&call("d1b3f238e544e3f0")));
    assert!(third.accepts(&call("a21065d052ec52ab")));
    let last = nfa_of(8);
    let print = |items: &str| {
        format!(
            r#"<tool_call>{{"name": "print_results", "arguments": {{"root_causes":[{items}]}}}}</tool_call>"#
        )
    };
    let item =
        r#"{"pod":"recommendationservice-1","service":"recommendationservice","reason":"slow"}"#;
    // The final review ranks as many touched pods as it can, up to three.
    assert!(!last.accepts(&print(item)));
    let three = format!(
        "{item},{},{}",
        r#"{"pod":"frontend-1","service":"frontend","reason":"x"}"#,
        r#"{"pod":"productcatalogservice-1","service":"productcatalogservice","reason":"y"}"#
    );
    assert!(last.accepts(&print(&three)), "{three}");
    // No pod twice: a repeat would waste a rank.
    assert!(!last.accepts(&print(&format!("{item},{item},{item}"))));
    // An intermediate answer may name one.
    let mid = nfa_of(5);
    assert!(mid.accepts(&print(item)));
    assert!(!mid.accepts(&print(&format!("{item},{item}"))));
    // The service is a fact of the pod: another one is not admitted.
    assert!(!last.accepts(&print(
        r#"{"pod":"recommendationservice-1","service":"frontend","reason":"slow"}"#
    )));
    assert!(!last.accepts(&print(
        r#"{"pod":"frontend-2","pod":"frontend-2","service":"frontend","reason":"x"}"#
    )));
    assert!(!last.accepts(&print(
        r#"{"pod":"no-such-pod","service":"frontend","reason":"x"}"#
    )));
    // Only print_results in the final review.
    assert!(!last.accepts(&call("a21065d052ec52ab")));
}

#[test]
fn constraints_can_be_turned_off_or_limited_to_the_final_print() {
    let store = sample();
    let q = entry_query(&store);
    for (mode, expect) in [("off", 0), ("final", 1)] {
        let model = Recording {
            inner: ExpertPolicy::new(store.clone(), ExpertConfig::default()),
            seen: Mutex::new(Vec::new()),
        };
        let cfg = ActorConfig {
            constrain: mode.parse().unwrap(),
            ..ActorConfig::default()
        };
        let actor = Actor::new(model, cfg).unwrap();
        actor.run(&store, &q).unwrap();
        let seen = actor.model().seen.lock().unwrap();
        let with = seen
            .iter()
            .filter(|(r, _)| r.params.grammar.is_some())
            .count();
        assert_eq!(with, expect, "{mode}");
    }
    assert!("sometimes".parse::<thinkfl_agent::Constrain>().is_err());
}
