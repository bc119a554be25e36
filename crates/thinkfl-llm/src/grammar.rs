//! Grammars that constrain what a model may write, for constrained decoding.
//!
//! A small model that knows *what* to call often fails at *how*: it copies the wrong id into a
//! tool call, repeats a JSON key until its token budget runs out, or never closes the object.
//! Constrained decoding (as in llama.cpp's GBNF grammars, Outlines or vLLM's guided decoding)
//! masks, at every step, the tokens that cannot continue a string of the grammar, so the model's
//! own scores choose among valid continuations only.
//!
//! The grammars here are the small regular ones tool calls need: literals, alternatives,
//! sequences, bounded repetition and bounded runs of characters from a class. [`Grammar::compile`]
//! turns one into a byte-level NFA; a [`Matcher`] walks it one token's bytes at a time, so a
//! backend can test a candidate token in a few microseconds.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most copies a [`Grammar::Repeat`] or [`Grammar::Chars`] may ask for: repetition is unrolled
/// into the automaton, so it must stay small.
pub const MAX_REPEAT: usize = 256;

/// Most states a compiled grammar may have.
pub const MAX_STATES: usize = 1 << 20;

/// A regular grammar over bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Grammar {
    /// Exactly this text.
    Literal {
        /// The text.
        text: String,
    },
    /// Any one of the options.
    Choice {
        /// The options.
        options: Vec<Grammar>,
    },
    /// The items, one after the other.
    Seq {
        /// The items.
        items: Vec<Grammar>,
    },
    /// `item` between `min` and `max` times.
    Repeat {
        /// What repeats.
        item: Box<Grammar>,
        /// Fewest copies.
        min: usize,
        /// Most copies, at most [`MAX_REPEAT`].
        max: usize,
    },
    /// Between `min` and `max` characters of `class`.
    Chars {
        /// The characters allowed.
        class: CharClass,
        /// Fewest characters.
        min: usize,
        /// Most characters, at most [`MAX_REPEAT`].
        max: usize,
    },
}

/// Characters a [`Grammar::Chars`] run may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CharClass {
    /// Printable ASCII except `"` and `\`: the inside of a JSON string that needs no escapes.
    JsonStringAscii,
    /// `0`-`9`.
    Digit,
}

impl CharClass {
    fn ranges(self) -> &'static [(u8, u8)] {
        match self {
            CharClass::JsonStringAscii => &[(b' ', b'!'), (b'#', b'['), (b']', b'~')],
            CharClass::Digit => &[(b'0', b'9')],
        }
    }

    /// Whether byte `b` is in the class.
    pub fn contains(self, b: u8) -> bool {
        self.ranges().iter().any(|&(lo, hi)| lo <= b && b <= hi)
    }
}

/// A grammar that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    /// A repeat or character run whose least count exceeds its most.
    #[error("repeat with min {min} > max {max}")]
    MinAboveMax {
        /// The least count asked for.
        min: usize,
        /// The most count asked for.
        max: usize,
    },
    /// A repeat or character run of more than [`MAX_REPEAT`] copies.
    #[error("repeat of {0} copies; at most {MAX_REPEAT}")]
    TooManyCopies(usize),
    /// A choice between nothing, which no string matches.
    #[error("choice with no options")]
    EmptyChoice,
    /// An automaton of more than [`MAX_STATES`] states.
    #[error("grammar of more than {MAX_STATES} states")]
    TooLarge,
}

impl Grammar {
    /// Exactly `text`.
    pub fn lit(text: impl Into<String>) -> Self {
        Grammar::Literal { text: text.into() }
    }

    /// The `items` one after the other.
    pub fn seq(items: impl IntoIterator<Item = Grammar>) -> Self {
        Grammar::Seq {
            items: items.into_iter().collect(),
        }
    }

    /// Any one of the `options`.
    pub fn choice(options: impl IntoIterator<Item = Grammar>) -> Self {
        Grammar::Choice {
            options: options.into_iter().collect(),
        }
    }

    /// `item` or nothing.
    pub fn opt(item: Grammar) -> Self {
        Grammar::Repeat {
            item: Box::new(item),
            min: 0,
            max: 1,
        }
    }

    /// `item` between `min` and `max` times.
    pub fn repeat(item: Grammar, min: usize, max: usize) -> Self {
        Grammar::Repeat {
            item: Box::new(item),
            min,
            max,
        }
    }

    /// Between `min` and `max` characters of `class`.
    pub fn chars(class: CharClass, min: usize, max: usize) -> Self {
        Grammar::Chars { class, min, max }
    }

    /// A JSON string whose value is one of `values` (which must need no escapes).
    pub fn json_enum<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Self {
        Grammar::seq([
            Grammar::lit("\""),
            Grammar::choice(values.into_iter().map(|v| Grammar::lit(v.as_ref()))),
            Grammar::lit("\""),
        ])
    }

    /// A JSON string of `min..=max` characters that need no escapes.
    pub fn json_string(min: usize, max: usize) -> Self {
        Grammar::seq([
            Grammar::lit("\""),
            Grammar::chars(CharClass::JsonStringAscii, min, max),
            Grammar::lit("\""),
        ])
    }

    /// `items`, separated by `sep`, between `min` (at least 1) and `max` of them.
    pub fn separated(item: Grammar, sep: &str, min: usize, max: usize) -> Self {
        let min = min.max(1);
        Grammar::seq([
            item.clone(),
            Grammar::repeat(
                Grammar::seq([Grammar::lit(sep), item]),
                min - 1,
                max.saturating_sub(1),
            ),
        ])
    }

    /// Bytes of the longest string of the grammar: a bound on the tokens a completion under it
    /// needs (a token is at least one byte).
    pub fn max_len(&self) -> usize {
        match self {
            Grammar::Literal { text } => text.len(),
            Grammar::Choice { options } => options.iter().map(Grammar::max_len).max().unwrap_or(0),
            Grammar::Seq { items } => items.iter().map(Grammar::max_len).sum(),
            Grammar::Repeat { item, max, .. } => item.max_len() * max,
            Grammar::Chars { max, .. } => *max,
        }
    }

    /// The grammar in llama.cpp's GBNF (its server's `grammar` field), one `root` rule.
    pub fn to_gbnf(&self) -> String {
        let mut out = String::from("root ::= ");
        self.write_gbnf(&mut out);
        out.push('\n');
        out
    }

    fn write_gbnf(&self, out: &mut String) {
        match self {
            Grammar::Literal { text } => {
                out.push('"');
                for c in text.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                            out.push_str(&format!("\\x{:02X}", c as u32))
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            Grammar::Seq { items } if items.is_empty() => out.push_str("\"\""),
            Grammar::Seq { items } => write_gbnf_group(out, items, " "),
            Grammar::Choice { options } => write_gbnf_group(out, options, " | "),
            Grammar::Repeat { item, min, max } => {
                out.push('(');
                item.write_gbnf(out);
                out.push(')');
                push_count(out, *min, *max);
            }
            Grammar::Chars { class, min, max } => {
                out.push('[');
                for &(lo, hi) in class.ranges() {
                    out.push_str(&format!("\\x{lo:02X}-\\x{hi:02X}"));
                }
                out.push(']');
                push_count(out, *min, *max);
            }
        }
    }

    /// The byte automaton of this grammar.
    pub fn compile(&self) -> Result<Nfa, GrammarError> {
        let mut b = Builder::default();
        let start = b.state()?;
        let end = b.build(self, start)?;
        Ok(Nfa {
            inner: Arc::new(NfaInner {
                states: b.states,
                start,
                accept: end,
            }),
        })
    }
}

#[derive(Debug, Default, Clone)]
struct State {
    /// Byte ranges (inclusive) and the state they lead to.
    edges: Vec<(u8, u8, u32)>,
    eps: Vec<u32>,
}

#[derive(Default)]
struct Builder {
    states: Vec<State>,
}

impl Builder {
    fn state(&mut self) -> Result<u32, GrammarError> {
        if self.states.len() >= MAX_STATES {
            return Err(GrammarError::TooLarge);
        }
        self.states.push(State::default());
        Ok((self.states.len() - 1) as u32)
    }

    /// `min..=max` copies of what `one` adds (from a state, returning where it ends), unrolled:
    /// after the `min`-th copy every copy may be skipped to the end.
    fn counted(
        &mut self,
        from: u32,
        min: usize,
        max: usize,
        mut one: impl FnMut(&mut Self, u32) -> Result<u32, GrammarError>,
    ) -> Result<u32, GrammarError> {
        check_repeat(min, max)?;
        let end = self.state()?;
        let mut at = from;
        for i in 0..max {
            if i >= min {
                self.states[at as usize].eps.push(end);
            }
            at = one(self, at)?;
        }
        self.states[at as usize].eps.push(end);
        Ok(end)
    }

    /// Adds `g` starting at `from`; returns the state where it ends.
    fn build(&mut self, g: &Grammar, from: u32) -> Result<u32, GrammarError> {
        match g {
            Grammar::Literal { text } => {
                let mut at = from;
                for &byte in text.as_bytes() {
                    let next = self.state()?;
                    self.states[at as usize].edges.push((byte, byte, next));
                    at = next;
                }
                Ok(at)
            }
            Grammar::Seq { items } => {
                let mut at = from;
                for item in items {
                    at = self.build(item, at)?;
                }
                Ok(at)
            }
            Grammar::Choice { options } => {
                if options.is_empty() {
                    return Err(GrammarError::EmptyChoice);
                }
                let end = self.state()?;
                for o in options {
                    let s = self.state()?;
                    self.states[from as usize].eps.push(s);
                    let e = self.build(o, s)?;
                    self.states[e as usize].eps.push(end);
                }
                Ok(end)
            }
            Grammar::Repeat { item, min, max } => {
                self.counted(from, *min, *max, |b, at| b.build(item, at))
            }
            Grammar::Chars { class, min, max } => self.counted(from, *min, *max, |b, at| {
                let next = b.state()?;
                for &(lo, hi) in class.ranges() {
                    b.states[at as usize].edges.push((lo, hi, next));
                }
                Ok(next)
            }),
        }
    }
}

/// `(a SEP b SEP c)` in GBNF.
fn write_gbnf_group(out: &mut String, items: &[Grammar], sep: &str) {
    out.push('(');
    for (i, g) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        g.write_gbnf(out);
    }
    out.push(')');
}

fn push_count(out: &mut String, min: usize, max: usize) {
    match (min, max) {
        (0, 1) => out.push('?'),
        (m, n) if m == n => out.push_str(&format!("{{{m}}}")),
        (m, n) => out.push_str(&format!("{{{m},{n}}}")),
    }
}

fn check_repeat(min: usize, max: usize) -> Result<(), GrammarError> {
    if min > max {
        return Err(GrammarError::MinAboveMax { min, max });
    }
    if max > MAX_REPEAT {
        return Err(GrammarError::TooManyCopies(max));
    }
    Ok(())
}

#[derive(Debug)]
struct NfaInner {
    states: Vec<State>,
    start: u32,
    accept: u32,
}

/// A compiled grammar; cheap to clone.
#[derive(Debug, Clone)]
pub struct Nfa {
    inner: Arc<NfaInner>,
}

impl Nfa {
    /// A matcher at the start of the grammar.
    pub fn matcher(&self) -> Matcher {
        let mut m = Matcher {
            nfa: self.clone(),
            states: vec![self.inner.start],
        };
        m.close();
        m
    }

    /// Whether `text` is a whole string of the grammar.
    pub fn accepts(&self, text: &str) -> bool {
        let mut m = self.matcher();
        m.advance(text.as_bytes()) && m.is_complete()
    }

    /// States of the automaton: what [`MAX_STATES`] bounds.
    pub fn num_states(&self) -> usize {
        self.inner.states.len()
    }
}

/// Where a prefix stands in the grammar: the set of automaton states it can be in.
#[derive(Debug, Clone)]
pub struct Matcher {
    nfa: Nfa,
    /// Sorted, deduplicated, closed under epsilon moves.
    states: Vec<u32>,
}

impl Matcher {
    fn close(&mut self) {
        // State sets are small (tens of states; a few hundred where an enum of names starts),
        // so membership is a scan rather than a bitmap as large as the automaton.
        let states = &self.nfa.inner.states;
        let mut out: Vec<u32> = Vec::with_capacity(self.states.len() * 2);
        let mut stack: Vec<u32> = self.states.clone();
        while let Some(s) = stack.pop() {
            if out.contains(&s) {
                continue;
            }
            out.push(s);
            stack.extend(
                states[s as usize]
                    .eps
                    .iter()
                    .copied()
                    .filter(|e| !out.contains(e)),
            );
        }
        out.sort_unstable();
        self.states = out;
    }

    /// Bytes that may come next, as a 256-bit set: a backend tests only the tokens that start
    /// with one of them.
    pub fn next_bytes(&self) -> [bool; 256] {
        let mut set = [false; 256];
        for &s in &self.states {
            for &(lo, hi, _) in &self.nfa.inner.states[s as usize].edges {
                for b in lo..=hi {
                    set[b as usize] = true;
                }
            }
        }
        set
    }

    fn step(&mut self, byte: u8) {
        let states = &self.nfa.inner.states;
        let mut next = Vec::new();
        for &s in &self.states {
            for &(lo, hi, t) in &states[s as usize].edges {
                if lo <= byte && byte <= hi {
                    next.push(t);
                }
            }
        }
        next.sort_unstable();
        next.dedup();
        self.states = next;
        self.close();
    }

    /// Feeds `bytes`; false (and a dead matcher) when they leave the grammar.
    pub fn advance(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            self.step(b);
            if self.states.is_empty() {
                return false;
            }
        }
        true
    }

    /// Whether `bytes` would keep the prefix inside the grammar, without moving.
    pub fn allows(&self, bytes: &[u8]) -> bool {
        self.clone().advance(bytes)
    }

    /// The bytes the grammar forces next: while exactly one byte may follow and the string
    /// could not end here, that byte. A backend feeds them without sampling them one by one
    /// ("jump-forward" decoding).
    pub fn forced_bytes(&self) -> Vec<u8> {
        let mut m = self.clone();
        let mut out = Vec::new();
        while !m.is_complete() {
            let next = m.next_bytes();
            let mut allowed = (0..256).filter(|&b| next[b]);
            let (Some(b), None) = (allowed.next(), allowed.next()) else {
                break;
            };
            out.push(b as u8);
            m.step(b as u8);
        }
        out
    }

    /// The prefix so far is a whole string of the grammar.
    pub fn is_complete(&self) -> bool {
        self.states.binary_search(&self.nfa.inner.accept).is_ok()
    }

    /// The prefix so far can be continued (some byte is allowed next).
    pub fn can_continue(&self) -> bool {
        let states = &self.nfa.inner.states;
        self.states
            .iter()
            .any(|&s| !states[s as usize].edges.is_empty())
    }

    /// Whether no continuation can complete the text: the matcher has no state left.
    pub fn is_dead(&self) -> bool {
        self.states.is_empty()
    }
}

/// Prefix status of `text` by backtracking over the grammar itself: the slow, obviously right
/// reference the automaton is tested against.
pub mod reference {
    use super::Grammar;

    /// Every way `g` can consume a prefix of `s`: the byte offsets where it can end, and
    /// whether `s` ran out inside `g` (so `s` is a proper prefix of a longer match).
    fn ends(g: &Grammar, s: &[u8], at: usize, out: &mut Vec<usize>, partial: &mut bool) {
        match g {
            Grammar::Literal { text } => {
                let t = text.as_bytes();
                let rest = &s[at..];
                if rest.len() >= t.len() {
                    if &rest[..t.len()] == t {
                        out.push(at + t.len());
                    }
                } else if t.starts_with(rest) {
                    *partial = true;
                }
            }
            Grammar::Choice { options } => {
                for o in options {
                    ends(o, s, at, out, partial);
                }
            }
            Grammar::Seq { items } => seq(items, s, at, out, partial),
            Grammar::Repeat { item, min, max } => {
                // Unrolled, as the automaton does.
                let mut items = Vec::new();
                for i in 0..*max {
                    if i < *min {
                        items.push((**item).clone());
                    } else {
                        items.push(Grammar::opt((**item).clone()));
                    }
                }
                if *min == 0 && *max <= 1 {
                    // Grammar::opt is itself a Repeat{0,1}: handle it directly.
                    out.push(at);
                    if *max == 1 {
                        ends(item, s, at, out, partial);
                    }
                    return;
                }
                seq(&items, s, at, out, partial);
            }
            Grammar::Chars { class, min, max } => {
                let mut n = 0;
                let mut i = at;
                loop {
                    if n >= *min {
                        out.push(i);
                    }
                    if n == *max {
                        break;
                    }
                    if i == s.len() {
                        *partial = true;
                        break;
                    }
                    if !class.contains(s[i]) {
                        break;
                    }
                    i += 1;
                    n += 1;
                }
            }
        }
    }

    fn seq(items: &[Grammar], s: &[u8], at: usize, out: &mut Vec<usize>, partial: &mut bool) {
        let Some((first, rest)) = items.split_first() else {
            out.push(at);
            return;
        };
        let mut mids = Vec::new();
        ends(first, s, at, &mut mids, partial);
        mids.sort_unstable();
        mids.dedup();
        for m in mids {
            if m == s.len() && !rest.is_empty() {
                // `s` ends between items: a prefix if the rest can start (or is empty-able).
                *partial = true;
            }
            seq(rest, s, m, out, partial);
        }
    }

    /// (viable prefix, complete match) of `s`.
    pub fn status(g: &Grammar, s: &[u8]) -> (bool, bool) {
        let mut out = Vec::new();
        let mut partial = false;
        ends(g, s, 0, &mut out, &mut partial);
        let complete = out.contains(&s.len());
        (partial || complete, complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_grammar() -> Grammar {
        let item = Grammar::seq([
            Grammar::lit("{\"service\":"),
            Grammar::json_enum(["cart", "cartservice", "frontend"]),
            Grammar::lit(",\"reason\":"),
            Grammar::json_string(1, 8),
            Grammar::lit("}"),
        ]);
        Grammar::seq([
            Grammar::lit("["),
            Grammar::separated(item, ", ", 1, 3),
            Grammar::lit("]"),
        ])
    }

    #[test]
    fn accepts_members_and_rejects_others() {
        let nfa = call_grammar().compile().unwrap();
        assert!(nfa.accepts(r#"[{"service":"cart","reason":"slow"}]"#));
        assert!(nfa.accepts(
            r#"[{"service":"cartservice","reason":"a"}, {"service":"frontend","reason":"b"}]"#
        ));
        // Unknown name, repeated key, empty reason, too long a reason, a fourth item.
        assert!(!nfa.accepts(r#"[{"service":"carts","reason":"slow"}]"#));
        assert!(!nfa.accepts(r#"[{"service":"cart","service":"cart","reason":"x"}]"#));
        assert!(!nfa.accepts(r#"[{"service":"cart","reason":""}]"#));
        assert!(!nfa.accepts(r#"[{"service":"cart","reason":"123456789"}]"#));
        let one = r#"{"service":"cart","reason":"x"}"#;
        assert!(nfa.accepts(&format!("[{one}, {one}, {one}]")));
        assert!(!nfa.accepts(&format!("[{one}, {one}, {one}, {one}]")));
        // The longest member: three items, each with the longest name and reason.
        let longest = r#"{"service":"cartservice","reason":"12345678"}"#;
        assert!(nfa.accepts(&format!("[{longest}, {longest}, {longest}]")));
        assert_eq!(
            call_grammar().max_len(),
            format!("[{longest}, {longest}, {longest}]").len()
        );
    }

    #[test]
    fn prefixes_stay_alive_and_completion_is_reported() {
        let nfa = call_grammar().compile().unwrap();
        let s = r#"[{"service":"cartservice","reason":"ok"}]"#;
        let mut m = nfa.matcher();
        for (i, b) in s.bytes().enumerate() {
            assert!(!m.is_complete(), "complete too early at {i}");
            assert!(m.allows(&[b]));
            assert!(m.advance(&[b]));
        }
        assert!(m.is_complete());
        assert!(!m.can_continue());
        assert!(!m.allows(b" "));
    }

    #[test]
    fn forced_bytes_run_to_the_next_choice() {
        let nfa = call_grammar().compile().unwrap();
        let mut m = nfa.matcher();
        assert_eq!(m.forced_bytes(), br#"[{"service":""#);
        assert!(m.advance(br#"[{"service":""#));
        // "cart" and "cartservice" share "cart"; "frontend" starts otherwise: nothing forced.
        assert!(m.forced_bytes().is_empty());
        assert!(m.advance(b"f"));
        assert_eq!(m.forced_bytes(), br#"rontend","reason":""#);
        assert!(m.advance(br#"rontend","reason":"x"#));
        // A reason may go on or end: nothing forced.
        assert!(m.forced_bytes().is_empty());
        assert!(m.advance(br#""}]"#));
        assert!(m.is_complete());
        assert!(m.forced_bytes().is_empty());
    }

    #[test]
    fn bad_grammars_are_errors() {
        assert_eq!(
            Grammar::repeat(Grammar::lit("a"), 3, 2)
                .compile()
                .unwrap_err(),
            GrammarError::MinAboveMax { min: 3, max: 2 }
        );
        assert_eq!(
            Grammar::choice([]).compile().unwrap_err(),
            GrammarError::EmptyChoice
        );
        assert!(matches!(
            Grammar::chars(CharClass::Digit, 0, 10_000).compile(),
            Err(GrammarError::TooManyCopies(10_000))
        ));
    }

    /// Every prefix of many strings, members and near misses, gets the same status from the
    /// automaton as from the backtracking reference.
    #[test]
    fn automaton_agrees_with_the_reference() {
        let grammars = [
            call_grammar(),
            Grammar::seq([
                Grammar::repeat(
                    Grammar::choice([Grammar::lit("ab"), Grammar::lit("a")]),
                    0,
                    3,
                ),
                Grammar::chars(CharClass::Digit, 1, 3),
                Grammar::opt(Grammar::lit("b")),
            ]),
            Grammar::json_enum(["x", "xy", "xyz", ""]),
        ];
        // A fixed pseudo-random generator keeps the test deterministic without a dependency.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"ab0129\"{}[],: xyzcartsevicfondlk";
        for g in &grammars {
            let nfa = g.compile().unwrap();
            let mut strings: Vec<Vec<u8>> = vec![
                br#"[{"service":"cart","reason":"slow"}, {"service":"frontend","reason":"x"}]"#
                    .to_vec(),
                b"abab12b".to_vec(),
                b"aab9".to_vec(),
                b"\"xyz\"".to_vec(),
                b"\"\"".to_vec(),
            ];
            for _ in 0..400 {
                let n = (next() % 14) as usize;
                strings.push(
                    (0..n)
                        .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                        .collect(),
                );
            }
            for s in &strings {
                for end in 0..=s.len() {
                    let p = &s[..end];
                    let mut m = nfa.matcher();
                    let alive = m.advance(p);
                    let got = (alive, alive && m.is_complete());
                    assert_eq!(
                        got,
                        reference::status(g, p),
                        "grammar {g:?}, prefix {:?}",
                        String::from_utf8_lossy(p)
                    );
                }
            }
        }
    }

    #[test]
    fn gbnf_spells_the_same_grammar() {
        let g = Grammar::seq([
            Grammar::lit("<a \"q\"\\\n>"),
            Grammar::json_enum(["x", "y"]),
            Grammar::opt(Grammar::lit("z")),
            Grammar::chars(CharClass::Digit, 1, 3),
            Grammar::repeat(Grammar::lit("w"), 2, 2),
        ]);
        assert_eq!(
            g.to_gbnf(),
            "root ::= (\"<a \\\"q\\\"\\\\\\n>\" (\"\\\"\" (\"x\" | \"y\") \"\\\"\") (\"z\")? [\\x30-\\x39]{1,3} (\"w\"){2})\n"
        );
    }

    #[test]
    fn grammars_round_trip_through_json() {
        let g = call_grammar();
        let v = serde_json::to_string(&g).unwrap();
        assert_eq!(serde_json::from_str::<Grammar>(&v).unwrap(), g);
    }
}
