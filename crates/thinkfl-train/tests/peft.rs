//! PEFT export and import: an adapter written and applied to a fresh copy of the base gives the
//! same logits; merged weights without adapters give them too; bad adapters are clear errors.

use candle_core::{Device, Tensor};
use thinkfl_candle::{Llama, LlamaConfig};
use thinkfl_train::peft::{apply_adapter, save_adapter, save_merged};
use thinkfl_train::{LoraConfig, Policy};

const VOCAB: usize = 40;

fn trained_policy() -> Policy {
    let model = Llama::random(LlamaConfig::tiny(VOCAB), 9, &Device::Cpu).unwrap();
    let p = Policy::new(
        model,
        LoraConfig {
            rank: 4,
            alpha: 8.0,
            ..LoraConfig::default()
        },
        1,
    )
    .unwrap();
    for (name, v) in &p.params {
        if name.ends_with("lora_B.weight") {
            v.set(&Tensor::randn(0f32, 0.05, v.as_tensor().dims(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    p
}

fn logits(m: &Llama) -> Vec<f32> {
    let ids = Tensor::new(&[[3u32, 1, 4, 1, 5, 9, 2, 6]], &Device::Cpu).unwrap();
    m.forward_logits(&ids)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn adapter_round_trips_through_the_peft_layout() {
    let p = trained_policy();
    let dir = tempfile::tempdir().unwrap();
    save_adapter(
        &p,
        dir.path(),
        Some("HuggingFaceTB/SmolLM2-135M-Instruct".into()),
    )
    .unwrap();
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["r"], 4);
    assert_eq!(cfg["target_modules"].as_array().unwrap().len(), 7);
    let tensors =
        candle_core::safetensors::load(dir.path().join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
    assert!(tensors.contains_key("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
    assert_eq!(tensors.len(), 28);

    let mut fresh = Llama::random(LlamaConfig::tiny(VOCAB), 9, &Device::Cpu).unwrap();
    let base = logits(&fresh);
    apply_adapter(&mut fresh, dir.path()).unwrap();
    let want = logits(&p.model);
    assert!(max_diff(&base, &want) > 1e-4, "the adapter matters");
    assert_eq!(max_diff(&logits(&fresh), &want), 0.0);

    // Merged weights, loaded into a fresh base without adapters.
    let mdir = tempfile::tempdir().unwrap();
    save_merged(&p.model, mdir.path()).unwrap();
    let merged =
        candle_core::safetensors::load(mdir.path().join("model.safetensors"), &Device::Cpu)
            .unwrap();
    let mut plain = Llama::random(LlamaConfig::tiny(VOCAB), 9, &Device::Cpu).unwrap();
    for (i, blk) in plain.layers.iter_mut().enumerate() {
        for (name, lin) in blk.projections_mut() {
            lin.weight = Some(merged[&format!("model.layers.{i}.{name}.weight")].clone());
        }
    }
    assert!(max_diff(&logits(&plain), &want) < 1e-4);
    assert!(mdir.path().join("config.json").exists());
}

#[test]
fn bad_adapters_are_clear_errors() {
    let p = trained_policy();
    let dir = tempfile::tempdir().unwrap();
    save_adapter(&p, dir.path(), None).unwrap();
    // A model of another width.
    let mut cfg = LlamaConfig::tiny(VOCAB);
    cfg.hidden_size = 48;
    cfg.num_attention_heads = 4;
    let mut other = Llama::random(cfg, 1, &Device::Cpu).unwrap();
    let e = apply_adapter(&mut other, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("adapter_model.safetensors") && e.contains("do not fit"),
        "{e}"
    );
    // A broken config.
    std::fs::write(
        dir.path().join("adapter_config.json"),
        "{\"peft_type\": \"LORA\", \"r\": }",
    )
    .unwrap();
    let mut m = Llama::random(LlamaConfig::tiny(VOCAB), 9, &Device::Cpu).unwrap();
    let e = apply_adapter(&mut m, dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("adapter_config.json") && e.contains("line 1"),
        "{e}"
    );
}
