//! Constrained decoding of the actor's turns: a grammar per turn that admits exactly the tool
//! calls that make sense now, written the way the expert writes them.
//!
//! A 135M model that has learned the protocol still slips on its details: it passes the
//! question's timestamp as a span id, queries the same span again and again, or repeats a key of
//! its final list until the turn's tokens run out. Masking the tokens that cannot continue a
//! valid call removes those slips without choosing for the model: which tool, which span, which
//! component and in what order stay the model's own highest-scoring choices. The admissible
//! calls are
//!
//! * `search_traces` on a span the episode has seen (the question's entry span, or a row of an
//!   earlier result) and not queried yet;
//! * `search_fluctuating_metrics` / `search_logs` on a node, service or pod of the data, with a
//!   timestamp of digits;
//! * `print_results` with one to [`MAX_ITEMS`] items naming components of the data, with a short
//!   reason.
//!
//! Only our prompt set has one call format to constrain to; the released ThinkFL checkpoints
//! write free text around their calls, so the paper's prompt set is never constrained.

use std::fmt;
use std::str::FromStr;
use thinkfl_llm::grammar::{CharClass, Grammar};
use thinkfl_store::TelemetryStore;

/// Items a constrained `print_results` may list (the expert lists at most three).
pub const MAX_ITEMS: usize = 3;
/// Characters a constrained reason may have: enough for the expert's longest reasons
/// ("deepest slow span, 13330 ms; 0 metrics off on pod, 0 on node").
pub const MAX_REASON_CHARS: usize = 80;

/// Which turns are decoded under a grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Constrain {
    /// None: the model writes freely, and bad calls come back as tool errors.
    Off,
    /// Only the final review's `print_results`.
    Final,
    /// Every turn.
    #[default]
    Calls,
}

impl FromStr for Constrain {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => Ok(Constrain::Off),
            "final" => Ok(Constrain::Final),
            "calls" | "all" => Ok(Constrain::Calls),
            _ => Err(crate::Error::Config {
                field: "constrain",
                msg: format!("unknown constraint mode {s:?} (off|final|calls)"),
            }),
        }
    }
}

impl fmt::Display for Constrain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Constrain::Off => "off",
            Constrain::Final => "final",
            Constrain::Calls => "calls",
        })
    }
}

/// The component names of a data set, by level, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Components {
    pub nodes: Vec<String>,
    pub services: Vec<String>,
    pub pods: Vec<String>,
}

impl Components {
    pub fn of(store: &TelemetryStore) -> Self {
        let topo = store.topology();
        let mut c = Components {
            nodes: topo.nodes.clone(),
            services: topo.services.iter().map(|s| s.name.clone()).collect(),
            pods: topo
                .services
                .iter()
                .flat_map(|s| s.pods.iter().cloned())
                .collect(),
        };
        // A span's cmdb_id the topology does not list (a service that runs without replica
        // suffixes) is what the expert names as the pod.
        for id in store.span_components() {
            if !c.all().any(|n| n == id) {
                c.pods.push(id.to_string());
            }
        }
        for v in [&mut c.nodes, &mut c.services, &mut c.pods] {
            // Names that would need escaping inside a JSON string cannot be spelled by the
            // grammar's literal; no real component name has them.
            v.retain(|n| !n.is_empty() && n.bytes().all(|b| b != b'"' && b != b'\\' && b >= b' '));
            v.sort();
            v.dedup();
        }
        c
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        self.nodes.iter().chain(&self.services).chain(&self.pods)
    }
}

/// The grammar of one turn: a single `<tool_call>` naming one of `tools`, or `None` when no
/// call is admissible (then the turn is left free).
pub fn turn_grammar(
    tools: &[&str],
    components: &Components,
    unqueried_spans: &[String],
) -> Option<Grammar> {
    let json_enum = |names: &[String]| (!names.is_empty()).then(|| Grammar::json_enum(names));
    let close = || Grammar::lit("}}</tool_call>");
    let mut calls = Vec::new();
    for &tool in tools {
        let head = Grammar::lit(format!("{tool}\", \"arguments\": {{"));
        let call = match tool {
            "search_traces" => json_enum(unqueried_spans).map(|spans| {
                Grammar::seq([head, Grammar::lit("\"parent_span_id\":"), spans, close()])
            }),
            "search_fluctuating_metrics" | "search_logs" => {
                let names: Vec<String> = components.all().cloned().collect();
                json_enum(&names).map(|names| {
                    Grammar::seq([
                        head,
                        Grammar::lit("\"service_name\":"),
                        names,
                        Grammar::lit(",\"timestamp\":"),
                        Grammar::chars(CharClass::Digit, 1, 13),
                        close(),
                    ])
                })
            }
            "print_results" => print_item(components).map(|item| {
                Grammar::seq([
                    head,
                    Grammar::lit("\"root_causes\":["),
                    Grammar::separated(item, ",", 1, MAX_ITEMS),
                    Grammar::lit("]"),
                    close(),
                ])
            }),
            _ => None,
        };
        calls.extend(call);
    }
    (!calls.is_empty()).then(|| {
        Grammar::seq([
            Grammar::lit("<tool_call>{\"name\": \""),
            Grammar::choice(calls),
        ])
    })
}

/// One root cause as the expert writes it (keys sorted, as serde_json writes them): an
/// optional node, the pod, the reason, the service.
fn print_item(c: &Components) -> Option<Grammar> {
    if c.pods.is_empty() || c.services.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    parts.push(Grammar::lit("{"));
    if !c.nodes.is_empty() {
        parts.push(Grammar::opt(Grammar::seq([
            Grammar::lit("\"node\":"),
            Grammar::json_enum(&c.nodes),
            Grammar::lit(","),
        ])));
    }
    parts.extend([
        Grammar::lit("\"pod\":"),
        Grammar::json_enum(&c.pods),
        Grammar::lit(",\"reason\":"),
        Grammar::json_string(1, MAX_REASON_CHARS),
        Grammar::lit(",\"service\":"),
        Grammar::json_enum(&c.services),
        Grammar::lit("}"),
    ]);
    Some(Grammar::seq(parts))
}

/// Span ids written in `text` that are spans of the data: the rows of a `search_traces` result,
/// or the question's entry span.
pub fn span_ids_in(text: &str, store: &TelemetryStore) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_') {
        if word.len() >= 8 && store.span_by_id(word).is_some() && !out.iter().any(|o| o == word) {
            out.push(word.to_string());
        }
    }
    out
}
