//! The project's llama forward against candle-transformers' `quantized_llama` on the SmolLM2
//! GGUF: the same greedy continuation, and last-position logits within a tolerance.

mod common;

use candle_core::{Device, Tensor};
use thinkfl_candle::{KvCache, LoadOptions, Mode, load};

const PROMPT: &str = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
const STEPS: usize = 12;

fn argmax(v: &[f32]) -> u32 {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |a, (i, &x)| if x > a.1 { (i, x) } else { a },
        )
        .0 as u32
}

/// candle-transformers' quantized llama: last-position logits of the prompt and a greedy
/// continuation of STEPS tokens.
fn reference(ids: &[u32]) -> (Vec<f32>, Vec<u32>) {
    let path = common::smollm2_path();
    let mut f = std::fs::File::open(&path).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
    let mut m = candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
        ct,
        &mut f,
        &Device::Cpu,
    )
    .unwrap();
    let x = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let first: Vec<f32> = m
        .forward(&x, 0)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut out = vec![argmax(&first)];
    for s in 0..STEPS - 1 {
        let x = Tensor::new(&[[*out.last().unwrap()]], &Device::Cpu).unwrap();
        let l: Vec<f32> = m
            .forward(&x, ids.len() + s)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        out.push(argmax(&l));
    }
    (first, out)
}

fn ours(model: &thinkfl_candle::Llama, ids: &[u32], mode: Mode) -> (Vec<f32>, Vec<u32>) {
    let t = ids.len();
    let x = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let pos = Tensor::new((0..t as u32).collect::<Vec<_>>(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mut cache = KvCache::new(model.config.num_hidden_layers);
    let h = model
        .forward_hidden(&x, &pos, None, Some(&mut cache), mode)
        .unwrap();
    let first: Vec<f32> = model
        .logits(&h.narrow(1, t - 1, 1).unwrap(), mode)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut out = vec![argmax(&first)];
    for s in 0..STEPS - 1 {
        let x = Tensor::new(&[[*out.last().unwrap()]], &Device::Cpu).unwrap();
        let p = Tensor::new(&[[(t + s) as u32]], &Device::Cpu).unwrap();
        let h = model
            .forward_hidden(&x, &p, None, Some(&mut cache), mode)
            .unwrap();
        let l: Vec<f32> = model
            .logits(&h, mode)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        out.push(argmax(&l));
    }
    (first, out)
}

#[test]
fn forward_agrees_with_quantized_llama() {
    // The GGUF's own quantized matmuls, as the reference runs them (not the packed copies).
    let opts = LoadOptions {
        keep_f32: true,
        keep_quantized: true,
        pack: false,
        ..LoadOptions::f32_only()
    };
    let loaded = load(&common::smollm2_path(), &opts).unwrap();
    let ids = loaded.tokenizer.encode(PROMPT).unwrap();
    let (ref_logits, ref_tokens) = reference(&ids);
    eprintln!(
        "reference continuation: {:?}",
        loaded.tokenizer.decode(&ref_tokens, false).unwrap()
    );
    let mode = Mode::Infer;
    let (logits, tokens) = ours(&loaded.model, &ids, mode);
    let diffs: Vec<f32> = logits
        .iter()
        .zip(&ref_logits)
        .map(|(a, b)| (a - b).abs())
        .collect();
    let max = diffs.iter().copied().fold(0f32, f32::max);
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    eprintln!(
        "{mode:?}: max |diff| {max}, mean |diff| {mean}; continuation {:?}",
        loaded.tokenizer.decode(&tokens, false).unwrap()
    );
    assert_eq!(
        argmax(&logits),
        argmax(&ref_logits),
        "{mode:?}: argmax of the prompt's last position"
    );
    // The reference quantizes activations to 8 bits before every matmul (as does our Infer
    // mode), so tiny differences upstream (rotary tables in f64 here, f32 there) flip some
    // activation roundings: measured max 0.58, mean 0.10 in Infer mode. Our Train mode (f32
    // weights, no activation quantization) differs more from it (max 1.35, mean 0.34, and here
    // a different first token). The exact comparison of
    // the f32 paths is in `forward_f32.rs`.
    let (max_tol, mean_tol) = (1.0, 0.15);
    assert!(
        max < max_tol && mean < mean_tol,
        "{mode:?}: logits differ (max {max}, mean {mean})"
    );
    assert_eq!(tokens, ref_tokens, "greedy continuation");
}
