//! Shared by the integration tests: the SmolLM2 GGUF from the model cache (fetched when
//! missing; CI runs `thinkfl model fetch smollm2-135m` first).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

pub fn smollm2_path() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        thinkfl_candle::fetch::resolve_model("default", true)
            .expect("the default model is available")
    })
    .clone()
}

/// A tiny random llama (2 layers, 4 query heads of `head_dim`, 2 key/value heads) over `vocab`
/// ids; `attention_bias` adds biases to the q/k/v projections (Qwen2's layout).
pub fn tiny_model(
    vocab: usize,
    seed: u64,
    attention_bias: bool,
    head_dim: usize,
) -> thinkfl_candle::Llama {
    let mut cfg = thinkfl_candle::LlamaConfig::tiny(vocab);
    cfg.attention_bias = attention_bias;
    cfg.hidden_size = 4 * head_dim;
    thinkfl_candle::Llama::random(cfg, seed, &candle_core::Device::Cpu).unwrap()
}

/// LoRA adapters of rank 4 on every projection of `model`, with non-zero `B` (a fresh adapter
/// is the identity, which would hide a missing delta).
pub fn add_active_lora(model: &mut thinkfl_candle::Llama, seed: u64) {
    use rand::{Rng, SeedableRng};
    let vars = model
        .add_lora(4, 8.0, &thinkfl_candle::Llama::PROJECTIONS, seed)
        .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed + 1);
    for (_, v) in vars.iter().filter(|(n, _)| n.contains("lora_B")) {
        let vals: Vec<f32> = (0..v.elem_count())
            .map(|_| rng.random_range(-0.05f32..0.05))
            .collect();
        v.set(&candle_core::Tensor::from_vec(vals, v.shape(), &candle_core::Device::Cpu).unwrap())
            .unwrap();
    }
}
