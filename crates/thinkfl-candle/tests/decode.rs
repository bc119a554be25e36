//! The fused inference path (`decode.rs`) against the block-by-block candle forward it replaces
//! for `Mode::Infer` forwards over a KV cache, and against the full (cache-free) forward: logits
//! of prefills and of steps at batch 1 and at batch 8 with ragged, right-aligned caches under the
//! attention bias, one and several new tokens per row, with and without q/k/v biases, packed or
//! f32 weights and a LoRA adapter; and greedy generations of the engine, on a tiny random model
//! and on SmolLM2.

mod common;

use candle_core::{Device, Tensor};
use thinkfl_candle::{Engine, EngineConfig, KvCache, Llama, LoadOptions, Mode, load};
use thinkfl_llm::SamplingParams;

/// Logits of the last new token of each row after each fed chunk: `[chunk][row][vocab]`, and
/// the rows' whole token sequences.
type Run = (Vec<Vec<Vec<f32>>>, Vec<Vec<u32>>);

/// What `Engine::generate` does with a batch: each row's prompt prefilled alone, the caches
/// stacked right-aligned, then `feeds` chunks (each `t` tokens per row) under the attention
/// bias, rotary positions counting real tokens only.
fn ragged_run(model: &Llama, prompts: &[Vec<u32>], feeds: &[Vec<Vec<u32>>]) -> Run {
    let dev = Device::Cpu;
    let layers = model.config.num_hidden_layers;
    let mut parts = Vec::new();
    let mut first = Vec::new();
    for p in prompts {
        let mut c = KvCache::new(layers);
        let n = p.len();
        let ids = Tensor::from_vec(p.clone(), (1, n), &dev).unwrap();
        let pos = Tensor::from_vec((0..n as u32).collect(), (1, n), &dev).unwrap();
        let h = model
            .forward_hidden(&ids, &pos, None, Some(&mut c), Mode::Infer)
            .unwrap();
        let l = model
            .logits(
                &h.narrow(1, n - 1, 1).unwrap().squeeze(1).unwrap(),
                Mode::Infer,
            )
            .unwrap();
        first.push(l.squeeze(0).unwrap().to_vec1::<f32>().unwrap());
        parts.push(c);
    }
    let width = prompts.iter().map(|p| p.len()).max().unwrap();
    let refs: Vec<&KvCache> = parts.iter().collect();
    let mut cache = if prompts.len() == 1 {
        parts.pop().unwrap()
    } else {
        KvCache::stack_right_aligned(&refs, width, &model.config, &dev).unwrap()
    };
    let mut valid: Vec<Vec<bool>> = prompts
        .iter()
        .map(|p| (0..width).map(|s| s >= width - p.len()).collect())
        .collect();
    let mut seqs: Vec<Vec<u32>> = prompts.to_vec();
    let mut out = vec![first];
    let b = prompts.len();
    for chunk in feeds {
        let t = chunk[0].len();
        let mut pos = Vec::new();
        for (r, toks) in chunk.iter().enumerate() {
            pos.extend((0..t).map(|j| (seqs[r].len() + j) as u32));
            seqs[r].extend(toks);
            valid[r].extend(std::iter::repeat_n(true, t));
        }
        let s = valid[0].len();
        let bias: Vec<f32> = valid
            .iter()
            .flat_map(|v| {
                (0..t).flat_map(move |j| {
                    let q = s - t + j;
                    (0..s).map(move |k| {
                        if k <= q && v[k] {
                            0.0
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                })
            })
            .collect();
        let bias = Tensor::from_vec(bias, (b, 1, t, s), &dev).unwrap();
        let ids = Tensor::from_vec(chunk.concat(), (b, t), &dev).unwrap();
        let pos = Tensor::from_vec(pos, (b, t), &dev).unwrap();
        let h = model
            .forward_hidden(&ids, &pos, Some(&bias), Some(&mut cache), Mode::Infer)
            .unwrap();
        let l = model
            .logits(
                &h.narrow(1, t - 1, 1).unwrap().squeeze(1).unwrap(),
                Mode::Infer,
            )
            .unwrap();
        out.push(l.to_vec2().unwrap());
    }
    assert_eq!(cache.len(), valid[0].len());
    (out, seqs)
}

/// Chunks of `ts[i]` tokens per row of `b` rows, from a fixed pattern below `vocab`.
fn feeds(b: usize, ts: &[usize], vocab: usize) -> Vec<Vec<Vec<u32>>> {
    let mut k = 0u64;
    ts.iter()
        .map(|&t| {
            (0..b)
                .map(|_| {
                    (0..t)
                        .map(|_| {
                            k += 1;
                            ((k * 7919 + 13) % vocab as u64) as u32
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

fn max_diff(a: &[Vec<Vec<f32>>], b: &[Vec<Vec<f32>>]) -> f32 {
    assert_eq!(a.len(), b.len());
    let mut m = 0f32;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len());
        for (u, v) in x.iter().zip(y) {
            assert_eq!(u.len(), v.len());
            for (p, q) in u.iter().zip(v) {
                assert!(p.is_finite() && q.is_finite());
                m = m.max((p - q).abs());
            }
        }
    }
    m
}

fn abs_max(a: &[Vec<Vec<f32>>]) -> f32 {
    a.iter()
        .flatten()
        .flatten()
        .fold(0f32, |m, v| m.max(v.abs()))
}

/// The same model with the fused path off: the reference.
fn unfused(model: &Llama) -> Llama {
    let mut m = model.clone();
    m.set_fused_infer(false);
    m
}

// Longer than the attention kernel's blocks of 64 slots in the first and last rows.
const RAGGED: [usize; 8] = [67, 1, 9, 3, 12, 7, 2, 130];

#[test]
fn tiny_fused_logits_equal_the_block_forward_and_the_full_forward() {
    let vocab = 97;
    // Head sizes 8 and 64 (the kernel's narrow and wide paths) take the AVX2 attention kernel
    // where the CPU has it, 6 the portable loops.
    for (head_dim, attention_bias) in [(8, false), (8, true), (64, false), (6, true)] {
        for lora in [false, true] {
            for packed in [false, true] {
                let mut model = common::tiny_model(vocab, 11, attention_bias, head_dim);
                if lora {
                    common::add_active_lora(&mut model, 5);
                }
                if packed {
                    model.pack_for_inference().unwrap();
                }
                assert!(model.fused_infer());
                let reference = unfused(&model);
                let what =
                    format!("head {head_dim}, bias {attention_bias}, lora {lora}, packed {packed}");
                for b in [1usize, 8] {
                    let prompts: Vec<Vec<u32>> = (0..b)
                        .map(|r| {
                            (0..RAGGED[r])
                                .map(|i| ((r * 31 + i * 17 + 3) % vocab) as u32)
                                .collect()
                        })
                        .collect();
                    // Single tokens (decoding), chunks of 3 and 20 per row (a prefill's tail
                    // after a cached prefix, under padding), single tokens again.
                    let chunks = feeds(b, &[1, 1, 3, 1, 20, 1, 1], vocab);
                    let (fused, seqs) = ragged_run(&model, &prompts, &chunks);
                    let (plain, _) = ragged_run(&reference, &prompts, &chunks);
                    let d = max_diff(&fused, &plain);
                    assert!(
                        d <= 1e-5 * abs_max(&plain).max(1.0),
                        "{what}, batch {b}: fused vs block forward differ by {d}"
                    );
                    if packed {
                        continue;
                    }
                    // The cache-free forward of each row's own sequence (f32 weights: the same
                    // values), at the positions the runs returned.
                    let mut full = vec![vec![Vec::new(); b]; chunks.len() + 1];
                    for (r, seq) in seqs.iter().enumerate() {
                        let x = Tensor::new(seq.as_slice(), &Device::Cpu)
                            .unwrap()
                            .unsqueeze(0)
                            .unwrap();
                        let l: Vec<Vec<f32>> = model
                            .forward_logits(&x)
                            .unwrap()
                            .squeeze(0)
                            .unwrap()
                            .to_vec2()
                            .unwrap();
                        let mut at = prompts[r].len();
                        full[0][r] = l[at - 1].clone();
                        for (c, chunk) in chunks.iter().enumerate() {
                            at += chunk[r].len();
                            full[c + 1][r] = l[at - 1].clone();
                        }
                    }
                    let d = max_diff(&fused, &full);
                    assert!(
                        d <= 1e-5 * abs_max(&full).max(1.0),
                        "{what}, batch {b}: fused vs full forward differ by {d}"
                    );
                }
            }
        }
    }
}

#[test]
fn tiny_fused_path_applies_the_lora_delta_and_its_switch() {
    let mut model = common::tiny_model(97, 3, false, 8);
    model.pack_for_inference().unwrap();
    let base = model.clone();
    common::add_active_lora(&mut model, 9);
    let prompts = vec![vec![1u32, 2, 3, 4, 5, 6], vec![7u32, 8]];
    let chunks = feeds(2, &[1, 1, 1], 97);
    let (with, _) = ragged_run(&model, &prompts, &chunks);
    let (without, _) = ragged_run(&base, &prompts, &chunks);
    assert!(
        max_diff(&with, &without) > 1e-3,
        "the adapter changes nothing"
    );
    model.set_lora_enabled(false);
    let (off, _) = ragged_run(&model, &prompts, &chunks);
    assert!(max_diff(&off, &without) <= 1e-6);
}

/// Greedy generations of `model` and of its unfused twin, ragged batch of 8 and batch 1.
fn assert_same_greedy(model: Llama, tok: &thinkfl_candle::Tok, prompts: &[Vec<u32>], n: usize) {
    let reference = unfused(&model);
    let params = vec![SamplingParams::greedy(n); prompts.len()];
    let fused = Engine::new(model, tok.clone(), EngineConfig::default()).unwrap();
    let plain = Engine::new(reference, tok.clone(), EngineConfig::default()).unwrap();
    for batch in [prompts.to_vec(), prompts[..1].to_vec()] {
        let a = fused.generate(&batch, &params[..batch.len()]).unwrap();
        let b = plain.generate(&batch, &params[..batch.len()]).unwrap();
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(
                (&x.ids, &x.stop),
                (&y.ids, &y.stop),
                "row {i} of {}",
                batch.len()
            );
            for (p, q) in x.logprobs.iter().zip(&y.logprobs) {
                assert!((p - q).abs() < 1e-3, "row {i}: logprob {p} vs {q}");
            }
        }
        assert!(a.iter().any(|g| !g.ids.is_empty()));
    }
}

#[test]
fn tiny_greedy_generation_is_unchanged() {
    let ct = thinkfl_candle::load::read_gguf_content(&common::smollm2_path()).unwrap();
    let tok = thinkfl_candle::Tok::from_gguf(&ct).unwrap();
    let v = tok.vocab_size();
    let prompts: Vec<Vec<u32>> = RAGGED
        .iter()
        .enumerate()
        .map(|(r, &n)| {
            (0..n)
                .map(|i| ((r * 977 + i * 131 + 50) % v) as u32)
                .collect()
        })
        .collect();
    for lora in [false, true] {
        let mut model = common::tiny_model(v, 21, true, 8);
        model.pack_for_inference().unwrap();
        if lora {
            common::add_active_lora(&mut model, 2);
        }
        assert_same_greedy(model, &tok, &prompts, 24);
    }
}

#[test]
fn smollm2_fused_logits_and_greedy_generation_equal_the_block_forward() {
    let loaded = load(&common::smollm2_path(), &LoadOptions::packed()).unwrap();
    let tok = loaded.tokenizer.clone();
    let prompts: Vec<Vec<u32>> = [70usize, 5, 41, 2, 150, 30, 9, 12]
        .iter()
        .enumerate()
        .map(|(r, &n)| tok.filler_ids(n, r).unwrap())
        .collect();
    for lora in [false, true] {
        let mut model = loaded.model.clone();
        if lora {
            common::add_active_lora(&mut model, 4);
        }
        let reference = unfused(&model);
        for b in [1usize, 8] {
            let chunks = feeds(b, &[1, 1, 1, 24, 1, 1], 49_152);
            let (fused, _) = ragged_run(&model, &prompts[..b], &chunks);
            let (plain, _) = ragged_run(&reference, &prompts[..b], &chunks);
            let d = max_diff(&fused, &plain);
            // f32 rounding through 30 blocks (other summation orders, the polynomial
            // exponential) on logits of magnitude ~20.
            assert!(
                d <= 1e-4 * abs_max(&plain),
                "lora {lora}, batch {b}: logits differ by {d} (largest {})",
                abs_max(&plain)
            );
            eprintln!(
                "lora {lora}, batch {b}: max |dlogit| {d:.2e}, largest |logit| {:.1}",
                abs_max(&plain)
            );
        }
        assert_same_greedy(model, &tok, &prompts, 32);
    }
}

#[test]
fn models_on_candle_quantized_matmuls_keep_the_block_forward() {
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    let mut model = common::tiny_model(97, 4, false, 8);
    assert!(thinkfl_candle::decode::suits(&model, 1));
    for blk in &mut model.layers {
        for (_, lin) in blk.projections_mut() {
            let w = lin.weight.as_ref().unwrap();
            let q = QTensor::quantize(w, GgmlDType::Q8_0).unwrap();
            lin.quantized = Some(QMatMul::from_qtensor(q).unwrap());
        }
    }
    // Their 8-bit activation rounding is the block forward's (see `decode::suits`).
    assert!(!thinkfl_candle::decode::suits(&model, 1));
    // Packed copies take precedence over the quantized matmuls, and the fused path with them.
    model.pack_for_inference().unwrap();
    assert!(thinkfl_candle::decode::suits(&model, 1));
    assert!(!thinkfl_candle::decode::suits(&model, 0));
}
