//! Sampling one token from a row of logits: greedy, temperature and nucleus (top-p), and under a
//! grammar the sample-first draw ([`sample_allowed`]) that masks the vocabulary only when the
//! unmasked draw is rejected.

use crate::kernels::math::{exp_le0, lane_max, lane_sum};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use thinkfl_llm::SamplingParams;

/// Sample one id from `logits` (one row) with `params`; returns (id, logprob).
///
/// Runs once per row and token over the whole vocabulary (49,152 for SmolLM2), so the
/// exponentials are vectorized ([`exp_le0`], instead of a libm call each: 0.5 ms a row) and the
/// nucleus is found among the top candidates, widened as needed, instead of by sorting every
/// candidate (2 ms a row at temperature 0.7, top-p 0.9).
pub fn sample(logits: &[f32], params: &SamplingParams, rng: &mut ChaCha8Rng) -> (u32, f32) {
    let t = params.temperature;
    if t <= 0.0 {
        // The first maximum, found by a vectorized max and a scan.
        let bv = lane_max(logits);
        let best = logits.iter().position(|&v| v == bv).unwrap_or(0);
        let lse = log_sum_exp(logits, 1.0);
        return (best as u32, bv - lse);
    }
    let inv = 1.0 / t;
    let max = lane_max(logits);
    let mut probs: Vec<f32> = logits.iter().map(|&l| exp_le0((l - max) * inv)).collect();
    let z = lane_sum(&probs, |p| p);
    if !(z.is_finite() && z > 0.0) {
        // No distribution to draw from (NaN or infinite logits from a broken model, or no
        // logits at all): the best finite logit, if any, rather than a panic deeper down.
        return fallback_pick(logits);
    }
    probs.iter_mut().for_each(|p| *p /= z);
    let top_p = params.top_p.clamp(0.0, 1.0);
    let chosen = if top_p < 1.0 {
        // Tokens below (1 - top_p) / V cannot be in the nucleus (those above carry mass >= top_p),
        // so only the rest are candidates.
        let floor = (1.0 - top_p) / probs.len() as f32;
        let mut cand: Vec<(u32, f32)> = probs
            .iter()
            .enumerate()
            .filter(|(_, p)| **p >= floor)
            .map(|(i, p)| (i as u32, *p))
            .collect();
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        // The nucleus is a prefix of the candidates in this order: sort only the top `k`,
        // widening `k` until their mass reaches top_p (a total order, so the prefix is the one
        // a full sort gives).
        let mut k = cand.len().min(64);
        let keep = loop {
            if k < cand.len() {
                cand.select_nth_unstable_by(k - 1, order);
            }
            cand[..k].sort_unstable_by(order);
            let mut mass = 0.0;
            let mut keep = 0;
            for (_, p) in &cand[..k] {
                mass += p;
                keep += 1;
                if mass >= top_p {
                    break;
                }
            }
            if mass >= top_p || k == cand.len() {
                break keep;
            }
            // The rest are at most the k-th probability each: at least this many more are
            // needed (all of them for a flat distribution).
            let least = cand[k - 1].1.max(f32::MIN_POSITIVE);
            let more = ((top_p - mass) / least).ceil().min(cand.len() as f32) as usize;
            k = cand.len().min((k * 8).max(k + more));
        };
        cand.truncate(keep.max(1));
        if cand.is_empty() {
            return fallback_pick(logits);
        }
        let total: f32 = cand.iter().map(|c| c.1).sum();
        let mut u = rng.random::<f32>() * total;
        let mut pick = cand[cand.len() - 1].0;
        for (i, p) in &cand {
            if u < *p {
                pick = *i;
                break;
            }
            u -= p;
        }
        pick
    } else {
        let mut u = rng.random::<f32>();
        // Rounding can leave `u` above the last probability: fall back to the last token that
        // has any (a masked-out token has none).
        let mut pick = probs
            .iter()
            .rposition(|p| *p > 0.0)
            .unwrap_or(probs.len() - 1) as u32;
        for (i, p) in probs.iter().enumerate() {
            if u < *p {
                pick = i as u32;
                break;
            }
            u -= p;
        }
        pick
    };
    (chosen, probs[chosen as usize].max(f32::MIN_POSITIVE).ln())
}

/// The first of the largest finite logits, with log-probability 0 (it is all that can be
/// drawn); token 0 at -inf when there is none.
fn fallback_pick(logits: &[f32]) -> (u32, f32) {
    let best = logits
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .fold(None::<(usize, f32)>, |acc, (i, &v)| match acc {
            Some((_, b)) if b >= v => acc,
            _ => Some((i, v)),
        });
    match best {
        Some((i, _)) => (i as u32, 0.0),
        None => (0, f32::NEG_INFINITY),
    }
}

/// One draw from the temperature-scaled distribution of `logits` restricted to the tokens
/// `allowed` admits (at top-p 1), trying the unrestricted distribution first: `masked` (the
/// logits with -inf on every token not allowed, the expensive part) is built only when the
/// first draw is rejected. Returns the id and, when the first draw was kept, its log-probability
/// under the unrestricted distribution (`None` when it masked); `None` when nothing is allowed.
///
/// Why this draws from exactly the restricted distribution: let P be the unrestricted
/// distribution, A the allowed tokens, p_A = P(A) > 0, and Q(x) = P(x) / p_A on A. The first
/// draw x ~ P is kept when x is in A; otherwise (probability 1 - p_A) a fresh draw from Q itself
/// is returned. For x in A,
///
///   Pr[out = x] = P(x) + (1 - p_A) Q(x) = P(x) + (1 - p_A) P(x) / p_A = P(x) / p_A = Q(x),
///
/// and no token outside A is returned. Two things the sum needs: the second draw uses fresh
/// randomness and does not depend on which token was rejected, and it is from Q, not from P
/// again (that would be rejection sampling repeated, also exact but unbounded). With a nucleus
/// (top-p < 1) the target is the nucleus of Q, which is not P's nucleus restricted to A (nor is
/// P restricted to it), so this shortcut does not apply there. At temperature 0 the same
/// argument holds with P a point mass: the argmax if allowed, else the masked argmax.
pub fn sample_allowed(
    logits: &[f32],
    params: &SamplingParams,
    rng: &mut ChaCha8Rng,
    allowed: impl Fn(u32) -> bool,
    masked: impl FnOnce() -> Vec<f32>,
) -> Option<(u32, Option<f32>)> {
    debug_assert!(params.top_p >= 1.0 || params.temperature <= 0.0);
    let (id, lp) = sample(logits, params, rng);
    if allowed(id) {
        return Some((id, Some(lp)));
    }
    Some((masked_draw(&masked(), params, rng)?, None))
}

/// A draw from `masked` (logits with -inf on the tokens not allowed) under `params`; `None`
/// when no token is allowed.
pub(super) fn masked_draw(
    masked: &[f32],
    params: &SamplingParams,
    rng: &mut ChaCha8Rng,
) -> Option<u32> {
    let best = lane_max(masked);
    if best == f32::NEG_INFINITY {
        return None;
    }
    let (id, _) = sample(masked, params, rng);
    if masked[id as usize] == f32::NEG_INFINITY {
        // Cannot happen with exact arithmetic; take the best allowed token rather than leave
        // the grammar.
        return Some(masked.iter().position(|&v| v == best).unwrap_or(0) as u32);
    }
    Some(id)
}

pub(super) fn log_sum_exp(x: &[f32], scale: f32) -> f32 {
    let m = lane_max(x);
    m * scale + lane_sum(x, |v| exp_le0((v - m) * scale)).ln()
}
