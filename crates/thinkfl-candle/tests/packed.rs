//! SmolLM2 with packed 8-bit weights (the decoding path) against the same model on its f32
//! weights, over a prompt fed in chunks of 1 to 16 rows (the kernels' row tilings) and a greedy
//! continuation.
//!
//! The GGUF's weights are Q4_1 and Q8_0 blocks, which the packing reproduces exactly, so there
//! the two agree to f32 rounding. Weights off those grids (as from bf16 safetensors) lose up to
//! half a step of an 8-bit min-max grid; the second test measures what that does to the logits.

mod common;

use candle_core::{Device, Tensor};
use thinkfl_candle::{KvCache, Linear, Llama, LoadOptions, Mode, load};

const PROMPT: &str = "<|im_start|>system\nYou are a site reliability engineer.<|im_end|>\n<|im_start|>user\nThe checkout service is slow and the payment pod restarts. Which service is the root cause?<|im_end|>\n<|im_start|>assistant\n";
const STEPS: usize = 24;

fn argmax(v: &[f32]) -> u32 {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |a, (i, &x)| if x > a.1 { (i, x) } else { a },
        )
        .0 as u32
}

/// Logits of every position of `ids` after `start` cached tokens.
fn chunk_logits(model: &Llama, ids: &[u32], start: usize, cache: &mut KvCache) -> Vec<Vec<f32>> {
    let t = ids.len();
    let s = start + t;
    let bias: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..s).map(move |j| {
                if j <= start + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    let bias = Tensor::from_vec(bias, (1, 1, t, s), &Device::Cpu).unwrap();
    let x = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let pos = Tensor::new((start as u32..s as u32).collect::<Vec<_>>(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let h = model
        .forward_hidden(&x, &pos, Some(&bias), Some(cache), Mode::Infer)
        .unwrap();
    model
        .logits(&h.squeeze(0).unwrap(), Mode::Infer)
        .unwrap()
        .to_vec2()
        .unwrap()
}

#[derive(Debug, Default)]
struct Agreement {
    positions: usize,
    max_dlogit: f32,
    mean_dlogit: f64,
    /// Positions whose argmax differs, with the f32 model's gap between its top two logits.
    flips: Vec<(usize, f32)>,
}

/// Feed the prompt in chunks of 1 to 16 rows (every row tiling of the kernels), then STEPS greedy
/// tokens of the f32 model one row at a time, to both models.
fn agreement(packed: &Llama, plain: &Llama, prompt: &[u32]) -> Agreement {
    let layers = packed.config.num_hidden_layers;
    let (mut cp, mut cf) = (KvCache::new(layers), KvCache::new(layers));
    let mut ids = prompt.to_vec();
    let mut a = Agreement::default();
    let mut sum = 0f64;
    let mut last = Vec::new();
    let mut feed = |ids: &[u32], start: usize, a: &mut Agreement, last: &mut Vec<f32>| {
        let lp = chunk_logits(packed, ids, start, &mut cp);
        let lf = chunk_logits(plain, ids, start, &mut cf);
        for (i, (p, f)) in lp.iter().zip(&lf).enumerate() {
            for (x, y) in p.iter().zip(f) {
                let d = (x - y).abs();
                a.max_dlogit = a.max_dlogit.max(d);
                sum += d as f64;
            }
            if argmax(p) != argmax(f) {
                let mut s = f.clone();
                s.sort_by(|x, y| y.total_cmp(x));
                a.flips.push((start + i, s[0] - s[1]));
            }
            a.positions += 1;
        }
        *last = lf.last().cloned().unwrap_or_default();
    };
    let mut start = 0;
    for n in [16, 9, 16, 1, 5].into_iter().chain(std::iter::repeat(16)) {
        if start >= ids.len() {
            break;
        }
        let end = ids.len().min(start + n);
        feed(&ids[start..end], start, &mut a, &mut last);
        start = end;
    }
    for _ in 0..STEPS {
        ids.push(argmax(&last));
        let at = ids.len() - 1;
        feed(&ids[at..], at, &mut a, &mut last);
    }
    a.mean_dlogit = sum / (a.positions * packed.config.vocab_size) as f64;
    a
}

/// The model without its packed copies.
fn unpacked(model: &Llama) -> Llama {
    let mut plain = model.clone();
    for blk in &mut plain.layers {
        for (_, lin) in blk.projections_mut() {
            lin.packed = None;
        }
    }
    plain.lm_head.packed = None;
    plain
}

fn all_linears(model: &mut Llama) -> Vec<&mut Linear> {
    let mut v: Vec<&mut Linear> = Vec::new();
    for blk in &mut model.layers {
        for (_, lin) in blk.projections_mut() {
            v.push(lin);
        }
    }
    v.push(&mut model.lm_head);
    v
}

#[test]
fn packed_gguf_weights_reproduce_the_f32_logits() {
    let mut loaded = load(&common::smollm2_path(), &LoadOptions::packed()).unwrap();
    assert!(
        all_linears(&mut loaded.model)
            .iter()
            .all(|l| l.packed.is_some()),
        "every projection and the head are packed"
    );
    // The Q4_1 layers fit 4-bit codes; the Q8_0 head needs 8.
    let bits: Vec<u32> = all_linears(&mut loaded.model)
        .iter()
        .map(|l| l.packed.as_ref().unwrap().bits())
        .collect();
    assert!(bits[..bits.len() - 1].iter().all(|&b| b == 4), "{bits:?}");
    assert_eq!(bits.last(), Some(&8));
    let plain = unpacked(&loaded.model);
    let ids = loaded.tokenizer.encode(PROMPT).unwrap();
    let a = agreement(&loaded.model, &plain, &ids);
    eprintln!("GGUF weights: {a:?}");
    // Measured max 1.7e-4 (summation order only); logits span about 30.
    assert!(a.flips.is_empty(), "argmax differs: {:?}", a.flips);
    assert!(a.max_dlogit < 2e-3, "{a:?}");
}

#[test]
fn packed_off_grid_weights_stay_close() {
    let mut loaded = load(&common::smollm2_path(), &LoadOptions::f32_only()).unwrap();
    // Move every weight off the GGUF's grids by up to 1% (deterministically), then pack.
    for (i, lin) in all_linears(&mut loaded.model).into_iter().enumerate() {
        let w = lin.weight.as_ref().unwrap();
        let n = w.elem_count();
        let jitter: Vec<f32> = (0..n)
            .map(|j| 1.0 + 0.01 * (((j * 7919 + i * 104_729) % 2001) as f32 / 1000.0 - 1.0))
            .collect();
        let jitter = Tensor::from_vec(jitter, w.shape(), &Device::Cpu).unwrap();
        lin.weight = Some((w * jitter).unwrap());
        assert!(lin.pack().unwrap());
    }
    let plain = unpacked(&loaded.model);
    let ids = loaded.tokenizer.encode(PROMPT).unwrap();
    let a = agreement(&loaded.model, &plain, &ids);
    eprintln!("off-grid weights: {a:?}");
    // Measured max 0.75, mean 0.12 over 64 positions, no argmax flips (logits span about 30).
    assert!(a.max_dlogit < 1.5 && a.mean_dlogit < 0.2, "{a:?}");
    // A flip needs two logits to move apart by more than their gap.
    for &(at, gap) in &a.flips {
        assert!(
            gap < 2.0 * a.max_dlogit,
            "position {at} flipped at gap {gap}"
        );
    }
}

/// An inference-only load holds the packed copies without the f32 projections and head, gives
/// the same logits as the packed load that keeps them (the forward reads only the packed
/// copies), and refuses a training forward with a clear error.
#[test]
fn inference_load_drops_the_f32_copies_and_keeps_the_logits() {
    let full = load(&common::smollm2_path(), &LoadOptions::packed()).unwrap();
    let mut lean = load(&common::smollm2_path(), &LoadOptions::inference()).unwrap();
    assert!(
        all_linears(&mut lean.model)
            .iter()
            .all(|l| l.weight.is_none() && l.packed.is_some())
    );
    // The tied head of the full load shares the embedding's storage instead of a second copy.
    let head = full.model.lm_head.weight.as_ref().unwrap();
    assert_eq!(head.id(), full.model.embed_tokens.id());
    let ids = full.tokenizer.encode(PROMPT).unwrap();
    let layers = full.model.config.num_hidden_layers;
    let (mut ca, mut cb) = (KvCache::new(layers), KvCache::new(layers));
    let a = chunk_logits(&full.model, &ids, 0, &mut ca);
    let b = chunk_logits(&lean.model, &ids, 0, &mut cb);
    assert_eq!(
        a, b,
        "same packed weights, same forward: bit-identical logits"
    );
    let x = Tensor::new(&ids[..4], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let err = lean.model.forward_logits(&x).unwrap_err().to_string();
    assert!(err.contains("inference"), "{err}");
}
