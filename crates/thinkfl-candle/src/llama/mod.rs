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
//! prefill) take the fused path of [`fused`] instead of [`Llama::forward_block`].
//!
//! Split by job: [`linear`] (projections with their LoRA deltas), [`cache`] (the KV cache),
//! [`fused`] (the fused inference forward over a cache), [`lora`] (adapters, full fine-tuning),
//! [`export`] (Hugging Face weights); this file holds the model and its block forward.

pub mod cache;
pub mod export;
pub mod fused;
pub mod linear;
pub mod lora;

pub use cache::KvCache;
pub use linear::{Linear, LoraDelta};

use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use candle_core::{D, DType, Device, Tensor};

/// Which kernels a forward uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// f32 weights, differentiable operations only.
    Train,
    /// Quantized matmuls where available, fused kernels; no gradients.
    Infer,
}

/// One decoder block.
#[derive(Debug, Clone)]
pub struct Block {
    /// RMSNorm weight before attention, `[hidden]`.
    pub input_layernorm: Tensor,
    /// Query projection, `hidden -> heads * head_dim`.
    pub q_proj: Linear,
    /// Key projection, `hidden -> kv_heads * head_dim`.
    pub k_proj: Linear,
    /// Value projection, `hidden -> kv_heads * head_dim`.
    pub v_proj: Linear,
    /// Attention output projection, `heads * head_dim -> hidden`.
    pub o_proj: Linear,
    /// RMSNorm weight before the MLP, `[hidden]`.
    pub post_attention_layernorm: Tensor,
    /// SwiGLU gate, `hidden -> intermediate`.
    pub gate_proj: Linear,
    /// SwiGLU up projection, `hidden -> intermediate`.
    pub up_proj: Linear,
    /// MLP output projection, `intermediate -> hidden`.
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

/// The llama model.
#[derive(Debug, Clone)]
pub struct Llama {
    /// The shapes and constants of the model.
    pub config: LlamaConfig,
    /// `[vocab, hidden]`, f32.
    pub embed_tokens: Tensor,
    /// The decoder blocks, in order.
    pub layers: Vec<Block>,
    /// Final RMSNorm weight, `[hidden]`.
    pub norm: Tensor,
    /// Output head, `hidden -> vocab` (the embedding matrix when tied).
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
    /// A model from its parts, after checking the config and the block count; builds the rotary
    /// tables on `device`. Both fused paths start on.
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
            return Err(Error::Shape(format!(
                "{} blocks for num_hidden_layers {}",
                layers.len(),
                config.num_hidden_layers
            )));
        }
        check_shapes(&config, &embed_tokens, &layers, &norm, &lm_head)?;
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

    /// The device the weights are on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Route [`Mode::Infer`] forwards over a KV cache through the fused path of
    /// [`crate::decode`] (on by default; off gives the block-by-block candle forward, which the
    /// tests compare it with).
    pub fn set_fused_infer(&mut self, on: bool) {
        self.fused_infer = on;
    }
    /// Whether [`Mode::Infer`] forwards over a cache take the fused path.
    pub fn fused_infer(&self) -> bool {
        self.fused_infer
    }

    /// Run [`Mode::Train`] blocks on the training kernels of [`crate::kernels::ops`] (fused
    /// RMSNorm, rotary, causal attention with a recomputing backward, SwiGLU; on by default) or,
    /// off, on candle's elementwise operations, which the tests compare them with.
    pub fn set_fused_train(&mut self, on: bool) {
        self.fused_train = on;
    }
    /// Whether [`Mode::Train`] blocks run on the training kernels.
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
            return Err(Error::Options(
                "a forward over a non-empty cache needs an attention bias".into(),
            ));
        }
        if let Some(c) = cache.as_deref_mut()
            && mode == Mode::Infer
            && self.fused_infer
            && fused::suits(self, t)
        {
            return self.forward_hidden_fused(ids, positions, bias, c);
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
            .ok_or_else(|| Error::Shape(format!("no block {li}")))?;
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
        let (k, v) = match cache {
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

/// Every weight's shape against the config, so that a model file whose metadata and tensors
/// disagree (a GGUF with a changed head count, say) is refused when it is loaded instead of
/// failing in its first forward (found by `thinkfl fuzz --target gguf`).
fn check_shapes(
    config: &LlamaConfig,
    embed: &Tensor,
    layers: &[Block],
    norm: &Tensor,
    lm_head: &Linear,
) -> Result<()> {
    let (h, hd, i) = (
        config.hidden_size,
        config.head_dim(),
        config.intermediate_size,
    );
    let (q, kv) = (config.num_attention_heads * hd, config.num_kv_heads() * hd);
    let wrong = |what: String, got: &[usize], want: &[usize]| {
        Err(Error::Shape(format!(
            "{what} has shape {got:?}; the config needs {want:?}"
        )))
    };
    let (_, e) = embed.dims2()?;
    if e != h || lm_head.in_features() != h {
        return wrong(
            "the embedding or the output head".into(),
            &[e, lm_head.in_features()],
            &[h, h],
        );
    }
    if norm.dims() != [h] {
        return wrong("the final norm".into(), norm.dims(), &[h]);
    }
    for (k, b) in layers.iter().enumerate() {
        for (name, l, want) in [
            ("q_proj", &b.q_proj, [q, h]),
            ("k_proj", &b.k_proj, [kv, h]),
            ("v_proj", &b.v_proj, [kv, h]),
            ("o_proj", &b.o_proj, [h, q]),
            ("gate_proj", &b.gate_proj, [i, h]),
            ("up_proj", &b.up_proj, [i, h]),
            ("down_proj", &b.down_proj, [h, i]),
        ] {
            let got = [l.out_features(), l.in_features()];
            if got != want {
                return wrong(format!("layer {k} {name} (out, in)"), &got, &want);
            }
        }
        for (name, t) in [
            ("input_layernorm", &b.input_layernorm),
            ("post_attention_layernorm", &b.post_attention_layernorm),
        ] {
            if t.dims() != [h] {
                return wrong(format!("layer {k} {name}"), t.dims(), &[h]);
            }
        }
    }
    Ok(())
}
