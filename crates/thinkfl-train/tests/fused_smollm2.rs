//! The fused training path (`thinkfl_candle::kernels` with the recomputing attention backward)
//! against candle's differentiable operations (`set_fused_train(false)`) on the real SmolLM2-135M
//! weights: loss and every LoRA gradient, for SFT and GRPO (with KL), through the checkpointed
//! backward and the whole-graph backward the trainer takes when a sequence fits its budget.
//! `fused_kernels.rs` checks the same on tiny random models of several shapes; here the
//! activations, norms and attention patterns are a trained model's.
//!
//! Tolerance: losses within 1e-5 relative, each gradient within 2e-4 of its largest entry
//! (f32 throughout; the two paths sum in different orders over 30 layers of a model whose
//! activations reach the hundreds; measured 2.2e-5 for SFT and 2.6e-5 for GRPO).

use candle_core::{Device, Tensor};
use std::sync::OnceLock;
use thinkfl_candle::{Llama, LoadOptions, Tok, load};
use thinkfl_train::loss::{
    GrpoConfig, Sequence, checkpointed_backward, grpo_loss, sequence_backward, sft_loss,
    token_logprobs_detached,
};
use thinkfl_train::optim::GradAccum;
use thinkfl_train::{LoraConfig, Policy};

const LOSS_RTOL: f64 = 1e-5;
const GRAD_RTOL: f32 = 2e-4;

fn loaded() -> &'static (Llama, Tok) {
    static M: OnceLock<(Llama, Tok)> = OnceLock::new();
    M.get_or_init(|| {
        let path =
            thinkfl_candle::fetch::resolve_model("default", true).expect("the default model");
        let m = load(&path, &LoadOptions::training()).unwrap();
        (m.model, m.tokenizer)
    })
}

/// SmolLM2 with LoRA (rank 8 on every projection) on the fused or the candle path. B is set
/// to the same non-zero values on both, so that every A has a gradient and the adapters move
/// the activations.
fn policy(fused: bool) -> Policy {
    let mut model = loaded().0.clone();
    model.set_fused_train(fused);
    let p = Policy::new(model, LoraConfig::default(), 7).unwrap();
    for (i, (name, v)) in p.params.iter().enumerate() {
        if name.ends_with("lora_B.weight") {
            let n = v.as_tensor().elem_count();
            let vals: Vec<f32> = (0..n)
                .map(|j| (((j * 31 + i * 17) % 23) as f32 - 11.0) * 2e-3)
                .collect();
            v.set(&Tensor::from_vec(vals, v.as_tensor().dims(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    p
}

/// A short chat turn: the prompt's tokens untrained, the reply's trained.
fn sequence() -> Sequence {
    let tok = &loaded().1;
    let prompt = "<|im_start|>user\nThe checkout service is slow and the payment pod restarts. Which pod is the root cause?<|im_end|>\n<|im_start|>assistant\n";
    let reply = "<tool_call>{\"name\": \"print_results\", \"arguments\": {\"root_causes\":[{\"pod\":\"paymentservice-0\"}]}}</tool_call><|im_end|>";
    let p = tok.encode(prompt).unwrap();
    let r = tok.encode(reply).unwrap();
    let mask = std::iter::repeat_n(false, p.len())
        .chain(std::iter::repeat_n(true, r.len()))
        .collect();
    Sequence {
        ids: [p, r].concat(),
        mask,
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

/// The largest gradient difference relative to its gradient's largest entry, over all LoRA
/// parameters; panics past the tolerances.
fn compare(fast: &Policy, slow: &Policy, s: &Sequence, loss_of: &LossOf<'_>, what: &str) -> f32 {
    let mut gb = GradAccum::new();
    let lb =
        checkpointed_backward(&slow.model, s, &slow.params, &mut gb, |lp| loss_of(lp)).unwrap();
    let mut worst = 0f32;
    // The fused path both ways the trainer runs it: every block checkpointed, and the whole
    // graph kept.
    for budget in [0, usize::MAX] {
        let mut ga = GradAccum::new();
        let la = sequence_backward(&fast.model, s, &fast.params, &mut ga, budget, |lp| {
            loss_of(lp)
        })
        .unwrap();
        assert!(
            (la - lb).abs() <= LOSS_RTOL * lb.abs().max(1e-3),
            "{what} budget {budget}: loss {la} (kernels) vs {lb} (candle)"
        );
        let mut grads = 0;
        for (i, (name, _)) in fast.params.iter().enumerate() {
            let (a, b) = (ga.get(i), gb.get(i));
            let (Some(a), Some(b)) = (a, b) else {
                panic!(
                    "{what} {name}: gradient on kernels {} / candle {}",
                    a.is_some(),
                    b.is_some()
                );
            };
            let scale = abs_max(b);
            assert!(scale > 0.0, "{what} {name}: a zero gradient checks nothing");
            let d = abs_max(&(a - b).unwrap()) / scale;
            assert!(
                d <= GRAD_RTOL,
                "{what} budget {budget} {name}: max |d| / max |g| = {d}"
            );
            worst = worst.max(d);
            grads += 1;
        }
        // 30 layers x 7 projections x (A, B).
        assert_eq!(grads, 420, "{what}");
    }
    eprintln!("{what}: loss {lb}, worst relative gradient difference {worst:.2e}");
    worst
}

#[test]
fn fused_training_path_matches_candle_on_smollm2() {
    let (fast, slow) = (policy(true), policy(false));
    let s = sequence();
    assert!(
        s.ids.len() > 40 && s.num_targets() > 20,
        "{} tokens",
        s.ids.len()
    );
    let norm = s.num_targets();
    let sft: LossOf<'_> = Box::new(move |lp| sft_loss(lp, norm));
    compare(&fast, &slow, &s, &sft, "sft");
    // GRPO: old log-probs off by +-0.3 in turns (ratios on both sides of the clip), KL to a
    // reference 0.2 below, a negative advantage.
    let cur = token_logprobs_detached(&slow.model, &s).unwrap();
    let old: Vec<f32> = cur
        .iter()
        .enumerate()
        .map(|(i, v)| match i % 3 {
            0 => v + 0.3,
            1 => v - 0.3,
            _ => *v,
        })
        .collect();
    let reference: Vec<f32> = cur.iter().map(|v| v - 0.2).collect();
    let cfg = GrpoConfig {
        beta: 0.04,
        ..GrpoConfig::default()
    };
    let (old, reference) = (&old, &reference);
    let grpo: LossOf<'_> = Box::new(move |lp| {
        let (l, terms) = grpo_loss(lp, old, Some(reference), -0.7, norm, &cfg)?;
        assert!(terms.clipped > 0 && terms.clipped < norm, "{terms:?}");
        Ok(l)
    });
    compare(&fast, &slow, &s, &grpo, "grpo");
}
