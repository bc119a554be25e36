//! Packed int8 matmul against candle's f32 matmul on SmolLM2-135M's projection shapes, for the
//! row counts of decoding. Prints microseconds per product and the weight bytes read per second.
//! `cargo bench -p thinkfl-candle --bench qlinear [-- FILTER]`

use candle_core::{Device, Tensor};
use std::time::Instant;
use thinkfl_candle::qlinear::{Kernel, PackedQ8};

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}
unsafe extern "C" {
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

/// CPU seconds of this thread: on a machine shared with other jobs, the cost of one-thread
/// runs without the time spent waiting for a core.
fn thread_cpu_s() -> f64 {
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: CLOCK_THREAD_CPUTIME_ID (3) on Linux; `t` is a valid timespec.
    unsafe { clock_gettime(3, &mut t) };
    t.sec as f64 + t.nsec as f64 * 1e-9
}

fn time<F: FnMut()>(mut f: F, min_s: f64) -> f64 {
    f();
    let mut n = 0usize;
    let t = Instant::now();
    while n < 3 || t.elapsed().as_secs_f64() < min_s {
        f();
        n += 1;
    }
    t.elapsed().as_secs_f64() / n as f64
}

/// (out, in) of every projection of SmolLM2-135M's 30 layers (q, k, v, o, gate, up, down),
/// then its head.
fn smollm2_shapes() -> Vec<(usize, usize)> {
    let layer = [
        (576, 576),
        (192, 576),
        (192, 576),
        (576, 576),
        (1536, 576),
        (1536, 576),
        (576, 1536),
    ];
    let mut shapes: Vec<(usize, usize)> = (0..30).flat_map(|_| layer).collect();
    shapes.push((49152, 576));
    shapes
}

/// All projections of SmolLM2-135M (30 layers) and its head, one row after another as in
/// decoding: the weights (98 MB packed with 4-bit layers, 152 MB with 8-bit ones) do not stay
/// in cache between uses. `q4_layers`: layer weights on Q4_1 grids, as in the default GGUF.
fn whole_model(kernels: &[Kernel], q4_layers: bool) {
    let shapes = smollm2_shapes();
    let packed: Vec<PackedQ8> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(n, k))| {
            let layer = i + 1 < shapes.len();
            let w: Vec<f32> = (0..n * k)
                .map(|j| {
                    let v = ((i + j) * 7919 % 1000) as f32;
                    if q4_layers && layer {
                        // 16 levels a block: m + d * q with d = 1/1024, m = -1/128.
                        (v % 16.0) / 1024.0 - 1.0 / 128.0
                    } else {
                        (v - 500.0) * 1e-4
                    }
                })
                .collect();
            PackedQ8::pack(&w, n, k).unwrap()
        })
        .collect();
    let bytes: usize = packed.iter().map(|p| p.bytes()).sum();
    for m in [1usize, 2, 4, 8, 16] {
        let mut line = format!("model {:3}MB        m={m:<3}", bytes >> 20);
        for &kern in kernels {
            if kern == Kernel::Scalar {
                continue;
            }
            for threads in [1usize, 2] {
                let mut cpu = (0.0, 0usize);
                let s = time(
                    || {
                        let c0 = thread_cpu_s();
                        for p in &packed {
                            let x = vec![0.5f32; m * p.in_features()];
                            let mut y = vec![0f32; m * p.out_features()];
                            p.matmul_with(kern, threads, &x, m, &mut y).unwrap();
                        }
                        cpu = (cpu.0 + thread_cpu_s() - c0, cpu.1 + 1);
                    },
                    2.0,
                );
                line += &format!(
                    " | {kern:?}/{threads} {:6.2}ms {:5.1}GB/s {:6.0} tok/s",
                    s * 1e3,
                    bytes as f64 / s / 1e9,
                    m as f64 / s
                );
                if threads == 1 {
                    line += &format!(" (cpu {:6.2}ms)", cpu.0 / cpu.1 as f64 * 1e3);
                }
            }
        }
        println!("{line}");
    }
}

/// Prefill-sized products over all of SmolLM2's projections (4-bit layers, 8-bit head): candle's
/// f32 matmul against the packed kernel, both on rayon's pool (set RAYON_NUM_THREADS).
fn prefill() {
    let shapes = smollm2_shapes();
    let weights: Vec<(PackedQ8, Tensor)> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(n, k))| {
            let w: Vec<f32> = (0..n * k)
                .map(|j| (((i + j) * 7919 % 1000) as f32 % 16.0) / 1024.0 - 1.0 / 128.0)
                .collect();
            let p = PackedQ8::pack(&w, n, k).unwrap();
            (p, Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap())
        })
        .collect();
    let threads = rayon::current_num_threads();
    for m in [16usize, 32, 64, 128, 512] {
        // The head sees one row per sequence in prefill; the layers see all m.
        let f32_s = time(
            || {
                for (i, (_, w)) in weights.iter().enumerate() {
                    let rows = if i + 1 == weights.len() { 1 } else { m };
                    let x = Tensor::ones(
                        (rows, w.dim(1).unwrap()),
                        candle_core::DType::F32,
                        &Device::Cpu,
                    )
                    .unwrap();
                    let _ = x.matmul(&w.t().unwrap()).unwrap();
                }
            },
            2.0,
        );
        let packed_s = time(
            || {
                for (i, (p, _)) in weights.iter().enumerate() {
                    let rows = if i + 1 == weights.len() { 1 } else { m };
                    let x = vec![1f32; rows * p.in_features()];
                    let mut y = vec![0f32; rows * p.out_features()];
                    p.matmul_with(Kernel::best(), threads, &x, rows, &mut y)
                        .unwrap();
                }
            },
            2.0,
        );
        println!(
            "prefill m={m:<4} {threads} threads: f32 {:8.1} tok/s | packed {:8.1} tok/s",
            m as f64 / f32_s,
            m as f64 / packed_s
        );
    }
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.as_deref() == Some("prefill") {
        prefill();
        return;
    }
    if filter.as_deref() == Some("whole") {
        let kernels: Vec<Kernel> = [Kernel::Avx512, Kernel::Avx2]
            .into_iter()
            .filter(|k| k.available())
            .collect();
        whole_model(&kernels, true);
        whole_model(&kernels, false);
        return;
    }
    // (name, n, k) of one layer, and the tied head.
    let shapes = [
        ("q/o 576x576", 576, 576),
        ("k/v 192x576", 192, 576),
        ("gate/up 1536x576", 1536, 576),
        ("down 576x1536", 576, 1536),
        ("lm_head 49152x576", 49152, 576),
    ];
    let kernels: Vec<Kernel> = [Kernel::Avx512, Kernel::Avx2, Kernel::Scalar]
        .into_iter()
        .filter(|k| k.available())
        .collect();
    for (name, n, k) in shapes {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-4)
            .collect();
        let p = PackedQ8::pack(&w, n, k).unwrap();
        let wt = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
        for m in [1usize, 2, 4, 8, 16, 64] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) * 0.1).collect();
            let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
            let mut y = vec![0f32; m * n];
            let min_s = 0.3;
            let f32_s = time(
                || {
                    let _ = xt.matmul(&wt.t().unwrap()).unwrap();
                },
                min_s,
            );
            let mut line = format!("{name:18} m={m:<3} f32 {:8.1}us", f32_s * 1e6);
            for &kern in &kernels {
                if kern == Kernel::Scalar && m > 4 {
                    continue;
                }
                for threads in [1usize, 2] {
                    let s = time(
                        || p.matmul_with(kern, threads, &x, m, &mut y).unwrap(),
                        min_s,
                    );
                    line += &format!(
                        " | {kern:?}/{threads} {:8.1}us {:5.1}GB/s",
                        s * 1e6,
                        p.bytes() as f64 / s / 1e9
                    );
                }
            }
            println!("{line}");
        }
    }
}
