//! Rollouts under a grammar at temperature > 0 (`thinkfl bench rollouts`): the generation
//! engine samples a final review's `print_results` call for a group of rows, once with
//! sample-first (draw from the unmasked distribution, mask only when the token is rejected) and
//! once masking the vocabulary every step, alternately, on the same prompts and seeds.
//!
//! The grammar is the shape `thinkfl-agent`'s `constrain.rs` gives a final review: pods of an
//! Online Boutique deployment, each forcing its node and service once chosen, then a free reason
//! of up to 80 characters, one to three items. The reasons are where masking costs most: almost
//! every byte is allowed, so almost every token of the vocabulary needs a matcher check.

use crate::{Error, Result};
use serde::Serialize;
use std::time::Instant;
use thinkfl_candle::{Engine, EngineConfig, LoadedModel};
use thinkfl_llm::grammar::Grammar;
use thinkfl_llm::{Message, SamplingParams};

/// What to run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutConfig {
    /// Rows sampled together (a GRPO group).
    pub group: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Most tokens a row generates.
    pub max_tokens: usize,
    /// Alternating repetitions of each mode.
    pub repeats: usize,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            group: 8,
            temperature: 1.0,
            max_tokens: 160,
            repeats: 2,
        }
    }
}

/// Figures of one mode over its repetitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeReport {
    /// `sample-first` or `always-mask`.
    pub mode: String,
    /// Wall seconds of each repetition.
    pub seconds: Vec<f64>,
    /// Generated tokens over all rows and repetitions (sampled and forced).
    pub tokens: usize,
    /// Of them, fed by jump-forward without sampling.
    pub forced: usize,
    /// Of them, steps that masked the whole vocabulary.
    pub masked_steps: usize,
}

impl ModeReport {
    /// Generated tokens (sampled and forced) per second over all repetitions: the modes draw
    /// different rollouts, so the rate, not the time of a group, is what compares.
    pub fn tokens_per_s(&self) -> f64 {
        self.tokens as f64 / self.seconds.iter().sum::<f64>()
    }
    /// Milliseconds per sampled (not forced) token over all repetitions.
    pub fn ms_per_sampled(&self) -> f64 {
        self.seconds.iter().sum::<f64>() * 1e3 / (self.tokens - self.forced).max(1) as f64
    }
}

/// The cost of one constrained step, replayed over the rollouts' own tokens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepCost {
    /// Positions replayed: those where the grammar left more than one byte to choose from
    /// (where a token is sampled; forced bytes need no mask).
    pub positions: usize,
    /// Mean microseconds of masking the whole vocabulary at such a position.
    pub mask_us: f64,
    /// Mean microseconds of checking one token there (what sample-first does instead).
    pub check_us: f64,
}

/// The pods of the grammar: Online Boutique's services, one pod each, on three nodes.
const SERVICES: [&str; 10] = [
    "adservice",
    "cartservice",
    "checkoutservice",
    "currencyservice",
    "emailservice",
    "frontend",
    "paymentservice",
    "productcatalogservice",
    "recommendationservice",
    "shippingservice",
];

/// A final review's `print_results` grammar, as `constrain.rs` builds it (without the
/// no-repeat tree, which changes the automaton's size, not the per-token work).
pub fn final_review_grammar() -> Grammar {
    let items: Vec<Grammar> = SERVICES
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let head = format!(
                "{{\"pod\":\"{s}-0\",\"node\":\"node-{}\",\"service\":\"{s}\",\"reason\":",
                i % 3 + 1
            );
            Grammar::seq([
                Grammar::lit(head),
                Grammar::json_string(1, 80),
                Grammar::lit("}"),
            ])
        })
        .collect();
    Grammar::seq([
        Grammar::lit("<tool_call>{\"name\": \"print_results\", \"arguments\": {\"root_causes\":["),
        Grammar::separated(Grammar::choice(items), ",", 1, 3),
        Grammar::lit("]}}</tool_call>"),
    ])
}

/// Run both modes alternately, `cfg.repeats` times each, then replay the last always-mask
/// rollouts' tokens to time a mask and a single check at each position where a token was
/// chosen.
pub fn bench(loaded: &LoadedModel, cfg: &RolloutConfig) -> Result<(Vec<ModeReport>, StepCost)> {
    if cfg.group == 0 || cfg.max_tokens == 0 || cfg.repeats == 0 {
        return Err(Error::Options("rollout sizes must be positive".into()));
    }
    let text = loaded.template.render(
        &[Message::user(
            "The checkout page of the shop is slow since 10:42. Which pods are the root cause? \
             Answer with print_results: the pod, its node and service, and a short reason.",
        )],
        &[],
        true,
    )?;
    let prompt = loaded.tokenizer.encode(&text)?;
    let grammar = final_review_grammar();
    let nfa = grammar
        .compile()
        .map_err(|e| Error::Options(format!("grammar: {e}")))?;
    let engines = [true, false].map(|sample_first| {
        Engine::new(
            loaded.model.clone(),
            loaded.tokenizer.clone(),
            EngineConfig {
                // Every repetition prefills the same prompt afresh.
                prefix_cache_entries: 0,
                sample_first,
                ..EngineConfig::default()
            },
        )
    });
    let [on, off] = engines;
    let (on, off) = (on?, off?);
    let prompts = vec![prompt; cfg.group];
    // Each repetition draws a new group (other seeds), the same for both modes.
    let params = |repeat: usize| -> Vec<SamplingParams> {
        (0..cfg.group)
            .map(|row| SamplingParams {
                temperature: cfg.temperature,
                top_p: 1.0,
                max_tokens: cfg.max_tokens,
                seed: (repeat * cfg.group + row) as u64,
                grammar: Some(grammar.clone()),
                ..SamplingParams::default()
            })
            .collect()
    };
    // Warm-up: the vocabulary's byte index and the weights' pages.
    let warm = params(cfg.repeats);
    on.generate(&prompts[..1], &warm[..1])?;
    off.generate(&prompts[..1], &warm[..1])?;
    let mut reports: Vec<ModeReport> = ["sample-first", "always-mask"]
        .iter()
        .map(|m| ModeReport {
            mode: m.to_string(),
            seconds: Vec::new(),
            tokens: 0,
            forced: 0,
            masked_steps: 0,
        })
        .collect();
    let mut last = Vec::new();
    for repeat in 0..cfg.repeats {
        let params = params(repeat);
        for (engine, report) in [&on, &off].into_iter().zip(reports.iter_mut()) {
            let t0 = Instant::now();
            let out = engine.generate(&prompts, &params)?;
            last.clone_from(&out);
            report.seconds.push(t0.elapsed().as_secs_f64());
            for g in &out {
                // A row cut by `max_tokens` is a prefix of the grammar's strings, never outside.
                if !nfa.matcher().advance(g.text.as_bytes()) {
                    return Err(Error::Data(format!(
                        "{}: a rollout left the grammar: {:?}",
                        report.mode, g.text
                    )));
                }
                report.tokens += g.ids.len();
                report.forced += g.forced_tokens;
                report.masked_steps += g.masked_steps;
            }
        }
    }
    let logits = vec![0.0f32; loaded.tokenizer.vocab_size()];
    let token_bytes = loaded.tokenizer.token_bytes();
    let (mut positions, mut mask_s, mut check_s) = (0usize, 0.0f64, 0.0f64);
    for g in &last {
        let mut m = nfa.matcher();
        for &id in &g.ids {
            if m.next_bytes().iter().filter(|&&b| b).count() > 1 {
                let t0 = Instant::now();
                let masked = off.grammar_mask(&m, &logits);
                mask_s += t0.elapsed().as_secs_f64();
                let t1 = Instant::now();
                let ok = off.grammar_allows(&m, id);
                check_s += t1.elapsed().as_secs_f64();
                if !ok || masked[id as usize] == f32::NEG_INFINITY {
                    return Err(Error::Data(format!("replayed token {id} is not allowed")));
                }
                positions += 1;
            }
            let bytes = token_bytes[id as usize].as_deref().unwrap_or_default();
            m.advance(bytes);
        }
    }
    let per = |s: f64| s * 1e6 / positions.max(1) as f64;
    Ok((
        reports,
        StepCost {
            positions,
            mask_us: per(mask_s),
            check_us: per(check_s),
        },
    ))
}
