//! Lane reductions and the exponential the kernels share.

/// `sum f(a[i], b[i])` over two slices of one length in 16 independent lanes, which the
/// compiler vectorizes (a single running sum cannot be reordered, so it stays scalar). The one
/// summing loop of [`lane_sum`] and [`dot`].
#[inline(always)]
pub fn lane_sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let rest: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += f(x[i], y[i]);
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// `sum f(x)` in 16 independent lanes ([`lane_sum2`]).
#[inline(always)]
pub fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    lane_sum2(x, x, |v, _| f(v))
}

/// The largest value (NaN ignored, -inf for none), in 16 lanes ([`lanes`]).
#[inline(always)]
pub fn lane_max(x: &[f32]) -> f32 {
    lanes(x, f32::NEG_INFINITY, |a, v| if v > a { v } else { a })
}

/// `e^x` for `x <= 0` (what softmax needs after subtracting the maximum), within 2e-7 relative
/// (Cephes' `expf` polynomial); 0 below -87 (and for -inf or NaN). Branch-free and without
/// calls, so loops over it vectorize.
#[inline(always)]
pub fn exp_le0(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n * C1 is exact.
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without `round`.
    const ROUND: f32 = 12_582_912.0;
    let live = x >= -87.0;
    let x = if live { x } else { 0.0 };
    let f = x * LOG2E + ROUND;
    let n = f - ROUND;
    // n as an integer, read from the mantissa of f (a float-to-int cast is not vectorized on
    // baseline x86-64).
    let ni = (f.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    if live { e * scale } else { 0.0 }
}

/// A reduction of `x` in 16 independent lanes, which the compiler vectorizes.
#[inline(always)]
pub fn lanes(x: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder().iter().fold(init, |a, &v| f(a, v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = f(*a, v);
        }
    }
    acc.iter().fold(rest, |a, &v| f(a, v))
}

/// `1 / (1 + e^-x)` through [`exp_le0`] of `-|x|`, so that it vectorizes and never overflows.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = exp_le0(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 { r } else { e * r }
}

/// `sum a * b` in 16 independent lanes ([`lane_sum2`]).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    lane_sum2(a, b, |x, y| x * y)
}
