//! The packed weights as a linear layer of the model: which inputs take them ([`suits`]), a
//! weight tensor packed, and the product applied to an activation tensor. The format and the
//! kernels are [`crate::kernels::packed`]'s; their types are re-exported here.
//!
//! Why: decoding a few rows at a time reads every weight once per token, so its speed is the
//! memory traffic of the weights. f32 weights are 4 bytes each; these are 1 byte plus 1/8 byte
//! of step and offset, or half a byte plus 1/8 when every code of a matrix is below 16 (they are
//! then stored two to a byte). The activations stay f32 (candle's `QMatMul` rounds them to 8
//! bits too, which changed SmolLM2's answers). With many rows (prefill) the product is bound by
//! multiply-adds instead, and the kernel, converting each weight column once for 8 rows, still
//! measured faster than candle's f32 matmul (see [`suits`]).

use crate::error::{Error, Result};
use candle_core::{DType, Tensor};

pub use crate::kernels::packed::{
    BLOCK, Kernel, LANES, PackedQ8, default_threads, f16_to_f32, f32_to_f16,
};

/// Whether `x` goes to the packed weights: f32 on the CPU, any number of rows. Prefill too:
/// candle's f32 matmul converts no weights but reads 4 to 6 times the bytes, and measured
/// slower from 1 to 512 rows on the project's 2-core machine (`cargo bench -p thinkfl-candle
/// --bench qlinear -- prefill`; `thinkfl bench model`: prefill of 512 tokens +25%).
pub fn suits(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

impl PackedQ8 {
    /// Pack a `[n, k]` tensor of any float dtype.
    pub fn from_tensor(w: &Tensor) -> Result<Self> {
        let (n, k) = w.dims2()?;
        let v: Vec<f32> = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        Ok(Self::pack(&v, n, k)?)
    }

    /// `y = x W^T` for `x`: `[..., k]` (f32 on the CPU) -> `[..., n]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let k = dims.last().copied().unwrap_or(0);
        if k != self.in_features() {
            return Err(Error::Shape(format!(
                "packed linear of {} inputs applied to shape {dims:?}",
                self.in_features()
            )));
        }
        let m = x.elem_count() / k;
        let xv: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let mut y = vec![0f32; m * self.out_features()];
        self.matmul(&xv, m, &mut y)?;
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = self.out_features();
        }
        Ok(Tensor::from_vec(y, shape, x.device())?)
    }
}
