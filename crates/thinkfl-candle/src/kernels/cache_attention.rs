//! Attention of new queries over a KV cache: the steps of decoding (one new token per row)
//! and prefills over a cached prefix, under an additive mask, on the cache's own buffers
//! (`[b, kv_heads, capacity, head_dim]`), for the fused inference forward.

use super::math::{dot, exp_le0, lane_max, lanes};

/// Below this many multiply-adds the attention of one block runs on one thread: handing work
/// to another costs a few microseconds.
const PARALLEL_MIN_MACS: usize = 1 << 17;

/// Sizes of one step's attention.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    /// Rows (sequences).
    pub b: usize,
    /// New tokens per row.
    pub t: usize,
    /// Key slots after the step (cached plus new).
    pub s: usize,
    /// Query heads.
    pub nh: usize,
    /// Key and value heads.
    pub kvh: usize,
    /// Width of a head.
    pub hd: usize,
}

/// Attention of the new queries `q` (`[b * t, nh * hd]`) over slots `0..s` of the cache
/// buffers `kc` and `vc` (`[b, kvh, cap, hd]`), under `mask` (`[b * t, s]`); returns
/// `[b * t, nh * hd]`.
pub fn attend(
    q: &[f32],
    kc: &[f32],
    vc: &[f32],
    cap: usize,
    d: &Dims,
    scale: f32,
    mask: Option<&[f32]>,
) -> Vec<f32> {
    let (hd, s, kvh) = (d.hd, d.s, d.kvh);
    let group = d.nh / kvh * hd;
    let mut y = vec![0f32; d.b * d.t * d.nh * hd];
    // One task per (row, new token, key/value head): the query heads sharing that key/value
    // head, adjacent in `q` and `y`, go together so that its keys and values are read once.
    let task = |idx: usize, out: &mut [f32], scores: &mut Vec<f32>| {
        let row = idx / kvh;
        let base = ((row / d.t) * kvh + idx % kvh) * cap * hd;
        let mask = mask.map(|mk| &mk[row * s..(row + 1) * s]);
        // Only the span from the first to the last visible slot: a right-aligned row's padding
        // and, in a prefill, the later tokens are never read.
        let (lo, hi) = match mask {
            Some(mr) => {
                let seen = |b: &f32| *b != f32::NEG_INFINITY;
                let lo = mr.iter().position(seen).unwrap_or(0);
                (lo, mr.iter().rposition(seen).map_or(lo, |i| i + 1))
            }
            None => (0, s),
        };
        attend_group(
            &q[idx * group..(idx + 1) * group],
            &kc[base + lo * hd..base + hi * hd],
            &vc[base + lo * hd..base + hi * hd],
            hd,
            scale,
            mask.map(|mr| &mr[lo..hi]),
            scores,
            out,
        );
    };
    let tasks = d.b * d.t * kvh;
    let threads = rayon::current_num_threads();
    if threads == 1 || tasks * group * s < PARALLEL_MIN_MACS {
        let mut scores = Vec::new();
        for (idx, out) in y.chunks_exact_mut(group).enumerate() {
            task(idx, out, &mut scores);
        }
    } else {
        use rayon::prelude::*;
        y.par_chunks_exact_mut(group)
            .enumerate()
            .with_min_len(tasks.div_ceil(threads * 4).max(1))
            .for_each_init(Vec::new, |scores, (idx, out)| task(idx, out, scores));
    }
    y
}

/// The queries `qs` (`[rep, hd]`) of one key/value head over its keys `k` and values `v`
/// (`[s, hd]` each) into `out` (`[rep, hd]`); `scores` is scratch.
#[allow(clippy::too_many_arguments)]
fn attend_group(
    qs: &[f32],
    k: &[f32],
    v: &[f32],
    hd: usize,
    scale: f32,
    mask: Option<&[f32]>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let s = k.len() / hd.max(1);
    if s == 0 {
        // Nothing visible (never for a query that sees its own slot): zeros, not NaN.
        out.fill(0.0);
        return;
    }
    scores.clear();
    scores.resize(qs.len() / hd.max(1) * s, 0.0);
    #[cfg(target_arch = "x86_64")]
    if hd.is_multiple_of(8) && x86::available() {
        // SAFETY: the CPU has AVX2 and FMA (checked); `hd` is a multiple of 8; the slices
        // have the sizes `x86::attend_group` documents.
        unsafe { x86::attend_group(qs, k, v, hd, scale, mask, scores, out) };
        return;
    }
    for ((q, sc), o) in qs
        .chunks_exact(hd)
        .zip(scores.chunks_exact_mut(s))
        .zip(out.chunks_exact_mut(hd))
    {
        for (x, kr) in sc.iter_mut().zip(k.chunks_exact(hd)) {
            *x = dot(q, kr);
        }
        softmax(sc, scale, mask);
        o.fill(0.0);
        for (&p, vr) in sc.iter().zip(v.chunks_exact(hd)) {
            for (a, &x) in o.iter_mut().zip(vr) {
                *a += p * x;
            }
        }
    }
}

/// Raw products in `scores` to probabilities: scaled, biased by `mask`, exponentiated after
/// subtracting the maximum and normalized; all zeros when no slot is visible (never for a
/// query that sees its own slot), not NaN. Loops without a running reduction, so that they
/// vectorize.
#[inline(always)]
fn softmax(scores: &mut [f32], scale: f32, mask: Option<&[f32]>) {
    match mask {
        Some(mk) => {
            for (sc, &b) in scores.iter_mut().zip(mk) {
                *sc = *sc * scale + b;
            }
        }
        None => {
            for sc in scores.iter_mut() {
                *sc *= scale;
            }
        }
    }
    let max = lane_max(scores);
    for sc in scores.iter_mut() {
        *sc = exp_le0(*sc - max);
    }
    let sum = lanes(scores, 0.0, |a, v| a + v);
    let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
    for sc in scores.iter_mut() {
        *sc *= inv;
    }
}

/// The attention kernel with AVX2 and FMA (the crate is built for baseline x86-64).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Slots per block: the block's keys or values (16 KiB at `hd` 64) stay in L1 while every
    /// query of the group passes over them.
    const SLOTS: usize = 64;

    pub(super) fn available() -> bool {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX2.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }

    /// [`super::attend_group`] for `hd % 8 == 0`.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA; `hd % 8 == 0`; `qs` and `out` hold `rep * hd` values,
    /// `k` and `v` `s * hd`, `scores` `rep * s`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn attend_group(
        qs: &[f32],
        k: &[f32],
        v: &[f32],
        hd: usize,
        scale: f32,
        mask: Option<&[f32]>,
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        let rep = qs.len() / hd;
        let s = scores.len() / rep.max(1);
        debug_assert!(k.len() == s * hd && v.len() == s * hd && out.len() == rep * hd);
        for b0 in (0..s).step_by(SLOTS) {
            let n = SLOTS.min(s - b0);
            for (q, sc) in qs.chunks_exact(hd).zip(scores.chunks_exact_mut(s)) {
                // SAFETY: `q` has `hd` values, the block of `k` `n * hd`, the slice `n`.
                unsafe { dots(q, &k[b0 * hd..(b0 + n) * hd], hd, &mut sc[b0..b0 + n]) };
            }
        }
        for sc in scores.chunks_exact_mut(s) {
            super::softmax(sc, scale, mask);
        }
        out.fill(0.0);
        for b0 in (0..s).step_by(SLOTS) {
            let n = SLOTS.min(s - b0);
            for (p, o) in scores.chunks_exact(s).zip(out.chunks_exact_mut(hd)) {
                // SAFETY: `n` weights, `n * hd` values, `hd` outputs.
                unsafe { weighted_sum(&p[b0..b0 + n], &v[b0 * hd..(b0 + n) * hd], hd, o) };
            }
        }
    }

    /// `out[slot] = q . k[slot]`, four slots at a time so that one horizontal reduction
    /// serves four products.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dots(q: &[f32], k: &[f32], hd: usize, out: &mut [f32]) {
        let s = out.len();
        let (qp, kp, op) = (q.as_ptr(), k.as_ptr(), out.as_mut_ptr());
        let mut slot = 0;
        // SAFETY: (the whole block) reads within `q` (`hd`) and `k` (`s * hd`), writes within `out`.
        unsafe {
            while slot + 4 <= s {
                let r = kp.add(slot * hd);
                let (mut a0, mut a1, mut a2, mut a3) = (
                    _mm256_setzero_ps(),
                    _mm256_setzero_ps(),
                    _mm256_setzero_ps(),
                    _mm256_setzero_ps(),
                );
                let mut c = 0;
                while c < hd {
                    let qv = _mm256_loadu_ps(qp.add(c));
                    a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r.add(c)), a0);
                    a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r.add(hd + c)), a1);
                    a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r.add(2 * hd + c)), a2);
                    a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r.add(3 * hd + c)), a3);
                    c += 8;
                }
                // Pairwise sums: lanes 0-3 and 4-7 of `h` hold halves of the four products.
                let h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
                let sum = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
                _mm_storeu_ps(op.add(slot), sum);
                slot += 4;
            }
            while slot < s {
                let r = kp.add(slot * hd);
                let mut a = _mm256_setzero_ps();
                let mut c = 0;
                while c < hd {
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(c)), _mm256_loadu_ps(r.add(c)), a);
                    c += 8;
                }
                let x = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
                let x = _mm_hadd_ps(x, x);
                *op.add(slot) = _mm_cvtss_f32(_mm_hadd_ps(x, x));
                slot += 1;
            }
        }
    }

    /// `out += sum over slots of p[slot] * v[slot]`: blocks of 64 outputs held in eight
    /// registers while the rows of `v` stream past in order; a narrower tail eight at a time.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn weighted_sum(p: &[f32], v: &[f32], hd: usize, out: &mut [f32]) {
        const W: usize = 64;
        let s = p.len();
        let (pp, vp, op) = (p.as_ptr(), v.as_ptr(), out.as_mut_ptr());
        // SAFETY: (the whole block) reads within `p` (`s`) and `v` (`s * hd`), reads and writes
        // within `out` (`hd`).
        unsafe {
            let mut c0 = 0;
            while c0 + W <= hd {
                let mut acc = [_mm256_setzero_ps(); W / 8];
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_loadu_ps(op.add(c0 + 8 * j));
                }
                for slot in 0..s {
                    let w = _mm256_set1_ps(*pp.add(slot));
                    let r = vp.add(slot * hd + c0);
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(w, _mm256_loadu_ps(r.add(8 * j)), *a);
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(op.add(c0 + 8 * j), *a);
                }
                c0 += W;
            }
            while c0 < hd {
                let mut a = _mm256_loadu_ps(op.add(c0));
                for slot in 0..s {
                    let w = _mm256_set1_ps(*pp.add(slot));
                    a = _mm256_fmadd_ps(w, _mm256_loadu_ps(vp.add(slot * hd + c0)), a);
                }
                _mm256_storeu_ps(op.add(c0), a);
                c0 += 8;
            }
        }
    }
}
