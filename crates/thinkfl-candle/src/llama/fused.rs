//! The fused inference forward: [`Mode::Infer`] forwards over a KV cache (decoding, and the
//! prefill of prompts).
//!
//! Why: at batch 8 a decode step of SmolLM2 spent 30-34 ms in the packed matmuls and another
//! 10-13 ms in some twenty small candle operations per block, each allocating its output and
//! dispatching on its own; the two attention matmuls also ask candle for a thread count, which
//! it finds by reading `/proc/cpuinfo`, sixty times a step. A prefill spends less of its time
//! there, but its single-threaded elementwise operations (SiLU through libm's `expf` over
//! every intermediate activation) cost a quarter of it on the 2-core machine. Here the hidden
//! states stay one contiguous `[rows, hidden]` buffer through all the blocks: rms-norm, rotary
//! embedding, SwiGLU and the residuals run on slices, the new keys and values are written in
//! place into the cache's preallocated buffers (`KvCache::buffers`), attention reads those
//! buffers under the mask ([`crate::kernels::cache_attention`]), and the projections call the
//! packed kernels on the slices ([`crate::kernels::packed::PackedQ8::matmul`]), adding the bias
//! and any enabled LoRA delta.
//!
//! The arithmetic is [`Llama::forward_block`]'s in [`Mode::Infer`] up to f32 rounding: other
//! summation orders, and [`crate::kernels::math::exp_le0`] (within 2e-7 relative of libm's
//! `expf`) in softmax and SiLU.
//! `tests/decode.rs` compares logits and greedy generations with that path.

use super::{AttnBias, KvCache, Linear, Llama, LoraDelta, Mode};
use crate::error::{Error, Result};
use crate::kernels::cache_attention::{self, Dims};
use crate::kernels::elementwise::{rms_norm_div, rope, silu_mul};
use crate::kernels::math::dot;
use candle_core::{CpuStorage, DType, Device, InplaceOp1, Layout, Storage, Tensor};

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
            rope(&mut q, dims.nh, dims.hd / 2, &cos, &sin, 1.0);
            rope(&mut k, dims.kvh, dims.hd / 2, &cos, &sin, 1.0);
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
        rms_norm_div(x, w, eps, out);
        Ok(())
    })?
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
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
    Ok(cache_attention::attend(
        q,
        kc,
        vc,
        lk.dims()[2],
        d,
        scale,
        mask,
    ))
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
