//! Packed weights for inference: `y[m, n] = x[m, k] · W[n, k]^T` with f32 activations and
//! weights stored as 8-bit codes in blocks of [`BLOCK`] along `k`, each block with an f16 step
//! and an f16 offset: `w = min + step * q`, `q` in `0..=255`.
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

mod quantize;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use quantize::{f16_to_f32, f32_to_f16};

use super::Error;
use quantize::{F16_MAX, quantize_block};
use std::sync::OnceLock;

type Result<T> = std::result::Result<T, Error>;

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
        // One product is a product among others: the same checks, sums and chunks.
        Self::matmul_many_with(kernel, threads, &mut [(self, y)], x, m)
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
        // Block sums of x, for the offsets.
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
                // SAFETY: all tiles of each product, each into its own `y`, which holds
                // `m * n` values (checked above).
                unsafe { job.tiles(kernel, 0..job.p.n_tiles) };
            }
            return Ok(());
        }
        // Each product in chunks of its own, the same alone as among others (one for a
        // product below the threshold, which then runs beside the others instead of alone):
        // the kernels group the tiles of a chunk, and a chunk's last tiles may go one row at a
        // time, which rounds otherwise; the same chunks keep the outputs bit-identical to
        // separate products. Several chunks per thread so that a thread slowed by another
        // process on the shared cores is helped by the others; whole groups of 8 tiles keep
        // the kernels' widest tile groups intact.
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
