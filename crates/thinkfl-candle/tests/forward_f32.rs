//! The project's differentiable f32 forward against candle-transformers' `quantized_llama` with
//! every weight dequantized to f32 (`CANDLE_DEQUANTIZE_ALL=1`): with no activation quantization
//! on either side the two must agree closely at every step of a greedy continuation.

mod common;

use candle_core::{Device, Tensor};
use thinkfl_candle::{KvCache, LoadOptions, Mode, load};

const PROMPT: &str = "<|im_start|>user\nList three causes of high latency in a microservice.<|im_end|>\n<|im_start|>assistant\n";

fn argmax(v: &[f32]) -> u32 {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |a, (i, &x)| if x > a.1 { (i, x) } else { a },
        )
        .0 as u32
}

#[test]
fn f32_forward_matches_dequantized_reference() {
    // Read lazily by candle per thread, before the first QMatMul is built in this thread.
    // SAFETY: this test binary runs this one test, so no other thread reads the environment.
    unsafe { std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1") };
    let path = common::smollm2_path();
    let loaded = load(&path, &LoadOptions::f32_only()).unwrap();
    let model = &loaded.model;
    let ids = loaded.tokenizer.encode(PROMPT).unwrap();
    let mut f = std::fs::File::open(&path).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
    let mut reference = candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
        ct,
        &mut f,
        &Device::Cpu,
    )
    .unwrap();

    let t = ids.len();
    let x = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let pos = Tensor::new((0..t as u32).collect::<Vec<_>>(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mut cache = KvCache::new(model.config.num_hidden_layers);
    let mut ours: Vec<f32> = {
        let h = model
            .forward_hidden(&x, &pos, None, Some(&mut cache), Mode::Train)
            .unwrap();
        model
            .logits(&h.narrow(1, t - 1, 1).unwrap(), Mode::Train)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let mut theirs: Vec<f32> = reference
        .forward(&x, 0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut worst = 0f32;
    for s in 0..16 {
        let d = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        worst = worst.max(d);
        let (a, b) = (argmax(&ours), argmax(&theirs));
        assert_eq!(a, b, "step {s}: argmax differs");
        let next = Tensor::new(&[[a]], &Device::Cpu).unwrap();
        let p = Tensor::new(&[[(t + s) as u32]], &Device::Cpu).unwrap();
        let h = model
            .forward_hidden(&next, &p, None, Some(&mut cache), Mode::Train)
            .unwrap();
        ours = model
            .logits(&h, Mode::Train)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        theirs = reference
            .forward(&next, t + s)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
    }
    eprintln!("max |logit difference| over 16 greedy steps: {worst}");
    // Measured 4.1e-5.
    assert!(worst < 1e-3, "f32 logits differ by {worst}");
}
