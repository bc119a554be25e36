//! `x W^T` for a frozen weight `W`, with a backward pass that returns only the gradient of `x`.
//!
//! candle's `matmul` backward always computes the gradient of both operands. In LoRA training
//! the base weights are constants, yet every projection would still pay a second `[in, out]`
//! product per step (a third of the linear layers' work) and materialize a weight-sized gradient
//! that is thrown away. Wrapping the product in a custom op with a one-sided backward removes
//! both; `tests/frozen.rs` checks value and gradients against the plain `broadcast_matmul`.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Storage, Tensor};

/// The op: holds `W` (`[out, in]`, f32, contiguous).
#[derive(Debug)]
pub struct FrozenMatmul {
    w: Tensor,
}

impl FrozenMatmul {
    /// `w` must be `[out, in]` f32; it is made contiguous once here.
    pub fn new(w: &Tensor) -> candle_core::Result<Self> {
        if w.rank() != 2 || w.dtype() != DType::F32 {
            candle_core::bail!(
                "frozen matmul wants a [out, in] f32 weight, got {:?} {:?}",
                w.dims(),
                w.dtype()
            );
        }
        Ok(FrozenMatmul {
            w: w.detach().contiguous()?,
        })
    }

    /// `x`: `[..., in]` -> `[..., out]`; gradients flow to `x` only.
    pub fn forward(self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op1(self)
    }
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (out_f, in_f) = self.w.dims2()?;
        let dims = layout.shape().dims();
        if dims.last() != Some(&in_f) {
            candle_core::bail!(
                "frozen matmul: input {:?} for a weight of in = {in_f}",
                dims
            );
        }
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("frozen matmul: input must be contiguous");
        };
        let x = match storage {
            CpuStorage::F32(v) => &v[start..end],
            _ => candle_core::bail!("frozen matmul: input must be f32"),
        };
        let m = x.len() / in_f;
        let (w_guard, w_layout) = self.w.storage_and_layout();
        let w = match &*w_guard {
            Storage::Cpu(CpuStorage::F32(v)) => {
                let (a, b) = w_layout
                    .contiguous_offsets()
                    .ok_or_else(|| candle_core::Error::Msg("weight not contiguous".into()))?;
                &v[a..b]
            }
            _ => candle_core::bail!("frozen matmul: weight must be an f32 CPU tensor"),
        };
        let mut dst = vec![0f32; m * out_f];
        let threads = candle_core::utils::get_num_threads();
        let parallelism = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        if m > 0 {
            // SAFETY: dst is m x out_f (row stride out_f), x is m x in_f (row stride in_f), and
            // W^T is read as in_f x out_f from W's [out_f, in_f] rows (row stride 1, column
            // stride in_f); every index stays inside the three slices.
            unsafe {
                gemm::gemm(
                    m,
                    out_f,
                    in_f,
                    dst.as_mut_ptr(),
                    1,
                    out_f as isize,
                    false,
                    x.as_ptr(),
                    1,
                    in_f as isize,
                    w.as_ptr(),
                    in_f as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
        }
        let mut shape = dims.to_vec();
        *shape.last_mut().expect("checked above") = out_f;
        Ok((CpuStorage::F32(dst), Shape::from(shape)))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.broadcast_matmul(&self.w)?))
    }
}
