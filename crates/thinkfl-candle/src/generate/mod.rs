//! Batched generation with a KV cache, and reuse of cached prefixes across calls.
//!
//! Layout of a batch: each row's cache is right-aligned, so every row's newest token is in the
//! last column; slots before a row's first real token are padding that no query attends to.
//! Rotary positions count real tokens only, so a row's keys are the same whether it ran alone or
//! in a batch, and a finished row's cache (padding removed) can be kept for the next turn of its
//! conversation: a later prompt that starts with the same tokens prefills only the new tail.

mod prefix;
mod sample;

pub use prefix::PrefixStore;
use sample::{log_sum_exp, masked_draw};
pub use sample::{sample, sample_allowed};

use crate::error::{Error, Result};
pub use crate::kernels::math::exp_le0;
use crate::llama::{KvCache, Llama, Mode};
use crate::tokenizer::Tok;
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::{Mutex, OnceLock};
use thinkfl_llm::grammar::Matcher;
use thinkfl_llm::{SamplingParams, StopReason};

/// Settings of the generation engine.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Cached conversation prefixes kept for reuse (each one holds keys and values of all layers).
    pub prefix_cache_entries: usize,
    /// Most sequences decoded together; larger batches are split.
    pub max_batch: usize,
    /// Most prompt tokens (times batch rows) prefilled in one forward; bounds the attention
    /// matrix's memory.
    pub prefill_chunk_tokens: usize,
    /// Shortest common prefix worth reusing.
    pub min_reuse_tokens: usize,
    /// Under a grammar, feed the bytes it forces (the fixed parts of a tool call) as one chunk
    /// instead of decoding them token by token ("jump-forward" decoding, as in SGLang).
    pub jump_forward: bool,
    /// Under a grammar at temperature > 0 (top-p 1), draw from the unmasked distribution first
    /// and check that one token, masking the vocabulary only when it is rejected
    /// ([`sample_allowed`]: the same distribution, without ~40k matcher checks a step while a
    /// free string is open). Off, every step masks (the reference the benchmark compares).
    pub sample_first: bool,
}

impl EngineConfig {
    /// Default [`EngineConfig::prefix_cache_entries`].
    pub const DEFAULT_PREFIX_CACHE_ENTRIES: usize = 8;
    /// Default [`EngineConfig::max_batch`].
    pub const DEFAULT_MAX_BATCH: usize = 16;
    /// Default [`EngineConfig::prefill_chunk_tokens`].
    pub const DEFAULT_PREFILL_CHUNK_TOKENS: usize = 1024;
    /// Default [`EngineConfig::min_reuse_tokens`].
    pub const DEFAULT_MIN_REUSE_TOKENS: usize = 8;

    /// Checks that batches and prefill chunks are positive.
    pub fn validate(&self) -> Result<()> {
        if self.max_batch == 0 || self.prefill_chunk_tokens == 0 {
            return Err(Error::Options(
                "max_batch and prefill_chunk_tokens must be positive".into(),
            ));
        }
        Ok(())
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            prefix_cache_entries: Self::DEFAULT_PREFIX_CACHE_ENTRIES,
            max_batch: Self::DEFAULT_MAX_BATCH,
            prefill_chunk_tokens: Self::DEFAULT_PREFILL_CHUNK_TOKENS,
            min_reuse_tokens: Self::DEFAULT_MIN_REUSE_TOKENS,
            jump_forward: true,
            sample_first: true,
        }
    }
}

/// One generated sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated ids, without the end-of-turn token.
    pub ids: Vec<u32>,
    /// `ids` decoded.
    pub text: String,
    /// Why generation ended.
    pub stop: StopReason,
    /// Log-probability of each id in `ids` under the temperature-scaled distribution (at
    /// temperature 0, under the model's distribution).
    pub logprobs: Vec<f32>,
    /// Prompt tokens served from the prefix cache.
    pub reused_tokens: usize,
    /// Of `ids`, those a grammar forced and that were fed without being sampled (their
    /// log-probability under the constrained distribution, 0, is in `logprobs`).
    pub forced_tokens: usize,
    /// Of `ids`, those whose step masked the whole vocabulary under the grammar (the sampled or
    /// greedy token was rejected, or sample-first was off or did not apply).
    pub masked_steps: usize,
}

struct Row {
    /// Original request index.
    idx: usize,
    prompt_len: usize,
    /// Tokens whose keys are in the cache, in order (prompt, then fed generated tokens).
    cached_tokens: Vec<u32>,
    /// Per cache slot: a real token (true) or padding.
    valid: Vec<bool>,
    next_pos: usize,
    generated: Vec<u32>,
    logprobs: Vec<f32>,
    text_len_checked: usize,
    rng: ChaCha8Rng,
    params: SamplingParams,
    reused: usize,
    done: Option<(StopReason, String)>,
    /// Where the text so far stands in the request's grammar, if it has one.
    matcher: Option<Matcher>,
    forced: usize,
    masked_steps: usize,
}

/// The vocabulary as bytes, for constrained decoding: built on the first request with a
/// grammar.
#[derive(Debug)]
struct TokenIndex {
    bytes: Vec<Option<Vec<u8>>>,
    /// Ids by first byte: only the tokens that start with an allowed byte need a full check.
    by_first: Vec<Vec<u32>>,
}

impl TokenIndex {
    fn new(tok: &Tok) -> Self {
        let bytes = tok.token_bytes();
        let mut by_first = vec![Vec::new(); 256];
        for (id, b) in bytes.iter().enumerate() {
            if let Some(&first) = b.as_ref().and_then(|b| b.first()) {
                by_first[first as usize].push(id as u32);
            }
        }
        Self { bytes, by_first }
    }

    fn allows(&self, m: &Matcher, id: u32) -> bool {
        match self.bytes.get(id as usize) {
            Some(Some(b)) if !b.is_empty() => m.allows(b),
            _ => false,
        }
    }

    /// `logits` with every token the grammar does not allow next set to -inf (end of turn is
    /// allowed once the text is complete).
    fn mask(&self, m: &Matcher, logits: &[f32], tok: &Tok) -> Vec<f32> {
        let mut out = vec![f32::NEG_INFINITY; logits.len()];
        let next = m.next_bytes();
        for (first, ids) in self.by_first.iter().enumerate() {
            if !next[first] {
                continue;
            }
            for &id in ids {
                if (id as usize) < logits.len() && self.allows(m, id) {
                    out[id as usize] = logits[id as usize];
                }
            }
        }
        if m.is_complete() {
            for &id in &tok.eos_ids {
                if let Some(v) = out.get_mut(id as usize) {
                    *v = logits[id as usize];
                }
            }
        }
        out
    }
}

/// Additive bias `[b, 1, t, s]`: query `j` of row `r` (at slot `s_old + j`) sees valid slots up to
/// its own; a padding query sees only itself (its output is never used).
fn attention_bias(rows: &[&Row], t: usize, device: &Device) -> Result<Tensor> {
    let s = rows[0].valid.len();
    let s_old = s - t;
    let mut v = vec![f32::NEG_INFINITY; rows.len() * t * s];
    for (r, row) in rows.iter().enumerate() {
        for j in 0..t {
            let q = s_old + j;
            let base = (r * t + j) * s;
            if !row.valid[q] {
                v[base + q] = 0.0;
                continue;
            }
            for k in 0..=q {
                if row.valid[k] {
                    v[base + k] = 0.0;
                }
            }
        }
    }
    Ok(Tensor::from_vec(v, (rows.len(), 1, t, s), device)?)
}

/// The generation engine of one model.
#[derive(Debug)]
pub struct Engine {
    /// The model.
    pub model: Llama,
    /// Its tokenizer.
    pub tokenizer: Tok,
    /// Validated by [`Engine::new`] and fixed afterwards: a batch of 0 would split nothing.
    config: EngineConfig,
    store: Mutex<PrefixStore>,
    tokens: OnceLock<TokenIndex>,
}

impl Engine {
    /// An engine with an empty prefix cache, after checking `config`.
    pub fn new(model: Llama, tokenizer: Tok, config: EngineConfig) -> Result<Self> {
        config.validate()?;
        Ok(Engine {
            model,
            tokenizer,
            config,
            store: Mutex::new(PrefixStore::default()),
            tokens: OnceLock::new(),
        })
    }

    /// The settings the engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Drop all cached prefixes.
    pub fn clear_prefix_cache(&self) {
        self.store.lock().expect("prefix store lock").clear();
    }

    /// Prefixes in the cache.
    pub fn prefix_cache_len(&self) -> usize {
        self.store.lock().expect("prefix store lock").len()
    }

    /// Generate for several prompts (token ids) at once.
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        params: &[SamplingParams],
    ) -> Result<Vec<Generation>> {
        if prompts.len() != params.len() {
            return Err(Error::Options(format!(
                "{} prompts but {} sampling parameter sets",
                prompts.len(),
                params.len()
            )));
        }
        for (request, p) in params.iter().enumerate() {
            p.validate()
                .map_err(|source| Error::Params { request, source })?;
        }
        let mut out = Vec::with_capacity(prompts.len());
        for (p, s) in prompts
            .chunks(self.config.max_batch)
            .zip(params.chunks(self.config.max_batch))
        {
            out.extend(self.generate_batch(p, s)?);
        }
        Ok(out)
    }

    fn generate_batch(
        &self,
        prompts: &[Vec<u32>],
        params: &[SamplingParams],
    ) -> Result<Vec<Generation>> {
        let dev = self.model.device().clone();
        let max_ctx = self.model.config.max_position_embeddings;
        for (request, p) in prompts.iter().enumerate() {
            if p.is_empty() {
                return Err(Error::Request {
                    request,
                    message: "empty prompt".into(),
                });
            }
            if p.len() >= max_ctx {
                return Err(Error::Request {
                    request,
                    message: format!(
                        "prompt of {} tokens leaves no room in a context of {max_ctx}",
                        p.len()
                    ),
                });
            }
        }
        let mut matchers = Vec::with_capacity(params.len());
        for (i, sp) in params.iter().enumerate() {
            matchers.push(match &sp.grammar {
                Some(g) => Some(
                    g.compile()
                        .map_err(|source| Error::Grammar { request: i, source })?
                        .matcher(),
                ),
                None => None,
            });
        }
        // Reuse cached prefixes. A batch-1 request takes its entry out and extends it in place.
        let mut parts: Vec<KvCache> = Vec::with_capacity(prompts.len());
        {
            let mut store = self.store.lock().expect("prefix store lock");
            let single = prompts.len() == 1;
            for p in prompts {
                match store.best(p, self.config.min_reuse_tokens) {
                    Some((i, n)) => {
                        let mut c = if single {
                            store.entries.swap_remove(i).cache
                        } else {
                            store.clock += 1;
                            store.entries[i].last_used = store.clock;
                            store.entries[i].cache.clone()
                        };
                        c.truncate(n);
                        parts.push(c);
                    }
                    None => parts.push(KvCache::new(self.model.config.num_hidden_layers)),
                }
            }
        }
        let width = parts.iter().map(|c| c.len()).max().unwrap_or(0);
        let mut cache = if prompts.len() == 1 {
            parts.pop().expect("one part")
        } else if width == 0 {
            KvCache::new(self.model.config.num_hidden_layers)
        } else {
            let refs: Vec<&KvCache> = parts.iter().collect();
            KvCache::stack_right_aligned(&refs, width, &self.model.config, &dev)?
        };
        let mut rows: Vec<Row> = prompts
            .iter()
            .zip(params)
            .enumerate()
            .map(|(idx, (p, sp))| {
                let n = parts.get(idx).map(|c| c.len()).unwrap_or(cache.len());
                let mut valid = vec![false; width - n];
                valid.extend(std::iter::repeat_n(true, n));
                Row {
                    idx,
                    prompt_len: p.len(),
                    cached_tokens: p[..n].to_vec(),
                    valid,
                    next_pos: n,
                    generated: Vec::new(),
                    logprobs: Vec::new(),
                    text_len_checked: 0,
                    rng: ChaCha8Rng::seed_from_u64(sp.seed),
                    params: sp.clone(),
                    reused: n,
                    done: None,
                    matcher: matchers[idx].take(),
                    forced: 0,
                    masked_steps: 0,
                }
            })
            .collect();
        // Prefill the uncached tails, right-aligned, in chunks.
        let t_prefill = std::time::Instant::now();
        let tails: Vec<&[u32]> = rows.iter().map(|r| &prompts[r.idx][r.next_pos..]).collect();
        let tail_len = tails.iter().map(|t| t.len()).max().unwrap_or(0);
        let padded: Vec<Vec<Option<u32>>> = tails
            .iter()
            .map(|t| {
                std::iter::repeat_n(None, tail_len - t.len())
                    .chain(t.iter().map(|&x| Some(x)))
                    .collect()
            })
            .collect();
        let chunk = (self.config.prefill_chunk_tokens / rows.len()).max(16);
        let mut last_logits: Option<Tensor> = None;
        let mut start = 0;
        while start < tail_len {
            let t = chunk.min(tail_len - start);
            let mut ids = Vec::with_capacity(rows.len() * t);
            let mut pos = Vec::with_capacity(rows.len() * t);
            for (r, row) in rows.iter_mut().enumerate() {
                for tok in &padded[r][start..start + t] {
                    match tok {
                        Some(x) => {
                            ids.push(*x);
                            pos.push(row.next_pos as u32);
                            row.next_pos += 1;
                            row.valid.push(true);
                            row.cached_tokens.push(*x);
                        }
                        None => {
                            ids.push(0);
                            pos.push(0);
                            row.valid.push(false);
                        }
                    }
                }
            }
            last_logits = Some(self.step(&rows, ids, pos, t, &mut cache, &dev)?);
            start += t;
        }
        let mut logits = last_logits.ok_or_else(|| Error::Config("nothing to prefill".into()))?;
        let prefill_ms = t_prefill.elapsed().as_secs_f64() * 1e3;
        let t_decode = std::time::Instant::now();
        // Decode.
        let mut finished: Vec<Row> = Vec::new();
        loop {
            let lv: Vec<Vec<f32>> = logits.to_vec2()?;
            let mut feed: Vec<Vec<u32>> = Vec::new();
            for (row, l) in rows.iter_mut().zip(&lv) {
                let Some((id, lp)) = self.pick(row, l) else {
                    // A grammar nothing in the vocabulary continues: end the turn here.
                    let text = self.tokenizer.decode(&row.generated, false)?;
                    row.done = Some((StopReason::EndOfTurn, text));
                    continue;
                };
                if let Some(m) = &mut row.matcher
                    && !self.tokenizer.is_eos(id)
                {
                    let bytes = self.token_index().bytes[id as usize].as_deref();
                    // `pick` only returns tokens the grammar allows, which all have bytes.
                    let moved = bytes.is_some_and(|b| m.advance(b));
                    debug_assert!(moved, "picked token {id} leaves the grammar");
                }
                if self.tokenizer.is_eos(id) {
                    let text = self.tokenizer.decode(&row.generated, false)?;
                    row.done = Some((StopReason::EndOfTurn, text));
                    continue;
                }
                row.generated.push(id);
                row.logprobs.push(lp);
                let mut fed = vec![id];
                if self.config.jump_forward {
                    let room = row.params.max_tokens.saturating_sub(row.generated.len());
                    let forced = self
                        .forced_tokens(row, room.min(max_ctx.saturating_sub(row.next_pos + 2)))?;
                    row.forced += forced.len();
                    row.logprobs.extend(std::iter::repeat_n(0.0, forced.len()));
                    row.generated.extend(&forced);
                    fed.extend(forced);
                }
                let text = self.tokenizer.decode(&row.generated, false)?;
                // Under a grammar the grammar says where the text ends: a stop string inside it
                // (a reason that quotes `</tool_call>`) must not cut it.
                if let Some((s, end)) = find_stop(&text, &row.params.stop, row.text_len_checked)
                    .filter(|_| row.matcher.is_none())
                {
                    row.done = Some((StopReason::StopString(s), text[..end].to_string()));
                    continue;
                }
                row.text_len_checked = text.len();
                if row.matcher.as_ref().is_some_and(|m| !m.can_continue()) {
                    // The grammar's string is complete and nothing may follow it.
                    row.done = Some((StopReason::EndOfTurn, text));
                    continue;
                }
                if row.generated.len() >= row.params.max_tokens
                    || row.next_pos + fed.len() >= max_ctx
                {
                    row.done = Some((StopReason::Length, text));
                    continue;
                }
                feed.push(fed);
            }
            // Keep the finished rows' caches, then drop them from the batch.
            if rows.iter().any(|r| r.done.is_some()) {
                let keep: Vec<u32> = rows
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.done.is_none())
                    .map(|(i, _)| i as u32)
                    .collect();
                let n_rows = rows.len();
                for (i, row) in rows.iter().enumerate() {
                    if row.done.is_some() {
                        self.remember(row, &cache, i, n_rows)?;
                    }
                }
                let mut kept = Vec::new();
                for row in rows.drain(..) {
                    if row.done.is_some() {
                        finished.push(row);
                    } else {
                        kept.push(row);
                    }
                }
                rows = kept;
                if rows.is_empty() {
                    break;
                }
                cache = cache.select_rows(&keep)?;
            }
            // Rows that fed forced tokens feed several; the others are padded on the left, as
            // in the prefill.
            let t = feed.iter().map(Vec::len).max().unwrap_or(1);
            let mut ids = Vec::with_capacity(rows.len() * t);
            let mut pos = Vec::with_capacity(rows.len() * t);
            for (row, fed) in rows.iter_mut().zip(&feed) {
                for _ in fed.len()..t {
                    ids.push(0);
                    pos.push(0);
                    row.valid.push(false);
                }
                for &id in fed {
                    ids.push(id);
                    pos.push(row.next_pos as u32);
                    row.next_pos += 1;
                    row.valid.push(true);
                    row.cached_tokens.push(id);
                }
            }
            logits = self.step(&rows, ids, pos, t, &mut cache, &dev)?;
        }
        finished.sort_by_key(|r| r.idx);
        tracing::debug!(
            rows = finished.len(),
            prompt = finished.iter().map(|r| r.prompt_len).sum::<usize>(),
            reused = finished.iter().map(|r| r.reused).sum::<usize>(),
            generated = finished.iter().map(|r| r.generated.len()).sum::<usize>(),
            prefill_ms = format!("{prefill_ms:.0}"),
            decode_ms = format!("{:.0}", t_decode.elapsed().as_secs_f64() * 1e3),
            "generate"
        );
        Ok(finished
            .into_iter()
            .map(|r| {
                let (stop, text) = r.done.expect("finished");
                let _ = r.prompt_len;
                Generation {
                    ids: r.generated,
                    text,
                    stop,
                    logprobs: r.logprobs,
                    reused_tokens: r.reused,
                    forced_tokens: r.forced,
                    masked_steps: r.masked_steps,
                }
            })
            .collect())
    }

    /// Tokens for the bytes `row`'s grammar forces next, at most `room` of them, with the
    /// matcher moved past them. Empty without a grammar, when nothing is forced, or when the
    /// forced bytes end where nothing can follow (the call is complete: no forward is needed).
    fn forced_tokens(&self, row: &mut Row, room: usize) -> Result<Vec<u32>> {
        let Some(m) = &mut row.matcher else {
            return Ok(Vec::new());
        };
        let bytes = m.forced_bytes();
        // Cut at a character boundary: a token is made of whole characters' bytes here.
        let text = match std::str::from_utf8(&bytes) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid prefix"),
        };
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = self.tokenizer.encode(text)?;
        ids.truncate(room);
        let index = self.token_index();
        for (k, &id) in ids.iter().enumerate() {
            // A tokenizer that spelled the text otherwise (special tokens) stops the jump.
            if !index.allows(m, id) {
                ids.truncate(k);
                break;
            }
            m.advance(
                index.bytes[id as usize]
                    .as_deref()
                    .expect("allowed tokens have bytes"),
            );
        }
        Ok(ids)
    }

    /// `logits` with every token `m` does not allow next set to -inf: the mask a constrained
    /// step computes when it cannot try the model's choice first (public for the benchmarks).
    pub fn grammar_mask(&self, m: &Matcher, logits: &[f32]) -> Vec<f32> {
        self.token_index().mask(m, logits, &self.tokenizer)
    }

    /// Whether `m` allows token `id` next: the one check of a step that tries first.
    pub fn grammar_allows(&self, m: &Matcher, id: u32) -> bool {
        if self.tokenizer.is_eos(id) {
            m.is_complete()
        } else {
            self.token_index().allows(m, id)
        }
    }

    fn token_index(&self) -> &TokenIndex {
        self.tokens.get_or_init(|| TokenIndex::new(&self.tokenizer))
    }

    /// The next token of `row`: sampled from `logits`, among the tokens its grammar allows when
    /// it has one.
    ///
    /// Greedy decoding tries the unconstrained choice first, which is usually allowed, and
    /// masks the vocabulary only when it is not. Sampling (top-p 1) draws from the unmasked
    /// distribution first in the same way ([`sample_allowed`]), which draws from exactly the
    /// masked distribution; with a nucleus every step masks. Either way the log-probability
    /// reported is the token's under the model's temperature-scaled distribution before the
    /// mask, as without a grammar: the masked one needs the mass of every allowed token, which
    /// is what trying first avoids computing.
    ///
    /// `None` when no token can continue the grammar (the vocabulary cannot spell it): the row
    /// ends there.
    fn pick(&self, row: &mut Row, logits: &[f32]) -> Option<(u32, f32)> {
        let Some(m) = &row.matcher else {
            return Some(sample(logits, &row.params, &mut row.rng));
        };
        let index = self.token_index();
        let allowed = |id: u32| self.grammar_allows(m, id);
        let mask = || index.mask(m, logits, &self.tokenizer);
        let t = row.params.temperature;
        let (id, first_lp) = if t <= 0.0 || (self.config.sample_first && row.params.top_p >= 1.0) {
            sample_allowed(logits, &row.params, &mut row.rng, allowed, mask)?
        } else {
            (masked_draw(&mask(), &row.params, &mut row.rng)?, None)
        };
        let masked = first_lp.is_none();
        if masked {
            row.masked_steps += 1;
        }
        let inv = if t <= 0.0 { 1.0 } else { 1.0 / t };
        let lp = first_lp.unwrap_or_else(|| logits[id as usize] * inv - log_sum_exp(logits, inv));
        Some((id, lp))
    }

    /// One forward of `t` new tokens per row; returns the last position's logits `[rows, vocab]`.
    fn step(
        &self,
        rows: &[Row],
        ids: Vec<u32>,
        pos: Vec<u32>,
        t: usize,
        cache: &mut KvCache,
        dev: &Device,
    ) -> Result<Tensor> {
        let b = rows.len();
        let ids = Tensor::from_vec(ids, (b, t), dev)?;
        let pos = Tensor::from_vec(pos, (b, t), dev)?;
        let all_valid = rows.iter().all(|r| r.valid.iter().all(|v| *v));
        let refs: Vec<&Row> = rows.iter().collect();
        // Without padding, a single new token needs no mask.
        let bias = if all_valid && t == 1 {
            None
        } else {
            Some(attention_bias(&refs, t, dev)?)
        };
        let h = self
            .model
            .forward_hidden(&ids, &pos, bias.as_ref(), Some(cache), Mode::Infer)?;
        let last = h.narrow(1, t - 1, 1)?.squeeze(1)?;
        self.model.logits(&last, Mode::Infer)
    }

    fn remember(&self, row: &Row, cache: &KvCache, i: usize, n_rows: usize) -> Result<()> {
        if self.config.prefix_cache_entries == 0 {
            return Ok(());
        }
        let contiguous = row.valid.iter().all(|v| *v);
        let c = if n_rows == 1 && contiguous {
            let mut c = cache.clone();
            c.truncate(row.valid.len());
            c
        } else {
            let slots: Vec<u32> = row
                .valid
                .iter()
                .enumerate()
                .filter(|(_, v)| **v)
                .map(|(s, _)| s as u32)
                .collect();
            cache.extract(i, &slots)?
        };
        debug_assert_eq!(c.len(), row.cached_tokens.len());
        self.store.lock().expect("prefix store lock").insert(
            row.cached_tokens.clone(),
            c,
            self.config.prefix_cache_entries,
        );
        Ok(())
    }
}

/// First stop string that ends at or after byte `from` of `text`: (stop, end byte of the match).
fn find_stop(text: &str, stops: &[String], from: usize) -> Option<(String, usize)> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            // The match may have started before `from` (the text grew by a few bytes).
            let begin = from.saturating_sub(s.len());
            let begin = (0..=begin)
                .rev()
                .find(|&b| text.is_char_boundary(b))
                .unwrap_or(0);
            text[begin..]
                .find(s.as_str())
                .map(|k| (s.clone(), begin + k + s.len()))
        })
        .min_by_key(|(_, end)| *end)
}

#[cfg(test)]
mod tests;
