//! The training kernels as candle custom ops with backward passes, so that a forward built from
//! them is differentiated by candle's autograd like any other. CPU and f32 only; gradients flow
//! to the activations (never to the frozen RMSNorm weights or the rotary tables).

use super::attention::{self, AttnShape};
use super::elementwise;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Storage, Tensor, bail,
};
use std::sync::Mutex;

/// Threads for the attention heads: candle's matmul thread count.
fn threads() -> usize {
    candle_core::utils::get_num_threads()
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{what}: f32 input expected")
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{what}: contiguous input expected")
    };
    Ok(&v[a..b])
}

/// `f` on the f32 contents of `t` (made contiguous first when it is not).
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (st, l) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*st else {
        bail!("kernel ops run on the CPU")
    };
    f(slice(cpu, l, "kernel op")?)
}

fn tensor(v: Vec<f32>, like: &Tensor) -> Result<Tensor> {
    Tensor::from_vec(v, like.shape(), like.device())
}

/// RMSNorm over the last dimension with a frozen weight.
#[derive(Debug)]
struct RmsNorm {
    w: Vec<f32>,
    eps: f32,
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "kernels-rms-norm"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, self.name())?;
        if l.shape().dims().last() != Some(&self.w.len()) {
            bail!(
                "rms norm: input {:?} for a weight of {}",
                l.shape(),
                self.w.len()
            );
        }
        let mut y = vec![0f32; x.len()];
        elementwise::rms_norm(x, &self.w, self.eps, &mut y);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_f32(x, |xs| {
            with_f32(dy, |g| {
                let mut dx = vec![0f32; xs.len()];
                elementwise::rms_norm_backward(xs, &self.w, self.eps, g, &mut dx);
                Ok(dx)
            })
        })?;
        Ok(Some(tensor(dx, x)?))
    }
}

/// `x / rms(x) * w` over the last dimension; `w` (`[hidden]`) is a constant.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
    let w = w.flatten_all()?.to_vec1::<f32>()?;
    x.contiguous()?.apply_op1(RmsNorm { w, eps })
}

/// Rotary embedding of `[b, t, heads * head_dim]` with per-row tables `[b, t, head_dim / 2]`.
#[derive(Debug)]
struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    heads: usize,
    half: usize,
}

impl Rope {
    fn apply(&self, x: &[f32], sign: f32) -> Result<Vec<f32>> {
        let rows = self.cos.len() / self.half.max(1);
        if x.len() != rows * self.heads * 2 * self.half || self.sin.len() != self.cos.len() {
            bail!(
                "rope: {} values for {rows} rows of {} heads of {}",
                x.len(),
                self.heads,
                2 * self.half
            );
        }
        let mut y = x.to_vec();
        elementwise::rope(&mut y, self.heads, self.half, &self.cos, &self.sin, sign);
        Ok(y)
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "kernels-rope"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = self.apply(slice(s, l, self.name())?, 1.0)?;
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_f32(dy, |g| self.apply(g, -1.0))?;
        Ok(Some(tensor(dx, x)?))
    }
}

/// Rotary embedding ("rotate half") of `x`: `[b, t, heads * head_dim]`, with the angles of each
/// row in `cos`, `sin`: `[b, t, head_dim / 2]`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, heads: usize) -> Result<Tensor> {
    let half = cos.dim(candle_core::D::Minus1)?;
    let op = Rope {
        cos: cos.flatten_all()?.to_vec1()?,
        sin: sin.flatten_all()?.to_vec1()?,
        heads,
        half,
    };
    x.contiguous()?.apply_op1(op)
}

#[derive(Debug)]
struct Swiglu;

impl CustomOp2 for Swiglu {
    fn name(&self) -> &'static str {
        "kernels-swiglu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, u) = (slice(s1, l1, self.name())?, slice(s2, l2, self.name())?);
        if l1.shape() != l2.shape() {
            bail!("swiglu: gate {:?} and up {:?}", l1.shape(), l2.shape());
        }
        let mut out = vec![0f32; g.len()];
        elementwise::swiglu(g, u, &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dg, du) = with_f32(g, |gs| {
            with_f32(u, |us| {
                with_f32(dy, |d| {
                    let (mut dg, mut du) = (vec![0f32; gs.len()], vec![0f32; gs.len()]);
                    elementwise::swiglu_backward(gs, us, d, &mut dg, &mut du);
                    Ok((dg, du))
                })
            })
        })?;
        Ok((Some(tensor(dg, g)?), Some(tensor(du, u)?)))
    }
}

/// `silu(g) * u`, the SwiGLU activation.
pub fn swiglu(g: &Tensor, u: &Tensor) -> Result<Tensor> {
    g.contiguous()?.apply_op2(&u.contiguous()?, Swiglu)
}

/// Causal attention; the forward leaves its rows' log-sum-exp here for the backward.
#[derive(Debug)]
struct Causal {
    shape_of: (usize, usize, usize),
    scale: f32,
    lse: Mutex<Option<Vec<f32>>>,
}

impl Causal {
    fn shape(&self, dims: &[usize]) -> Result<AttnShape> {
        let (heads, kv_heads, head_dim) = self.shape_of;
        let &[batch, t, _] = dims else {
            bail!("attention: [b, t, heads * head_dim] expected, got {dims:?}")
        };
        Ok(AttnShape {
            batch,
            t,
            heads,
            kv_heads,
            head_dim,
        })
    }
}

impl CustomOp3 for Causal {
    fn name(&self) -> &'static str {
        "kernels-causal-attention"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let shape = self.shape(l1.shape().dims())?;
        let (q, k, v) = (
            slice(s1, l1, self.name())?,
            slice(s2, l2, self.name())?,
            slice(s3, l3, self.name())?,
        );
        let (y, lse) = attention::forward(&shape, q, k, v, self.scale, threads())
            .map_err(candle_core::Error::Msg)?;
        *self.lse.lock().unwrap_or_else(|e| e.into_inner()) = Some(lse);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let shape = self.shape(q.dims())?;
        let lse = self.lse.lock().unwrap_or_else(|e| e.into_inner());
        let Some(lse) = lse.as_ref() else {
            bail!("attention backward before its forward")
        };
        let (dq, dk, dv) = with_f32(q, |qs| {
            with_f32(k, |ks| {
                with_f32(v, |vs| {
                    with_f32(y, |ys| {
                        with_f32(dy, |g| {
                            attention::backward(
                                &shape,
                                qs,
                                ks,
                                vs,
                                ys,
                                lse,
                                g,
                                self.scale,
                                threads(),
                            )
                            .map_err(candle_core::Error::Msg)
                        })
                    })
                })
            })
        })?;
        Ok((
            Some(tensor(dq, q)?),
            Some(tensor(dk, k)?),
            Some(tensor(dv, v)?),
        ))
    }
}

/// Causal grouped-query attention of `q`: `[b, t, heads * head_dim]` over `k`, `v`:
/// `[b, t, kv_heads * head_dim]`, scores scaled by `scale`; `[b, t, heads * head_dim]` out.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    kv_heads: usize,
    scale: f32,
) -> Result<Tensor> {
    let hd = q.dim(candle_core::D::Minus1)? / heads.max(1);
    let op = Causal {
        shape_of: (heads, kv_heads, hd),
        scale,
        lse: Mutex::new(None),
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

/// `x W^T + scale (x A^T) B^T` with `W` frozen: one op instead of five, keeping only `x A^T`
/// (rank-wide) for the backward besides the inputs.
#[derive(Debug)]
struct LoraLinear {
    /// `[out, in]`, contiguous.
    w: Tensor,
    scale: f32,
    /// `x A^T` of the forward, `[m, rank]`.
    xa: Mutex<Option<Vec<f32>>>,
}

/// Dimensions of a LoRA product: rows `m`, `in`, `out`, `rank`.
fn lora_dims(
    x: &Layout,
    a: &Layout,
    b: &Layout,
    w: &Tensor,
) -> Result<(usize, usize, usize, usize)> {
    let (out_f, in_f) = w.dims2()?;
    let (r, a_in) = a.shape().dims2()?;
    let (b_out, r2) = b.shape().dims2()?;
    let xd = x.shape().dims();
    if xd.last() != Some(&in_f) || a_in != in_f || b_out != out_f || r != r2 {
        bail!(
            "lora linear: x {:?}, A {:?}, B {:?} for W {:?}",
            x.shape(),
            a.shape(),
            b.shape(),
            w.shape()
        );
    }
    Ok((x.shape().elem_count() / in_f.max(1), in_f, out_f, r))
}

impl CustomOp3 for LoraLinear {
    fn name(&self) -> &'static str {
        "kernels-lora-linear"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        use super::matmul::{Mat, matmul};
        let (m, n_in, n_out, r) = lora_dims(l1, l2, l3, &self.w)?;
        let (x, a, b) = (
            slice(s1, l1, self.name())?,
            slice(s2, l2, self.name())?,
            slice(s3, l3, self.name())?,
        );
        let th = threads();
        let mut y = vec![0f32; m * n_out];
        with_f32(&self.w, |w| {
            matmul(
                &mut y,
                n_out,
                Mat::rows(x, m, n_in, n_in),
                Mat::rows(w, n_out, n_in, n_in).t(),
                1.0,
                false,
                th,
            );
            Ok(())
        })?;
        let mut xa = vec![0f32; m * r];
        matmul(
            &mut xa,
            r,
            Mat::rows(x, m, n_in, n_in),
            Mat::rows(a, r, n_in, n_in).t(),
            1.0,
            false,
            th,
        );
        matmul(
            &mut y,
            n_out,
            Mat::rows(&xa, m, r, r),
            Mat::rows(b, n_out, r, r).t(),
            self.scale,
            true,
            th,
        );
        *self.xa.lock().unwrap_or_else(|e| e.into_inner()) = Some(xa);
        let mut shape = l1.shape().dims().to_vec();
        *shape.last_mut().expect("x has an input dimension") = n_out;
        Ok((CpuStorage::F32(y), Shape::from(shape)))
    }
    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        use super::matmul::{Mat, matmul};
        let (out_f, in_f) = self.w.dims2()?;
        let r = a.dim(0)?;
        let m = x.elem_count() / in_f.max(1);
        let xa = self.xa.lock().unwrap_or_else(|e| e.into_inner());
        let Some(xa) = xa.as_ref() else {
            bail!("lora linear backward before its forward")
        };
        let th = threads();
        let s = self.scale;
        let (dx, da, db) = with_f32(x, |xs| {
            with_f32(a, |av| {
                with_f32(b, |bv| {
                    with_f32(dy, |g| {
                        with_f32(&self.w, |w| {
                            let gm = Mat::rows(g, m, out_f, out_f);
                            // dy B: [m, r].
                            let mut gb = vec![0f32; m * r];
                            matmul(&mut gb, r, gm, Mat::rows(bv, out_f, r, r), 1.0, false, th);
                            let gbm = Mat::rows(&gb, m, r, r);
                            // dx = dy W + s (dy B) A.
                            let mut dx = vec![0f32; m * in_f];
                            matmul(
                                &mut dx,
                                in_f,
                                gm,
                                Mat::rows(w, out_f, in_f, in_f),
                                1.0,
                                false,
                                th,
                            );
                            matmul(
                                &mut dx,
                                in_f,
                                gbm,
                                Mat::rows(av, r, in_f, in_f),
                                s,
                                true,
                                th,
                            );
                            // dA = s (dy B)^T x: [r, in]; dB = s dy^T (x A^T): [out, r].
                            let mut da = vec![0f32; r * in_f];
                            matmul(
                                &mut da,
                                in_f,
                                gbm.t(),
                                Mat::rows(xs, m, in_f, in_f),
                                s,
                                false,
                                th,
                            );
                            let mut db = vec![0f32; out_f * r];
                            matmul(&mut db, r, gm.t(), Mat::rows(xa, m, r, r), s, false, th);
                            Ok((dx, da, db))
                        })
                    })
                })
            })
        })?;
        Ok((
            Some(tensor(dx, x)?),
            Some(tensor(da, a)?),
            Some(tensor(db, b)?),
        ))
    }
}

/// `x W^T + scale (x A^T) B^T`: a frozen `W` (`[out, in]`) with a LoRA update (`A`: `[rank, in]`,
/// `B`: `[out, rank]`); gradients flow to `x`, `A` and `B`. `x`: `[..., in]`.
pub fn lora_linear(x: &Tensor, w: &Tensor, a: &Tensor, b: &Tensor, scale: f32) -> Result<Tensor> {
    let op = LoraLinear {
        w: w.detach().contiguous()?,
        scale,
        xa: Mutex::new(None),
    };
    x.contiguous()?
        .apply_op3(&a.contiguous()?, &b.contiguous()?, op)
}
