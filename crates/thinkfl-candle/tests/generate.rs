//! Generation on SmolLM2: greedy determinism, batched == one by one, prefix reuse across turns,
//! stop strings, seeded sampling, and the sampler against a naive nucleus.

mod common;

use proptest::prelude::*;
use rand::SeedableRng;
use std::sync::OnceLock;
use thinkfl_candle::CandleChatModel;
use thinkfl_llm::{ChatModel, ChatRequest, Message, SamplingParams, StopReason};

fn model() -> &'static CandleChatModel {
    static M: OnceLock<CandleChatModel> = OnceLock::new();
    M.get_or_init(|| CandleChatModel::load(&common::smollm2_path()).unwrap())
}

fn req(user: &str, max_tokens: usize) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user(user)],
        tools: vec![],
        params: SamplingParams::greedy(max_tokens),
    }
}

// The engine keeps a prefix cache shared by all callers; tests that compare runs serialise.
static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn greedy_is_deterministic_with_and_without_prefix_reuse() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let m = model();
    m.engine.clear_prefix_cache();
    let r = req("Name three planets of the solar system.", 20);
    let a = m.chat(&r).unwrap();
    let b = m.chat(&r).unwrap(); // served mostly from the prefix cache
    m.engine.clear_prefix_cache();
    let c = m.chat(&r).unwrap();
    // Two fresh runs are bit-identical.
    assert_eq!(a, c);
    // From the prefix cache only the tail is prefilled: other matmul shapes, so the last bits of
    // the log-probabilities may differ, never the tokens.
    assert_eq!(
        (&a.text, &a.token_ids, &a.stop),
        (&b.text, &b.token_ids, &b.stop)
    );
    for (x, y) in a
        .logprobs
        .as_ref()
        .unwrap()
        .iter()
        .zip(b.logprobs.as_ref().unwrap())
    {
        assert!((x - y).abs() < 1e-3, "logprob {x} vs {y}");
    }
    assert!(a.completion_tokens > 0 && !a.text.is_empty());
    assert!(a.logprobs.as_ref().unwrap().iter().all(|&l| l <= 0.0));
}

#[test]
fn batched_equals_one_by_one() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let m = model();
    let reqs = vec![
        req("What is 2 + 2?", 16),
        req(
            "Write a haiku about a slow microservice that times out under load.",
            16,
        ),
        req("Hi", 12),
    ];
    m.engine.clear_prefix_cache();
    let batched = m.chat_batch(&reqs).unwrap();
    let single: Vec<_> = reqs
        .iter()
        .map(|r| {
            m.engine.clear_prefix_cache();
            m.chat(r).unwrap()
        })
        .collect();
    for (i, (b, s)) in batched.iter().zip(&single).enumerate() {
        assert_eq!(
            b.token_ids, s.token_ids,
            "request {i}: {:?} vs {:?}",
            b.text, s.text
        );
        assert_eq!(b.text, s.text);
        assert_eq!(b.stop, s.stop);
        // Padding changes the order of float sums in attention; the quantized matmuls round
        // activations to 8 bits, which turns those last-bit differences into small logit
        // differences (measured up to 0.04 nats), never into different tokens here.
        for (x, y) in b
            .logprobs
            .as_ref()
            .unwrap()
            .iter()
            .zip(s.logprobs.as_ref().unwrap())
        {
            assert!((x - y).abs() < 0.15, "request {i}: logprob {x} vs {y}");
        }
    }
}

#[test]
fn next_turn_reuses_the_cached_prefix_and_matches_a_fresh_run() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let m = model();
    m.engine.clear_prefix_cache();
    let p1 = m.prompt_ids(&req("Tell me about Paris.", 1)).unwrap();
    let g1 = m
        .engine
        .generate(std::slice::from_ref(&p1), &[SamplingParams::greedy(12)])
        .unwrap()
        .remove(0);
    assert_eq!(g1.reused_tokens, 0);
    let turn2 = ChatRequest {
        messages: vec![
            Message::user("Tell me about Paris."),
            Message::assistant(g1.text.clone()),
            Message::user("And Rome?"),
        ],
        tools: vec![],
        params: SamplingParams::greedy(12),
    };
    let p2 = m.prompt_ids(&turn2).unwrap();
    let g2 = m
        .engine
        .generate(std::slice::from_ref(&p2), &[SamplingParams::greedy(12)])
        .unwrap()
        .remove(0);
    assert!(
        g2.reused_tokens >= p1.len(),
        "reused {} of a {}-token first prompt",
        g2.reused_tokens,
        p1.len()
    );
    m.engine.clear_prefix_cache();
    let fresh = m
        .engine
        .generate(&[p2], &[SamplingParams::greedy(12)])
        .unwrap()
        .remove(0);
    assert_eq!(fresh.reused_tokens, 0);
    assert_eq!(g2.ids, fresh.ids);
}

#[test]
fn batch_rows_reuse_their_own_prefixes() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let m = model();
    m.engine.clear_prefix_cache();
    let a = m.prompt_ids(&req("Count to five.", 1)).unwrap();
    let b = m.prompt_ids(&req("Spell the word cat.", 1)).unwrap();
    let first = m
        .engine
        .generate(
            &[a.clone(), b.clone()],
            &[SamplingParams::greedy(8), SamplingParams::greedy(8)],
        )
        .unwrap();
    let mut a2 = a.clone();
    a2.extend(&first[0].ids);
    a2.extend(
        m.engine
            .tokenizer
            .encode("<|im_end|>\n<|im_start|>user\nAgain.<|im_end|>\n<|im_start|>assistant\n")
            .unwrap(),
    );
    let c = m
        .prompt_ids(&req("Unrelated question about the moon?", 1))
        .unwrap();
    let params = vec![SamplingParams::greedy(8); 3];
    let second = m
        .engine
        .generate(&[a2.clone(), b.clone(), c.clone()], &params)
        .unwrap();
    assert!(
        second[0].reused_tokens > a.len(),
        "row 0 reused {}",
        second[0].reused_tokens
    );
    assert!(second[1].reused_tokens > 0, "row 1 reused its own prompt");
    m.engine.clear_prefix_cache();
    for (p, g) in [a2, b, c].iter().zip(&second) {
        m.engine.clear_prefix_cache();
        let fresh = m
            .engine
            .generate(std::slice::from_ref(p), &[SamplingParams::greedy(8)])
            .unwrap()
            .remove(0);
        assert_eq!(fresh.ids, g.ids);
    }
}

#[test]
fn stop_strings_end_generation_and_stay_in_the_text() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let m = model();
    let mut r = req("Write the numbers from 1 to 20 separated by commas.", 60);
    let free = m.chat(&r).unwrap();
    let stop = free
        .text
        .chars()
        .find(|c| !c.is_alphanumeric() && !c.is_whitespace())
        .map(String::from);
    let Some(stop) = stop else {
        panic!("no punctuation in {:?}", free.text)
    };
    r.params.stop = vec![stop.clone()];
    let stopped = m.chat(&r).unwrap();
    assert_eq!(stopped.stop, StopReason::StopString(stop.clone()));
    assert!(stopped.text.ends_with(&stop));
    assert!(
        free.text.starts_with(&stopped.text),
        "{:?} / {:?}",
        free.text,
        stopped.text
    );
}

fn span_call_grammar() -> thinkfl_llm::grammar::Grammar {
    use thinkfl_llm::grammar::{CharClass, Grammar};
    Grammar::seq([
        Grammar::lit(r#"<tool_call>{"name": "search_traces", "arguments": {"parent_span_id": "#),
        Grammar::json_enum(["d1b3f238e544e3f0", "5c1f0a2b9e7d4c3a", "0a9b8c7d6e5f4a3b"]),
        Grammar::lit(r#", "note": "#),
        Grammar::json_string(1, 24),
        Grammar::lit(r#"}}</tool_call>"#),
        Grammar::opt(Grammar::chars(CharClass::Digit, 1, 2)),
    ])
}

#[test]
fn grammar_constrains_greedy_and_sampled_completions() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let m = model();
    let g = span_call_grammar();
    let nfa = g.compile().unwrap();
    let prompt = "Name three planets of the solar system.";
    // Unconstrained, the model answers the question: not a string of the grammar.
    let free = m.chat(&req(prompt, 60)).unwrap();
    assert!(!nfa.accepts(&free.text), "{:?}", free.text);
    let mut greedy = req(prompt, 200);
    greedy.params.grammar = Some(g.clone());
    let a = m.chat(&greedy).unwrap();
    assert!(nfa.accepts(&a.text), "{:?}", a.text);
    assert_eq!(a.stop, StopReason::EndOfTurn);
    assert!(a.logprobs.as_ref().unwrap().iter().all(|&l| l <= 0.0));
    for seed in 0..4 {
        let mut r = req(prompt, 200);
        r.params = SamplingParams {
            temperature: 1.2,
            top_p: 0.95,
            seed,
            ..r.params
        };
        r.params.grammar = Some(g.clone());
        let b = m.chat(&r).unwrap();
        assert!(nfa.accepts(&b.text), "seed {seed}: {:?}", b.text);
        assert!(
            b.logprobs
                .as_ref()
                .unwrap()
                .iter()
                .all(|&l| l <= 0.0 && l.is_finite())
        );
    }
    // A constrained row beside a free one: each as it was alone.
    let batch = m.chat_batch(&[greedy.clone(), req(prompt, 60)]).unwrap();
    assert_eq!(batch[0].text, a.text);
    assert_eq!(batch[1].text, free.text);
}

/// Jump-forward feeds the bytes a grammar forces as chunks; without it they are decoded token
/// by token. Both ways the completion is a string of the grammar.
#[test]
fn jump_forward_feeds_forced_bytes_without_sampling_them() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let g = span_call_grammar();
    let nfa = g.compile().unwrap();
    let on = model();
    let off = thinkfl_candle::CandleChatModel::from_loaded(
        thinkfl_candle::load(
            &common::smollm2_path(),
            &thinkfl_candle::LoadOptions::default(),
        )
        .unwrap(),
        thinkfl_candle::EngineConfig {
            jump_forward: false,
            ..Default::default()
        },
    )
    .unwrap();
    let mut r = req("Name three planets of the solar system.", 200);
    r.params.grammar = Some(g);
    let mut forced = Vec::new();
    for m in [on, &off] {
        let ids = m.prompt_ids(&r).unwrap();
        let out = m
            .engine
            .generate(&[ids], &[r.params.clone()])
            .unwrap()
            .remove(0);
        assert!(nfa.accepts(&out.text), "{:?}", out.text);
        assert_eq!(out.logprobs.len(), out.ids.len());
        forced.push(out.forced_tokens);
    }
    // The call's fixed head alone is a dozen tokens.
    assert!(forced[0] >= 12, "{forced:?}");
    assert_eq!(forced[1], 0);
}

/// A stop string inside a grammar's string (a reason quoting `</tool_call>`) does not cut the
/// call short: under a grammar, the grammar ends the text.
#[test]
fn stop_strings_inside_a_grammar_do_not_cut_it() {
    use thinkfl_llm::grammar::Grammar;
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let call = r#"<tool_call>{"reason": "slow</tool_call>"}</tool_call>"#;
    let mut r = req("Name three planets of the solar system.", 100);
    r.params.grammar = Some(Grammar::lit(call));
    r.params.stop = vec!["</tool_call>".into()];
    let out = model().chat(&r).unwrap();
    assert_eq!(out.text, call);
}

#[test]
fn a_bad_grammar_is_an_error_not_a_panic() {
    use thinkfl_llm::grammar::Grammar;
    let mut r = req("Hi", 4);
    r.params.grammar = Some(Grammar::repeat(Grammar::lit("a"), 2, 1));
    let e = model().chat(&r).unwrap_err().to_string();
    assert!(e.contains("grammar of request 0"), "{e}");
}

#[test]
fn seeded_sampling_repeats_itself() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let m = model();
    let mut r = req("Invent a name for a cat.", 16);
    r.params.temperature = 0.9;
    r.params.top_p = 0.95;
    r.params.seed = 42;
    let a = m.chat(&r).unwrap();
    let b = m.chat(&r).unwrap();
    assert_eq!(a.token_ids, b.token_ids);
}

/// Naive nucleus (in f64): all tokens sorted by probability, smallest prefix with mass >=
/// top_p, plus any token whose inclusion is within rounding of the f32 sampler (mass short of
/// top_p by less than 1e-5).
fn naive_nucleus(logits: &[f32], t: f32, top_p: f32) -> Vec<u32> {
    let probs = softmax_f64(logits, t);
    let mut idx: Vec<(u32, f64)> = probs
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u32, *p))
        .collect();
    idx.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut mass = 0.0;
    let mut out = Vec::new();
    for (i, p) in idx {
        out.push(i);
        mass += p;
        if mass >= top_p as f64 + 1e-5 {
            break;
        }
    }
    out
}

fn softmax_f64(logits: &[f32], t: f32) -> Vec<f64> {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = logits
        .iter()
        .map(|&l| ((l as f64 - m) / t as f64).exp())
        .collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|p| p / z).collect()
}

/// Logits shaped like a language model's over SmolLM2's vocabulary: a normal body and a few
/// strong candidates.
fn vocab_logits(seed: u64) -> Vec<f32> {
    use rand::Rng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..49152)
        .map(|i| {
            let body: f32 = (0..4).map(|_| rng.random_range(-2.5f32..2.5)).sum();
            if i % 9973 == 0 { body + 14.0 } else { body }
        })
        .collect()
}

#[test]
fn exp_le0_is_close_to_exp() {
    let mut worst = 0f64;
    for i in 0..=870_000 {
        let x = -(i as f32) * 1e-4;
        let want = (x as f64).exp();
        let got = thinkfl_candle::generate::exp_le0(x) as f64;
        worst = worst.max((got - want).abs() / want);
    }
    assert!(worst < 3e-7, "relative error {worst}");
    for x in [-87.5f32, -1000.0, f32::NEG_INFINITY, f32::NAN] {
        assert_eq!(thinkfl_candle::generate::exp_le0(x), 0.0, "{x}");
    }
}

/// Over a whole vocabulary (where the sampler narrows the candidates in steps): picks stay in
/// the nucleus, log-probabilities match an f64 softmax, greedy takes the first maximum.
#[test]
fn sampler_on_a_full_vocabulary() {
    for seed in 0..3u64 {
        let mut logits = vocab_logits(seed);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for (t, top_p) in [
            (0.7f32, 0.9f32),
            (1.0, 0.5),
            (1.0, 0.99),
            (1.5, 0.95),
            (1.0, 1.0),
        ] {
            let params = SamplingParams {
                temperature: t,
                top_p,
                max_tokens: 1,
                stop: vec![],
                seed,
                grammar: None,
            };
            let nucleus = naive_nucleus(&logits, t, top_p);
            let probs = softmax_f64(&logits, t);
            for _ in 0..20 {
                let (id, lp) = thinkfl_candle::generate::sample(&logits, &params, &mut rng);
                assert!(
                    nucleus.contains(&id),
                    "t {t} top_p {top_p}: {id} outside a nucleus of {}",
                    nucleus.len()
                );
                let want = probs[id as usize].ln();
                assert!((lp as f64 - want).abs() < 1e-4, "logprob {lp} vs {want}");
            }
        }
        // A tie for the maximum: the first one wins.
        let best = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let first = logits.iter().position(|&v| v == best).unwrap();
        logits[40_000] = best;
        let (id, lp) =
            thinkfl_candle::generate::sample(&logits, &SamplingParams::greedy(1), &mut rng);
        assert_eq!(id as usize, first.min(40_000));
        let want = softmax_f64(&logits, 1.0)[id as usize].ln();
        assert!(
            (lp as f64 - want).abs() < 1e-5,
            "greedy logprob {lp} vs {want}"
        );
    }
}

proptest! {
    #[test]
    fn sampler_stays_in_the_nucleus(logits in proptest::collection::vec(-8.0f32..8.0, 2..300), t in 0.2f32..2.0, top_p in 0.05f32..0.99, seed in 0u64..1000) {
        let params = SamplingParams { temperature: t, top_p, max_tokens: 1, stop: vec![], seed, grammar: None };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let nucleus = naive_nucleus(&logits, t, top_p);
        for _ in 0..8 {
            let (id, lp) = thinkfl_candle::generate::sample(&logits, &params, &mut rng);
            prop_assert!(nucleus.contains(&id), "{} not in nucleus {:?}", id, nucleus);
            prop_assert!(lp <= 0.0);
        }
    }

    #[test]
    fn greedy_sampler_is_argmax(logits in proptest::collection::vec(-8.0f32..8.0, 1..300)) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let (id, _) = thinkfl_candle::generate::sample(&logits, &SamplingParams::greedy(1), &mut rng);
        let best = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        prop_assert_eq!(logits[id as usize], best);
    }
}
