//! The KV cache of the inference forward.

use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};

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

    /// An empty cache for a model of `num_layers` blocks.
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
    /// Whether no position is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Sequences the cache holds, once a forward has filled it.
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
            .ok_or_else(|| Error::Shape(format!("no cache layer {i} of {n_layers}")))?;
        if let Some((ck, _)) = slot.as_ref() {
            let (cb, ch, _, cd) = ck.dims4()?;
            if (cb, ch, cd) != (b, h, d) {
                return Err(Error::Shape(format!(
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
            if let Some((ck, cv)) = slot.as_ref()
                && len > 0
            {
                nk.slice_set(&ck.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
                nv.slice_set(&cv.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
            }
            *slot = Some((nk, nv));
        }
        let (ck, cv) = slot.as_ref().expect("allocated above");
        Ok((ck.clone(), cv.clone()))
    }

    /// Append `k`, `v` (`[b, kvh, t, hd]`) to layer `i` and return the filled views. The caller
    /// advances `len` once per forward through [`KvCache::advance`].
    pub(crate) fn append(&mut self, i: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
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
