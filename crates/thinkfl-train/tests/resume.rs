//! Resume: a run interrupted after a checkpoint and continued gives the same adapters and
//! optimizer trajectory as an uninterrupted one; the stages file parses and rejects bad input.

use candle_core::Device;
use std::path::Path;
use thinkfl_candle::{Llama, LlamaConfig};
use thinkfl_train::config::{TrainConfig, split_cases};
use thinkfl_train::loss::Sequence;
use thinkfl_train::trainer::{Rollout, Trainer};

const VOCAB: usize = 40;

const CONFIG: &str = r#"
seed = 11
checkpoint_every = 2
[lora]
rank = 2
alpha = 4.0
[[stage]]
name = "sft"
kind = "sft"
steps = 6
batch = 2
lr = 0.01
"#;

fn examples() -> Vec<Sequence> {
    (0..5u32)
        .map(|k| {
            let ids: Vec<u32> = (0..16u32)
                .map(|i| (i * (k + 3) + 1) % VOCAB as u32)
                .collect();
            let mask = (0..16).map(|i| i >= 6 + k as usize).collect();
            Sequence { ids, mask }
        })
        .collect()
}

fn trainer(dir: &Path) -> Trainer {
    let cfg = TrainConfig::from_toml(CONFIG, Path::new("test.toml")).unwrap();
    let model = Llama::random(LlamaConfig::tiny(VOCAB), 5, &Device::Cpu).unwrap();
    Trainer::new(cfg, CONFIG.into(), model, dir).unwrap()
}

fn params(t: &Trainer) -> Vec<Vec<f32>> {
    t.policy
        .params
        .iter()
        .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect()
}

#[test]
fn resume_equals_uninterrupted_run() {
    let ex = examples();
    let a = tempfile::tempdir().unwrap();
    let mut full = trainer(a.path());
    let mut losses_full = Vec::new();
    full.run_sft_stage(0, &ex, |_, s| {
        losses_full.push(s.loss);
        Ok(())
    })
    .unwrap();
    assert_eq!(full.state.global_step, 6);
    assert!(
        losses_full.last().unwrap() < losses_full.first().unwrap(),
        "training lowers the loss: {losses_full:?}"
    );

    // Interrupted after step 4 (a checkpoint step): the closure fails, as a crash would.
    let b = tempfile::tempdir().unwrap();
    let mut first = trainer(b.path());
    let mut losses = Vec::new();
    let r = first.run_sft_stage(0, &ex, |t, s| {
        losses.push(s.loss);
        if t.state.global_step == 4 {
            Err(thinkfl_train::Error::hook("killed"))
        } else {
            Ok(())
        }
    });
    assert!(r.is_err());
    drop(first);
    let mut second = trainer(b.path());
    assert!(second.resume().unwrap());
    assert_eq!(second.state.global_step, 4);
    second
        .run_sft_stage(0, &ex, |_, s| {
            losses.push(s.loss);
            Ok(())
        })
        .unwrap();
    assert_eq!(losses, losses_full, "same batches, same losses");
    assert_eq!(params(&second), params(&full), "same adapters");
    assert_eq!(second.opt.t, full.opt.t);
    // A fresh trainer that does not resume differs from the resumed one.
    let fresh = trainer(tempfile::tempdir().unwrap().path());
    assert_ne!(params(&fresh), params(&second));
}

#[test]
fn grpo_update_moves_probability_toward_positive_advantages() {
    // Without the KL term (beta 0, as configs/stages.toml runs), as the zero-advantage case
    // below needs.
    let text = CONFIG
        .replace("kind = \"sft\"", "kind = \"grpo\"\nreward = 1\ngroup = 2")
        .replace("[lora]", "[grpo]\nbeta = 0.0\n[lora]");
    let cfg = TrainConfig::from_toml(&text, Path::new("t.toml")).unwrap();
    assert_eq!(cfg.grpo.beta, 0.0);
    let model = Llama::random(LlamaConfig::tiny(VOCAB), 5, &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(cfg, text, model, dir.path()).unwrap();
    let ex = examples();
    let good = Rollout {
        seq: ex[0].clone(),
        advantage: 1.0,
    };
    let bad = Rollout {
        seq: ex[1].clone(),
        advantage: -1.0,
    };
    let lp = |t: &Trainer, s: &Sequence| -> f32 {
        thinkfl_train::loss::token_logprobs(&t.policy.model, s)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    let (g0, b0) = (lp(&t, &good.seq), lp(&t, &bad.seq));
    // A rollout at its group's mean (advantage 0) is no error, and does not move.
    let mean = Rollout {
        seq: ex[2].clone(),
        advantage: 0.0,
    };
    for _ in 0..5 {
        let s = t
            .grpo_update(&[good.clone(), mean.clone(), bad.clone()], 0.01)
            .unwrap();
        assert!(s.kl >= 0.0 && (0.0..=1.0).contains(&s.clip_fraction));
    }
    assert!(
        lp(&t, &good.seq) > g0,
        "the rewarded sequence becomes likelier"
    );
    assert!(
        lp(&t, &bad.seq) < b0,
        "the penalized sequence becomes less likely"
    );
}

#[test]
fn config_errors_name_the_file_and_field() {
    let bad = CONFIG.replace("lr = 0.01", "lr = 0.01\nlearning_rate = 3");
    let e = TrainConfig::from_toml(&bad, Path::new("stages.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("stages.toml") && e.contains("learning_rate"),
        "{e}"
    );
    let bad = CONFIG.replace("kind = \"sft\"", "kind = \"grpo\"");
    let e = TrainConfig::from_toml(&bad, Path::new("stages.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("reward"), "{e}");
    for (reward, ok) in [
        ("1", true),
        ("3", true),
        ("\"mrr\"", true),
        ("4", false),
        ("\"mr\"", false),
    ] {
        let text = CONFIG.replace(
            "kind = \"sft\"",
            &format!("kind = \"grpo\"\nreward = {reward}\ngroup = 2"),
        );
        let r = TrainConfig::from_toml(&text, Path::new("stages.toml"));
        assert_eq!(r.is_ok(), ok, "reward = {reward}: {r:?}");
    }
    let hindsight = CONFIG.replace("kind = \"sft\"", "kind = \"sft\"\nhindsight = true");
    let cfg = TrainConfig::from_toml(&hindsight, Path::new("stages.toml")).unwrap();
    assert!(cfg.stages[0].hindsight);
    let bad = CONFIG.replace(
        "kind = \"sft\"",
        "kind = \"grpo\"\nreward = 1\ngroup = 2\nhindsight = true",
    );
    let e = TrainConfig::from_toml(&bad, Path::new("stages.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("hindsight"), "{e}");
    let bad = CONFIG.replace("[lora]", "[grpo]\nmax_draws = 0\n[lora]");
    let e = TrainConfig::from_toml(&bad, Path::new("stages.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_draws"), "{e}");
    let bad = CONFIG.replace("[lora]", "[episode]\nconstrain = \"sometimes\"\n[lora]");
    let e = TrainConfig::from_toml(&bad, Path::new("stages.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("constrain") && e.contains("sometimes"), "{e}");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/stages.toml"
    ))
    .unwrap();
    let cfg = TrainConfig::from_toml(&shipped, Path::new("configs/stages.toml")).unwrap();
    assert_eq!(cfg.stages.len(), 4);
    assert_eq!(cfg.episode.constrain, "calls");
}

#[test]
fn split_is_seeded_disjoint_and_complete() {
    let (tr, ho) = split_cases(40, 0.3, 7);
    assert_eq!(ho.len(), 12);
    assert_eq!(tr.len(), 28);
    let mut all: Vec<usize> = tr.iter().chain(&ho).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..40).collect::<Vec<_>>());
    assert_eq!(split_cases(40, 0.3, 7), (tr.clone(), ho.clone()));
    assert_ne!(split_cases(40, 0.3, 8).1, ho);
    assert_eq!(split_cases(3, 0.1, 1).1.len(), 1);
}
