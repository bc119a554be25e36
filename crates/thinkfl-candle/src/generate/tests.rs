use super::*;

/// Pearson's chi-square of `counts` against the probabilities `q` (cells with q = 0 must be
/// empty: a draw there is an error in itself).
fn chi_square(counts: &[u64], q: &[f64]) -> f64 {
    let n: u64 = counts.iter().sum();
    counts
        .iter()
        .zip(q)
        .map(|(&c, &p)| {
            if p == 0.0 {
                assert_eq!(c, 0, "a token outside the allowed set was drawn");
                0.0
            } else {
                let e = p * n as f64;
                (c as f64 - e).powi(2) / e
            }
        })
        .sum()
}

/// The masked distribution: softmax of logits / t over the allowed tokens, 0 elsewhere.
fn masked_probs(logits: &[f32], allowed: &[bool], t: f64) -> Vec<f64> {
    let w: Vec<f64> = logits
        .iter()
        .zip(allowed)
        .map(|(&l, &a)| if a { (l as f64 / t).exp() } else { 0.0 })
        .collect();
    let z: f64 = w.iter().sum();
    w.iter().map(|x| x / z).collect()
}

const LOGITS: [f32; 7] = [2.0, 1.0, 0.5, -1.0, 3.0, 0.0, -0.5];
// The most likely token (4) and the next (0) are not allowed: the first draw is rejected
// about 80% of the time, so both branches carry weight.
const ALLOWED: [bool; 7] = [false, true, true, true, false, true, false];
const DRAWS: usize = 200_000;
// The 0.1% critical value of chi-square with 3 degrees of freedom (4 allowed tokens).
const CRITICAL: f64 = 16.27;

fn params(t: f32) -> SamplingParams {
    SamplingParams {
        temperature: t,
        top_p: 1.0,
        ..SamplingParams::greedy(1)
    }
}

fn masked_logits() -> Vec<f32> {
    LOGITS
        .iter()
        .zip(ALLOWED)
        .map(|(&l, a)| if a { l } else { f32::NEG_INFINITY })
        .collect()
}

/// Counts of `DRAWS` draws of `draw` on a fixed seed, and how many masked.
fn histogram(mut draw: impl FnMut(&mut ChaCha8Rng) -> (u32, bool)) -> (Vec<u64>, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut counts = vec![0u64; LOGITS.len()];
    let mut masked = 0;
    for _ in 0..DRAWS {
        let (id, m) = draw(&mut rng);
        counts[id as usize] += 1;
        masked += m as usize;
    }
    (counts, masked)
}

#[test]
fn sample_first_draws_from_exactly_the_masked_distribution() {
    for t in [0.7f32, 1.0, 1.2] {
        let p = params(t);
        let q = masked_probs(&LOGITS, &ALLOWED, t as f64);
        let allowed = |id: u32| ALLOWED[id as usize];
        let (first, masked) = histogram(|rng| {
            let (id, lp) = sample_allowed(&LOGITS, &p, rng, allowed, masked_logits).unwrap();
            (id, lp.is_none())
        });
        // The always-masked reference, on the same seed.
        let (reference, _) =
            histogram(|rng| (masked_draw(&masked_logits(), &p, rng).unwrap(), true));
        let (c1, c2) = (chi_square(&first, &q), chi_square(&reference, &q));
        assert!(
            c1 < CRITICAL,
            "t {t}: sample-first chi-square {c1}: {first:?} vs {q:?}"
        );
        assert!(c2 < CRITICAL, "t {t}: reference chi-square {c2}");
        // The first draw is rejected with probability 1 - P(allowed) under the unmasked
        // distribution: the fallback really ran, as often as it should.
        let all = masked_probs(&LOGITS, &[true; 7], t as f64);
        let reject: f64 = all
            .iter()
            .zip(ALLOWED)
            .filter(|(_, a)| !a)
            .map(|(p, _)| p)
            .sum();
        let rate = masked as f64 / DRAWS as f64;
        assert!(
            (rate - reject).abs() < 0.005,
            "t {t}: masked {rate} vs {reject}"
        );
    }
}

/// The test above can fail: a plausible wrong fallback (the best allowed token) is far off
/// the masked distribution, and so is trying first under a nucleus (top-p < 1), which is
/// why `pick` masks every step there.
#[test]
fn the_distribution_check_rejects_wrong_fallbacks() {
    let p = params(1.2);
    let q = masked_probs(&LOGITS, &ALLOWED, 1.2);
    let allowed = |id: u32| ALLOWED[id as usize];
    let (best, _) = histogram(|rng| {
        let (id, _) = sample(&LOGITS, &p, rng);
        if allowed(id) {
            (id, false)
        } else {
            (
                masked_draw(&masked_logits(), &params(0.0), rng).unwrap(),
                true,
            )
        }
    });
    assert!(chi_square(&best, &q) > 10.0 * CRITICAL);
    // Top-p 0.9: the target is the nucleus of the masked distribution (tokens 1, 2, 5).
    let nucleus = SamplingParams {
        top_p: 0.9,
        ..params(1.2)
    };
    let mut order: Vec<usize> = (0..q.len()).filter(|&i| q[i] > 0.0).collect();
    order.sort_by(|&a, &b| q[b].total_cmp(&q[a]));
    let mut target = vec![0.0; q.len()];
    let mut mass = 0.0;
    for &i in &order {
        target[i] = q[i];
        mass += q[i];
        if mass >= 0.9 {
            break;
        }
    }
    target.iter_mut().for_each(|x| *x /= mass);
    assert_eq!(target.iter().filter(|&&x| x > 0.0).count(), 3);
    let (reference, _) =
        histogram(|rng| (masked_draw(&masked_logits(), &nucleus, rng).unwrap(), true));
    assert!(chi_square(&reference, &target) < CRITICAL);
    let (tried, _) = histogram(|rng| {
        let (id, _) = sample(&LOGITS, &nucleus, rng);
        if allowed(id) {
            (id, false)
        } else {
            (masked_draw(&masked_logits(), &nucleus, rng).unwrap(), true)
        }
    });
    assert!(chi_square(&tried, &target) > 10.0 * CRITICAL);
}

#[test]
fn sample_first_is_the_argmax_rule_at_temperature_zero_and_none_when_nothing_is_allowed() {
    let p = params(0.0);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // Allowed argmax: kept without masking.
    let (id, lp) = sample_allowed(&LOGITS, &p, &mut rng, |_| true, || unreachable!()).unwrap();
    assert_eq!((id, lp.is_some()), (4, true));
    // Rejected: the masked argmax (token 1, logit 1.0).
    let (id, lp) = sample_allowed(
        &LOGITS,
        &p,
        &mut rng,
        |id| ALLOWED[id as usize],
        masked_logits,
    )
    .unwrap();
    assert_eq!((id, lp), (1, None));
    let none = sample_allowed(
        &LOGITS,
        &params(1.0),
        &mut rng,
        |_| false,
        || vec![f32::NEG_INFINITY; LOGITS.len()],
    );
    assert_eq!(none, None);
}
