//! The kernels that came from the fused inference forward and from `qlinear` against naive f64
//! references, on their own (the model-level tests in `tests/decode.rs` see them only through
//! whole forwards): cache attention on both of its paths, the lane reductions and the dot
//! product, and the inference row operations.

use super::cache_attention::{Dims, attend};
use super::elementwise::{rms_norm_div, rope, silu_mul};
use super::math::{dot, lane_max, lane_sum, lanes};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// Softmax attention in f64, one query at a time: `q` `[b * t, nh * hd]`, the caches
/// `[b, kvh, cap, hd]`, `mask` `[b * t, s]` (`None`: every slot visible).
fn attend_reference(
    q: &[f32],
    kc: &[f32],
    vc: &[f32],
    cap: usize,
    d: &Dims,
    scale: f32,
    mask: Option<&[f32]>,
) -> Vec<f64> {
    let (hd, s) = (d.hd, d.s);
    let rep = d.nh / d.kvh;
    let mut y = vec![0f64; d.b * d.t * d.nh * hd];
    for row in 0..d.b * d.t {
        let r = row / d.t;
        for h in 0..d.nh {
            let g = h / rep;
            let qv = &q[(row * d.nh + h) * hd..][..hd];
            let base = (r * d.kvh + g) * cap * hd;
            let scores: Vec<f64> = (0..s)
                .map(|slot| {
                    let kv = &kc[base + slot * hd..][..hd];
                    let x: f64 = qv.iter().zip(kv).map(|(&a, &b)| a as f64 * b as f64).sum();
                    x * scale as f64 + mask.map_or(0.0, |m| m[row * s + slot] as f64)
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if max == f64::NEG_INFINITY {
                continue;
            }
            let e: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
            let z: f64 = e.iter().sum();
            let out = &mut y[(row * d.nh + h) * hd..][..hd];
            for (slot, p) in e.iter().enumerate() {
                let vv = &vc[base + slot * hd..][..hd];
                for (o, &v) in out.iter_mut().zip(vv) {
                    *o += p / z * v as f64;
                }
            }
        }
    }
    y
}

/// Cache attention against the reference: head widths on the AVX2 kernel's wide (64, 128) and
/// narrow (8, 72 = 64 + 8) paths and on the portable loops (6, 10), slot counts on both sides
/// of its blocks of 64, one and several new tokens, no mask, right-aligned padding, causal
/// prefills, and a row with nothing visible (zeros, not NaN).
#[test]
fn cache_attention_matches_the_f64_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut cases = 0;
    for hd in [8usize, 64, 128, 72, 6, 10] {
        for (b, t, s, kvh, rep) in [
            (1usize, 1usize, 1usize, 1usize, 1usize),
            (1, 1, 63, 2, 3),
            (3, 1, 65, 2, 2),
            (2, 4, 130, 1, 4),
            (2, 20, 70, 2, 1),
        ] {
            let cap = s + 3;
            let d = Dims {
                b,
                t,
                s,
                nh: kvh * rep,
                kvh,
                hd,
            };
            let q = random(&mut rng, b * t * d.nh * hd, 1.0);
            // Slots at and beyond `s` are garbage the kernel must not read into its result.
            let kc = random(&mut rng, b * kvh * cap * hd, 1.0);
            let vc = random(&mut rng, b * kvh * cap * hd, 1.0);
            let scale = 1.0 / (hd as f32).sqrt();
            let mut masks: Vec<Option<Vec<f32>>> = Vec::new();
            if t == 1 {
                masks.push(None);
            }
            // Row r padded by `r * 7 % s` slots on the left, each new token seeing the slots
            // up to its own.
            let mask: Vec<f32> = (0..b * t)
                .flat_map(|row| {
                    let (r, j) = (row / t, row % t);
                    let pad = (r * 7) % s;
                    (0..s).map(move |slot| {
                        if slot >= pad.min(s - t + j) && slot <= s - t + j {
                            0.0
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                })
                .collect();
            masks.push(Some(mask.clone()));
            // The first row sees nothing at all.
            let mut blind = mask;
            blind[..s].fill(f32::NEG_INFINITY);
            masks.push(Some(blind));
            for mask in &masks {
                let y = attend(&q, &kc, &vc, cap, &d, scale, mask.as_deref());
                let r = attend_reference(&q, &kc, &vc, cap, &d, scale, mask.as_deref());
                assert_eq!(y.len(), r.len());
                for (i, (&a, &e)) in y.iter().zip(&r).enumerate() {
                    assert!(
                        (a as f64 - e).abs() <= 1e-5,
                        "hd {hd} {d:?} mask {}: y[{i}] = {a}, reference {e}",
                        mask.is_some()
                    );
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 6 * (3 * 3 + 2 * 2));
}

/// The lane reductions and the dot product against f64 sums and exact maxima, at lengths on
/// both sides of whole 16-lane chunks.
#[test]
fn lane_reductions_and_dot_match_the_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for n in [0usize, 1, 5, 15, 16, 17, 31, 32, 33, 100, 577] {
        let a = random(&mut rng, n, 2.0);
        let b = random(&mut rng, n, 2.0);
        let close = |x: f32, e: f64, what: &str| {
            let mag: f64 = a.iter().map(|v| (*v as f64).abs() * 2.0).sum::<f64>() + 1.0;
            assert!(
                (x as f64 - e).abs() <= 1e-6 * mag,
                "n {n}: {what} {x}, reference {e}"
            );
        };
        let ab: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        close(dot(&a, &b), ab, "dot");
        let sq: f64 = a.iter().map(|&x| x as f64 * x as f64).sum();
        close(lane_sum(&a, |v| v * v), sq, "sum of squares");
        let sum: f64 = a.iter().map(|&x| x as f64).sum();
        close(lanes(&a, 0.0, |s, v| s + v), sum, "sum");
        let max = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(lane_max(&a), max, "n {n}: max");
    }
    // NaN is ignored by the maximum; -inf when nothing else is there.
    assert_eq!(lane_max(&[f32::NAN; 20]), f32::NEG_INFINITY);
    let mut x = vec![f32::NAN; 37];
    x[33] = -3.0;
    x[4] = -5.0;
    assert_eq!(lane_max(&x), -3.0);
}

/// The fused inference forward's row operations against f64: rms-norm by division, SiLU times
/// the up projection (both signs, and large magnitudes where `exp` underflows), rotary turns.
#[test]
fn inference_row_kernels_match_the_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let (rows, n) = (5usize, 37usize);
    let x = random(&mut rng, rows * n, 3.0);
    let w = random(&mut rng, n, 1.5);
    let mut y = vec![0f32; rows * n];
    rms_norm_div(&x, &w, 1e-5, &mut y);
    for r in 0..rows {
        let xr = &x[r * n..(r + 1) * n];
        let ms: f64 = xr.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / n as f64;
        let rms = (ms + 1e-5).sqrt();
        for c in 0..n {
            let e = xr[c] as f64 / rms * w[c] as f64;
            assert!(
                (y[r * n + c] as f64 - e).abs() <= 1e-5 * (1.0 + e.abs()),
                "rms-norm"
            );
        }
    }
    let mut g: Vec<f32> = random(&mut rng, 200, 12.0);
    g.extend([0.0, -0.0, 95.0, -95.0, 200.0, -200.0]);
    let u = random(&mut rng, g.len(), 2.0);
    let mut out = g.clone();
    silu_mul(&mut out, &u);
    for ((&gv, &uv), &o) in g.iter().zip(&u).zip(&out) {
        let gv64 = gv as f64;
        let e = gv64 / (1.0 + (-gv64).exp()) * uv as f64;
        assert!(
            (o as f64 - e).abs() <= 1e-6 * (1.0 + e.abs()),
            "silu({gv}) * {uv}: {o} vs {e}"
        );
    }
    let (heads, half) = (3usize, 4usize);
    let x = random(&mut rng, rows * heads * 2 * half, 1.0);
    let ang = random(&mut rng, rows * half, 3.0);
    let cos: Vec<f32> = ang.iter().map(|a| a.cos()).collect();
    let sin: Vec<f32> = ang.iter().map(|a| a.sin()).collect();
    let mut turned = x.clone();
    rope(&mut turned, heads, half, &cos, &sin, 1.0);
    for r in 0..rows {
        for h in 0..heads {
            let o = (r * heads + h) * 2 * half;
            for i in 0..half {
                let (a, b) = (x[o + i] as f64, x[o + half + i] as f64);
                let (c, s) = (cos[r * half + i] as f64, sin[r * half + i] as f64);
                assert!((turned[o + i] as f64 - (a * c - b * s)).abs() <= 1e-6);
                assert!((turned[o + half + i] as f64 - (a * s + b * c)).abs() <= 1e-6);
            }
        }
    }
}
