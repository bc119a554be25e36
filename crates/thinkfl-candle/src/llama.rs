//! The llama decoder (SmolLM2, Llama 3.x), written for this project so that gradients flow
//! through every operation: candle-transformers' `quantized_llama` and `llama` use fused kernels
//! (rms-norm, rotary embedding, softmax) that have no backward pass.
//!
//! References: Touvron et al., "LLaMA" (arXiv 2302.13971) and Hugging Face transformers'
//! `modeling_llama.py` for the semantics (pre-norm RMSNorm, rotary embeddings in the
//! "rotate half" layout, grouped-query attention, SwiGLU MLP, optionally tied embeddings).
//! Weights are named as in Hugging Face checkpoints (`model.layers.N.self_attn.q_proj.weight`),
//! also when they come from GGUF, so that LoRA adapters export under the names PEFT expects.
//!
//! Two modes share this code: [`Mode::Train`] runs every projection on f32 weights with only
//! differentiable operations; [`Mode::Infer`] uses the quantized matmuls where the weights came
//! quantized and the fused kernels, with a KV cache; its forwards over a cache (decoding,
//! prefill) take the fused path of [`crate::decode`] instead of [`Llama::forward_block`].

use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use candle_core::quantized::QMatMul;
use candle_core::{D, DType, Device, Module, Tensor, Var};

/// Which kernels a forward uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// f32 weights, differentiable operations only.
    Train,
    /// Quantized matmuls where available, fused kernels; no gradients.
    Infer,
}

/// A low-rank update `scale * x A^T B^T` added to a frozen linear layer (Hu et al., "LoRA",
/// arXiv 2106.09685). `b` starts at zero so that a new adapter is the identity.
#[derive(Debug, Clone)]
pub struct LoraDelta {
    /// `[rank, in]`
    pub a: Var,
    /// `[out, rank]`
    pub b: Var,
    /// `alpha / rank`.
    pub scale: f64,
    /// Off gives the base model (the GRPO reference policy).
    pub enabled: bool,
}

/// `y = x W^T + b (+ LoRA)`. Holds an f32 weight (trainable or frozen), a quantized copy for fast
/// inference, or both.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out, in]`, f32.
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub quantized: Option<QMatMul>,
    /// Packed 8/4-bit copy of `weight` for the inference forward ([`crate::qlinear`]).
    pub packed: Option<std::sync::Arc<crate::qlinear::PackedQ8>>,
    pub lora: Option<LoraDelta>,
    out_features: usize,
    in_features: usize,
}

impl Linear {
    pub fn new(
        weight: Option<Tensor>,
        bias: Option<Tensor>,
        quantized: Option<QMatMul>,
        out_in: (usize, usize),
    ) -> Self {
        Linear {
            weight,
            bias,
            quantized,
            packed: None,
            lora: None,
            out_features: out_in.0,
            in_features: out_in.1,
        }
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// `x`: `[..., in]`.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = self.base_forward(x, mode)?;
        match &self.lora {
            Some(l) if l.enabled => {
                let d = x
                    .broadcast_matmul(&l.a.as_tensor().t()?)?
                    .broadcast_matmul(&l.b.as_tensor().t()?)?;
                Ok((y + (d * l.scale)?)?)
            }
            _ => Ok(y),
        }
    }

    /// [`Linear::forward`] in [`Mode::Train`], with a frozen f32 weight, no bias and an enabled
    /// adapter in one op ([`crate::kernels::ops::lora_linear`]); otherwise as `forward`.
    fn forward_kernels(&self, x: &Tensor) -> Result<Tensor> {
        match (&self.lora, &self.weight, &self.bias) {
            (Some(l), Some(w), None)
                if l.enabled && !w.is_variable() && w.dtype() == DType::F32 =>
            {
                Ok(crate::kernels::ops::lora_linear(
                    x,
                    w,
                    l.a.as_tensor(),
                    l.b.as_tensor(),
                    l.scale as f32,
                )?)
            }
            _ => self.forward(x, Mode::Train),
        }
    }

    /// `x W^T + b` without the LoRA delta (the fused decode path adds that itself).
    pub(crate) fn base_forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let packed = match (mode, &self.packed) {
            (Mode::Infer, Some(p)) if crate::qlinear::suits(x) => Some(p.forward(x)?),
            _ => None,
        };
        let base = match (mode, &self.quantized, &self.weight) {
            (Mode::Infer, _, _) if packed.is_some() => packed.expect("checked by the guard"),
            // The quantized kernels read their input as one contiguous block.
            (Mode::Infer, Some(q), _) => q.forward(&x.contiguous()?)?,
            // A frozen base weight (LoRA training, inference without packed weights): only
            // `x` needs a gradient, see `frozen.rs`.
            (_, _, Some(w)) if !w.is_variable() && w.device().is_cpu() => {
                crate::frozen::FrozenMatmul::new(w)?.forward(x)?
            }
            (_, _, Some(w)) => x.broadcast_matmul(&w.t()?)?,
            (Mode::Train, Some(_), None) => {
                return Err(Error::Config(
                    "training forward needs f32 weights; load the model with keep_f32".into(),
                ));
            }
            (_, None, None) => return Err(Error::Config("linear layer without weights".into())),
        };
        Ok(match &self.bias {
            Some(b) => base.broadcast_add(b)?,
            None => base,
        })
    }
}

/// One decoder block.
#[derive(Debug, Clone)]
pub struct Block {
    pub input_layernorm: Tensor,
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub post_attention_layernorm: Tensor,
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Block {
    /// The projections by their Hugging Face names (`q_proj`, ..., `down_proj`).
    pub fn projections_mut(&mut self) -> [(&'static str, &mut Linear); 7] {
        [
            ("self_attn.q_proj", &mut self.q_proj),
            ("self_attn.k_proj", &mut self.k_proj),
            ("self_attn.v_proj", &mut self.v_proj),
            ("self_attn.o_proj", &mut self.o_proj),
            ("mlp.gate_proj", &mut self.gate_proj),
            ("mlp.up_proj", &mut self.up_proj),
            ("mlp.down_proj", &mut self.down_proj),
        ]
    }
}

/// Keys and values of earlier positions, per layer: `[batch, kv_heads, capacity, head_dim]`
/// buffers of which the first `len` slots are filled. Growing in chunks and writing in place
/// avoids copying the whole cache at every decoded token.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    const GROW: usize = 256;

    pub fn new(num_layers: usize) -> Self {
        KvCache {
            layers: vec![None; num_layers],
            len: 0,
        }
    }

    /// Filled slots.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn batch_size(&self) -> Option<usize> {
        self.layers
            .iter()
            .flatten()
            .next()
            .map(|(k, _)| k.dim(0).unwrap_or(0))
    }

    /// Layer `i`'s whole buffers (`[b, h, capacity, d]`, contiguous), grown in chunks (copying
    /// the filled slots) until they hold `need` slots. Writes into them land in the cache.
    pub(crate) fn buffers(
        &mut self,
        i: usize,
        (b, h, d): (usize, usize, usize),
        dtype: DType,
        device: &Device,
        need: usize,
    ) -> Result<(Tensor, Tensor)> {
        let len = self.len;
        let n_layers = self.layers.len();
        let slot = self
            .layers
            .get_mut(i)
            .ok_or_else(|| Error::Config(format!("no cache layer {i} of {n_layers}")))?;
        if let Some((ck, _)) = slot.as_ref() {
            let (cb, ch, _, cd) = ck.dims4()?;
            if (cb, ch, cd) != (b, h, d) {
                return Err(Error::Config(format!(
                    "cache rows of shape ({cb}, {ch}, _, {cd}) for keys of ({b}, {h}, _, {d})"
                )));
            }
        }
        let grow = match slot {
            Some((ck, cv)) => ck.dim(2)? < need || !ck.is_contiguous() || !cv.is_contiguous(),
            None => true,
        };
        if grow {
            let cap = need.div_ceil(Self::GROW) * Self::GROW;
            let nk = Tensor::zeros((b, h, cap, d), dtype, device)?;
            let nv = Tensor::zeros((b, h, cap, d), dtype, device)?;
            if let Some((ck, cv)) = slot.as_ref() {
                if len > 0 {
                    nk.slice_set(&ck.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
                    nv.slice_set(&cv.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
                }
            }
            *slot = Some((nk, nv));
        }
        let (ck, cv) = slot.as_ref().expect("allocated above");
        Ok((ck.clone(), cv.clone()))
    }

    /// Append `k`, `v` (`[b, kvh, t, hd]`) to layer `i` and return the filled views. The caller
    /// advances `len` once per forward through [`KvCache::advance`].
    fn append(&mut self, i: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, h, t, d) = k.dims4()?;
        let need = self.len + t;
        let (ck, cv) = self.buffers(i, (b, h, d), k.dtype(), k.device(), need)?;
        ck.slice_set(&k.contiguous()?, 2, self.len)?;
        cv.slice_set(&v.contiguous()?, 2, self.len)?;
        Ok((ck.narrow(2, 0, need)?, cv.narrow(2, 0, need)?))
    }

    pub(crate) fn advance(&mut self, t: usize) {
        self.len += t;
    }

    /// Keep the first `n` slots.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// Rows `rows` of the batch, in that order.
    pub fn select_rows(&self, rows: &[u32]) -> Result<KvCache> {
        let mut out = KvCache {
            layers: Vec::with_capacity(self.layers.len()),
            len: self.len,
        };
        for l in &self.layers {
            out.layers.push(match l {
                Some((k, v)) => {
                    let idx = Tensor::new(rows, k.device())?;
                    Some((k.index_select(&idx, 0)?, v.index_select(&idx, 0)?))
                }
                None => None,
            });
        }
        Ok(out)
    }

    /// Row `row`, keeping only the slots `slots` (in order), as a batch-1 cache.
    pub fn extract(&self, row: usize, slots: &[u32]) -> Result<KvCache> {
        let mut out = KvCache {
            layers: Vec::with_capacity(self.layers.len()),
            len: slots.len(),
        };
        for l in &self.layers {
            out.layers.push(match l {
                Some((k, v)) => {
                    let idx = Tensor::new(slots, k.device())?;
                    let k = k.narrow(0, row, 1)?.index_select(&idx, 2)?;
                    let v = v.narrow(0, row, 1)?.index_select(&idx, 2)?;
                    Some((k, v))
                }
                None => None,
            });
        }
        Ok(out)
    }

    /// Stack batch-1 caches into one batch whose row `i` holds `parts[i]` right-aligned in `width`
    /// slots (zeros before it). Empty caches give all-zero rows.
    pub fn stack_right_aligned(
        parts: &[&KvCache],
        width: usize,
        cfg: &LlamaConfig,
        device: &Device,
    ) -> Result<KvCache> {
        let (h, d) = (cfg.num_kv_heads(), cfg.head_dim());
        let cap = width.div_ceil(Self::GROW).max(1) * Self::GROW;
        let zeros = |n: usize| Tensor::zeros((1, h, n, d), DType::F32, device);
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for li in 0..cfg.num_hidden_layers {
            let mut ks = Vec::with_capacity(parts.len());
            let mut vs = Vec::with_capacity(parts.len());
            for p in parts {
                let filled = match (&p.layers.get(li), p.len) {
                    (Some(Some((pk, pv))), n) if n > 0 => {
                        Some((pk.narrow(2, 0, n)?, pv.narrow(2, 0, n)?))
                    }
                    _ => None,
                };
                let (row_k, row_v) = match filled {
                    None => (zeros(cap)?, zeros(cap)?),
                    Some((pk, pv)) => {
                        let n = pk.dim(2)?;
                        let mut kp = Vec::new();
                        let mut vp = Vec::new();
                        if width > n {
                            kp.push(zeros(width - n)?);
                            vp.push(zeros(width - n)?);
                        }
                        kp.push(pk);
                        vp.push(pv);
                        if cap > width {
                            kp.push(zeros(cap - width)?);
                            vp.push(zeros(cap - width)?);
                        }
                        (Tensor::cat(&kp, 2)?, Tensor::cat(&vp, 2)?)
                    }
                };
                ks.push(row_k);
                vs.push(row_v);
            }
            layers.push(Some((Tensor::cat(&ks, 0)?, Tensor::cat(&vs, 0)?)));
        }
        Ok(KvCache { layers, len: width })
    }
}

/// The llama model.
#[derive(Debug, Clone)]
pub struct Llama {
    pub config: LlamaConfig,
    /// `[vocab, hidden]`, f32.
    pub embed_tokens: Tensor,
    pub layers: Vec<Block>,
    pub norm: Tensor,
    pub lm_head: Linear,
    /// `[max_positions, head_dim / 2]`.
    pub(crate) cos: Tensor,
    pub(crate) sin: Tensor,
    device: Device,
    /// Whether [`Mode::Infer`] forwards over a cache take [`crate::decode`].
    fused_infer: bool,
    /// Whether [`Mode::Train`] blocks without a cache run on [`crate::kernels::ops`].
    fused_train: bool,
}

/// Additive attention bias (0 or -inf) of shape `[batch, 1, t, s]`.
pub type AttnBias = Tensor;

/// Rotary tables and attention bias shared by the blocks of one forward.
#[derive(Debug, Clone)]
pub struct LayerContext {
    cos: Tensor,
    sin: Tensor,
    cos3: Tensor,
    sin3: Tensor,
    bias: Option<AttnBias>,
    /// The bias is the plain causal one (no caller-given bias).
    causal: bool,
}

impl Llama {
    pub fn new(
        config: LlamaConfig,
        embed_tokens: Tensor,
        layers: Vec<Block>,
        norm: Tensor,
        lm_head: Linear,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        if layers.len() != config.num_hidden_layers {
            return Err(Error::Config(format!(
                "{} blocks for num_hidden_layers {}",
                layers.len(),
                config.num_hidden_layers
            )));
        }
        let (cos, sin) = rope_tables(&config, device)?;
        Ok(Llama {
            config,
            embed_tokens,
            layers,
            norm,
            lm_head,
            cos,
            sin,
            device: device.clone(),
            fused_infer: true,
            fused_train: true,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Route [`Mode::Infer`] forwards over a KV cache through the fused path of
    /// [`crate::decode`] (on by default; off gives the block-by-block candle forward, which the
    /// tests compare it with).
    pub fn set_fused_infer(&mut self, on: bool) {
        self.fused_infer = on;
    }
    pub fn fused_infer(&self) -> bool {
        self.fused_infer
    }

    /// Run [`Mode::Train`] blocks on the training kernels of [`crate::kernels::ops`] (fused
    /// RMSNorm, rotary, causal attention with a recomputing backward, SwiGLU; on by default) or,
    /// off, on candle's elementwise operations, which the tests compare them with.
    pub fn set_fused_train(&mut self, on: bool) {
        self.fused_train = on;
    }
    pub fn fused_train(&self) -> bool {
        self.fused_train
    }

    /// A randomly initialised model (normal, std 0.02), f32, for tests.
    pub fn random(config: LlamaConfig, seed: u64, device: &Device) -> Result<Self> {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, 0.02).expect("valid normal");
        let mut rand = |shape: (usize, usize)| -> Result<Tensor> {
            let v: Vec<f32> = (0..shape.0 * shape.1)
                .map(|_| normal.sample(&mut rng))
                .collect();
            Ok(Tensor::from_vec(v, shape, device)?)
        };
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let (qd, kvd) = (
            config.num_attention_heads * config.head_dim(),
            config.num_kv_heads() * config.head_dim(),
        );
        let mut lin = |o: usize, n: usize, bias: bool| -> Result<Linear> {
            let b = if bias {
                Some(rand((1, o))?.reshape(o)?)
            } else {
                None
            };
            Ok(Linear::new(Some(rand((o, n))?), b, None, (o, n)))
        };
        let ones = Tensor::ones(h, DType::F32, device)?;
        let mut layers = Vec::new();
        for _ in 0..config.num_hidden_layers {
            let ab = config.attention_bias;
            layers.push(Block {
                input_layernorm: ones.clone(),
                q_proj: lin(qd, h, ab)?,
                k_proj: lin(kvd, h, ab)?,
                v_proj: lin(kvd, h, ab)?,
                o_proj: lin(h, qd, false)?,
                post_attention_layernorm: ones.clone(),
                gate_proj: lin(i, h, false)?,
                up_proj: lin(i, h, false)?,
                down_proj: lin(h, i, false)?,
            });
        }
        let lm = lin(config.vocab_size, h, false)?;
        let embed = rand((config.vocab_size, h))?;
        Llama::new(config, embed, layers, ones, lm, device)
    }

    /// Token embeddings, `ids`: `[b, t]` u32 -> `[b, t, hidden]`: the input of block 0.
    pub fn embed_ids(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let flat = ids.flatten_all()?;
        Ok(self
            .embed_tokens
            .index_select(&flat, 0)?
            .reshape((b, t, self.config.hidden_size))?)
    }

    /// Hidden states after the final norm, `[b, t, hidden]`.
    ///
    /// * `ids`: `[b, t]` u32 token ids;
    /// * `positions`: `[b, t]` u32 rotary positions;
    /// * `bias`: additive attention bias `[b, 1, t, s]` over all `s` key slots (cache plus new), or
    ///   `None` for a plain causal mask with no cache and no padding;
    /// * `cache`: keys/values of earlier slots, extended by `t` slots.
    pub fn forward_hidden(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: Option<&AttnBias>,
        mut cache: Option<&mut KvCache>,
        mode: Mode,
    ) -> Result<Tensor> {
        let t = ids.dim(1)?;
        if bias.is_none() && t > 1 && cache.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err(Error::Config(
                "a forward over a non-empty cache needs an attention bias".into(),
            ));
        }
        if let Some(c) = cache.as_deref_mut() {
            if mode == Mode::Infer && self.fused_infer && crate::decode::suits(self, t) {
                return self.forward_hidden_fused(ids, positions, bias, c);
            }
        }
        let ctx = self.layer_context(positions, bias)?;
        let mut x = self.embed_ids(ids)?;
        for li in 0..self.layers.len() {
            x = self.forward_block(li, &x, &ctx, cache.as_deref_mut(), mode)?;
        }
        if let Some(c) = cache {
            c.advance(t);
        }
        self.final_norm(&x, mode)
    }

    /// The final RMSNorm over the last block's output.
    pub fn final_norm(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        rms_norm(x, &self.norm, self.config.rms_norm_eps, mode)
    }

    /// What every block of one forward shares: rotary tables at `positions` (`[b, t]`) and the
    /// attention bias (`None`: causal when `t > 1`).
    pub fn layer_context(
        &self,
        positions: &Tensor,
        bias: Option<&AttnBias>,
    ) -> Result<LayerContext> {
        let (b, t) = positions.dims2()?;
        let hd = self.config.head_dim();
        let flat_pos = positions.flatten_all()?;
        let cos = self
            .cos
            .index_select(&flat_pos, 0)?
            .reshape((b, 1, t, hd / 2))?;
        let sin = self
            .sin
            .index_select(&flat_pos, 0)?
            .reshape((b, 1, t, hd / 2))?;
        let (cos3, sin3) = (cos.reshape((b, t, hd / 2))?, sin.reshape((b, t, hd / 2))?);
        let causal = match bias {
            None if t > 1 => Some(causal_bias(t, &self.device)?),
            _ => None,
        };
        let bias = bias.cloned();
        Ok(LayerContext {
            cos,
            sin,
            cos3,
            sin3,
            causal: bias.is_none(),
            bias: bias.or(causal),
        })
    }

    /// Block `li` on `x` (`[b, t, hidden]`), appending to `cache` (advanced by the caller).
    /// Training runs blocks one at a time to recompute activations instead of storing them
    /// (`thinkfl-train`'s checkpointed backward).
    pub fn forward_block(
        &self,
        li: usize,
        x: &Tensor,
        ctx: &LayerContext,
        cache: Option<&mut KvCache>,
        mode: Mode,
    ) -> Result<Tensor> {
        let blk = self
            .layers
            .get(li)
            .ok_or_else(|| Error::Config(format!("no block {li}")))?;
        if mode == Mode::Train && cache.is_none() && ctx.causal && self.kernels_suit(blk, x) {
            return self.forward_block_kernels(blk, x, ctx);
        }
        let (b, t, _) = x.dims3()?;
        let cfg = &self.config;
        let (nh, kvh, hd) = (cfg.num_attention_heads, cfg.num_kv_heads(), cfg.head_dim());
        let rep = nh / kvh;
        let eps = cfg.rms_norm_eps;
        let scale = 1.0 / (hd as f64).sqrt();
        let (cos, sin, cos3, sin3) = (&ctx.cos, &ctx.sin, &ctx.cos3, &ctx.sin3);
        let bias = ctx.bias.as_ref();
        let mut cache = cache;
        let mut x = x.clone();
        let h = rms_norm(&x, &blk.input_layernorm, eps, mode)?;
        let q = blk
            .q_proj
            .forward(&h, mode)?
            .reshape((b, t, nh, hd))?
            .transpose(1, 2)?;
        let k = blk
            .k_proj
            .forward(&h, mode)?
            .reshape((b, t, kvh, hd))?
            .transpose(1, 2)?;
        let v = blk
            .v_proj
            .forward(&h, mode)?
            .reshape((b, t, kvh, hd))?
            .transpose(1, 2)?;
        let (q, k) = match mode {
            Mode::Train => (
                rope(&q.contiguous()?, cos, sin)?,
                rope(&k.contiguous()?, cos, sin)?,
            ),
            // One fused kernel instead of nine small operations per tensor.
            Mode::Infer => (
                candle_nn::rotary_emb::rope(&q.contiguous()?, cos3, sin3)?,
                candle_nn::rotary_emb::rope(&k.contiguous()?, cos3, sin3)?,
            ),
        };
        let (k, v) = match cache.as_deref_mut() {
            Some(c) => c.append(li, &k, &v.contiguous()?)?,
            None => (k, v.contiguous()?),
        };
        let s = k.dim(2)?;
        // Grouped-query attention without copying keys: the `rep` query heads of one group
        // are stacked along the time axis against their shared key/value head.
        let qg = q.reshape((b, kvh, rep * t, hd))?;
        let att = (qg.matmul(&k.t()?)? * scale)?.reshape((b, nh, t, s))?;
        let att = match bias {
            Some(bias) => att.broadcast_add(bias)?,
            None => att,
        };
        let att = match mode {
            Mode::Train => candle_nn::ops::softmax(&att, D::Minus1)?,
            Mode::Infer => candle_nn::ops::softmax_last_dim(&att)?,
        };
        let y = att.reshape((b, kvh, rep * t, s))?.matmul(&v)?;
        let y = y
            .reshape((b, nh, t, hd))?
            .transpose(1, 2)?
            .reshape((b, t, nh * hd))?;
        x = (x + blk.o_proj.forward(&y, mode)?)?;
        let h = rms_norm(&x, &blk.post_attention_layernorm, eps, mode)?;
        let g = blk.gate_proj.forward(&h, mode)?;
        let u = blk.up_proj.forward(&h, mode)?;
        x = (x + blk.down_proj.forward(&(g.silu()? * u)?, mode)?)?;
        Ok(x)
    }

    /// Whether block `blk` on `x` can run on the training kernels: switched on, CPU, f32, and
    /// frozen norm weights (full fine-tuning trains them, and the kernels give them no gradient).
    fn kernels_suit(&self, blk: &Block, x: &Tensor) -> bool {
        self.fused_train
            && x.device().is_cpu()
            && x.dtype() == DType::F32
            && !blk.input_layernorm.is_variable()
            && !blk.post_attention_layernorm.is_variable()
    }

    /// [`Llama::forward_block`] in [`Mode::Train`] on the kernels of [`crate::kernels::ops`]:
    /// the same operations in the same order, with the activations kept in the projections'
    /// `[b, t, heads * head_dim]` layout (no transposes) and causal attention that never stores
    /// its `T x T` probabilities.
    fn forward_block_kernels(&self, blk: &Block, x: &Tensor, ctx: &LayerContext) -> Result<Tensor> {
        use crate::kernels::ops;
        let cfg = &self.config;
        let (nh, kvh, hd) = (cfg.num_attention_heads, cfg.num_kv_heads(), cfg.head_dim());
        let eps = cfg.rms_norm_eps as f32;
        let scale = 1.0 / (hd as f32).sqrt();
        let h = ops::rms_norm(x, &blk.input_layernorm, eps)?;
        let q = ops::rope(&blk.q_proj.forward_kernels(&h)?, &ctx.cos3, &ctx.sin3, nh)?;
        let k = ops::rope(&blk.k_proj.forward_kernels(&h)?, &ctx.cos3, &ctx.sin3, kvh)?;
        let v = blk.v_proj.forward_kernels(&h)?;
        let y = ops::causal_attention(&q, &k, &v, nh, kvh, scale)?;
        let x = (x + blk.o_proj.forward_kernels(&y)?)?;
        let h = ops::rms_norm(&x, &blk.post_attention_layernorm, eps)?;
        let g = blk.gate_proj.forward_kernels(&h)?;
        let u = blk.up_proj.forward_kernels(&h)?;
        Ok((&x + blk.down_proj.forward_kernels(&ops::swiglu(&g, &u)?)?)?)
    }

    /// Logits of hidden states, `[..., hidden]` -> `[..., vocab]`.
    pub fn logits(&self, hidden: &Tensor, mode: Mode) -> Result<Tensor> {
        self.lm_head.forward(hidden, mode)
    }

    /// Full-sequence logits `[b, t, vocab]` for training: causal attention, positions `0..t` for
    /// every row (pad batches on the right; padded positions never influence earlier ones).
    /// Differentiable with respect to every `Var` among the weights and adapters.
    pub fn forward_logits(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let pos: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
        let positions = Tensor::from_vec(pos, (b, t), &self.device)?;
        let h = self.forward_hidden(ids, &positions, None, None, Mode::Train)?;
        self.logits(&h, Mode::Train)
    }

    /// Turn every f32 weight into a trainable `Var` (full fine-tuning); returns them by name.
    pub fn make_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        let mut out = Vec::new();
        let mut var = |name: String, t: &mut Tensor| -> Result<()> {
            let v = Var::from_tensor(t)?;
            *t = v.as_tensor().clone();
            out.push((name, v));
            Ok(())
        };
        var("model.embed_tokens.weight".into(), &mut self.embed_tokens)?;
        for (i, blk) in self.layers.iter_mut().enumerate() {
            var(
                format!("model.layers.{i}.input_layernorm.weight"),
                &mut blk.input_layernorm,
            )?;
            var(
                format!("model.layers.{i}.post_attention_layernorm.weight"),
                &mut blk.post_attention_layernorm,
            )?;
            for (name, lin) in blk.projections_mut() {
                let w = lin
                    .weight
                    .as_mut()
                    .ok_or_else(|| Error::Config(format!("{name} has no f32 weight")))?;
                var(format!("model.layers.{i}.{name}.weight"), w)?;
                if let Some(b) = lin.bias.as_mut() {
                    var(format!("model.layers.{i}.{name}.bias"), b)?;
                }
                lin.quantized = None;
                // Stale once the Var is trained.
                lin.packed = None;
            }
        }
        var("model.norm.weight".into(), &mut self.norm)?;
        if !self.config.tie_word_embeddings {
            if let Some(w) = self.lm_head.weight.as_mut() {
                var("lm_head.weight".into(), w)?;
            }
        } else {
            // Tied: the head reads the same Var as the embedding.
            self.lm_head.weight = Some(self.embed_tokens.clone());
        }
        self.lm_head.quantized = None;
        self.lm_head.packed = None;
        Ok(out)
    }

    /// Add LoRA adapters of `rank` to the projections whose names end with one of `targets`
    /// (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`, `down_proj`). `A` is
    /// Kaiming-uniform-like from `seed`, `B` is zero. Returns the adapter Vars by PEFT name
    /// (`...q_proj.lora_A.weight`).
    /// The projection suffixes LoRA adapters attach to (`targets` of [`Llama::add_lora`]), as
    /// Hugging Face and PEFT name them.
    pub const PROJECTIONS: [&'static str; 7] = [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ];

    pub fn add_lora(
        &mut self,
        rank: usize,
        alpha: f64,
        targets: &[&str],
        seed: u64,
    ) -> Result<Vec<(String, Var)>> {
        use rand::{Rng, SeedableRng};
        if rank == 0 {
            return Err(Error::Config("LoRA rank must be positive".into()));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let device = self.device.clone();
        let mut out = Vec::new();
        for (i, blk) in self.layers.iter_mut().enumerate() {
            for (name, lin) in blk.projections_mut() {
                if !targets.iter().any(|t| name.ends_with(t)) {
                    continue;
                }
                let (o, n) = (lin.out_features(), lin.in_features());
                let bound = 1.0 / (n as f32).sqrt();
                let a: Vec<f32> = (0..rank * n)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                let a = Var::from_tensor(&Tensor::from_vec(a, (rank, n), &device)?)?;
                let b = Var::from_tensor(&Tensor::zeros((o, rank), DType::F32, &device)?)?;
                let base = format!("base_model.model.model.layers.{i}.{name}");
                out.push((format!("{base}.lora_A.weight"), a.clone()));
                out.push((format!("{base}.lora_B.weight"), b.clone()));
                lin.lora = Some(LoraDelta {
                    a,
                    b,
                    scale: alpha / rank as f64,
                    enabled: true,
                });
            }
        }
        Ok(out)
    }

    /// The f32 weights by Hugging Face name, with LoRA deltas merged in where adapters are
    /// enabled (the "merged weights" export). Projections held only quantized are an error.
    pub fn hf_tensors(&self) -> Result<std::collections::HashMap<String, Tensor>> {
        let mut out = std::collections::HashMap::new();
        out.insert(
            "model.embed_tokens.weight".to_string(),
            self.embed_tokens.detach(),
        );
        out.insert("model.norm.weight".to_string(), self.norm.detach());
        let merged = |name: &str, lin: &Linear| -> Result<Tensor> {
            let w = lin
                .weight
                .as_ref()
                .ok_or_else(|| Error::Config(format!("{name} has no f32 weight")))?;
            Ok(match &lin.lora {
                Some(l) if l.enabled => {
                    (w + (l.b.as_tensor().matmul(l.a.as_tensor())? * l.scale)?)?.detach()
                }
                _ => w.detach(),
            })
        };
        for (i, blk) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            out.insert(
                format!("{p}.input_layernorm.weight"),
                blk.input_layernorm.detach(),
            );
            out.insert(
                format!("{p}.post_attention_layernorm.weight"),
                blk.post_attention_layernorm.detach(),
            );
            let mut blk = blk.clone();
            for (name, lin) in blk.projections_mut() {
                out.insert(format!("{p}.{name}.weight"), merged(name, lin)?);
                if let Some(b) = &lin.bias {
                    out.insert(format!("{p}.{name}.bias"), b.detach());
                }
            }
        }
        if !self.config.tie_word_embeddings {
            out.insert(
                "lm_head.weight".to_string(),
                merged("lm_head", &self.lm_head)?,
            );
        }
        Ok(out)
    }

    /// Write `config.json` and `model.safetensors` (Hugging Face layout, f32, enabled adapters
    /// folded in) into `dir`. Each file is written under a temporary name and renamed, so a
    /// failure leaves no half-written or empty file where a loader would read it.
    pub fn save_hf(&self, dir: &std::path::Path, model_type: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut cfg =
            serde_json::to_value(&self.config).map_err(|e| Error::Config(e.to_string()))?;
        cfg["model_type"] = serde_json::Value::from(model_type);
        if model_type == "llama" {
            cfg["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
        }
        cfg["torch_dtype"] = "float32".into();
        let text = serde_json::to_vec_pretty(&cfg).map_err(|e| Error::Config(e.to_string()))?;
        let tensors = self.hf_tensors()?;
        let tmp = |name: &str| dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let (cfg_tmp, st_tmp) = (tmp("config.json"), tmp("model.safetensors"));
        let written = std::fs::write(&cfg_tmp, &text)
            .map_err(|e| Error::io(&cfg_tmp, e))
            .and_then(|()| candle_core::safetensors::save(&tensors, &st_tmp).map_err(Error::from))
            .and_then(|()| {
                let st = dir.join("model.safetensors");
                std::fs::rename(&st_tmp, &st).map_err(|e| Error::io(&st, e))
            })
            .and_then(|()| {
                let c = dir.join("config.json");
                std::fs::rename(&cfg_tmp, &c).map_err(|e| Error::io(&c, e))
            });
        if written.is_err() {
            let _ = std::fs::remove_file(&cfg_tmp);
            let _ = std::fs::remove_file(&st_tmp);
        }
        written
    }

    /// Switch every adapter on or off (off = the base model).
    pub fn set_lora_enabled(&mut self, enabled: bool) {
        for blk in &mut self.layers {
            for (_, lin) in blk.projections_mut() {
                if let Some(l) = lin.lora.as_mut() {
                    l.enabled = enabled;
                }
            }
        }
    }
}

fn rope_tables(cfg: &LlamaConfig, device: &Device) -> Result<(Tensor, Tensor)> {
    let hd = cfg.head_dim();
    let n = cfg.max_position_embeddings.max(1);
    let inv: Vec<f64> = (0..hd / 2)
        .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / hd as f64))
        .collect();
    let mut cos = Vec::with_capacity(n * hd / 2);
    let mut sin = Vec::with_capacity(n * hd / 2);
    for p in 0..n {
        for f in &inv {
            let a = p as f64 * f;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    Ok((
        Tensor::from_vec(cos, (n, hd / 2), device)?,
        Tensor::from_vec(sin, (n, hd / 2), device)?,
    ))
}

/// Rotary embedding in the "rotate half" layout: `x`: `[b, h, t, d]`, `cos`/`sin`: `[b, 1, t, d/2]`.
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let a = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
    let b = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
    Ok(Tensor::cat(&[a, b], D::Minus1)?)
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f64, mode: Mode) -> Result<Tensor> {
    match mode {
        Mode::Infer => Ok(candle_nn::ops::rms_norm(&x.contiguous()?, w, eps as f32)?),
        Mode::Train => {
            let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
            Ok(x.broadcast_mul(&(ms + eps)?.sqrt()?.recip()?)?
                .broadcast_mul(w)?)
        }
    }
}

/// `[1, 1, t, t]` causal bias.
pub fn causal_bias(t: usize, device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Ok(Tensor::from_vec(v, (1, 1, t, t), device)?)
}
