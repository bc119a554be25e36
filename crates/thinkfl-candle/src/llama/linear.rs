//! A projection `x W^T + b` with an optional LoRA delta, on f32, quantized or packed weights.

use super::Mode;
use crate::error::{Error, Result};
use candle_core::quantized::QMatMul;
use candle_core::{DType, Module, Tensor, Var};

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
    /// `[out]`, f32, where the projection has one (qwen2's q, k, v).
    pub bias: Option<Tensor>,
    /// Quantized weight as the GGUF holds it, for candle's quantized matmul.
    pub quantized: Option<QMatMul>,
    /// Packed 8/4-bit copy of `weight` for the inference forward ([`crate::qlinear`]).
    pub packed: Option<std::sync::Arc<crate::qlinear::PackedQ8>>,
    /// The LoRA update added to the output, when attached.
    pub lora: Option<LoraDelta>,
    out_features: usize,
    in_features: usize,
}

impl Linear {
    /// A projection of shape `out_in` (`(out, in)`) from whichever weights there are; no packed
    /// copy and no adapter yet.
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

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.out_features
    }
    /// Input width.
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
    pub(crate) fn forward_kernels(&self, x: &Tensor) -> Result<Tensor> {
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
            (Mode::Train, _, None) if self.packed.is_some() => {
                return Err(Error::Unsupported(
                    "training forward needs f32 weights; this model was loaded for inference \
                     only (packed copies): load it with LoadOptions::training"
                        .into(),
                ));
            }
            (Mode::Train, Some(_), None) => {
                return Err(Error::Unsupported(
                    "training forward needs f32 weights; load the model with keep_f32".into(),
                ));
            }
            (_, None, None) => return Err(Error::Shape("linear layer without weights".into())),
        };
        Ok(match &self.bias {
            Some(b) => base.broadcast_add(b)?,
            None => base,
        })
    }
}

impl Linear {
    /// Add the packed copy of the f32 weight; false when there is no f32 weight.
    pub fn pack(&mut self) -> Result<bool> {
        match &self.weight {
            Some(w) => {
                self.packed = Some(std::sync::Arc::new(crate::qlinear::PackedQ8::from_tensor(
                    w,
                )?));
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
