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
unsafe fn avx512_narrow<const Q4: bool>(job: &Job, rows: usize, r0: usize, t0: usize, nt: usize) {
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
                    step[j][h] = _mm256_cvtph_ps(_mm_loadu_si128(rec[j].add(16 * h) as *const _));
                    min[j][h] = _mm256_cvtph_ps(_mm_loadu_si128(
                        rec[j].add(2 * LANES + 16 * h) as *const _
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
