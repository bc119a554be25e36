//! RMSNorm, rotary embeddings and SwiGLU, forward and backward, over rows of contiguous f32.
//! Each is written once over 16-lane loops and compiled for AVX-512 and for the baseline
//! ([`super::multiversion`]).

use super::math::{dot, exp_le0, lane_sum, sigmoid};
use super::multiversion;

multiversion! {
    /// `y = x / sqrt(mean(x^2) + eps) * w` for each row of `x` (rows of `w.len()`).
    pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) => rms_norm_body
}

#[inline(always)]
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    1.0 / (lane_sum(x, |v| v * v) / x.len() as f32 + eps).sqrt()
}

#[inline(always)]
fn rms_norm_body(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
    let n = w.len();
    for (xr, yr) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
        let r = inv_rms(xr, eps);
        for ((o, &a), &b) in yr.iter_mut().zip(xr).zip(w) {
            *o = a * r * b;
        }
    }
}

multiversion! {
    /// The gradient of `x` through [`rms_norm`] (the weight is frozen):
    /// `dx = r g - x r^3 (g . x) / n` with `g = dy * w` and `r = 1 / rms(x)`.
    pub fn rms_norm_backward(x: &[f32], w: &[f32], eps: f32, dy: &[f32], dx: &mut [f32]) => rms_norm_backward_body
}

#[inline(always)]
fn rms_norm_backward_body(x: &[f32], w: &[f32], eps: f32, dy: &[f32], dx: &mut [f32]) {
    let n = w.len();
    for ((xr, gr), dr) in x
        .chunks_exact(n)
        .zip(dy.chunks_exact(n))
        .zip(dx.chunks_exact_mut(n))
    {
        let r = inv_rms(xr, eps);
        // sum(dy * w * x) in 16 lanes.
        let mut acc = [0f32; 16];
        let mut rest = 0f32;
        let (xc, gc, wc) = (xr.chunks_exact(16), gr.chunks_exact(16), w.chunks_exact(16));
        for ((a, b), c) in xc
            .remainder()
            .iter()
            .zip(gc.remainder())
            .zip(wc.remainder())
        {
            rest += a * b * c;
        }
        for ((a, b), c) in xc.zip(gc).zip(wc) {
            for l in 0..16 {
                acc[l] += a[l] * b[l] * c[l];
            }
        }
        let s = acc.iter().sum::<f32>() + rest;
        let c = r * r * r * s / n as f32;
        for (((o, &a), &g), &wv) in dr.iter_mut().zip(xr).zip(gr).zip(w) {
            *o = r * g * wv - a * c;
        }
    }
}

multiversion! {
    /// Rotary embedding in place, "rotate half" layout: `x` holds rows of `heads` vectors of
    /// `2 * half` (`[rows, heads, 2 * half]`); row `r` turns by the angles whose cosines and sines
    /// are `cos[r * half..][..half]`, `sin[...]`. `sign = -1` turns back (the backward pass).
    pub fn rope(x: &mut [f32], heads: usize, half: usize, cos: &[f32], sin: &[f32], sign: f32) => rope_body
}

#[inline(always)]
fn rope_body(x: &mut [f32], heads: usize, half: usize, cos: &[f32], sin: &[f32], sign: f32) {
    if half == 0 {
        return;
    }
    let row = heads * 2 * half;
    for ((xr, c), s) in x
        .chunks_exact_mut(row)
        .zip(cos.chunks_exact(half))
        .zip(sin.chunks_exact(half))
    {
        for v in xr.chunks_exact_mut(2 * half) {
            let (x1, x2) = v.split_at_mut(half);
            for k in 0..half {
                let (a, b) = (x1[k], x2[k]);
                let sk = sign * s[k];
                x1[k] = a * c[k] - b * sk;
                x2[k] = b * c[k] + a * sk;
            }
        }
    }
}

multiversion! {
    /// `out = silu(g) * u`.
    pub fn swiglu(g: &[f32], u: &[f32], out: &mut [f32]) => swiglu_body
}

#[inline(always)]
fn swiglu_body(g: &[f32], u: &[f32], out: &mut [f32]) {
    for ((o, &a), &b) in out.iter_mut().zip(g).zip(u) {
        *o = a * sigmoid(a) * b;
    }
}

multiversion! {
    /// Gradients of `g` and `u` through [`swiglu`]:
    /// `du = dy silu(g)`, `dg = dy u s (1 + g (1 - s))` with `s = sigmoid(g)`.
    pub fn swiglu_backward(g: &[f32], u: &[f32], dy: &[f32], dg: &mut [f32], du: &mut [f32]) => swiglu_backward_body
}

#[inline(always)]
fn swiglu_backward_body(g: &[f32], u: &[f32], dy: &[f32], dg: &mut [f32], du: &mut [f32]) {
    for ((((a, b), &gv), &uv), &d) in dg.iter_mut().zip(du.iter_mut()).zip(g).zip(u).zip(dy) {
        let s = sigmoid(gv);
        *b = d * gv * s;
        *a = d * uv * s * (1.0 + gv * (1.0 - s));
    }
}

/// `g = silu(g) * u`, with `silu(v) = v * sigmoid(v)` from one exponential of `-|v|`: below
/// zero `e / (1 + e)` where [`swiglu`]'s sigmoid multiplies by the reciprocal, a rounding
/// apart. The fused inference forward's form, so that its logits stay bit for bit what they were.
pub fn silu_mul(g: &mut [f32], u: &[f32]) {
    for (gv, &uv) in g.iter_mut().zip(u) {
        let v = *gv;
        let e = exp_le0(-v.abs());
        let sig = if v >= 0.0 {
            1.0 / (1.0 + e)
        } else {
            e / (1.0 + e)
        };
        *gv = v * sig * uv;
    }
}

/// `y = x / sqrt(mean(x^2) + eps) * w` for each row of `x` (rows of `w.len() > 0`): dividing by the
/// rms where [`rms_norm`] multiplies by its inverse, a rounding apart. The fused inference
/// forward's form, so that its logits stay bit for bit what they were.
pub fn rms_norm_div(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
    let n = w.len();
    for (xr, or) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
        let r = (dot(xr, xr) / n as f32 + eps).sqrt();
        for ((o, &v), &wv) in or.iter_mut().zip(xr).zip(w) {
            *o = v / r * wv;
        }
    }
}
