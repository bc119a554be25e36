//! Packed weights for inference: `y[m, n] = x[m, k] · W[n, k]^T` with f32 activations and
//! weights stored as 8-bit codes in blocks of [`BLOCK`] along `k`, each block with an f16 step
//! and an f16 offset: `w = min + step * q`, `q` in `0..=255`.
//!
//! Why: decoding a few rows at a time reads every weight once per token, so its speed is the
//! memory traffic of the weights. f32 weights are 4 bytes each; these are 1 byte plus 1/8 byte
//! of step and offset, or half a byte plus 1/8 when every code of a matrix is below 16 (they are
//! then stored two to a byte). The activations stay f32 (candle's `QMatMul` rounds them to 8
//! bits too, which changed SmolLM2's answers). With many rows (prefill) the product is bound by
//! multiply-adds instead, and the kernel, converting each weight column once for 8 rows, still
//! measured faster than candle's f32 matmul (see [`suits`]).
//!
//! Each block takes, of three grids, the one with the smallest largest error: min-max over 15
//! steps, which reproduces 4-bit affine blocks (ggml's Q4_1, the layers of the default SmolLM2
//! GGUF) exactly and keeps their codes below 16; symmetric (`step = amax / 127`, `min = -128
//! step`: ggml's Q8_0, reproduced exactly); and min-max over 255 steps (the finest affine grid).
//! Weights from such a GGUF are packed without loss; others lose at most half a step of the
//! min-max grid, `(max - min) / 510`.
//!
//! Layout: outputs are grouped in tiles of [`LANES`] rows of `W`; per tile and block one record
//! holds the [`LANES`] steps and offsets, then the codes `k`-major. One SIMD register then holds
//! one `k` column of a whole tile, so the kernel multiplies it by a broadcast activation and
//! accumulates 16 outputs without horizontal sums, and each converted weight column serves
//! every row of `x` in the tile of rows (up to 8). The offsets add `min * sum(x over the
//! block)` once per block. `n` is padded to a whole tile and `k` to a whole block with zeros.

use crate::error::{Error, Result};
use candle_core::{DType, Tensor};
use std::sync::OnceLock;

/// Weights per step and offset, along `k`.
pub const BLOCK: usize = 32;
/// Outputs per tile (one AVX-512 register of f32).
pub const LANES: usize = 16;
/// One tile's block ("record"): the [`LANES`] steps and offsets (f16), then the codes.
const PARAMS: usize = 4 * LANES;
/// Record bytes with 8-bit and with 4-bit codes.
const RECORD8: usize = PARAMS + BLOCK * LANES;
const RECORD4: usize = PARAMS + BLOCK * LANES / 2;
const LINE: usize = 64;

/// Which kernel computes the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust, any CPU.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512F.
    Avx512,
}

impl Kernel {
    /// Whether this CPU can run the kernel.
    pub fn available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest available kernel (detected once).
    pub fn best() -> Kernel {
        static BEST: OnceLock<Kernel> = OnceLock::new();
        *BEST.get_or_init(|| {
            [Kernel::Avx512, Kernel::Avx2]
                .into_iter()
                .find(|k| k.available())
                .unwrap_or(Kernel::Scalar)
        })
    }
}

/// Threads for the product: rayon's pool (`RAYON_NUM_THREADS`), like candle's f32 matmuls.
/// `CANDLE_NUM_THREADS` is left to candle's elementwise pool, which the CLI makes single-threaded
/// on small machines.
pub fn default_threads() -> usize {
    rayon::current_num_threads()
}

/// Whether `x` goes to the packed weights: f32 on the CPU, any number of rows. Prefill too:
/// candle's f32 matmul converts no weights but reads 4 to 6 times the bytes, and measured
/// slower from 1 to 512 rows on the project's 2-core machine (`cargo bench -p thinkfl-candle
/// --bench qlinear -- prefill`; `thinkfl bench model`: prefill of 512 tokens +25%).
pub fn suits(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// Below this many multiply-adds one thread does the whole product: handing work to another
/// thread costs a few microseconds, as much as a small projection of one decoded token.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// A cache line, so that records start on line boundaries (576 bytes = 9 lines).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; LINE]);

/// `W` (`[n, k]`) as 8-bit codes with f16 steps and offsets, tiled for [`PackedQ8::matmul`].
/// When every code of the matrix is below 16 (a matrix of 4-bit blocks, like the Q4_1 layers
/// of the default GGUF), codes are stored two to a byte: the same values in 62% of the bytes.
#[derive(Clone)]
pub struct PackedQ8 {
    n: usize,
    k: usize,
    k_blocks: usize,
    n_tiles: usize,
    /// 4 or 8.
    bits: u32,
    /// `[n_tiles][k_blocks]` records of `RECORD8` or `RECORD4` bytes. A record holds the steps,
    /// the offsets, then the codes `k`-major: 8-bit code `(kk, lane)` at byte `kk * LANES +
    /// lane`; 4-bit codes of columns `2c` (low nibble) and `2c + 1` (high) at `c * LANES + lane`.
    data: Vec<Line>,
}

impl std::fmt::Debug for PackedQ8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedQ8")
            .field("n", &self.n)
            .field("k", &self.k)
            .field("bits", &self.bits)
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl PackedQ8 {
    /// Pack row-major `w` (`[n, k]`).
    pub fn pack(w: &[f32], n: usize, k: usize) -> Result<Self> {
        if n == 0 || k == 0 || w.len() != n * k {
            return Err(Error::Shape(format!(
                "packing {} weights as a {n}x{k} matrix",
                w.len()
            )));
        }
        if let Some(i) = w
            .iter()
            .position(|v| !v.is_finite() || v.abs() > F16_MAX / 2.0)
        {
            return Err(Error::Shape(format!(
                "weight [{}, {}] is {}; cannot pack it with f16 steps",
                i / k,
                i % k,
                w[i]
            )));
        }
        let k_blocks = k.div_ceil(BLOCK);
        let n_tiles = n.div_ceil(LANES);
        let tile_lines = k_blocks * RECORD8 / LINE;
        let mut data = vec![Line([0; LINE]); n_tiles * tile_lines];
        use rayon::prelude::*;
        let max_code = data
            .par_chunks_mut(tile_lines)
            .enumerate()
            .map(|(t, lines)| {
                // SAFETY: `Line` is plain bytes; the slice covers exactly these lines.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(
                        lines.as_mut_ptr() as *mut u8,
                        lines.len() * LINE,
                    )
                };
                let mut codes = [0u8; BLOCK];
                let mut max_code = 0u8;
                for lane in 0..LANES.min(n - t * LANES) {
                    let row = t * LANES + lane;
                    for b in 0..k_blocks {
                        let lo = b * BLOCK;
                        let src = &w[row * k + lo..row * k + k.min(lo + BLOCK)];
                        let (step, min) = quantize_block(src, &mut codes);
                        let rec = &mut bytes[b * RECORD8..(b + 1) * RECORD8];
                        rec[2 * lane..2 * lane + 2].copy_from_slice(&step.to_le_bytes());
                        let o = 2 * LANES + 2 * lane;
                        rec[o..o + 2].copy_from_slice(&min.to_le_bytes());
                        for (kk, &q) in codes[..src.len()].iter().enumerate() {
                            rec[PARAMS + kk * LANES + lane] = q;
                            max_code = max_code.max(q);
                        }
                    }
                }
                max_code
            })
            .max()
            .unwrap_or(0);
        let mut packed = PackedQ8 {
            n,
            k,
            k_blocks,
            n_tiles,
            bits: 8,
            data,
        };
        if max_code < 16 {
            packed.repack_4_bits();
        }
        Ok(packed)
    }

    /// Rewrite 8-bit records whose codes are all below 16 as 4-bit ones.
    fn repack_4_bits(&mut self) {
        let records = self.n_tiles * self.k_blocks;
        let mut data = vec![Line([0; LINE]); records * RECORD4 / LINE];
        let dst = data.as_mut_ptr() as *mut u8;
        for r in 0..records {
            let src = &self.record_bytes()[r * RECORD8..(r + 1) * RECORD8];
            // SAFETY: record r of the new buffer lies within it.
            let out = unsafe { std::slice::from_raw_parts_mut(dst.add(r * RECORD4), RECORD4) };
            out[..PARAMS].copy_from_slice(&src[..PARAMS]);
            for c in 0..BLOCK / 2 {
                for lane in 0..LANES {
                    let lo = src[PARAMS + 2 * c * LANES + lane];
                    let hi = src[PARAMS + (2 * c + 1) * LANES + lane];
                    out[PARAMS + c * LANES + lane] = lo | (hi << 4);
                }
            }
        }
        self.data = data;
        self.bits = 4;
    }

    /// Pack a `[n, k]` tensor of any float dtype.
    pub fn from_tensor(w: &Tensor) -> Result<Self> {
        let (n, k) = w.dims2()?;
        let v: Vec<f32> = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        Self::pack(&v, n, k)
    }

    /// Outputs (`n`).
    pub fn out_features(&self) -> usize {
        self.n
    }
    /// Inputs (`k`).
    pub fn in_features(&self) -> usize {
        self.k
    }
    /// Memory held by the codes, steps and offsets.
    pub fn bytes(&self) -> usize {
        self.data.len() * LINE
    }
    /// Bits per stored code: 4 when every code of the matrix fits, else 8.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    fn record_bytes(&self) -> &[u8] {
        // SAFETY: `Line` is plain bytes.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr() as *const u8, self.bytes()) }
    }

    fn record_len(&self) -> usize {
        if self.bits == 4 { RECORD4 } else { RECORD8 }
    }

    /// Record of tile `t`, block `b`.
    fn record(&self, t: usize, b: usize) -> &[u8] {
        let len = self.record_len();
        let off = (t * self.k_blocks + b) * len;
        &self.record_bytes()[off..off + len]
    }

    /// (step, offset) of row `lane` of a record.
    fn params(rec: &[u8], lane: usize) -> (f32, f32) {
        let at = |o: usize| f16_to_f32(u16::from_le_bytes([rec[o], rec[o + 1]]));
        (at(2 * lane), at(2 * LANES + 2 * lane))
    }

    /// Code of column `kk`, row `lane` of a record.
    fn code(&self, rec: &[u8], kk: usize, lane: usize) -> u8 {
        if self.bits == 4 {
            (rec[PARAMS + kk / 2 * LANES + lane] >> (4 * (kk % 2))) & 0xf
        } else {
            rec[PARAMS + kk * LANES + lane]
        }
    }

    /// The weights as f32 (`[n, k]`, row-major), as the kernels see them (`min + step * q`).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut w = vec![0f32; self.n * self.k];
        for row in 0..self.n {
            let (t, lane) = (row / LANES, row % LANES);
            for c in 0..self.k {
                let (b, kk) = (c / BLOCK, c % BLOCK);
                let rec = self.record(t, b);
                let (step, min) = Self::params(rec, lane);
                w[row * self.k + c] = min + step * self.code(rec, kk, lane) as f32;
            }
        }
        w
    }

    /// `y = x W^T` for row-major `x` (`[m, k]`) into `y` (`[m, n]`), with the best kernel and
    /// [`default_threads`].
    pub fn matmul(&self, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
        self.matmul_with(Kernel::best(), default_threads(), x, m, y)
    }

    /// [`PackedQ8::matmul`] with a chosen kernel and thread count.
    pub fn matmul_with(
        &self,
        kernel: Kernel,
        threads: usize,
        x: &[f32],
        m: usize,
        y: &mut [f32],
    ) -> Result<()> {
        if x.len() != m * self.k || y.len() != m * self.n {
            return Err(Error::Shape(format!(
                "packed matmul of a {}x{} weight: x has {} values and y {} for {m} rows",
                self.n,
                self.k,
                x.len(),
                y.len()
            )));
        }
        if !kernel.available() {
            return Err(Error::Unsupported(format!(
                "kernel {kernel:?} is not supported by this CPU"
            )));
        }
        if m == 0 {
            return Ok(());
        }
        // Block sums of x, for the offsets.
        let kb = self.k_blocks;
        let mut xsum = vec![0f32; m * kb];
        for r in 0..m {
            for (b, c) in x[r * self.k..(r + 1) * self.k].chunks(BLOCK).enumerate() {
                xsum[r * kb + b] = c.iter().sum();
            }
        }
        let job = Job {
            p: self,
            x,
            xsum: &xsum,
            m,
            out: OutPtr(y.as_mut_ptr()),
        };
        let threads = threads.max(1);
        if threads == 1 || m * self.n * self.k < PARALLEL_MIN_MACS {
            // SAFETY: one call covers all tiles; `y` holds `m * n` values (checked above).
            unsafe { job.tiles(kernel, 0..self.n_tiles) };
            return Ok(());
        }
        // Several chunks per thread so that a thread slowed by another process on the shared
        // cores is helped by the others; whole groups of 8 tiles keep the kernels' widest
        // tile groups intact.
        let chunk = self.n_tiles.div_ceil(threads * 4).next_multiple_of(8);
        let chunks = self.n_tiles.div_ceil(chunk);
        use rayon::prelude::*;
        (0..chunks).into_par_iter().for_each(|c| {
            let r = c * chunk..self.n_tiles.min((c + 1) * chunk);
            // SAFETY: chunks cover disjoint tiles, hence disjoint output columns of `y`.
            unsafe { job.tiles(kernel, r) };
        });
        Ok(())
    }

    /// `y_i = x W_i^T` for several matrices that read the same `x` (`[m, k]`: the q, k and v
    /// projections of a block, or its gate and up), as one parallel product over the tiles of
    /// them all.
    ///
    /// Why: decoding one token runs 211 products of a few hundred thousand multiply-adds each,
    /// and each parallel product is a fork and a join of the thread pool: a few microseconds on
    /// an idle machine, a scheduler's time slice when another process holds the other core.
    /// One join for q, k and v (and one for gate and up) instead of one each removes three of
    /// a block's seven, and k and v (below [`PARALLEL_MIN_MACS`] alone) no longer run on one
    /// thread while the other waits. Each tile is computed by the same kernel call as in
    /// [`PackedQ8::matmul`], so the outputs are bit-identical to separate products.
    pub fn matmul_many(parts: &mut [(&PackedQ8, &mut [f32])], x: &[f32], m: usize) -> Result<()> {
        Self::matmul_many_with(Kernel::best(), default_threads(), parts, x, m)
    }

    /// [`PackedQ8::matmul_many`] with a chosen kernel and thread count.
    pub fn matmul_many_with(
        kernel: Kernel,
        threads: usize,
        parts: &mut [(&PackedQ8, &mut [f32])],
        x: &[f32],
        m: usize,
    ) -> Result<()> {
        let Some(k) = parts.first().map(|(p, _)| p.k) else {
            return Ok(());
        };
        for (p, y) in parts.iter() {
            if p.k != k || x.len() != m * k || y.len() != m * p.n {
                return Err(Error::Shape(format!(
                    "packed matmul of a {}x{} weight among {k}-input ones: x has {} values and y {} for {m} rows",
                    p.n,
                    p.k,
                    x.len(),
                    y.len()
                )));
            }
        }
        if !kernel.available() {
            return Err(Error::Unsupported(format!(
                "kernel {kernel:?} is not supported by this CPU"
            )));
        }
        if m == 0 {
            return Ok(());
        }
        let kb = parts[0].0.k_blocks;
        let mut xsum = vec![0f32; m * kb];
        for r in 0..m {
            for (b, c) in x[r * k..(r + 1) * k].chunks(BLOCK).enumerate() {
                xsum[r * kb + b] = c.iter().sum();
            }
        }
        let jobs: Vec<Job> = parts
            .iter_mut()
            .map(|(p, y)| Job {
                p,
                x,
                xsum: &xsum,
                m,
                out: OutPtr(y.as_mut_ptr()),
            })
            .collect();
        let macs: usize = jobs.iter().map(|j| m * j.p.n * k).sum();
        let threads = threads.max(1);
        if threads == 1 || macs < PARALLEL_MIN_MACS {
            for job in &jobs {
                // SAFETY: as in `matmul_with`: all tiles of each product, its own `y`.
                unsafe { job.tiles(kernel, 0..job.p.n_tiles) };
            }
            return Ok(());
        }
        // Each product in the chunks `matmul_with` gives it (one for a product below the
        // threshold, which then runs beside the others instead of alone): the kernels group
        // the tiles of a chunk, and a chunk's last tiles may go one row at a time, which rounds
        // otherwise; the same chunks keep the outputs bit-identical to separate products.
        let work: Vec<(usize, std::ops::Range<usize>)> = jobs
            .iter()
            .enumerate()
            .flat_map(|(i, j)| {
                let n = j.p.n_tiles;
                let chunk = if m * j.p.n * k < PARALLEL_MIN_MACS {
                    n
                } else {
                    n.div_ceil(threads * 4).next_multiple_of(8)
                };
                (0..n).step_by(chunk).map(move |t| (i, t..n.min(t + chunk)))
            })
            .collect();
        use rayon::prelude::*;
        work.into_par_iter().for_each(|(i, r)| {
            // SAFETY: chunks cover disjoint tiles of one product, hence disjoint output
            // columns of its own `y`.
            unsafe { jobs[i].tiles(kernel, r) };
        });
        Ok(())
    }

    /// `y = x W^T` for `x`: `[..., k]` (f32 on the CPU) -> `[..., n]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let k = dims.last().copied().unwrap_or(0);
        if k != self.k {
            return Err(Error::Shape(format!(
                "packed linear of {} inputs applied to shape {dims:?}",
                self.k
            )));
        }
        let m = x.elem_count() / k;
        let xv: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let mut y = vec![0f32; m * self.n];
        self.matmul(&xv, m, &mut y)?;
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = self.n;
        }
        Ok(Tensor::from_vec(y, shape, x.device())?)
    }
}

/// One product, shared by the threads that compute its tiles.
struct Job<'a> {
    p: &'a PackedQ8,
    /// `[m, k]`.
    x: &'a [f32],
    /// `[m, k_blocks]`: sums of `x` over each block.
    xsum: &'a [f32],
    m: usize,
    /// `[m, n]`.
    out: OutPtr,
}

impl Job<'_> {
    /// Compute output tiles `tiles` of all `m` rows.
    ///
    /// # Safety
    /// No other thread writes the columns of `tiles`; `kernel` is available; `tiles` within
    /// `0..n_tiles`.
    unsafe fn tiles(&self, kernel: Kernel, tiles: std::ops::Range<usize>) {
        // Many rows (prefill) go in blocks whose activations stay in cache while every tile
        // group of the range passes over them.
        const ROW_BLOCK: usize = 64;
        let (k, kb, n) = (self.p.k, self.p.k_blocks, self.p.n);
        for r0 in (0..self.m).step_by(ROW_BLOCK) {
            let rows = ROW_BLOCK.min(self.m - r0);
            let job = Job {
                p: self.p,
                x: &self.x[r0 * k..(r0 + rows) * k],
                xsum: &self.xsum[r0 * kb..(r0 + rows) * kb],
                m: rows,
                // SAFETY: row r0 < m of the `m * n` output.
                out: OutPtr(unsafe { self.out.0.add(r0 * n) }),
            };
            let tiles = tiles.clone();
            match kernel {
                Kernel::Scalar => scalar_tiles(&job, tiles),
                #[cfg(target_arch = "x86_64")]
                // SAFETY: availability checked by the caller.
                Kernel::Avx512 => unsafe { x86::avx512_tiles(&job, tiles) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: availability checked by the caller.
                Kernel::Avx2 => unsafe { x86::avx2_tiles(&job, tiles) },
                #[cfg(not(target_arch = "x86_64"))]
                _ => scalar_tiles(&job, tiles),
            }
        }
    }
}

/// The output pointer shared by the threads of one product.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: threads write disjoint columns (see `Job::tiles`).
unsafe impl Send for OutPtr {}
// SAFETY: shared only to hand each thread its own columns, as for `Send`.
unsafe impl Sync for OutPtr {}

const F16_MAX: f32 = 65504.0;

/// Codes of one block (`v.len() <= BLOCK`, finite) into `codes`; returns (step, offset) as f16
/// bits. Of the three grids (see the module doc) the one with the smallest largest error wins.
fn quantize_block(v: &[f32], codes: &mut [u8; BLOCK]) -> (u16, u16) {
    // Fixed-size arrays and comparisons instead of `f32::min`/`max` (which handle NaN) let the
    // loops vectorize: packing a model is otherwise seconds of load time. A short block is
    // padded with its own first value, which changes no extreme and no error.
    let mut x = [v[0]; BLOCK];
    x[..v.len()].copy_from_slice(v);
    let lo = reduce(&x, |a, b| if b < a { b } else { a });
    let hi = reduce(&x, |a, b| if b > a { b } else { a });
    let amax = if -lo > hi { -lo } else { hi };
    let sym = f16_ceil(amax / 127.0);
    let floor = f16_floor(lo);
    // The 4-bit grid first: when it is exact the block keeps codes below 16, which lets a
    // matrix of such blocks be stored in 4 bits.
    let candidates = [
        (f16_ceil((hi - f16_to_f32(floor)) / 15.0), floor),
        (sym, f32_to_f16(-128.0 * f16_to_f32(sym))),
        (f16_ceil((hi - f16_to_f32(floor)) / 255.0), floor),
    ];
    let mut best: Option<(f32, u16, u16)> = None;
    let mut trial = [0u8; BLOCK];
    let mut err = [0f32; BLOCK];
    for (step_h, min_h) in candidates {
        let (step, min) = (f16_to_f32(step_h), f16_to_f32(min_h));
        if !step.is_finite() || !min.is_finite() {
            continue;
        }
        let inv = if step > 0.0 { 1.0 / step } else { 0.0 };
        for i in 0..BLOCK {
            // x >= min on every grid, so adding a half and truncating rounds to nearest (and
            // compiles to instructions, where `round` is a libm call on baseline x86-64).
            let q = ((x[i] - min) * inv + 0.5) as u32;
            let q = if q > 255 { 255 } else { q };
            trial[i] = q as u8;
            let d = min + step * q as f32 - x[i];
            err[i] = if d < 0.0 { -d } else { d };
        }
        let worst = reduce(&err, |a, b| if b > a { b } else { a });
        if best.is_none_or(|(w, _, _)| worst < w) {
            best = Some((worst, step_h, min_h));
            codes.copy_from_slice(&trial);
            if worst == 0.0 {
                // The block's own grid (a Q8_0 or Q4_1 block): nothing can do better.
                break;
            }
        }
    }
    // The min-max grids stay finite for weights within F16_MAX / 2 (checked by `pack`).
    best.map_or((0, 0), |(_, s, m)| (s, m))
}

/// `f` over a block in eight independent lanes (vectorizable), then across them.
#[inline(always)]
fn reduce(x: &[f32; BLOCK], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [x[0]; 8];
    for c in x.chunks_exact(8) {
        for j in 0..8 {
            acc[j] = f(acc[j], c[j]);
        }
    }
    acc.into_iter().fold(acc[0], f)
}

/// The smallest f16 at or above `x`.
fn f16_ceil(x: f32) -> u16 {
    let h = f32_to_f16(x);
    if f16_to_f32(h) >= x {
        h
    } else if h == 0x8000 {
        1
    } else if h & 0x8000 != 0 {
        h - 1
    } else {
        h + 1
    }
}

/// The largest f16 at or below `x`.
fn f16_floor(x: f32) -> u16 {
    let h = f32_to_f16(x);
    if f16_to_f32(h) <= x {
        h
    } else if h == 0 {
        0x8001
    } else if h & 0x8000 != 0 {
        h + 1
    } else {
        h - 1
    }
}

/// f32 to IEEE half, rounding to nearest even.
pub fn f32_to_f16(v: f32) -> u16 {
    let x = v.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let man = x & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    let round = |h: u32, rem: u32, half: u32| -> u32 {
        if rem > half || (rem == half && h & 1 == 1) {
            h + 1
        } else {
            h
        }
    };
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let h = round(m >> shift, m & ((1 << shift) - 1), 1 << (shift - 1));
        return sign | h as u16;
    }
    let h = round(((e as u32) << 10) | (man >> 13), man & 0x1fff, 0x1000);
    sign | h as u16
}

/// IEEE half to f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match exp {
        0 => {
            let v = man as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        0x1f => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

fn scalar_tiles(job: &Job, tiles: std::ops::Range<usize>) {
    let (p, x, m) = (job.p, job.x, job.m);
    let (k, kb) = (p.k, p.k_blocks);
    for t in tiles {
        let width = LANES.min(p.n - t * LANES);
        for r in 0..m {
            let xr = &x[r * k..(r + 1) * k];
            let mut acc = [0f32; LANES];
            for b in 0..kb {
                let rec = p.record(t, b);
                let mut part = [0f32; LANES];
                let lo = b * BLOCK;
                for (kk, &xv) in xr[lo..k.min(lo + BLOCK)].iter().enumerate() {
                    for (lane, a) in part.iter_mut().enumerate() {
                        *a += p.code(rec, kk, lane) as f32 * xv;
                    }
                }
                let xs = job.xsum[r * kb + b];
                for (lane, a) in acc.iter_mut().enumerate() {
                    let (step, min) = PackedQ8::params(rec, lane);
                    *a += part[lane] * step + min * xs;
                }
            }
            for (lane, a) in acc.iter().enumerate().take(width) {
                // SAFETY: row r < m, column t*LANES+lane < n; this thread owns tile t.
                unsafe { *job.out.0.add(r * p.n + t * LANES + lane) = *a };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The SIMD kernels. A call computes a group of `NT` output tiles for `M` rows at once:
    //! each `k` column of a tile is loaded, widened to f32 and scaled once, then used by the
    //! `M` rows (`M * NT` independent accumulators hide the latency of the multiply-adds).
    //! `Q4` selects 4-bit records (two columns per byte).

    use super::{BLOCK, Job, LANES, PARAMS, RECORD4, RECORD8};
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// # Safety
    /// AVX-512F is available; see [`Job::tiles`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512_tiles(job: &Job, tiles: Range<usize>) {
        // SAFETY: forwarded.
        unsafe {
            if job.p.bits == 4 {
                avx512_tiles_q::<true>(job, tiles)
            } else {
                avx512_tiles_q::<false>(job, tiles)
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_tiles_q<const Q4: bool>(job: &Job, tiles: Range<usize>) {
        let m = job.m;
        // Tile groups outermost, so that a group's weights stay in cache for every row chunk.
        let mut t = tiles.start;
        while t < tiles.end {
            // Enough accumulators (rows x tiles) to cover the multiply-add latency, few enough
            // to stay in the 32 registers with the converted columns (twice as many for 4 bits).
            let nt = match (m, Q4) {
                (1, false) => 8,
                (1, true) | (2, _) => 4,
                (3 | 4, _) => 3,
                _ => 2,
            }
            .min(tiles.end - t);
            let mut r = 0;
            while r < m {
                let rows = (m - r).min(8);
                // SAFETY: forwarded from the caller.
                unsafe {
                    match (rows, nt) {
                        (1, 8) => avx512_group::<1, 8, Q4>(job, r, t),
                        (1, 4) => avx512_group::<1, 4, Q4>(job, r, t),
                        (2, 4) => avx512_group::<2, 4, Q4>(job, r, t),
                        (3, 3) => avx512_group::<3, 3, Q4>(job, r, t),
                        (4, 3) => avx512_group::<4, 3, Q4>(job, r, t),
                        (1, 2) => avx512_group::<1, 2, Q4>(job, r, t),
                        (2, 2) => avx512_group::<2, 2, Q4>(job, r, t),
                        (3, 2) => avx512_group::<3, 2, Q4>(job, r, t),
                        (4, 2) => avx512_group::<4, 2, Q4>(job, r, t),
                        (5, 2) => avx512_group::<5, 2, Q4>(job, r, t),
                        (6, 2) => avx512_group::<6, 2, Q4>(job, r, t),
                        (7, 2) => avx512_group::<7, 2, Q4>(job, r, t),
                        (8, 2) => avx512_group::<8, 2, Q4>(job, r, t),
                        _ => avx512_narrow::<Q4>(job, rows, r, t, nt),
                    }
                }
                r += rows;
            }
            t += nt;
        }
    }

    /// Groups narrower than the ones above (at the end of a chunk): pairs of tiles, then a
    /// last single tile row by row.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_narrow<const Q4: bool>(
        job: &Job,
        rows: usize,
        r0: usize,
        t0: usize,
        nt: usize,
    ) {
        let mut t = t0;
        while t + 2 <= t0 + nt {
            // SAFETY: forwarded from the caller; rows <= 8.
            unsafe {
                match rows {
                    1 => avx512_group::<1, 2, Q4>(job, r0, t),
                    2 => avx512_group::<2, 2, Q4>(job, r0, t),
                    3 => avx512_group::<3, 2, Q4>(job, r0, t),
                    4 => avx512_group::<4, 2, Q4>(job, r0, t),
                    5 => avx512_group::<5, 2, Q4>(job, r0, t),
                    6 => avx512_group::<6, 2, Q4>(job, r0, t),
                    7 => avx512_group::<7, 2, Q4>(job, r0, t),
                    _ => avx512_group::<8, 2, Q4>(job, r0, t),
                }
            }
            t += 2;
        }
        if t < t0 + nt {
            for r in r0..r0 + rows {
                // SAFETY: forwarded from the caller; one row, one token.
                unsafe { avx512_group::<1, 1, Q4>(job, r, t) };
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_group<const M: usize, const NT: usize, const Q4: bool>(
        job: &Job,
        r0: usize,
        t0: usize,
    ) {
        let p = job.p;
        let (k, kb, n) = (p.k, p.k_blocks, p.n);
        let record = if Q4 { RECORD4 } else { RECORD8 };
        let mut acc = [[_mm512_setzero_ps(); NT]; M];
        let xp = job.x.as_ptr();
        let base = p.data.as_ptr() as *const u8;
        let nibble = _mm512_set1_epi32(0xf);
        for b in 0..kb {
            let mut rec = [base; NT];
            let mut step = [_mm512_setzero_ps(); NT];
            let mut min = [_mm512_setzero_ps(); NT];
            for j in 0..NT {
                // SAFETY: tile t0 + j < n_tiles, block b < k_blocks: a whole record.
                unsafe {
                    rec[j] = base.add(((t0 + j) * kb + b) * record);
                    step[j] = _mm512_cvtph_ps(_mm256_loadu_si256(rec[j] as *const _));
                    min[j] = _mm512_cvtph_ps(_mm256_loadu_si256(rec[j].add(2 * LANES) as *const _));
                }
            }
            let lo = b * BLOCK;
            let width = BLOCK.min(k - lo);
            // With one or two rows the step is applied once per block to a block sum (a
            // multiply per column saved); with more rows, once per column of weights (fewer
            // accumulators than rows times tiles twice over).
            let late = M <= 2;
            let mut blk = if late {
                [[_mm512_setzero_ps(); NT]; M]
            } else {
                acc
            };
            // Multiply-add one column of weights `w` into every row.
            let mut fma = |w: &[__m512; NT], col: usize| {
                for (i, row) in blk.iter_mut().enumerate() {
                    // SAFETY: row r0 + i < m, column col < k.
                    let xv = _mm512_set1_ps(unsafe { *xp.add((r0 + i) * k + col) });
                    for j in 0..NT {
                        row[j] = _mm512_fmadd_ps(w[j], xv, row[j]);
                    }
                }
            };
            // Codes of a column (or column pair) as 16 u32 lanes.
            // SAFETY: (for the callers) offset within the record's codes.
            let load = |j: usize, off: usize| unsafe {
                _mm512_cvtepu8_epi32(_mm_loadu_si128(rec[j].add(PARAMS + off) as *const __m128i))
            };
            let scale = |v: __m512i, j: usize| {
                if late {
                    _mm512_cvtepi32_ps(v)
                } else {
                    _mm512_mul_ps(_mm512_cvtepi32_ps(v), step[j])
                }
            };
            if Q4 {
                let mut kk = 0;
                while kk < width {
                    let mut w0 = [_mm512_setzero_ps(); NT];
                    let mut w1 = [_mm512_setzero_ps(); NT];
                    for j in 0..NT {
                        let v = load(j, kk / 2 * LANES);
                        w0[j] = scale(_mm512_and_si512(v, nibble), j);
                        w1[j] = scale(_mm512_srli_epi32::<4>(v), j);
                    }
                    fma(&w0, lo + kk);
                    if kk + 1 < width {
                        fma(&w1, lo + kk + 1);
                    }
                    kk += 2;
                }
            } else {
                for kk in 0..width {
                    let w: [__m512; NT] = std::array::from_fn(|j| scale(load(j, kk * LANES), j));
                    fma(&w, lo + kk);
                }
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let xs = _mm512_set1_ps(job.xsum[(r0 + i) * kb + b]);
                for j in 0..NT {
                    row[j] = if late {
                        _mm512_fmadd_ps(blk[i][j], step[j], row[j])
                    } else {
                        blk[i][j]
                    };
                    row[j] = _mm512_fmadd_ps(min[j], xs, row[j]);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, a) in row.iter().enumerate() {
                let c = (t0 + j) * LANES;
                // SAFETY: row r0 + i < m; the store covers columns c..min(c + 16, n), which
                // belong to this call's tiles.
                unsafe {
                    let dst = job.out.0.add((r0 + i) * n + c);
                    if c + LANES <= n {
                        _mm512_storeu_ps(dst, *a);
                    } else {
                        let mask: __mmask16 = ((1u32 << (n - c)) - 1) as __mmask16;
                        _mm512_mask_storeu_ps(dst, mask, *a);
                    }
                }
            }
        }
    }

    /// # Safety
    /// AVX2, FMA and F16C are available; see [`Job::tiles`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn avx2_tiles(job: &Job, tiles: Range<usize>) {
        // SAFETY: forwarded.
        unsafe {
            if job.p.bits == 4 {
                avx2_tiles_q::<true>(job, tiles)
            } else {
                avx2_tiles_q::<false>(job, tiles)
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn avx2_tiles_q<const Q4: bool>(job: &Job, tiles: Range<usize>) {
        let m = job.m;
        let mut t = tiles.start;
        while t < tiles.end {
            let nt = if m == 1 { 2 } else { 1 }.min(tiles.end - t);
            let mut r = 0;
            while r < m {
                let rows = (m - r).min(4);
                // SAFETY: forwarded from the caller.
                unsafe {
                    match (rows, nt) {
                        (1, 2) => avx2_group::<1, 2, Q4>(job, r, t),
                        (1, _) => avx2_group::<1, 1, Q4>(job, r, t),
                        (2, _) => avx2_group::<2, 1, Q4>(job, r, t),
                        (3, _) => avx2_group::<3, 1, Q4>(job, r, t),
                        _ => avx2_group::<4, 1, Q4>(job, r, t),
                    }
                }
                r += rows;
            }
            t += nt;
        }
    }

    /// Like [`avx512_group`] with each tile in two 8-lane halves.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn avx2_group<const M: usize, const NT: usize, const Q4: bool>(
        job: &Job,
        r0: usize,
        t0: usize,
    ) {
        let p = job.p;
        let (k, kb, n) = (p.k, p.k_blocks, p.n);
        let record = if Q4 { RECORD4 } else { RECORD8 };
        let mut acc = [[[_mm256_setzero_ps(); 2]; NT]; M];
        let xp = job.x.as_ptr();
        let base = p.data.as_ptr() as *const u8;
        let nibble = _mm256_set1_epi32(0xf);
        for b in 0..kb {
            let mut rec = [base; NT];
            let mut step = [[_mm256_setzero_ps(); 2]; NT];
            let mut min = [[_mm256_setzero_ps(); 2]; NT];
            for j in 0..NT {
                // SAFETY: tile t0 + j < n_tiles, block b < k_blocks: a whole record.
                unsafe {
                    rec[j] = base.add(((t0 + j) * kb + b) * record);
                    for h in 0..2 {
                        step[j][h] =
                            _mm256_cvtph_ps(_mm_loadu_si128(rec[j].add(16 * h) as *const _));
                        min[j][h] = _mm256_cvtph_ps(_mm_loadu_si128(
                            rec[j].add(2 * LANES + 16 * h) as *const _,
                        ));
                    }
                }
            }
            let lo = b * BLOCK;
            let width = BLOCK.min(k - lo);
            let late = M <= 2;
            let mut blk = if late {
                [[[_mm256_setzero_ps(); 2]; NT]; M]
            } else {
                acc
            };
            let mut fma = |w: &[[__m256; 2]; NT], col: usize| {
                for (i, row) in blk.iter_mut().enumerate() {
                    // SAFETY: row r0 + i < m, column col < k.
                    let xv = _mm256_set1_ps(unsafe { *xp.add((r0 + i) * k + col) });
                    for j in 0..NT {
                        for h in 0..2 {
                            row[j][h] = _mm256_fmadd_ps(w[j][h], xv, row[j][h]);
                        }
                    }
                }
            };
            // SAFETY: (for the callers) offset within the record's codes.
            let load = |j: usize, off: usize| unsafe {
                _mm256_cvtepu8_epi32(_mm_loadl_epi64(rec[j].add(PARAMS + off) as *const __m128i))
            };
            let scale = |v: __m256i, j: usize, h: usize| {
                if late {
                    _mm256_cvtepi32_ps(v)
                } else {
                    _mm256_mul_ps(_mm256_cvtepi32_ps(v), step[j][h])
                }
            };
            if Q4 {
                let mut kk = 0;
                while kk < width {
                    let mut w0 = [[_mm256_setzero_ps(); 2]; NT];
                    let mut w1 = [[_mm256_setzero_ps(); 2]; NT];
                    for j in 0..NT {
                        for h in 0..2 {
                            let v = load(j, kk / 2 * LANES + 8 * h);
                            w0[j][h] = scale(_mm256_and_si256(v, nibble), j, h);
                            w1[j][h] = scale(_mm256_srli_epi32::<4>(v), j, h);
                        }
                    }
                    fma(&w0, lo + kk);
                    if kk + 1 < width {
                        fma(&w1, lo + kk + 1);
                    }
                    kk += 2;
                }
            } else {
                for kk in 0..width {
                    let w: [[__m256; 2]; NT] = std::array::from_fn(|j| {
                        std::array::from_fn(|h| scale(load(j, kk * LANES + 8 * h), j, h))
                    });
                    fma(&w, lo + kk);
                }
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let xs = _mm256_set1_ps(job.xsum[(r0 + i) * kb + b]);
                for j in 0..NT {
                    for h in 0..2 {
                        row[j][h] = if late {
                            _mm256_fmadd_ps(blk[i][j][h], step[j][h], row[j][h])
                        } else {
                            blk[i][j][h]
                        };
                        row[j][h] = _mm256_fmadd_ps(min[j][h], xs, row[j][h]);
                    }
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, halves) in row.iter().enumerate() {
                let c = (t0 + j) * LANES;
                let mut v = [0f32; LANES];
                // SAFETY: v holds 16 f32.
                unsafe {
                    _mm256_storeu_ps(v.as_mut_ptr(), halves[0]);
                    _mm256_storeu_ps(v.as_mut_ptr().add(8), halves[1]);
                }
                for (lane, val) in v.iter().enumerate().take(LANES.min(n - c)) {
                    // SAFETY: row r0 + i < m, column c + lane < n of this call's tiles.
                    unsafe { *job.out.0.add((r0 + i) * n + c + lane) = *val };
                }
            }
        }
    }
}
