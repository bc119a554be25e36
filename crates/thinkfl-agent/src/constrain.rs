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
    /// Node names.
    pub nodes: Vec<String>,
    /// Service names.
    pub services: Vec<String>,
    /// Pod names.
    pub pods: Vec<String>,
    /// The node hosting each pod, where the data says.
    pub node_of: std::collections::BTreeMap<String, String>,
}

impl Components {
    /// The components of the store's topology, and the pod-to-node placement.
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
            node_of: Default::default(),
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
        for p in &c.pods {
            if let Some(n) = topo.node_of(p).filter(|n| c.nodes.iter().any(|x| x == n)) {
                c.node_of.insert(p.clone(), n.to_string());
            }
        }
        c
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        self.nodes.iter().chain(&self.services).chain(&self.pods)
    }
}

/// What an episode knows at a turn, beyond the data's components.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TurnFacts {
    /// Span ids seen and not yet passed to `search_traces`.
    pub unqueried_spans: Vec<String>,
    /// The question's time (s): every timestamp argument is this one, so a model never has to
    /// copy (or invent) digits.
    pub question_ts: Option<i64>,
    /// Whether `search_anomalous_components` was called already (it answers the same twice).
    pub global_done: bool,
    /// Components the episode touched (its reasoning path). A final list names touched pods:
    /// what the episode found, not any of the data's components.
    pub touched: Vec<String>,
    /// The final review: its list is the graded, ranked answer, so it names as many pods as
    /// the episode touched, up to [`MAX_ITEMS`] (a primed model otherwise copies the
    /// one-item intermediate answers and its second and third candidates are never ranked).
    pub final_review: bool,
}

/// The grammar of one turn: a single `<tool_call>` naming one of `tools`, or `None` when no
/// call is admissible (then the turn is left free).
pub fn turn_grammar(tools: &[&str], components: &Components, facts: &TurnFacts) -> Option<Grammar> {
    let json_enum = |names: &[String]| (!names.is_empty()).then(|| Grammar::json_enum(names));
    let close = || Grammar::lit("}}</tool_call>");
    let timestamp = || match facts.question_ts {
        Some(t) => Grammar::lit(t.to_string()),
        None => Grammar::chars(CharClass::Digit, 1, 13),
    };
    let unqueried_spans = &facts.unqueried_spans;
    let mut calls = Vec::new();
    for &tool in tools {
        let head = Grammar::lit(format!("{tool}\", \"arguments\": {{"));
        let call = match tool {
            "search_anomalous_components" => (!facts.global_done).then(|| {
                Grammar::seq([head, Grammar::lit("\"timestamp\":"), timestamp(), close()])
            }),
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
                        timestamp(),
                        close(),
                    ])
                })
            }
            "print_results" => print_items(components, &facts.touched).map(|items| {
                let min = if facts.final_review {
                    items.len().min(MAX_ITEMS)
                } else {
                    1
                };
                Grammar::seq([
                    head,
                    Grammar::lit("\"root_causes\":["),
                    if items.len() <= MAX_DISTINCT_PODS {
                        distinct_list(&items, min, MAX_ITEMS)
                    } else {
                        Grammar::separated(Grammar::choice(items), ",", min, MAX_ITEMS)
                    },
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

/// Most pods whose list is kept free of repeats. Distinct items are spelled out as a tree (every
/// first item, then every other second item, ...), `n * (n-1) * (n-2)` branches of about 150
/// automaton states each; past this many pods a list may repeat one (rare: an episode touches
/// 5 to 8).
pub const MAX_DISTINCT_PODS: usize = 12;

/// One root cause per admissible pod, as the expert writes it: the pod, then its node and
/// service, which are facts of the data and so forced by the grammar once the pod is chosen, then
/// a short reason. The pods are those the episode touched (all of the data's when it touched
/// none).
fn print_items(c: &Components, touched: &[String]) -> Option<Vec<Grammar>> {
    let mut pods: Vec<&String> = touched
        .iter()
        .filter(|t| c.pods.binary_search(t).is_ok())
        .collect();
    if pods.is_empty() {
        pods = c.pods.iter().collect();
    }
    if pods.is_empty() {
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    pods.retain(|p| seen.insert(p.as_str()));
    let q = |s: &str| serde_json::Value::from(s).to_string();
    Some(
        pods.iter()
            .map(|p| {
                let mut head = format!("{{\"pod\":{}", q(p));
                if let Some(n) = c.node_of.get(p.as_str()) {
                    head.push_str(&format!(",\"node\":{}", q(n)));
                }
                head.push_str(&format!(",\"service\":{}", q(thinkfl_core::service_of(p))));
                head.push_str(",\"reason\":");
                Grammar::seq([
                    Grammar::lit(head),
                    Grammar::json_string(1, MAX_REASON_CHARS),
                    Grammar::lit("}"),
                ])
            })
            .collect(),
    )
}

/// Between `min` and `max` of `items`, comma-separated, none twice: a ranked list that names
/// one pod twice wastes a rank (a primed model repeated its top pod three times on the
/// Train-Ticket held-out set, so its second and third candidates were never ranked).
fn distinct_list(items: &[Grammar], min: usize, max: usize) -> Grammar {
    fn rest(items: &[Grammar], used: &mut Vec<usize>, min: usize, max: usize) -> Grammar {
        let free: Vec<usize> = (0..items.len()).filter(|i| !used.contains(i)).collect();
        let options: Vec<Grammar> = free
            .into_iter()
            .map(|i| {
                used.push(i);
                let more = used.len() < max && used.len() < items.len();
                let g = if more {
                    let tail = Grammar::seq([Grammar::lit(","), rest(items, used, min, max)]);
                    let tail = if used.len() >= min {
                        Grammar::opt(tail)
                    } else {
                        tail
                    };
                    Grammar::seq([items[i].clone(), tail])
                } else {
                    items[i].clone()
                };
                used.pop();
                g
            })
            .collect();
        Grammar::choice(options)
    }
    rest(items, &mut Vec::new(), min.max(1), max.max(1))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree of distinct lists against the plain definition: every sequence of the items
    /// with a length in `[min, max]` and no item twice, over every such sequence and more.
    #[test]
    fn distinct_list_admits_exactly_the_lists_without_repeats() {
        let names = ["a", "bb", "c", "dd"];
        let items: Vec<Grammar> = names.iter().map(|n| Grammar::lit(*n)).collect();
        for (min, max) in [(1, 3), (2, 3), (3, 3), (1, 1), (1, 4), (4, 4)] {
            let nfa = distinct_list(&items, min, max).compile().unwrap();
            // Every sequence of up to five picks (repeats included).
            let mut seqs: Vec<Vec<usize>> = vec![vec![]];
            for _ in 0..5 {
                let next: Vec<Vec<usize>> = seqs
                    .iter()
                    .filter(|s| s.len() < 5)
                    .flat_map(|s| {
                        (0..names.len()).map(move |i| {
                            let mut t = s.clone();
                            t.push(i);
                            t
                        })
                    })
                    .collect();
                seqs.extend(next);
                seqs.sort();
                seqs.dedup();
            }
            for s in &seqs {
                let text = s.iter().map(|&i| names[i]).collect::<Vec<_>>().join(",");
                let mut seen = std::collections::HashSet::new();
                let distinct = s.iter().all(|i| seen.insert(*i));
                let want = distinct && (min..=max).contains(&s.len());
                assert_eq!(
                    nfa.accepts(&text),
                    want,
                    "{text:?} with min {min}, max {max}"
                );
            }
        }
    }
}
