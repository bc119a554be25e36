//! Harnesses of model text: the tool-call parser, the tools' arguments, and the grammar
//! compiler against its reference matcher.

use crate::seeds::Corpus;
use crate::{Error, Harness, Result, Target, Verdict};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use thinkfl_llm::grammar::{CharClass, Grammar, reference};
use thinkfl_llm::parse::{call_from_value, parse_tool_calls};
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_tools::{OutputMode, ToolEnv, ToolRegistry, ToolsConfig};

const CALL_DICT: &[&str] = &[
    "<tool_call>",
    "</tool_call>",
    "{",
    "}",
    "\"",
    "\\\"",
    ":",
    ",",
    "```",
    "```json\n",
    "Action:",
    "Action Input:",
    "Thought:",
    "\"name\"",
    "\"arguments\"",
    "\"parameters\"",
    "\"args\"",
    "\"function\"",
    "null",
    "[]",
    "search_traces",
    "print_results",
    "\"parent_span_id\"",
    "\"timestamp\"",
    "\"service_name\"",
    "\n",
];

fn call_seeds() -> Vec<Vec<u8>> {
    [
        r#"<tool_call>{"name": "search_traces", "arguments": {"parent_span_id": "d1b3f238e544e3f0"}}</tool_call>"#,
        r#"I look at the slowest child first.
<tool_call>
{"name": "search_logs", "arguments": "{\"service_name\": \"recommendationservice\", \"timestamp\": 1647747340}"}
</tool_call>"#,
        r#"<tool_call>{"name": "search_fluctuating_metrics", "arguments": {"node_id": "node-6", "timestamp": 1647747340}}<tool_call>"#,
        r#"<tool_call>{"name": "search_anomalous_components", "arguments": {"timestamp": 1647747340}}"#,
        r#"<tool_call>{"function": {"name": "search_traces", "parameters": {"parent_span_id": "ed794292138f3a8d"}}}</tool_call><tool_call>{"name": "search_traces", "args": {"parent_span_id": "x"}}</tool_call>"#,
        "<tool_call>```json\n{\"name\": \"search_traces\", \"arguments\": {\"parent_span_id\": \"a\"}}\n```</tool_call>",
        "Thought: the frontend is slow.\nAction: search_traces\nAction Input: {\"parent_span_id\": \"d1b3f238e544e3f0\"}\n",
        r#"<tool_call>{"name": "print_results", "arguments": {"root_causes": [{"pod": "recommendationservice-1", "node": "node-6", "service": "recommendationservice", "reason": "slow"}]}}</tool_call>"#,
        "no call at all, just words",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

struct ToolCallHarness;

impl Harness for ToolCallHarness {
    fn run(&mut self, input: &[u8]) -> Verdict {
        let text = String::from_utf8_lossy(input);
        let calls = parse_tool_calls(&text);
        let mut ok = false;
        for c in &calls {
            match &c.call {
                Ok(_) => ok = true,
                Err(e) if e.message.trim().is_empty() => {
                    return Verdict::Finding(format!("call error without a message: {:?}", c.raw));
                }
                Err(_) => {}
            }
        }
        // The JSON decoder on its own, as the OpenAI client uses it on `tool_calls`.
        if let Ok(v) = serde_json::from_slice::<Value>(input) {
            ok |= call_from_value(v).is_ok();
        }
        if ok {
            Verdict::Accepted
        } else {
            Verdict::Rejected
        }
    }
}

/// The tool-call parser, every dialect.
pub(crate) fn tool_call() -> Target {
    Target::new("tool-call", call_seeds(), CALL_DICT, ToolCallHarness)
}

const ARGS_DICT: &[&str] = &[
    "{",
    "}",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "[]",
    "{}",
    "\"parent_span_id\"",
    "\"timestamp\"",
    "\"service_name\"",
    "\"node_id\"",
    "\"pod_name\"",
    "\"mode\"",
    "\"enriched\"",
    "\"plain\"",
    "\"cloudbed_id\"",
    "\"root_causes\"",
    "\"reason\"",
    "1647747340",
    "1647747340693",
    "-1",
    "1e300",
    "\"2022-03-20 11:35:40\"",
    "\"frontend-2\"",
    "\"node-6\"",
    "\"frontend\"",
    "\"d1b3f238e544e3f0\"",
    "\"\"",
];

/// The tools over the real sample (or the simulated set), in both output modes.
struct ToolArgsHarness {
    store: TelemetryStore,
    registry: ToolRegistry,
}

impl Harness for ToolArgsHarness {
    fn run(&mut self, input: &[u8]) -> Verdict {
        // Line 1 names the tool; the rest is its arguments.
        let split = input
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(input.len());
        let name = String::from_utf8_lossy(&input[..split]);
        let Ok(args) = serde_json::from_slice::<Value>(input.get(split + 1..).unwrap_or(&[]))
        else {
            return Verdict::Rejected;
        };
        let mut any = false;
        for mode in [OutputMode::Plain, OutputMode::Enriched] {
            let cfg = ToolsConfig {
                mode,
                ..ToolsConfig::default()
            };
            let env = ToolEnv::new(&self.store, cfg);
            match self.registry.call(&env, &name, &args) {
                Ok(out) => {
                    any = true;
                    // The cap leaves room for the line that says what was cut.
                    if out.text.len() > env.config.max_output_bytes + 1024 {
                        return Verdict::Finding(format!(
                            "{name}: {} bytes of output, above max_output_bytes",
                            out.text.len()
                        ));
                    }
                }
                Err(e) if e.to_string().trim().is_empty() => {
                    return Verdict::Finding(format!("{name}: tool error without a message"));
                }
                Err(_) => {}
            }
        }
        if any {
            Verdict::Accepted
        } else {
            Verdict::Rejected
        }
    }
}

/// Every tool's arguments.
pub(crate) fn tool_args(corpus: &Corpus) -> Result<Target> {
    let dir = match corpus.sample() {
        Some(s) => s,
        None => corpus.sim_dir()?.to_path_buf(),
    };
    let (store, _) = TelemetryStore::load(&dir, &LoadOptions::default())
        .map_err(|e| Error::setup("tool-args", e))?;
    let registry = ToolRegistry::standard();
    let seeds = [
        "search_traces\n{\"parent_span_id\": \"d1b3f238e544e3f0\"}",
        "search_traces\n{\"parent_span_id\": \"ed794292138f3a8d\"}",
        "search_fluctuating_metrics\n{\"service_name\": \"recommendationservice-1\", \"timestamp\": 1647747340}",
        "search_fluctuating_metrics\n{\"service_name\": \"frontend\", \"timestamp\": 1647747340}",
        "search_fluctuating_metrics\n{\"service_name\": \"frontend-2\", \"timestamp\": 1647747340693}",
        "search_logs\n{\"service_name\": \"recommendationservice\", \"timestamp\": 1647747340}",
        "search_logs\n{\"service_name\": \"currencyservice-0\", \"timestamp\": 1647747298}",
        "search_anomalous_components\n{\"timestamp\": 1647747340}",
        "print_results\n{\"root_causes\": [{\"pod\": \"frontend-2\", \"node\": \"node-6\", \"service\": \"frontend\", \"reason\": \"slow\"}]}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    Ok(Target::new(
        "tool-args",
        seeds,
        ARGS_DICT,
        ToolArgsHarness { store, registry },
    ))
}

/// Grammars in serde's JSON form (what the mutator edits) or, when the input is not such a
/// grammar, decoded straight from its bytes, so that every input reaches the compiler.
struct GrammarHarness;

/// Bound of a decoded grammar's node count, so the reference matcher (backtracking) stays fast.
const DECODED_NODES: usize = 12;

fn decode(bytes: &mut impl Iterator<Item = u8>, budget: &mut usize, depth: usize) -> Grammar {
    let tag = bytes.next().unwrap_or(0);
    *budget = budget.saturating_sub(1);
    let leaf = *budget == 0 || depth > 4;
    match if leaf { tag % 2 } else { tag % 5 } {
        0 => {
            let n = bytes.next().unwrap_or(1) % 4;
            let text: String = (0..n)
                .map(|_| char::from(b'a' + bytes.next().unwrap_or(0) % 3))
                .collect();
            Grammar::lit(text)
        }
        1 => {
            let class = if bytes.next().unwrap_or(0).is_multiple_of(2) {
                CharClass::Digit
            } else {
                CharClass::JsonStringAscii
            };
            let (a, b) = (bytes.next().unwrap_or(0) % 4, bytes.next().unwrap_or(0) % 5);
            Grammar::Chars {
                class,
                min: a as usize,
                max: b as usize,
            }
        }
        2 => {
            let n = bytes.next().unwrap_or(0) % 4;
            Grammar::Choice {
                options: (0..n).map(|_| decode(bytes, budget, depth + 1)).collect(),
            }
        }
        3 => {
            let n = bytes.next().unwrap_or(0) % 4;
            Grammar::Seq {
                items: (0..n).map(|_| decode(bytes, budget, depth + 1)).collect(),
            }
        }
        _ => {
            let (a, b) = (bytes.next().unwrap_or(0) % 3, bytes.next().unwrap_or(0) % 4);
            Grammar::Repeat {
                item: Box::new(decode(bytes, budget, depth + 1)),
                min: a as usize,
                max: b as usize,
            }
        }
    }
}

fn nodes(g: &Grammar) -> usize {
    1 + match g {
        Grammar::Literal { .. } | Grammar::Chars { .. } => 0,
        Grammar::Choice { options } => options.iter().map(nodes).sum(),
        Grammar::Seq { items } => items.iter().map(nodes).sum(),
        Grammar::Repeat { item, .. } => nodes(item),
    }
}

/// Whether the backtracking reference answers quickly: it tries every split of a sequence and
/// every count of a repeat, which is exponential in nested repeats.
fn cheap_for_reference(g: &Grammar, repeats_above: usize) -> bool {
    match g {
        Grammar::Literal { text } => text.len() <= 16,
        Grammar::Chars { max, .. } => *max <= 8,
        Grammar::Choice { options } => options
            .iter()
            .all(|o| cheap_for_reference(o, repeats_above)),
        Grammar::Seq { items } => {
            items.len() <= 6 && items.iter().all(|i| cheap_for_reference(i, repeats_above))
        }
        Grammar::Repeat { item, max, .. } => {
            *max <= 4 && repeats_above < 2 && cheap_for_reference(item, repeats_above + 1)
        }
    }
}

/// A random string the grammar matches (or, where it cannot, something near one).
fn derive(g: &Grammar, rng: &mut ChaCha8Rng, out: &mut Vec<u8>) {
    match g {
        Grammar::Literal { text } => out.extend_from_slice(text.as_bytes()),
        Grammar::Choice { options } if !options.is_empty() => {
            derive(&options[rng.random_range(0..options.len())], rng, out)
        }
        Grammar::Choice { .. } => {}
        Grammar::Seq { items } => items.iter().for_each(|i| derive(i, rng, out)),
        Grammar::Repeat { item, min, max } => {
            let n = rng.random_range(*min..=(*max).max(*min)).min(8);
            (0..n).for_each(|_| derive(item, rng, out));
        }
        Grammar::Chars { class, min, max } => {
            let n = rng.random_range(*min..=(*max).max(*min)).min(8);
            for _ in 0..n {
                out.push(match class {
                    CharClass::Digit => b'0' + rng.random_range(0..10),
                    CharClass::JsonStringAscii => [b'a', b' ', b'~', b'#'][rng.random_range(0..4)],
                });
            }
        }
    }
}

impl Harness for GrammarHarness {
    fn run(&mut self, input: &[u8]) -> Verdict {
        let g = match serde_json::from_slice::<Grammar>(input) {
            Ok(g) => g,
            Err(_) => decode(&mut input.iter().copied(), &mut DECODED_NODES.clone(), 0),
        };
        let _ = g.to_gbnf();
        let _ = g.max_len();
        let nfa = match g.compile() {
            Ok(nfa) => nfa,
            Err(e) if e.to_string().is_empty() => {
                return Verdict::Finding("grammar error without a message".into());
            }
            Err(_) => return Verdict::Rejected,
        };
        if !cheap_for_reference(&g, 0) || nodes(&g) > 3 * DECODED_NODES {
            return Verdict::Accepted;
        }
        // The compiled automaton against the backtracking reference, on strings it should
        // match and on their near misses, prefix by prefix.
        let mut rng = ChaCha8Rng::seed_from_u64(input.len() as u64);
        for k in 0..6 {
            let mut s = Vec::new();
            derive(&g, &mut rng, &mut s);
            if k % 2 == 1 && !s.is_empty() {
                let i = rng.random_range(0..s.len());
                s[i] = [b'a', b'0', b'"', b'b'][rng.random_range(0..4)];
            }
            for end in 0..=s.len() {
                let p = &s[..end];
                let mut m = nfa.matcher();
                let alive = m.advance(p);
                let got = (alive, alive && m.is_complete());
                let want = reference::status(&g, p);
                if got != want {
                    return Verdict::Finding(format!(
                        "matcher says (viable, complete) = {got:?}, reference {want:?} on {:?} for {g:?}",
                        String::from_utf8_lossy(p)
                    ));
                }
            }
        }
        Verdict::Accepted
    }
}

/// The grammar compiler.
pub(crate) fn grammar() -> Target {
    let examples = [
        Grammar::seq([
            Grammar::lit(
                "<tool_call>{\"name\": \"search_traces\", \"arguments\": {\"parent_span_id\": ",
            ),
            Grammar::json_enum(["d1b3f238e544e3f0", "ed794292138f3a8d"]),
            Grammar::lit("}}</tool_call>"),
        ]),
        Grammar::seq([
            Grammar::lit("{\"timestamp\": "),
            Grammar::chars(CharClass::Digit, 1, 10),
            Grammar::lit(", \"reason\": "),
            Grammar::json_string(0, 40),
            Grammar::lit("}"),
        ]),
        Grammar::separated(
            Grammar::choice([
                Grammar::lit("a"),
                Grammar::json_enum(["frontend-2", "node-6"]),
            ]),
            ", ",
            1,
            3,
        ),
        Grammar::repeat(Grammar::opt(Grammar::lit("ab")), 0, 5),
    ];
    let seeds = examples
        .iter()
        .map(|g| serde_json::to_vec(g).expect("a grammar serializes"))
        .collect();
    let dict = &[
        "{\"type\": \"literal\", \"text\": \"x\"}",
        "{\"type\": \"chars\", \"class\": \"digit\", \"min\": 0, \"max\": 3}",
        "{\"type\": \"choice\", \"options\": []}",
        "{\"type\": \"seq\", \"items\": []}",
        "\"max\": 256",
        "\"max\": 257",
        "\"min\": 9",
        ",",
        "[",
        "]",
    ];
    Target::new("grammar", seeds, dict, GrammarHarness)
}
