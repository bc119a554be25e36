//! Causal grouped-query attention whose backward recomputes the scores instead of storing the
//! `heads x T x T` probabilities (the memory plan of FlashAttention, Dao et al., arXiv 2205.14135,
//! and its backward; here on whole row blocks, since a CPU's caches hold a block of `TILE` query
//! rows against every earlier key).
//!
//! Layout: queries `[batch, t, heads, head_dim]`, keys and values `[batch, t, kv_heads, head_dim]`
//! (the projections' output as it comes, no transposes); query head `h` reads key/value head
//! `h / (heads / kv_heads)`. Query `i` attends to keys `0..=i`. The forward also returns each
//! row's log-sum-exp of the scaled scores, which is all the backward needs to rebuild the
//! probabilities.

use super::math::{exp_le0, lane_max, lane_sum};
use super::matmul::{Mat, matmul};
use super::multiversion;

/// Query rows per block: the scores of one block, `TILE x t` floats, are the only quadratic
/// buffer (1 MiB at t = 2,048), one per task.
pub const TILE: usize = 128;

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnShape {
    /// Sequences.
    pub batch: usize,
    /// Positions per sequence.
    pub t: usize,
    /// Query heads.
    pub heads: usize,
    /// Key and value heads (each serves `heads / kv_heads` query heads).
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
}

impl AttnShape {
    /// Checks the head counts and the lengths of the three inputs.
    pub fn check(&self, q: usize, k: usize, v: usize) -> Result<(), String> {
        let s = self;
        if s.heads == 0 || s.kv_heads == 0 || s.head_dim == 0 || !s.heads.is_multiple_of(s.kv_heads)
        {
            return Err(format!(
                "attention: {} heads over {} key/value heads of {}",
                s.heads, s.kv_heads, s.head_dim
            ));
        }
        let (nq, nk) = (s.q_len(), s.kv_len());
        if q != nq || k != nk || v != nk {
            return Err(format!(
                "attention: inputs of {q}, {k}, {v} floats for {s:?} ({nq}, {nk}, {nk})"
            ));
        }
        Ok(())
    }
    /// Floats of the queries (and of the output).
    pub fn q_len(&self) -> usize {
        self.batch * self.t * self.heads * self.head_dim
    }
    /// Floats of the keys, and of the values.
    pub fn kv_len(&self) -> usize {
        self.batch * self.t * self.kv_heads * self.head_dim
    }
    fn q_stride(&self) -> usize {
        self.heads * self.head_dim
    }
    fn kv_stride(&self) -> usize {
        self.kv_heads * self.head_dim
    }
    /// Views of batch row `b`, query head `h`: its queries and its group's keys and values.
    fn views<'a>(
        &self,
        b: usize,
        h: usize,
        q: &'a [f32],
        k: &'a [f32],
        v: &'a [f32],
    ) -> (Mat<'a>, Mat<'a>, Mat<'a>) {
        let (t, hd) = (self.t, self.head_dim);
        let g = h / (self.heads / self.kv_heads);
        let (qs, ks) = (self.q_stride(), self.kv_stride());
        let q0 = b * t * qs + h * hd;
        let k0 = b * t * ks + g * hd;
        (
            Mat::rows(&q[q0..], t, hd, qs),
            Mat::rows(&k[k0..], t, hd, ks),
            Mat::rows(&v[k0..], t, hd, ks),
        )
    }
}

/// The first `rows` rows of `m`, starting at row `from`.
fn sub(m: Mat<'_>, from: usize, rows: usize) -> Mat<'_> {
    Mat {
        data: &m.data[from * m.rs..],
        rows,
        ..m
    }
}

/// Runs `f` on every (batch row, head) pair, on rayon's pool when `threads > 1`.
fn per_head<R: Send>(n: usize, threads: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    if threads > 1 {
        use rayon::prelude::*;
        (0..n).into_par_iter().map(f).collect()
    } else {
        (0..n).map(f).collect()
    }
}

/// `y = softmax(scale q k^T + causal mask) v`; returns `y` (`[batch, t, heads, head_dim]`) and the
/// log-sum-exp of each row (`[batch, heads, t]`).
pub fn forward(
    s: &AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    scale: f32,
    threads: usize,
) -> Result<(Vec<f32>, Vec<f32>), String> {
    s.check(q.len(), k.len(), v.len())?;
    let (t, hd, nh) = (s.t, s.head_dim, s.heads);
    let parts = per_head(s.batch * nh, threads, |bh| {
        let (qm, km, vm) = s.views(bh / nh, bh % nh, q, k, v);
        let mut y = vec![0f32; t * hd];
        let mut lse = vec![0f32; t];
        let mut p = vec![0f32; TILE.min(t) * t];
        for i0 in (0..t).step_by(TILE) {
            let (m, kend) = ((t - i0).min(TILE), (i0 + TILE).min(t));
            let qt = sub(qm, i0, m);
            matmul(&mut p, kend, qt, sub(km, 0, kend).t(), scale, false, 1);
            softmax_rows(&mut p[..m * kend], kend, i0, &mut lse[i0..i0 + m]);
            let pm = Mat::rows(&p, m, kend, kend);
            matmul(&mut y[i0 * hd..], hd, pm, sub(vm, 0, kend), 1.0, false, 1);
        }
        (y, lse)
    });
    let mut y = vec![0f32; s.q_len()];
    let mut lse = Vec::with_capacity(s.batch * nh * t);
    for (bh, (yh, lh)) in parts.into_iter().enumerate() {
        let (b, h) = (bh / nh, bh % nh);
        for i in 0..t {
            let o = (b * t + i) * nh * hd + h * hd;
            y[o..o + hd].copy_from_slice(&yh[i * hd..(i + 1) * hd]);
        }
        lse.extend_from_slice(&lh);
    }
    Ok((y, lse))
}

multiversion! {
    /// Rows `i0..` of scaled scores (`kend` wide) into causal probabilities, in place; their
    /// log-sum-exp into `lse`.
    pub fn softmax_rows(p: &mut [f32], kend: usize, i0: usize, lse: &mut [f32]) => softmax_rows_body
}

#[inline(always)]
fn softmax_rows_body(p: &mut [f32], kend: usize, i0: usize, lse: &mut [f32]) {
    for (r, row) in p.chunks_exact_mut(kend).enumerate() {
        let (live, masked) = row.split_at_mut(i0 + r + 1);
        masked.fill(0.0);
        let mx = lane_max(live);
        for x in live.iter_mut() {
            *x = exp_le0(*x - mx);
        }
        let l = lane_sum(live, |x| x);
        let inv = 1.0 / l;
        for x in live.iter_mut() {
            *x *= inv;
        }
        lse[r] = mx + l.ln();
    }
}

multiversion! {
    /// Rows `i0..` of scaled scores into the probabilities `exp(s - lse)` (0 above the diagonal).
    pub fn probs_rows(p: &mut [f32], kend: usize, i0: usize, lse: &[f32]) => probs_rows_body
}

#[inline(always)]
fn probs_rows_body(p: &mut [f32], kend: usize, i0: usize, lse: &[f32]) {
    for (r, row) in p.chunks_exact_mut(kend).enumerate() {
        let (live, masked) = row.split_at_mut(i0 + r + 1);
        masked.fill(0.0);
        let l = lse[r];
        for x in live.iter_mut() {
            *x = exp_le0(*x - l);
        }
    }
}

multiversion! {
    /// `dp <- p * (dp - d_row)`: the gradient of the scores from that of the probabilities.
    pub fn score_grads(dp: &mut [f32], p: &[f32], kend: usize, d: &[f32]) => score_grads_body
}

#[inline(always)]
fn score_grads_body(dp: &mut [f32], p: &[f32], kend: usize, d: &[f32]) {
    for ((g, pr), &dr) in dp.chunks_exact_mut(kend).zip(p.chunks_exact(kend)).zip(d) {
        for (x, &pv) in g.iter_mut().zip(pr) {
            *x = pv * (*x - dr);
        }
    }
}

/// Gradients of the queries, keys and values, in that order.
pub type AttnGrads = (Vec<f32>, Vec<f32>, Vec<f32>);

/// Gradients of the queries, keys and values from that of `y` (`dy`, same layout as `y`), with
/// the probabilities rebuilt from `lse`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    s: &AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    y: &[f32],
    lse: &[f32],
    dy: &[f32],
    scale: f32,
    threads: usize,
) -> Result<AttnGrads, String> {
    s.check(q.len(), k.len(), v.len())?;
    let (t, hd, nh, kvh) = (s.t, s.head_dim, s.heads, s.kv_heads);
    if y.len() != s.q_len() || dy.len() != s.q_len() || lse.len() != s.batch * nh * t {
        return Err(format!(
            "attention backward: y {}, dy {}, lse {} for {s:?}",
            y.len(),
            dy.len(),
            lse.len()
        ));
    }
    let qs = s.q_stride();
    let parts = per_head(s.batch * nh, threads, |bh| {
        let (b, h) = (bh / nh, bh % nh);
        let (qm, km, vm) = s.views(b, h, q, k, v);
        let off = b * t * qs + h * hd;
        let dym = Mat::rows(&dy[off..], t, hd, qs);
        // D_i = dy_i . y_i = sum_j P_ij dP_ij.
        let d: Vec<f32> = (0..t)
            .map(|i| {
                let o = off + i * qs;
                dy[o..o + hd]
                    .iter()
                    .zip(&y[o..o + hd])
                    .map(|(a, b)| a * b)
                    .sum()
            })
            .collect();
        let lse_h = &lse[bh * t..(bh + 1) * t];
        let (mut dq, mut dk, mut dv) = (vec![0f32; t * hd], vec![0f32; t * hd], vec![0f32; t * hd]);
        let mut p = vec![0f32; TILE.min(t) * t];
        let mut dp = vec![0f32; TILE.min(t) * t];
        for i0 in (0..t).step_by(TILE) {
            let (m, kend) = ((t - i0).min(TILE), (i0 + TILE).min(t));
            let (qt, dyt) = (sub(qm, i0, m), sub(dym, i0, m));
            let (kk, vv) = (sub(km, 0, kend), sub(vm, 0, kend));
            matmul(&mut p, kend, qt, kk.t(), scale, false, 1);
            probs_rows(&mut p[..m * kend], kend, i0, &lse_h[i0..i0 + m]);
            matmul(&mut dp, kend, dyt, vv.t(), 1.0, false, 1);
            score_grads(&mut dp[..m * kend], &p[..m * kend], kend, &d[i0..i0 + m]);
            let (pm, dsm) = (Mat::rows(&p, m, kend, kend), Mat::rows(&dp, m, kend, kend));
            matmul(&mut dq[i0 * hd..], hd, dsm, kk, scale, false, 1);
            matmul(&mut dk, hd, dsm.t(), qt, scale, true, 1);
            matmul(&mut dv, hd, pm.t(), dyt, 1.0, true, 1);
        }
        (dq, dk, dv)
    });
    let ks = s.kv_stride();
    let rep = nh / kvh;
    let mut dq = vec![0f32; s.q_len()];
    let mut dk = vec![0f32; s.kv_len()];
    let mut dv = vec![0f32; s.kv_len()];
    for (bh, (dqh, dkh, dvh)) in parts.into_iter().enumerate() {
        let (b, h) = (bh / nh, bh % nh);
        let g = h / rep;
        for i in 0..t {
            let o = (b * t + i) * qs + h * hd;
            dq[o..o + hd].copy_from_slice(&dqh[i * hd..(i + 1) * hd]);
            let o = (b * t + i) * ks + g * hd;
            for (a, &x) in dk[o..o + hd].iter_mut().zip(&dkh[i * hd..(i + 1) * hd]) {
                *a += x;
            }
            for (a, &x) in dv[o..o + hd].iter_mut().zip(&dvh[i * hd..(i + 1) * hd]) {
                *a += x;
            }
        }
    }
    Ok((dq, dk, dv))
}
