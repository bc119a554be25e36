//! The fused inference forward: [`Mode::Infer`] forwards over a KV cache (decoding, and the
//! prefill of prompts).
//!
//! Why: at batch 8 a decode step of SmolLM2 spent 30-34 ms in the packed matmuls and another
//! 10-13 ms in some twenty small candle operations per block, each allocating its output and
//! dispatching on its own; the two attention matmuls also ask candle for a thread count, which
//! it finds by reading `/proc/cpuinfo`, sixty times a step. A prefill spends less of its time
//! there, but its single-threaded elementwise operations (SiLU through libm's `expf` over
//! every intermediate activation) cost a quarter of it on the 2-core machine. Here the hidden states stay one
//! contiguous `[rows, hidden]` buffer through all the blocks: rms-norm, rotary embedding,
//! attention over the cache under the mask, softmax, SwiGLU and the residuals are loops over
//! slices, the new keys and values are written in place into the cache's preallocated buffers
//! (`KvCache::buffers`), and the projections call the packed kernels on the slices
//! ([`crate::qlinear::PackedQ8::matmul`]), adding the bias and any enabled LoRA delta.
//!
//! The arithmetic is [`Llama::forward_block`]'s in [`Mode::Infer`] up to f32 rounding: other
//! summation orders, and [`exp_le0`] (within 2e-7 relative of libm's `expf`) in softmax and SiLU.
//! `tests/decode.rs` compares logits and greedy generations with that path.

use super::{AttnBias, KvCache, Linear, Llama, LoraDelta, Mode};
use crate::error::{Error, Result};
use crate::kernels::math::{exp_le0, lanes};
use candle_core::{CpuStorage, DType, Device, InplaceOp1, Layout, Storage, Tensor};

/// Below this many multiply-adds the attention of one block runs on one thread: handing work
/// to another costs a few microseconds.
const PARALLEL_MIN_MACS: usize = 1 << 17;

/// Whether a forward of `t` new tokens per row takes the fused path.
///
/// Not when a projection runs candle's quantized matmul (`LoadOptions::quantized`, no packed
/// copy): that matmul rounds activations to 8 bits, so this path's other f32 rounding flips
/// some of those roundings and moves SmolLM2's logits by up to ~1 (against 2e-4 with f32 or
/// packed weights), further from candle-transformers' quantized llama than the block forward,
/// which shares its operations (`tests/forward.rs`).
pub fn suits(model: &Llama, t: usize) -> bool {
    let candle_quantized = |l: &Linear| l.packed.is_none() && l.quantized.is_some();
    t > 0
        && model.device().is_cpu()
        && model.embed_tokens.dtype() == DType::F32
        && !model.layers.iter().any(|b| {
            [
                &b.q_proj,
                &b.k_proj,
                &b.v_proj,
                &b.o_proj,
                &b.gate_proj,
                &b.up_proj,
                &b.down_proj,
            ]
            .into_iter()
            .any(candle_quantized)
        })
}

/// Sizes of one step's attention.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    /// Key slots after the step (cached plus new).
    s: usize,
    nh: usize,
    kvh: usize,
    hd: usize,
}

impl Llama {
    /// [`Llama::forward_hidden`] in [`Mode::Infer`] with a cache, fused (see the module doc).
    pub(crate) fn forward_hidden_fused(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: Option<&AttnBias>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let cfg = &self.config;
        let (b, t) = ids.dims2()?;
        if positions.dims2()? != (b, t) {
            return Err(Error::Shape(format!(
                "positions of shape {:?} for ids of ({b}, {t})",
                positions.dims()
            )));
        }
        let dims = Dims {
            b,
            t,
            s: cache.len() + t,
            nh: cfg.num_attention_heads,
            kvh: cfg.num_kv_heads(),
            hd: cfg.head_dim(),
        };
        let (m, hidden, start) = (b * t, cfg.hidden_size, cache.len());
        let eps = cfg.rms_norm_eps as f32;
        let scale = (1.0 / (dims.hd as f64).sqrt()) as f32;
        let dev = self.device().clone();
        let mask = attention_mask(bias, &dims)?;
        let (cos, sin) = self.rope_rows(positions)?;
        let mut x: Vec<f32> = self.embed_ids(ids)?.flatten_all()?.to_vec1()?;
        let mut h = vec![0f32; m * hidden];
        for (li, blk) in self.layers.iter().enumerate() {
            rms_norm(&x, &blk.input_layernorm, eps, &mut h)?;
            let [mut q, mut k, v] =
                project_many([&blk.q_proj, &blk.k_proj, &blk.v_proj], &h, m, &dev)?;
            rope(&mut q, dims.hd, &cos, &sin);
            rope(&mut k, dims.hd, &cos, &sin);
            let (ck, cv) = cache.buffers(li, (b, dims.kvh, dims.hd), DType::F32, &dev, dims.s)?;
            ck.inplace_op1(&WriteSlots {
                src: &k,
                t,
                at: start,
            })?;
            cv.inplace_op1(&WriteSlots {
                src: &v,
                t,
                at: start,
            })?;
            let y = attention(&q, &ck, &cv, &dims, scale, mask.as_deref())?;
            add_assign(&mut x, &project(&blk.o_proj, &y, m, &dev)?);
            rms_norm(&x, &blk.post_attention_layernorm, eps, &mut h)?;
            let [mut g, u] = project_many([&blk.gate_proj, &blk.up_proj], &h, m, &dev)?;
            silu_mul(&mut g, &u);
            add_assign(&mut x, &project(&blk.down_proj, &g, m, &dev)?);
        }
        cache.advance(t);
        rms_norm(&x, &self.norm, eps, &mut h)?;
        Ok(Tensor::from_vec(h, (b, t, hidden), &dev)?)
    }

    /// Rotary `cos` and `sin` at each of `positions` (`[b, t]`): two `[b * t, head_dim / 2]`.
    fn rope_rows(&self, positions: &Tensor) -> Result<(Vec<f32>, Vec<f32>)> {
        let pos: Vec<u32> = positions.to_dtype(DType::U32)?.flatten_all()?.to_vec1()?;
        let half = self.config.head_dim() / 2;
        let gather = |table: &Tensor| -> Result<Vec<f32>> {
            with_f32(table, |tab| {
                let mut out = Vec::with_capacity(pos.len() * half);
                for &p in &pos {
                    let row = tab
                        .get(p as usize * half..(p as usize + 1) * half)
                        .ok_or_else(|| {
                            Error::Shape(format!(
                                "position {p} beyond the rotary table of {} positions",
                                tab.len() / half.max(1)
                            ))
                        })?;
                    out.extend_from_slice(row);
                }
                Ok(out)
            })?
        };
        Ok((gather(&self.cos)?, gather(&self.sin)?))
    }
}

/// The additive bias as `[b * t, s]` values; `None` when every slot is visible (one new token
/// and no padding). Without a bias several new tokens see the cache and the new ones up to
/// their own (what [`Llama::layer_context`] gives).
fn attention_mask(bias: Option<&AttnBias>, d: &Dims) -> Result<Option<Vec<f32>>> {
    let (t, s) = (d.t, d.s);
    match bias {
        Some(bias) => Ok(Some(
            bias.broadcast_as((d.b, 1, t, s))?
                .to_dtype(DType::F32)?
                .contiguous()?
                .flatten_all()?
                .to_vec1()?,
        )),
        None if t > 1 => {
            let start = s - t;
            Ok(Some(
                (0..d.b * t)
                    .flat_map(|row| {
                        let j = row % t;
                        (0..s).map(move |k| {
                            if k <= start + j {
                                0.0
                            } else {
                                f32::NEG_INFINITY
                            }
                        })
                    })
                    .collect(),
            ))
        }
        None => Ok(None),
    }
}

/// `f` on the values of `t` (CPU f32, contiguous: no copy; else a converted copy).
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (st, layout) = t.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) =
            (&*st, layout.contiguous_offsets())
        {
            return Ok(f(&v[a..b]));
        }
    }
    let v: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    Ok(f(&v))
}

/// The values of a CPU f32 tensor held by `st` (read-locked by the caller).
fn cpu_f32<'a>(st: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    match (st, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => Ok(&v[a..b]),
        _ => Err(Error::Unsupported(
            "the fused decode path needs a contiguous f32 KV cache on the CPU".into(),
        )),
    }
}

/// `y = x W^T + b + LoRA` for `m` rows of `x`.
fn project(lin: &Linear, x: &[f32], m: usize, dev: &Device) -> Result<Vec<f32>> {
    let (n, k) = (lin.out_features(), lin.in_features());
    let y = match &lin.packed {
        Some(p) => {
            let mut y = vec![0f32; m * n];
            p.matmul(x, m, &mut y)?;
            y
        }
        // f32 weights only (see `suits`): the layer's own forward on a tensor, bias included.
        None => {
            let mut y = lin
                .base_forward(&Tensor::from_slice(x, (m, k), dev)?, Mode::Infer)?
                .flatten_all()?
                .to_vec1()?;
            add_lora(lin, x, m, &mut y)?;
            return Ok(y);
        }
    };
    finish(lin, x, m, y)
}

/// [`project`] for several layers that read the same `x`, as one parallel product when all
/// have packed weights ([`crate::qlinear::PackedQ8::matmul_many`]: one fork and join of the
/// thread pool instead of one each; the same values).
fn project_many<const N: usize>(
    lins: [&Linear; N],
    x: &[f32],
    m: usize,
    dev: &Device,
) -> Result<[Vec<f32>; N]> {
    let packed: Option<Vec<&crate::qlinear::PackedQ8>> =
        lins.iter().map(|l| l.packed.as_deref()).collect();
    let Some(packed) = packed else {
        let mut out: [Vec<f32>; N] = std::array::from_fn(|_| Vec::new());
        for (o, lin) in out.iter_mut().zip(lins) {
            *o = project(lin, x, m, dev)?;
        }
        return Ok(out);
    };
    let mut ys: [Vec<f32>; N] = std::array::from_fn(|i| vec![0f32; m * lins[i].out_features()]);
    {
        let mut parts: Vec<(&crate::qlinear::PackedQ8, &mut [f32])> = packed
            .into_iter()
            .zip(ys.iter_mut())
            .map(|(p, y)| (p, y.as_mut_slice()))
            .collect();
        crate::qlinear::PackedQ8::matmul_many(&mut parts, x, m)?;
    }
    let mut out: [Vec<f32>; N] = std::array::from_fn(|_| Vec::new());
    for ((o, y), lin) in out.iter_mut().zip(ys).zip(lins) {
        *o = finish(lin, x, m, y)?;
    }
    Ok(out)
}

/// The bias and any enabled LoRA delta added to a packed product `y` of `x`.
fn finish(lin: &Linear, x: &[f32], m: usize, mut y: Vec<f32>) -> Result<Vec<f32>> {
    let n = lin.out_features();
    if let Some(bias) = &lin.bias {
        with_f32(bias, |bv| {
            if bv.len() != n {
                return Err(Error::Shape(format!(
                    "bias of {} values for {n} outputs",
                    bv.len()
                )));
            }
            for row in y.chunks_exact_mut(n) {
                add_assign(row, bv);
            }
            Ok(())
        })??;
    }
    add_lora(lin, x, m, &mut y)?;
    Ok(y)
}

fn add_lora(lin: &Linear, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
    if let Some(l) = lin.lora.as_ref().filter(|l| l.enabled) {
        lora_add(l, x, m, (lin.out_features(), lin.in_features()), y)?;
    }
    Ok(())
}

/// `y += scale * (x A^T) B^T`.
fn lora_add(
    l: &LoraDelta,
    x: &[f32],
    m: usize,
    (n, k): (usize, usize),
    y: &mut [f32],
) -> Result<()> {
    let (a, bm) = (l.a.as_tensor(), l.b.as_tensor());
    let (rank, ak) = a.dims2()?;
    let (bn, br) = bm.dims2()?;
    if ak != k || bn != n || br != rank {
        return Err(Error::Shape(format!(
            "LoRA A [{rank}, {ak}] and B [{bn}, {br}] on a {n}x{k} layer"
        )));
    }
    let scale = l.scale as f32;
    let mut tmp = vec![0f32; m * rank];
    with_f32(a, |a| {
        for (xr, tr) in x.chunks_exact(k).zip(tmp.chunks_exact_mut(rank)) {
            for (tv, ar) in tr.iter_mut().zip(a.chunks_exact(k)) {
                *tv = dot(xr, ar);
            }
        }
    })?;
    with_f32(bm, |bm| {
        for (yr, tr) in y.chunks_exact_mut(n).zip(tmp.chunks_exact(rank)) {
            for (yv, br) in yr.iter_mut().zip(bm.chunks_exact(rank)) {
                *yv += dot(tr, br) * scale;
            }
        }
    })?;
    Ok(())
}

/// Rows of `x` (`[rows, hidden]`) normalized into `out`: `x / sqrt(mean(x^2) + eps) * w`.
fn rms_norm(x: &[f32], w: &Tensor, eps: f32, out: &mut [f32]) -> Result<()> {
    with_f32(w, |w| {
        let n = w.len();
        if n == 0 || !x.len().is_multiple_of(n) || out.len() != x.len() {
            return Err(Error::Shape(format!(
                "rms-norm weight of {n} values for {} hidden values",
                x.len()
            )));
        }
        for (xr, or) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            let r = (dot(xr, xr) / n as f32 + eps).sqrt();
            for ((o, &v), &wv) in or.iter_mut().zip(xr).zip(w) {
                *o = v / r * wv;
            }
        }
        Ok(())
    })?
}

/// Rotary embedding in place, "rotate half" layout, on rows of `x` (`[rows, heads * hd]`);
/// `cos`, `sin`: `[rows, hd / 2]`.
fn rope(x: &mut [f32], hd: usize, cos: &[f32], sin: &[f32]) {
    let half = hd / 2;
    let rows = cos.len() / half.max(1);
    if rows == 0 {
        return;
    }
    let width = x.len() / rows;
    for ((xr, c), s) in x
        .chunks_exact_mut(width)
        .zip(cos.chunks_exact(half))
        .zip(sin.chunks_exact(half))
    {
        for head in xr.chunks_exact_mut(hd) {
            let (x1, x2) = head.split_at_mut(half);
            for i in 0..half {
                let (a, b) = (x1[i], x2[i]);
                x1[i] = a * c[i] - b * s[i];
                x2[i] = a * s[i] + b * c[i];
            }
        }
    }
}

/// `g = silu(g) * u`, with `silu(v) = v * sigmoid(v)` from one exponential of `-|v|`.
fn silu_mul(g: &mut [f32], u: &[f32]) {
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

fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// `sum a * b` in 16 independent lanes, which the compiler vectorizes.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let rest: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Writes new keys or values (`[b, t, h, d]`, the projection's layout) into slots
/// `at..at + t` of a cache buffer `[b, h, capacity, d]`.
struct WriteSlots<'a> {
    src: &'a [f32],
    t: usize,
    at: usize,
}

impl InplaceOp1 for WriteSlots<'_> {
    fn name(&self) -> &'static str {
        "kv-cache-write"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let (b, h, cap, d) = layout.shape().dims4()?;
        let (CpuStorage::F32(dst), Some((off, end))) = (storage, layout.contiguous_offsets())
        else {
            candle_core::bail!("kv-cache-write needs a contiguous f32 buffer");
        };
        let t = self.t;
        if self.src.len() != b * t * h * d || self.at + t > cap {
            candle_core::bail!(
                "kv-cache-write of {} values at slot {} into [{b}, {h}, {cap}, {d}]",
                self.src.len(),
                self.at
            );
        }
        let dst = &mut dst[off..end];
        for (i, vals) in self.src.chunks_exact(d).enumerate() {
            let (g, row) = (i % h, i / h);
            let (r, j) = (row / t, row % t);
            let o = ((r * h + g) * cap + self.at + j) * d;
            dst[o..o + d].copy_from_slice(vals);
        }
        Ok(())
    }
}

/// Attention of the new queries `q` (`[b * t, nh * hd]`) over slots `0..s` of the cache
/// buffers, under `mask` (`[b * t, s]`); returns `[b * t, nh * hd]`.
fn attention(
    q: &[f32],
    ck: &Tensor,
    cv: &Tensor,
    d: &Dims,
    scale: f32,
    mask: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let (sk, lk) = ck.storage_and_layout();
    let (sv, lv) = cv.storage_and_layout();
    let (kc, vc) = (cpu_f32(&sk, lk)?, cpu_f32(&sv, lv)?);
    let cap = lk.dims()[2];
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
    Ok(y)
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
    let max = lanes(scores, f32::NEG_INFINITY, |a, v| if v > a { v } else { a });
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

impl Llama {
    /// Pack every projection and the head that holds f32 weights (see [`crate::qlinear::PackedQ8`]); returns
    /// the bytes of the packed copies. Inference only: training drops them
    /// ([`Llama::make_trainable`]).
    pub fn pack_for_inference(&mut self) -> Result<usize> {
        let mut bytes = 0;
        let mut add = |lin: &mut Linear| -> Result<()> {
            lin.pack()?;
            bytes += lin.packed.as_ref().map_or(0, |p| p.bytes());
            Ok(())
        };
        for blk in &mut self.layers {
            for (_, lin) in blk.projections_mut() {
                add(lin)?;
            }
        }
        add(&mut self.lm_head)?;
        Ok(bytes)
    }

    /// Drop the f32 weight of every projection and of the head that has a packed copy (the
    /// inference forward reads only that, see [`Linear::base_forward`]); training needs them
    /// back, so a model without them refuses [`crate::llama::Mode::Train`].
    pub fn drop_packed_f32(&mut self) {
        let drop = |lin: &mut Linear| {
            if lin.packed.is_some() {
                lin.weight = None;
            }
        };
        for blk in &mut self.layers {
            for (_, lin) in blk.projections_mut() {
                drop(lin);
            }
        }
        drop(&mut self.lm_head);
    }
}
