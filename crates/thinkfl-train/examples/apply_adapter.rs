//! Load the default model, apply a PEFT adapter (default: the committed one) and print how much
//! it moves the next-token distribution of a prompt, as a check that the adapter fits the model.
//! `cargo run --release -p thinkfl-train --example apply_adapter [ADAPTER_DIR]`

use candle_core::{D, Tensor};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../models/thinkfl-smollm2-135m-lora"
            ))
        });
    let path = thinkfl_candle::fetch::resolve_model("default", true)?;
    let mut m = thinkfl_candle::load(&path, &thinkfl_candle::LoadOptions::default())?;
    let ids = m.tokenizer.encode(
        "<|im_start|>user\nWhich pod is the root cause?<|im_end|>\n<|im_start|>assistant\n",
    )?;
    let t = Tensor::new(ids.as_slice(), m.model.device())?.unsqueeze(0)?;
    let pos =
        Tensor::new((0..ids.len() as u32).collect::<Vec<_>>(), m.model.device())?.unsqueeze(0)?;
    let last = |model: &thinkfl_candle::Llama| -> Result<Tensor, Box<dyn std::error::Error>> {
        let h = model.forward_hidden(&t, &pos, None, None, thinkfl_candle::Mode::Infer)?;
        let h = h.narrow(1, ids.len() - 1, 1)?;
        Ok(candle_nn::ops::log_softmax(
            &model
                .logits(&h, thinkfl_candle::Mode::Infer)?
                .flatten_all()?,
            D::Minus1,
        )?)
    };
    let base = last(&m.model)?;
    let (cfg, params) = thinkfl_train::peft::apply_adapter(&mut m.model, &dir)?;
    let tuned = last(&m.model)?;
    let diff = (base.exp()? - tuned.exp()?)?
        .abs()?
        .sum_all()?
        .to_scalar::<f32>()?
        / 2.0;
    let top = |lp: &Tensor| -> Result<String, Box<dyn std::error::Error>> {
        let id = lp.argmax(0)?.to_scalar::<u32>()?;
        Ok(m.tokenizer.decode(&[id], false)?)
    };
    println!(
        "adapter {} (r={}, alpha={}, {} tensors): total-variation distance of the next-token distribution {diff:.4}; top token base {:?}, adapted {:?}",
        dir.display(),
        cfg.r,
        cfg.lora_alpha,
        params.len(),
        top(&base)?,
        top(&tuned)?
    );
    Ok(())
}
