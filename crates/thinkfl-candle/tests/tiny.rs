//! A tiny random llama: the differentiable forward, gradients, LoRA, and the KV-cache paths
//! against the plain full-sequence forward.

use candle_core::{DType, Device, Tensor};
use thinkfl_candle::{KvCache, Llama, LlamaConfig, Mode};

fn model() -> Llama {
    Llama::random(LlamaConfig::tiny(97), 7, &Device::Cpu).unwrap()
}

fn ids(b: usize, t: usize, seed: u32) -> Tensor {
    let v: Vec<u32> = (0..b * t)
        .map(|i| (i as u32 * 31 + seed * 17) % 97)
        .collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu).unwrap()
}

fn loss(m: &Llama, x: &Tensor) -> Tensor {
    let (b, t) = x.dims2().unwrap();
    let logits = m.forward_logits(&x.narrow(1, 0, t - 1).unwrap()).unwrap();
    let targets = x.narrow(1, 1, t - 1).unwrap().flatten_all().unwrap();
    candle_nn::loss::cross_entropy(&logits.reshape((b * (t - 1), 97)).unwrap(), &targets).unwrap()
}

/// Largest absolute entry.
fn abs_max(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    abs_max(&(a - b).unwrap())
}

#[test]
fn every_parameter_gets_a_gradient() {
    let mut m = model();
    let vars = m.make_trainable().unwrap();
    // embed, norm, lm_head + per layer 2 norms and 7 projections.
    assert_eq!(vars.len(), 3 + 2 * 9);
    let grads = loss(&m, &ids(2, 9, 1)).backward().unwrap();
    for (name, v) in &vars {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{name} has no gradient"));
        let n = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(n > 0.0 && n.is_finite(), "{name}: gradient norm {n}");
    }
}

#[test]
fn lora_starts_as_identity_and_trains() {
    let mut m = model();
    let x = ids(2, 8, 3);
    let before = m.forward_logits(&x).unwrap();
    let vars = m
        .add_lora(4, 8.0, &thinkfl_candle::Llama::PROJECTIONS, 11)
        .unwrap();
    assert_eq!(vars.len(), 2 * 7 * 2);
    assert!(
        vars[0]
            .0
            .starts_with("base_model.model.model.layers.0.self_attn.q_proj.lora_A")
    );
    let after = m.forward_logits(&x).unwrap();
    assert_eq!(
        max_abs(&before, &after),
        0.0,
        "a new adapter (B = 0) changes nothing"
    );
    // Every B gets a gradient; A's gradient is zero while B is zero, so give B a value first.
    let grads = loss(&m, &x).backward().unwrap();
    for (name, v) in vars.iter().filter(|(n, _)| n.contains("lora_B")) {
        let n = grads
            .get(v.as_tensor())
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(n > 0.0, "{name}");
    }
    for (_, v) in vars.iter().filter(|(n, _)| n.contains("lora_B")) {
        v.set(
            &Tensor::ones(v.shape(), DType::F32, &Device::Cpu)
                .unwrap()
                .affine(0.01, 0.0)
                .unwrap(),
        )
        .unwrap();
    }
    let grads = loss(&m, &x).backward().unwrap();
    for (name, v) in &vars {
        let n = grads
            .get(v.as_tensor())
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(n > 0.0, "{name}");
    }
    let with = m.forward_logits(&x).unwrap();
    assert!(max_abs(&with, &before) > 0.0);
    m.set_lora_enabled(false);
    assert_eq!(
        max_abs(&m.forward_logits(&x).unwrap(), &before),
        0.0,
        "adapters off = the base model"
    );
}

#[test]
fn cached_decoding_matches_full_forward() {
    let m = model();
    let x = ids(2, 12, 5);
    let full = m.forward_logits(&x).unwrap();
    for mode in [Mode::Train, Mode::Infer] {
        let mut cache = KvCache::new(2);
        // Prefill 7 tokens, then one at a time.
        let pos: Vec<u32> = (0..2).flat_map(|_| 0..7u32).collect();
        let h = m
            .forward_hidden(
                &x.narrow(1, 0, 7).unwrap(),
                &Tensor::from_vec(pos, (2, 7), &Device::Cpu).unwrap(),
                None,
                Some(&mut cache),
                mode,
            )
            .unwrap();
        let first = m.logits(&h, mode).unwrap();
        assert!(max_abs(&first, &full.narrow(1, 0, 7).unwrap()) < 1e-5);
        for s in 7..12 {
            let p = Tensor::from_vec(vec![s as u32; 2], (2, 1), &Device::Cpu).unwrap();
            let h = m
                .forward_hidden(
                    &x.narrow(1, s, 1).unwrap(),
                    &p,
                    None,
                    Some(&mut cache),
                    mode,
                )
                .unwrap();
            let l = m.logits(&h, mode).unwrap();
            assert!(
                max_abs(&l, &full.narrow(1, s, 1).unwrap()) < 1e-5,
                "{mode:?} step {s}"
            );
        }
        assert_eq!(cache.len(), 12);
    }
}

#[test]
fn hugging_face_directory_round_trip() {
    // A tiny random model with SmolLM2's tokenizer, written as config.json + model.safetensors +
    // tokenizer.json and loaded back through the Hugging Face loader.
    let ct = thinkfl_candle::load::read_gguf_content(
        &thinkfl_candle::fetch::resolve_model("default", true).unwrap(),
    )
    .unwrap();
    let tok = thinkfl_candle::Tok::from_gguf(&ct).unwrap();
    let mut cfg = LlamaConfig::tiny(tok.vocab_size());
    cfg.tie_word_embeddings = false;
    let m = Llama::random(cfg, 3, &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    m.save_hf(dir.path(), "llama").unwrap();
    tok.inner
        .save(dir.path().join("tokenizer.json"), false)
        .unwrap();
    let loaded =
        thinkfl_candle::load(dir.path(), &thinkfl_candle::LoadOptions::f32_only()).unwrap();
    assert_eq!(loaded.model.config, m.config);
    let text = "<|im_start|>user\nhello 123<|im_end|>";
    assert_eq!(
        loaded.tokenizer.encode(text).unwrap(),
        tok.encode(text).unwrap()
    );
    let x = Tensor::new(&[[1u32, 4093, 198, 19556, 33, 34, 35, 2]], &Device::Cpu).unwrap();
    assert_eq!(
        max_abs(
            &loaded.model.forward_logits(&x).unwrap(),
            &m.forward_logits(&x).unwrap()
        ),
        0.0
    );
    // Merged LoRA weights equal the adapter's forward.
    let mut with = m.clone();
    let vars = with.add_lora(2, 4.0, &["q_proj", "down_proj"], 5).unwrap();
    for (_, v) in vars.iter().filter(|(n, _)| n.contains("lora_B")) {
        v.set(
            &Tensor::ones(v.shape(), DType::F32, &Device::Cpu)
                .unwrap()
                .affine(0.05, 0.0)
                .unwrap(),
        )
        .unwrap();
    }
    let dir2 = tempfile::tempdir().unwrap();
    with.save_hf(dir2.path(), "llama").unwrap();
    tok.inner
        .save(dir2.path().join("tokenizer.json"), false)
        .unwrap();
    let merged =
        thinkfl_candle::load(dir2.path(), &thinkfl_candle::LoadOptions::f32_only()).unwrap();
    assert!(
        max_abs(
            &merged.model.forward_logits(&x).unwrap(),
            &with.forward_logits(&x).unwrap()
        ) < 1e-4
    );
}

/// LoRA training runs its frozen projections through `FrozenMatmul` (no weight gradient). The
/// same model with trainable base weights takes candle's plain `matmul`: the loss and the
/// adapters' gradients must agree.
#[test]
fn frozen_matmul_gives_the_plain_matmuls_loss_and_lora_gradients() {
    let targets = ["q_proj", "v_proj", "up_proj", "down_proj"];
    let mut frozen = model();
    let lora_f = frozen.add_lora(4, 8.0, &targets, 3).unwrap();
    let mut plain = model();
    plain.make_trainable().unwrap();
    let lora_p = plain.add_lora(4, 8.0, &targets, 3).unwrap();
    // B starts at zero; give it values so the adapters' path is exercised in both directions.
    for ((_, vf), (_, vp)) in lora_f.iter().zip(&lora_p) {
        let shape = vf.as_tensor().shape().clone();
        let r = Tensor::randn(0f32, 0.05, shape, &Device::Cpu).unwrap();
        vf.set(&r).unwrap();
        vp.set(&r).unwrap();
    }
    let x = ids(2, 11, 4);
    let (lf, lp) = (loss(&frozen, &x), loss(&plain, &x));
    let (a, b) = (
        lf.to_scalar::<f32>().unwrap(),
        lp.to_scalar::<f32>().unwrap(),
    );
    assert!((a - b).abs() < 1e-5, "loss {a} vs {b}");
    let (gf, gp) = (lf.backward().unwrap(), lp.backward().unwrap());
    for ((name, vf), (_, vp)) in lora_f.iter().zip(&lora_p) {
        let (df, dp) = (
            gf.get(vf.as_tensor()).unwrap(),
            gp.get(vp.as_tensor()).unwrap(),
        );
        let scale = abs_max(dp);
        let d = max_abs(df, dp);
        assert!(scale > 0.0, "{name}: zero gradient");
        assert!(
            d <= 1e-4 * scale.max(1.0),
            "{name}: |dgrad| {d} (scale {scale})"
        );
    }
    // The frozen weights themselves collect no gradient.
    let w = frozen.layers[0].q_proj.weight.as_ref().unwrap();
    assert!(gf.get(w).is_none(), "a frozen weight got a gradient");
}
