//! LoRA identity at init, masking, gradients reaching every adapter, and the GRPO loss against
//! hand-computed values, on a tiny random model.

use candle_core::{D, Device, Tensor, Var};
use thinkfl_candle::{Llama, LlamaConfig};
use thinkfl_train::loss::{
    GrpoConfig, Sequence, checkpointed_backward, group_advantages, grpo_loss, sft_loss,
    token_logprobs, token_logprobs_detached,
};
use thinkfl_train::optim::{AdamW, GradAccum, OptimConfig};
use thinkfl_train::{LoraConfig, Policy};

const VOCAB: usize = 40;

fn tiny_policy(seed: u64) -> Policy {
    let model = Llama::random(LlamaConfig::tiny(VOCAB), seed, &Device::Cpu).unwrap();
    Policy::new(
        model,
        LoraConfig {
            rank: 4,
            alpha: 8.0,
            ..LoraConfig::default()
        },
        seed + 100,
    )
    .unwrap()
}

fn seq(n: usize, seed: u32, masked: &[std::ops::Range<usize>]) -> Sequence {
    let ids = (0..n as u32)
        .map(|i| (i * 7 + seed * 13 + 3) % VOCAB as u32)
        .collect();
    let mask = (0..n)
        .map(|i| masked.iter().any(|r| r.contains(&i)))
        .collect();
    Sequence { ids, mask }
}

/// Give every `B` random values so that every `A` gets a gradient too.
fn randomize_b(p: &Policy) {
    for (i, (name, v)) in p.params.iter().enumerate() {
        if name.ends_with("lora_B.weight") {
            let t = Tensor::randn(0f32, 0.05, v.as_tensor().dims(), &Device::Cpu).unwrap();
            let _ = i;
            v.set(&t).unwrap();
        }
    }
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

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    abs_max(&(a - b).unwrap())
}

#[test]
fn lora_starts_as_identity_and_reference_is_adapters_off() {
    let base = Llama::random(LlamaConfig::tiny(VOCAB), 1, &Device::Cpu).unwrap();
    let ids = Tensor::new(&[[1u32, 5, 9, 2, 33, 7]], &Device::Cpu).unwrap();
    let before = base.forward_logits(&ids).unwrap();
    let mut p = Policy::new(base, LoraConfig::default(), 2).unwrap();
    // 2 layers x 7 projections x (A, B).
    assert_eq!(p.params.len(), 28);
    assert!(
        p.params[0]
            .0
            .starts_with("base_model.model.model.layers.0.self_attn.q_proj.lora_A")
    );
    let on = p.model.forward_logits(&ids).unwrap();
    assert_eq!(
        max_abs_diff(&before, &on),
        0.0,
        "a fresh adapter changes nothing"
    );
    // After a change of B, adapters on differ from the base and off equals it.
    randomize_b(&p);
    let on = p.model.forward_logits(&ids).unwrap();
    assert!(max_abs_diff(&before, &on) > 1e-4);
    let off = p.with_reference(|m| Ok(m.forward_logits(&ids)?)).unwrap();
    assert_eq!(max_abs_diff(&before, &off), 0.0);
    // Adapters are back on afterwards.
    assert_eq!(
        max_abs_diff(&on, &p.model.forward_logits(&ids).unwrap()),
        0.0
    );
}

#[test]
fn targets_are_configurable() {
    let model = Llama::random(LlamaConfig::tiny(VOCAB), 1, &Device::Cpu).unwrap();
    let p = Policy::new(
        model,
        LoraConfig {
            targets: vec!["q_proj".into(), "v_proj".into()],
            ..LoraConfig::default()
        },
        2,
    )
    .unwrap();
    assert_eq!(p.params.len(), 2 * 2 * 2);
    assert!(
        p.params
            .iter()
            .all(|(n, _)| n.contains("q_proj") || n.contains("v_proj"))
    );
    let bad = LoraConfig {
        targets: vec!["qproj".into()],
        ..LoraConfig::default()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("qproj"));
}

/// Naive reference: full logits, log-softmax at every position, weighted by the mask.
fn naive_sft(model: &Llama, s: &Sequence, norm: usize) -> Tensor {
    let ids = Tensor::new(s.ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logp = candle_nn::ops::log_softmax(
        &model.forward_logits(&ids).unwrap().squeeze(0).unwrap(),
        D::Minus1,
    )
    .unwrap();
    let n = s.ids.len();
    let next = Tensor::from_vec(s.ids[1..].to_vec(), (n - 1, 1), &Device::Cpu).unwrap();
    let picked = logp
        .narrow(0, 0, n - 1)
        .unwrap()
        .gather(&next, 1)
        .unwrap()
        .squeeze(1)
        .unwrap();
    let w: Vec<f32> = s.mask[1..]
        .iter()
        .map(|&m| if m { 1.0 } else { 0.0 })
        .collect();
    let w = Tensor::new(w, &Device::Cpu).unwrap();
    ((picked * w).unwrap().sum_all().unwrap().neg().unwrap() / norm as f64).unwrap()
}

fn grads(p: &Policy, loss: &Tensor) -> Vec<Option<Tensor>> {
    let store = loss.backward().unwrap();
    p.params
        .iter()
        .map(|(_, v)| store.get(v.as_tensor()).cloned())
        .collect()
}

#[test]
fn masked_tokens_get_no_gradient() {
    let p = tiny_policy(3);
    randomize_b(&p);
    let s = seq(24, 1, &[5..9, 14..18]);
    let norm = s.num_targets();
    let ours = sft_loss(&token_logprobs(&p.model, &s).unwrap(), norm).unwrap();
    let naive = naive_sft(&p.model, &s, norm);
    let (a, b) = (
        ours.to_scalar::<f32>().unwrap(),
        naive.to_scalar::<f32>().unwrap(),
    );
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    for (g1, g2) in grads(&p, &ours).iter().zip(grads(&p, &naive)) {
        assert!(max_abs_diff(g1.as_ref().unwrap(), g2.as_ref().unwrap()) < 1e-5);
    }
    // Masked tokens after the last trained one (a tool output) change nothing at all.
    let mut longer = s.clone();
    longer.ids.extend([3, 17, 29, 4, 11]);
    longer.mask.extend([false; 5]);
    let l2 = sft_loss(&token_logprobs(&p.model, &longer).unwrap(), norm).unwrap();
    assert_eq!(l2.to_scalar::<f32>().unwrap(), a);
    // A masked target in the middle: changing which token the model "should" predict there
    // (a token it never predicts: only the logit weight of that position would change) leaves the
    // loss unchanged as long as it stays masked, but not once it is trained.
    let with_weight = |m: bool| {
        let mut s2 = s.clone();
        s2.mask[10] = m;
        let n2 = s2.num_targets();
        naive_sft(&p.model, &s2, n2).to_scalar::<f32>().unwrap() * n2 as f32
    };
    assert!((with_weight(false) - a * norm as f32).abs() < 1e-4);
    assert!((with_weight(true) - a * norm as f32).abs() > 1e-4);
}

#[test]
fn every_lora_parameter_gets_a_gradient() {
    let mut p = tiny_policy(4);
    let trained = 3..20;
    let s = seq(20, 2, std::slice::from_ref(&trained));
    let norm = s.num_targets();
    // At init B = 0: every B gets a gradient, every A exactly none (the update is B A x).
    let mut acc = GradAccum::new();
    acc.backward(
        &sft_loss(&token_logprobs(&p.model, &s).unwrap(), norm).unwrap(),
        &p.params,
    )
    .unwrap();
    for (i, (name, _)) in p.params.iter().enumerate() {
        let g = acc.get(i).expect("a gradient for every adapter");
        let mag = g
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        if name.ends_with("lora_B.weight") {
            assert!(mag > 0.0, "{name}");
        } else {
            assert_eq!(mag, 0.0, "{name}");
        }
    }
    let mut opt = AdamW::new(OptimConfig::default(), &p.params).unwrap();
    opt.step(&p.params, &acc, 1e-2).unwrap();
    let mut acc = GradAccum::new();
    acc.backward(
        &sft_loss(&token_logprobs(&p.model, &s).unwrap(), norm).unwrap(),
        &p.params,
    )
    .unwrap();
    for (i, (name, _)) in p.params.iter().enumerate() {
        let mag = acc
            .get(i)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(mag > 0.0, "{name} after one step");
    }
    // And the base is frozen: the model's weights are not Vars of the backward.
    let _ = &mut p;
}

#[test]
fn group_advantages_normalize_and_skip_equal_groups() {
    let a = group_advantages(&[1.0, 0.0, 0.0, 1.0], 1e-6).unwrap();
    for (x, e) in a.iter().zip([1.0, -1.0, -1.0, 1.0]) {
        assert!((x - e / (1.0 + 2e-6)).abs() < 1e-6, "{x}");
    }
    assert!(group_advantages(&[0.5, 0.5, 0.5], 1e-6).is_none());
    assert!(group_advantages(&[2.0], 1e-6).is_none());
    // rewards 0, 1, 2: mean 1, population std sqrt(2/3).
    let a = group_advantages(&[0.0, 1.0, 2.0], 1e-6).unwrap();
    let s = (2.0f64 / 3.0).sqrt() + 1e-6;
    assert!((a[0] + 1.0 / s).abs() < 1e-9 && a[1].abs() < 1e-12 && (a[2] - 1.0 / s).abs() < 1e-9);
}

#[test]
fn grpo_loss_and_gradient_match_hand_computed_values() {
    // Two sequences of 3 trained tokens; advantages +1.5 and -0.5; batch norm 6 tokens.
    let cfg = GrpoConfig {
        beta: 0.1,
        ..GrpoConfig::default()
    };
    let cur = [[-1.0f32, -2.0, -0.5], [-0.3, -1.2, -2.5]];
    let old = [[-1.0f32, -2.5, -0.2], [-0.3, -1.6, -2.0]];
    let refp = [[-1.2f32, -2.0, -0.4], [-0.5, -1.0, -2.5]];
    let adv = [1.5f64, -0.5];
    let norm = 6usize;
    let mut total = 0.0f64;
    for s in 0..2 {
        let v = Var::new(&cur[s], &Device::Cpu).unwrap();
        let (loss, terms) =
            grpo_loss(v.as_tensor(), &old[s], Some(&refp[s]), adv[s], norm, &cfg).unwrap();
        let grad: Vec<f32> = loss
            .backward()
            .unwrap()
            .get(v.as_tensor())
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut want_loss = 0.0;
        let mut clipped = 0;
        for t in 0..3 {
            let (c, o, r) = (cur[s][t] as f64, old[s][t] as f64, refp[s][t] as f64);
            let rho = (c - o).exp();
            let unclipped = rho * adv[s];
            let clip = rho.clamp(0.8, 1.28) * adv[s];
            let obj = unclipped.min(clip);
            let k3 = (r - c).exp() - (r - c) - 1.0;
            want_loss += (-obj + 0.1 * k3) / norm as f64;
            // d/dc: the surrogate contributes -A rho unless the clipped branch is taken.
            let d_obj = if clip < unclipped { 0.0 } else { adv[s] * rho };
            if clip < unclipped {
                clipped += 1;
            }
            let d_k3 = 1.0 - (r - c).exp();
            let want_g = (-d_obj + 0.1 * d_k3) / norm as f64;
            assert!(
                (grad[t] as f64 - want_g).abs() < 1e-6,
                "seq {s} tok {t}: {} vs {want_g}",
                grad[t]
            );
        }
        let got = loss.to_scalar::<f32>().unwrap() as f64;
        assert!(
            (got - want_loss).abs() < 1e-6,
            "seq {s}: {got} vs {want_loss}"
        );
        assert_eq!(terms.clipped, clipped);
        total += got;
    }
    // Worked by hand: seq 0: rho = (1, e^0.5, e^-0.3); A=1.5: tokens 0 and 2 unclipped,
    // token 1 clipped at 1.28. Seq 1: rho = (1, e^0.4, e^-0.5); A=-0.5: token 1 unclipped
    // (rho*A is smaller), token 2 clipped at 0.8.
    let s0 = -(1.5 + 1.28 * 1.5 + (-0.3f64).exp() * 1.5);
    let s1 = -(-0.5 + 0.4f64.exp() * -0.5 + 0.8 * -0.5);
    let k3 = |r: f64, c: f64| (r - c).exp() - (r - c) - 1.0;
    let kl = k3(-1.2, -1.0)
        + k3(-2.0, -2.0)
        + k3(-0.4, -0.5)
        + k3(-0.5, -0.3)
        + k3(-1.0, -1.2)
        + k3(-2.5, -2.5);
    let want = (s0 + s1 + 0.1 * kl) / 6.0;
    assert!((total - want).abs() < 1e-6, "{total} vs {want}");
}

/// Training recomputes blocks instead of keeping the whole graph: its loss and gradients (SFT
/// and GRPO) and its detached log-probabilities must equal the plain full-graph backward's
/// (the naive reference above) on the same sequence.
#[test]
fn checkpointed_backward_matches_the_full_graph() {
    let p = tiny_policy(6);
    randomize_b(&p);
    let s = seq(30, 2, &[6..11, 19..27]);
    let norm = s.num_targets() + 5;
    let full = token_logprobs(&p.model, &s).unwrap();
    let detached = token_logprobs_detached(&p.model, &s).unwrap();
    let full_v: Vec<f32> = full.to_vec1().unwrap();
    assert_eq!(full_v.len(), detached.len());
    for (a, b) in full_v.iter().zip(&detached) {
        assert!((a - b).abs() < 1e-5, "log-prob {a} vs {b}");
    }
    let old: Vec<f32> = full_v.iter().map(|v| v + 0.1).collect();
    let reference: Vec<f32> = full_v.iter().map(|v| v - 0.05).collect();
    let cfg = GrpoConfig::default();
    type LossOf<'a> = Box<dyn Fn(&Tensor) -> Tensor + 'a>;
    let losses: [LossOf; 2] = [
        Box::new(|lp: &Tensor| sft_loss(lp, norm).unwrap()),
        Box::new(|lp: &Tensor| {
            grpo_loss(lp, &old, Some(&reference), 0.7, norm, &cfg)
                .unwrap()
                .0
        }),
    ];
    for (k, loss_of) in losses.iter().enumerate() {
        let plain = loss_of(&token_logprobs(&p.model, &s).unwrap());
        let want = grads(&p, &plain);
        let mut acc = GradAccum::new();
        let got =
            checkpointed_backward(&p.model, &s, &p.params, &mut acc, |lp| Ok(loss_of(lp))).unwrap();
        let plain_v = plain.to_scalar::<f32>().unwrap() as f64;
        assert!((got - plain_v).abs() < 1e-5, "loss {k}: {got} vs {plain_v}");
        let mut compared = 0;
        for (i, (name, _)) in p.params.iter().enumerate() {
            let w = want[i]
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: no plain gradient"));
            let g = acc
                .get(i)
                .unwrap_or_else(|| panic!("{name}: no checkpointed gradient"));
            let scale = abs_max(w);
            let d = max_abs_diff(g, w);
            assert!(
                d <= 1e-4 * scale.max(1e-3),
                "loss {k} {name}: |d| {d} at scale {scale}"
            );
            compared += 1;
        }
        assert_eq!(compared, p.params.len());
    }
}
