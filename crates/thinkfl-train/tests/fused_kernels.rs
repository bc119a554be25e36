//! The training kernels (`thinkfl_candle::kernels`: fused RMSNorm, rotary, causal attention with
//! a recomputing backward, SwiGLU) against candle's differentiable operations (the same model with
//! `set_fused_train(false)`): loss and every LoRA gradient of the checkpointed backward, for SFT
//! and GRPO, on tiny random models of several shapes.
//!
//! Tolerance: losses within 1e-5 relative, each gradient within 2e-4 of its largest entry (the two
//! paths sum in different orders; f32 throughout).

use candle_core::{Device, Tensor};
use thinkfl_candle::{Llama, LlamaConfig};
use thinkfl_train::loss::{
    GrpoConfig, Sequence, checkpointed_backward, grpo_loss, sft_loss, token_logprobs_detached,
};
use thinkfl_train::optim::GradAccum;
use thinkfl_train::{LoraConfig, Policy};

const VOCAB: usize = 50;

/// Hidden size, heads, key/value heads, intermediate size, layers.
fn config(hidden: usize, heads: usize, kv: usize, inter: usize, layers: usize) -> LlamaConfig {
    LlamaConfig {
        hidden_size: hidden,
        intermediate_size: inter,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: Some(kv),
        max_position_embeddings: 512,
        ..LlamaConfig::tiny(VOCAB)
    }
}

/// The shapes: SmolLM2's head layout in small (3 query heads a key/value head), head sizes
/// that are not multiples of the 16 lanes (10, 6, 18), multi-head attention without grouping.
fn shapes() -> Vec<LlamaConfig> {
    vec![
        config(32, 4, 2, 64, 2), // head 8
        config(30, 3, 1, 50, 2), // head 10, one key/value head for three queries
        config(36, 6, 3, 40, 1), // head 6
        config(54, 3, 3, 70, 2), // head 18, no grouping
    ]
}

fn policy(cfg: LlamaConfig, seed: u64, fused: bool) -> Policy {
    let mut model = Llama::random(cfg, seed, &Device::Cpu).unwrap();
    model.set_fused_train(fused);
    let p = Policy::new(
        model,
        LoraConfig {
            rank: 3,
            alpha: 6.0,
            ..LoraConfig::default()
        },
        seed + 1,
    )
    .unwrap();
    // Non-zero B (same values in both policies) so that every A gets a gradient too.
    for (i, (name, v)) in p.params.iter().enumerate() {
        if name.ends_with("lora_B.weight") {
            let n = v.as_tensor().elem_count();
            let vals: Vec<f32> = (0..n)
                .map(|j| (((j * 31 + i * 17) % 23) as f32 - 11.0) * 0.01)
                .collect();
            v.set(&Tensor::from_vec(vals, v.as_tensor().dims(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    p
}

fn seq(n: usize, seed: u32, trained: &[std::ops::Range<usize>]) -> Sequence {
    Sequence {
        ids: (0..n as u32)
            .map(|i| (i * 7 + seed * 13 + 3) % VOCAB as u32)
            .collect(),
        mask: (0..n)
            .map(|i| trained.iter().any(|r| r.contains(&i)))
            .collect(),
    }
}

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

type LossOf<'a> = Box<dyn Fn(&Tensor) -> thinkfl_train::Result<Tensor> + 'a>;

/// Loss and gradients of `loss_of` through the checkpointed backward on both paths must agree.
fn compare(fast: &Policy, slow: &Policy, s: &Sequence, loss_of: &LossOf<'_>, what: &str) {
    let mut ga = GradAccum::new();
    let mut gb = GradAccum::new();
    let la =
        checkpointed_backward(&fast.model, s, &fast.params, &mut ga, |lp| loss_of(lp)).unwrap();
    let lb =
        checkpointed_backward(&slow.model, s, &slow.params, &mut gb, |lp| loss_of(lp)).unwrap();
    assert!(
        (la - lb).abs() <= 1e-5 * lb.abs().max(1e-3),
        "{what}: loss {la} (kernels) vs {lb} (candle)"
    );
    assert_eq!(
        ga.is_empty(),
        gb.is_empty(),
        "{what}: gradients on one path only"
    );
    for (i, (name, _)) in fast.params.iter().enumerate() {
        match (ga.get(i), gb.get(i)) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                let scale = abs_max(b);
                let d = abs_max(&(a - b).unwrap());
                assert!(
                    d <= 2e-4 * scale.max(1e-4),
                    "{what} {name}: max |d| {d} at scale {scale}"
                );
            }
            (a, b) => panic!(
                "{what} {name}: gradient on kernels {} / candle {}",
                a.is_some(),
                b.is_some()
            ),
        }
    }
}

#[test]
fn sft_loss_and_gradients_match_candle_on_every_shape() {
    for (k, cfg) in shapes().into_iter().enumerate() {
        let fast = policy(cfg.clone(), 10 + k as u64, true);
        let slow = policy(cfg, 10 + k as u64, false);
        // Shorter than one attention tile, then several tiles (128 rows each) with a ragged end.
        for (n, trained) in [(17, vec![5..9, 12..17]), (300, vec![40..90, 250..300])] {
            let s = seq(n, k as u32, &trained);
            let norm = s.num_targets() + 3;
            let loss: LossOf<'_> = Box::new(move |lp| sft_loss(lp, norm));
            compare(&fast, &slow, &s, &loss, &format!("shape {k} T={n} sft"));
        }
    }
}

#[test]
fn detached_log_probs_match_candle() {
    let cfg = shapes()[1].clone();
    let fast = policy(cfg.clone(), 3, true);
    let slow = policy(cfg, 3, false);
    let s = seq(150, 1, &[1..75, 75..150]);
    let a = token_logprobs_detached(&fast.model, &s).unwrap();
    let b = token_logprobs_detached(&slow.model, &s).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

/// GRPO with tokens on both sides of the clip, KL on and off, and a row without advantage
/// (whose gradient is the KL term's alone, or nothing).
#[test]
fn grpo_loss_and_gradients_match_candle() {
    let cfg = shapes()[0].clone();
    let fast = policy(cfg.clone(), 21, true);
    let slow = policy(cfg, 21, false);
    let s = seq(160, 4, &[20..60, 100..160]);
    let norm = s.num_targets();
    let cur = token_logprobs_detached(&slow.model, &s).unwrap();
    // Old log-probs off by +-0.4 in turns: ratios of e^-0.4 and e^0.4, outside [0.8, 1.28] both,
    // and every third one equal (ratio 1, inside the clip).
    let old: Vec<f32> = cur
        .iter()
        .enumerate()
        .map(|(i, v)| match i % 3 {
            0 => v + 0.4,
            1 => v - 0.4,
            _ => *v,
        })
        .collect();
    let reference: Vec<f32> = cur.iter().map(|v| v - 0.3).collect();
    for beta in [0.0, 0.04] {
        for adv in [1.3, -0.8, 0.0] {
            let cfg = GrpoConfig {
                beta,
                ..GrpoConfig::default()
            };
            let (old, reference) = (&old, &reference);
            let loss: LossOf<'_> = Box::new(move |lp| {
                let (l, terms) = grpo_loss(lp, old, Some(reference), adv, norm, &cfg)?;
                if adv != 0.0 {
                    assert!(terms.clipped > 0 && terms.clipped < norm, "{terms:?}");
                }
                Ok(l)
            });
            if adv == 0.0 && beta == 0.0 {
                // A constant loss: neither path has a gradient to give.
                let mut ga = GradAccum::new();
                let r =
                    checkpointed_backward(&fast.model, &s, &fast.params, &mut ga, |lp| loss(lp));
                let mut gb = GradAccum::new();
                let q =
                    checkpointed_backward(&slow.model, &s, &slow.params, &mut gb, |lp| loss(lp));
                assert_eq!(r.is_ok(), q.is_ok());
                assert_eq!(ga.is_empty(), gb.is_empty());
                continue;
            }
            compare(
                &fast,
                &slow,
                &s,
                &loss,
                &format!("grpo beta={beta} adv={adv}"),
            );
        }
    }
}

/// A sequence that trains no token is refused on both paths alike.
#[test]
fn a_mask_that_trains_nothing_is_refused_on_both_paths() {
    let cfg = shapes()[2].clone();
    for fused in [true, false] {
        let p = policy(cfg.clone(), 5, fused);
        // Only position 0, which no token predicts.
        let s = seq(40, 2, &[0..1, 0..0]);
        assert_eq!(s.num_targets(), 0);
        let mut acc = GradAccum::new();
        let r = checkpointed_backward(&p.model, &s, &p.params, &mut acc, |lp| sft_loss(lp, 1));
        assert!(r.is_err(), "fused={fused}");
        assert!(acc.is_empty());
    }
}

/// A caller's attention bias (left padding of a batch) is not the causal mask the kernels
/// assume: such forwards stay on candle's operations and give the same hidden states.
#[test]
fn padded_batches_take_the_candle_path() {
    use thinkfl_candle::Mode;
    let cfg = shapes()[0].clone();
    let fast = policy(cfg.clone(), 8, true);
    let slow = policy(cfg, 8, false);
    let t = 6;
    let ids = Tensor::new(&[[0u32, 0, 4, 9, 2, 7], [3, 8, 1, 5, 6, 2]], &Device::Cpu).unwrap();
    let positions =
        Tensor::new(&[[0u32, 0, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5]], &Device::Cpu).unwrap();
    let mut bias = vec![f32::NEG_INFINITY; 2 * t * t];
    for r in 0..2 {
        let pad = if r == 0 { 2 } else { 0 };
        for i in 0..t {
            for j in 0..=i {
                if j >= pad || j == i {
                    bias[(r * t + i) * t + j] = 0.0;
                }
            }
        }
    }
    let bias = Tensor::from_vec(bias, (2, 1, t, t), &Device::Cpu).unwrap();
    let a = fast
        .model
        .forward_hidden(&ids, &positions, Some(&bias), None, Mode::Train)
        .unwrap();
    let b = slow
        .model
        .forward_hidden(&ids, &positions, Some(&bias), None, Mode::Train)
        .unwrap();
    assert_eq!(abs_max(&(a - b).unwrap()), 0.0);
}

/// The trainer keeps a sequence's whole graph when it fits its budget and checkpoints it
/// otherwise: both give the same loss and gradients (SFT, and GRPO with KL), and the candle
/// path (whose attention is quadratic) always checkpoints.
#[test]
fn whole_graph_and_checkpointed_backward_agree() {
    use thinkfl_train::loss::{block_graph_bytes, sequence_backward};
    let cfg = shapes()[1].clone();
    let p = policy(cfg.clone(), 31, true);
    let block = block_graph_bytes(&p.model, 200).unwrap();
    assert!(block > 0);
    assert!(block_graph_bytes(&policy(cfg, 31, false).model, 200).is_none());
    let s = seq(200, 3, &[30..80, 150..200]);
    let norm = s.num_targets();
    let cur = token_logprobs_detached(&p.model, &s).unwrap();
    let old: Vec<f32> = cur
        .iter()
        .enumerate()
        .map(|(i, v)| v + 0.3 * (i % 2) as f32)
        .collect();
    let reference: Vec<f32> = cur.iter().map(|v| v - 0.2).collect();
    let grpo = GrpoConfig {
        beta: 0.05,
        ..GrpoConfig::default()
    };
    let losses: [LossOf<'_>; 2] = [
        Box::new(|lp| sft_loss(lp, norm)),
        Box::new(|lp| Ok(grpo_loss(lp, &old, Some(&reference), -0.9, norm, &grpo)?.0)),
    ];
    for (k, loss_of) in losses.iter().enumerate() {
        let mut ckpt = GradAccum::new();
        let lc =
            checkpointed_backward(&p.model, &s, &p.params, &mut ckpt, |lp| loss_of(lp)).unwrap();
        // Every block checkpointed, the last one kept, all kept.
        for budget in [0, block, usize::MAX] {
            let mut acc = GradAccum::new();
            let l = sequence_backward(&p.model, &s, &p.params, &mut acc, budget, |lp| loss_of(lp))
                .unwrap();
            assert!(
                (l - lc).abs() <= 1e-5 * lc.abs().max(1e-3),
                "loss {k} budget {budget}: {l} vs {lc}"
            );
            for (i, (name, _)) in p.params.iter().enumerate() {
                let (a, b) = (acc.get(i).unwrap(), ckpt.get(i).unwrap());
                let scale = abs_max(b);
                let d = abs_max(&(a - b).unwrap());
                assert!(
                    d <= 2e-4 * scale.max(1e-4),
                    "loss {k} budget {budget} {name}: |d| {d} at {scale}"
                );
            }
        }
    }
}
