//! The packed int8 matmul against a naive f64 reference: every kernel this CPU can run, one and
//! two threads, shapes with partial blocks (`k` not a multiple of 32) and partial tiles (odd `n`).

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thinkfl_candle::qlinear::{BLOCK, Kernel, PackedQ8, f16_to_f32, f32_to_f16};

fn kernels() -> Vec<Kernel> {
    let all = [Kernel::Scalar, Kernel::Avx2, Kernel::Avx512];
    let k: Vec<Kernel> = all.into_iter().filter(|k| k.available()).collect();
    eprintln!("kernels on this CPU: {k:?} (best {:?})", Kernel::best());
    k
}

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// Blocks of ggml's Q4_1 (`q * d + m`, `q` in `0..16`, f16 `d` and `m`), each using codes 0
/// and 15 as the quantizer that made it does: packed in 4 bits.
fn q4_1_like(rng: &mut ChaCha8Rng, n: usize, k: usize) -> Vec<f32> {
    let h = |x: f32| f16_to_f32(f32_to_f16(x));
    let mut w = vec![0f32; n * k];
    for row in 0..n {
        for b in 0..k.div_ceil(BLOCK) {
            let d = h(rng.random_range(1e-4f32..0.05));
            let m = h(rng.random_range(-0.5f32..0.0));
            for kk in 0..BLOCK.min(k - b * BLOCK) {
                let q = match kk {
                    0 => 0,
                    1 => 15,
                    _ => rng.random_range(0u32..=15),
                };
                w[row * k + b * BLOCK + kk] = q as f32 * d + m;
            }
        }
    }
    w
}

/// `x W^T` in f64 with `w` as given.
fn reference(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut y = vec![0f64; m * n];
    for r in 0..m {
        for c in 0..n {
            y[r * n + c] = (0..k)
                .map(|i| x[r * k + i] as f64 * w[c * k + i] as f64)
                .sum();
        }
    }
    y
}

/// `sum |x| |w|` per output: the scale of f32 rounding in a dot product.
fn magnitude(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
    let ax: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    let aw: Vec<f32> = w.iter().map(|v| v.abs()).collect();
    reference(&ax, &aw, m, n, k)
}

#[test]
fn kernels_match_the_f64_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let kernels = kernels();
    let shapes: Vec<(usize, usize)> = vec![
        (1, 1),
        (1, 31),
        (3, 32),
        (17, 33),
        (16, 64),
        (15, 95),
        (33, 576),
        (49, 100),
        (129, 1000),
        (577, 576),
        (1001, 333),
    ];
    let mut cases = 0;
    for (&(n, k), bits) in shapes.iter().flat_map(|s| [(s, 8), (s, 4)]) {
        let w = if bits == 8 {
            random(&mut rng, n * k, 0.1)
        } else {
            q4_1_like(&mut rng, n, k)
        };
        let p = PackedQ8::pack(&w, n, k).unwrap();
        // (Random blocks of one or a few values may happen to fit 4 bits.)
        if bits == 4 || k >= BLOCK {
            assert_eq!(p.bits(), bits, "n {n} k {k}");
        }
        let wq = p.dequantize();
        if bits == 4 {
            assert_eq!(wq, w, "4-bit blocks are packed exactly");
        }
        // Decoding row counts, and prefill ones past the kernels' blocks of 64 rows.
        for m in (1..=17).chain([64, 65, 130]) {
            // All row counts on small shapes; a few on the large ones.
            if n * k > 40_000 && ![1, 2, 3, 4, 5, 8, 9, 16, 17, 65].contains(&m) {
                continue;
            }
            let x = random(&mut rng, m * k, 2.0);
            let want = reference(&x, &wq, m, n, k);
            let mag = magnitude(&x, &wq, m, n, k);
            let mut first: Option<Vec<f32>> = None;
            for &kern in &kernels {
                for threads in [1, 2] {
                    let mut y = vec![f32::NAN; m * n];
                    p.matmul_with(kern, threads, &x, m, &mut y).unwrap();
                    for i in 0..m * n {
                        let err = (y[i] as f64 - want[i]).abs();
                        assert!(
                            err <= 1e-5 * mag[i] + 1e-6,
                            "{kern:?}/{threads} {bits}-bit n {n} k {k} m {m} [{}, {}]: {} vs {} (scale {})",
                            i / n,
                            i % n,
                            y[i],
                            want[i],
                            mag[i]
                        );
                    }
                    // The thread count never changes a result: each output is one thread's.
                    match &first {
                        Some(f) if kern == kernels[0] => assert_eq!(&y, f, "threads changed y"),
                        None => first = Some(y),
                        _ => {}
                    }
                    cases += 1;
                }
            }
        }
    }
    eprintln!("{cases} products checked");
}

#[test]
fn quantization_error_is_at_most_half_a_min_max_step() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for &(n, k) in &[(7, 45), (16, 32), (40, 200)] {
        let mut w = random(&mut rng, n * k, 1.0);
        // Blocks of very different magnitudes, one all zero, one tiny (f16 subnormal steps),
        // one all positive.
        for (i, v) in w.iter_mut().enumerate() {
            let block = (i % k) / BLOCK;
            match (i / k + block) % 6 {
                0 => {}
                1 => *v *= 1e-3,
                2 => *v = 0.0,
                3 => *v *= 1e-7,
                4 => *v *= 30.0,
                _ => *v += 2.0,
            }
        }
        let p = PackedQ8::pack(&w, n, k).unwrap();
        let wq = p.dequantize();
        for row in 0..n {
            for b in 0..k.div_ceil(BLOCK) {
                let r = row * k + b * BLOCK..row * k + k.min((b + 1) * BLOCK);
                let lo = w[r.clone()].iter().fold(f32::INFINITY, |a, v| a.min(*v));
                let hi = w[r.clone()]
                    .iter()
                    .fold(f32::NEG_INFINITY, |a, v| a.max(*v));
                // The min-max grid: offset `lo` rounded down to an f16 and step
                // `(hi - offset) / 255` rounded up (by 2^-10 relative or 2^-24 absolute).
                let f16_slack = |x: f32| x.abs() / 1024.0 + 2f32.powi(-24);
                let range = hi - lo + f16_slack(lo);
                let step = range / 255.0 + f16_slack(range / 255.0);
                for i in r {
                    let err = (w[i] - wq[i]).abs();
                    assert!(
                        err <= 0.5 * step * 1.0001 + w[i].abs() * 1e-6,
                        "w[{row}, {}] = {} packed as {} (step {step})",
                        i - row * k,
                        w[i],
                        wq[i]
                    );
                }
            }
        }
    }
}

/// Blocks of ggml's Q8_0 (`d * q`) and Q4_1 (`m + d * q`, 4-bit `q`) with f16 `d` and `m` are
/// on one of the packing grids, so they come back bit for bit.
#[test]
fn q8_0_and_q4_1_blocks_are_packed_exactly() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let h = |x: f32| f16_to_f32(f32_to_f16(x));
    let (n, k) = (37, 160);
    let mut w = vec![0f32; n * k];
    for row in 0..n {
        for b in 0..k / BLOCK {
            let d = h(rng.random_range(1e-4f32..0.05));
            let m = h(rng.random_range(-0.5f32..0.0));
            let q8 = row % 2 == 0;
            for kk in 0..BLOCK {
                // Each block uses its extreme codes, as the quantizers that made it do.
                let v = if q8 {
                    let q = if kk == 0 {
                        127
                    } else {
                        rng.random_range(-127i32..=127)
                    };
                    d * q as f32
                } else {
                    let q = match kk {
                        0 => 0,
                        1 => 15,
                        _ => rng.random_range(0u32..=15),
                    };
                    q as f32 * d + m
                };
                w[row * k + b * BLOCK + kk] = v;
            }
        }
    }
    let p = PackedQ8::pack(&w, n, k).unwrap();
    assert_eq!(p.bits(), 8, "Q8_0 rows need 8 bits");
    let wq = p.dequantize();
    for (i, (a, b)) in w.iter().zip(&wq).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "w[{}, {}]: {a} vs {b}",
            i / k,
            i % k
        );
    }
}

#[test]
fn f16_conversion_matches_candle() {
    let mut vals: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        65504.0,
        65520.0,
        1e6,
        6.1035156e-5,
        6.0e-5,
        5.96e-8,
        2.98e-8,
        2.99e-8,
        1e-9,
        0.1,
        1.0 / 3.0,
    ];
    // Exact ties between two halves, normal and subnormal.
    vals.extend([
        1.0 + 2f32.powi(-11),
        1.0 + 3.0 * 2f32.powi(-11),
        3.0 * 2f32.powi(-25),
    ]);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for e in -30..17 {
        for _ in 0..50 {
            vals.push(rng.random_range(-1.0f32..1.0) * 2f32.powi(e));
        }
    }
    let t = Tensor::new(vals.as_slice(), &Device::Cpu).unwrap();
    let want: Vec<f32> = t
        .to_dtype(DType::F16)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap();
    for (v, w) in vals.iter().zip(&want) {
        let got = f16_to_f32(f32_to_f16(*v));
        assert!(
            got.to_bits() == w.to_bits(),
            "{v:e}: ours {got:e}, candle {w:e}"
        );
    }
    assert!(f16_to_f32(f32_to_f16(f32::INFINITY)).is_infinite());
    assert!(f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
}

#[test]
fn forward_keeps_leading_dims() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (n, k) = (19, 70);
    let w = random(&mut rng, n * k, 0.5);
    let p = PackedQ8::pack(&w, n, k).unwrap();
    let wq = Tensor::from_vec(p.dequantize(), (n, k), &Device::Cpu).unwrap();
    let x = Tensor::from_vec(random(&mut rng, 2 * 3 * k, 1.0), (2, 3, k), &Device::Cpu).unwrap();
    let y = p.forward(&x).unwrap();
    assert_eq!(y.dims(), &[2, 3, n]);
    let want = x.broadcast_matmul(&wq.t().unwrap()).unwrap();
    let d: f32 = (y - want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(d < 1e-4, "max diff {d}");
    // A transposed (non-contiguous) input.
    let xt = Tensor::from_vec(random(&mut rng, k * 4, 1.0), (k, 4), &Device::Cpu)
        .unwrap()
        .t()
        .unwrap();
    let y = p.forward(&xt).unwrap();
    let want = xt.matmul(&wq.t().unwrap()).unwrap();
    let d: f32 = (y - want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(d < 1e-4, "max diff {d}");
    assert!(thinkfl_candle::qlinear::suits(&x));
    assert!(!thinkfl_candle::qlinear::suits(
        &x.to_dtype(DType::F64).unwrap()
    ));
}

#[test]
fn bad_inputs_are_errors() {
    assert!(PackedQ8::pack(&[1.0; 6], 2, 4).is_err());
    assert!(PackedQ8::pack(&[], 0, 4).is_err());
    let e = PackedQ8::pack(&[1.0, f32::NAN, 0.0, 0.0], 2, 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[0, 1]"), "{e}");
    let p = PackedQ8::pack(&[1.0; 8], 2, 4).unwrap();
    let mut y = vec![0.0; 2];
    assert!(p.matmul(&[1.0; 3], 1, &mut y).is_err());
    assert!(p.matmul(&[1.0; 4], 1, &mut y[..1]).is_err());
    let x = Tensor::zeros((1, 5), DType::F32, &Device::Cpu).unwrap();
    assert!(p.forward(&x).is_err());
}

/// Several products over one input in one parallel product give, bit for bit, what each gives
/// alone (the same kernel call per tile), for 4- and 8-bit matrices, partial tiles, one and
/// two threads, and sizes on both sides of the parallel threshold.
#[test]
fn matmul_many_equals_separate_products() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for k in [72usize, 576] {
        let shapes = [(576usize, true), (192, true), (40, false), (1536, false)];
        let packs: Vec<PackedQ8> = shapes
            .iter()
            .map(|&(n, q4)| {
                let w = if q4 {
                    q4_1_like(&mut rng, n, k)
                } else {
                    random(&mut rng, n * k, 0.1)
                };
                PackedQ8::pack(&w, n, k).unwrap()
            })
            .collect();
        assert_eq!(packs[0].bits(), 4);
        assert_eq!(packs[2].bits(), 8);
        for kernel in kernels() {
            for threads in [1usize, 2] {
                for m in [1usize, 3, 8, 17] {
                    let x = random(&mut rng, m * k, 1.0);
                    let alone: Vec<Vec<f32>> = packs
                        .iter()
                        .map(|p| {
                            let mut y = vec![0f32; m * p.out_features()];
                            p.matmul_with(kernel, threads, &x, m, &mut y).unwrap();
                            y
                        })
                        .collect();
                    let mut ys: Vec<Vec<f32>> = packs
                        .iter()
                        .map(|p| vec![f32::NAN; m * p.out_features()])
                        .collect();
                    let mut parts: Vec<(&PackedQ8, &mut [f32])> = packs
                        .iter()
                        .zip(ys.iter_mut())
                        .map(|(p, y)| (p, y.as_mut_slice()))
                        .collect();
                    PackedQ8::matmul_many_with(kernel, threads, &mut parts, &x, m).unwrap();
                    for (i, (a, b)) in alone.iter().zip(&ys).enumerate() {
                        let same = a.iter().zip(b).all(|(u, v)| u.to_bits() == v.to_bits());
                        assert!(
                            same,
                            "{kernel:?}/{threads} k {k} m {m}: product {i} differs"
                        );
                    }
                }
            }
        }
        // Matrices of another width cannot share the input.
        let other = PackedQ8::pack(&random(&mut rng, 16 * (k + 32), 0.1), 16, k + 32).unwrap();
        let x = random(&mut rng, k, 1.0);
        let (mut y0, mut y1) = (vec![0f32; 576], vec![0f32; 16]);
        let mut parts: Vec<(&PackedQ8, &mut [f32])> =
            vec![(&packs[0], y0.as_mut_slice()), (&other, y1.as_mut_slice())];
        assert!(PackedQ8::matmul_many(&mut parts, &x, 1).is_err());
    }
}
