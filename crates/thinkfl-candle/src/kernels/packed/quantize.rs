//! Quantizing a block onto its grid, and the f16 conversions of the steps and offsets.

use super::BLOCK;

pub(super) const F16_MAX: f32 = 65504.0;

/// Codes of one block (`v.len() <= BLOCK`, finite) into `codes`; returns (step, offset) as f16
/// bits. Of the three grids (see [`super`]) the one with the smallest largest error wins.
pub(super) fn quantize_block(v: &[f32], codes: &mut [u8; BLOCK]) -> (u16, u16) {
    // Fixed-size arrays and comparisons instead of `f32::min`/`max` (which handle NaN) let the
    // loops vectorize: packing a model is otherwise seconds of load time. A short block is
    // padded with its own first value, which changes no extreme and no error.
    let mut x = [v[0]; BLOCK];
    x[..v.len()].copy_from_slice(v);
    let lo = reduce(&x, |a, b| if b < a { b } else { a });
    let hi = reduce(&x, |a, b| if b > a { b } else { a });
    let amax = if -lo > hi { -lo } else { hi };
    let sym = f16_ceil(amax / 127.0);
    let floor = f16_floor(lo);
    // The 4-bit grid first: when it is exact the block keeps codes below 16, which lets a
    // matrix of such blocks be stored in 4 bits.
    let candidates = [
        (f16_ceil((hi - f16_to_f32(floor)) / 15.0), floor),
        (sym, f32_to_f16(-128.0 * f16_to_f32(sym))),
        (f16_ceil((hi - f16_to_f32(floor)) / 255.0), floor),
    ];
    let mut best: Option<(f32, u16, u16)> = None;
    let mut trial = [0u8; BLOCK];
    let mut err = [0f32; BLOCK];
    for (step_h, min_h) in candidates {
        let (step, min) = (f16_to_f32(step_h), f16_to_f32(min_h));
        if !step.is_finite() || !min.is_finite() {
            continue;
        }
        let inv = if step > 0.0 { 1.0 / step } else { 0.0 };
        for i in 0..BLOCK {
            // x >= min on every grid, so adding a half and truncating rounds to nearest (and
            // compiles to instructions, where `round` is a libm call on baseline x86-64).
            let q = ((x[i] - min) * inv + 0.5) as u32;
            let q = if q > 255 { 255 } else { q };
            trial[i] = q as u8;
            let d = min + step * q as f32 - x[i];
            err[i] = if d < 0.0 { -d } else { d };
        }
        let worst = reduce(&err, |a, b| if b > a { b } else { a });
        if best.is_none_or(|(w, _, _)| worst < w) {
            best = Some((worst, step_h, min_h));
            codes.copy_from_slice(&trial);
            if worst == 0.0 {
                // The block's own grid (a Q8_0 or Q4_1 block): nothing can do better.
                break;
            }
        }
    }
    // The min-max grids stay finite for weights within F16_MAX / 2 (checked by `pack`).
    best.map_or((0, 0), |(_, s, m)| (s, m))
}

/// `f` over a block in eight independent lanes (vectorizable), then across them.
/// Not the shared [`crate::kernels::math::lanes`]: on this fixed block it made packing SmolLM2
/// at load take about 0.4 s more CPU (one thread, measured with `thinkfl bench model`).
#[inline(always)]
fn reduce(x: &[f32; BLOCK], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [x[0]; 8];
    for c in x.chunks_exact(8) {
        for j in 0..8 {
            acc[j] = f(acc[j], c[j]);
        }
    }
    acc.into_iter().fold(acc[0], f)
}

/// The smallest f16 at or above `x`.
fn f16_ceil(x: f32) -> u16 {
    let h = f32_to_f16(x);
    if f16_to_f32(h) >= x {
        h
    } else if h == 0x8000 {
        1
    } else if h & 0x8000 != 0 {
        h - 1
    } else {
        h + 1
    }
}

/// The largest f16 at or below `x`.
fn f16_floor(x: f32) -> u16 {
    let h = f32_to_f16(x);
    if f16_to_f32(h) <= x {
        h
    } else if h == 0 {
        0x8001
    } else if h & 0x8000 != 0 {
        h + 1
    } else {
        h - 1
    }
}

/// f32 to IEEE half, rounding to nearest even.
pub fn f32_to_f16(v: f32) -> u16 {
    let x = v.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let man = x & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    let round = |h: u32, rem: u32, half: u32| -> u32 {
        if rem > half || (rem == half && h & 1 == 1) {
            h + 1
        } else {
            h
        }
    };
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let h = round(m >> shift, m & ((1 << shift) - 1), 1 << (shift - 1));
        return sign | h as u16;
    }
    let h = round(((e as u32) << 10) | (man >> 13), man & 0x1fff, 0x1000);
    sign | h as u16
}

/// IEEE half to f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match exp {
        0 => {
            let v = man as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        0x1f => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}
