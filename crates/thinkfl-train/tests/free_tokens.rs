//! `loss_tokens = "free"` on a real episode: the scripted expert on the real AIOps 2022 sample,
//! tokenized by SmolLM2's own tokenizer and template, keeps the model's choices as targets and
//! drops what the grammar forced.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use thinkfl_agent::ExpertPolicy;
use thinkfl_agent::expert::ExpertConfig;
use thinkfl_candle::{ChatTemplate, Tok};
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_train::config::{LossTokens, TrainConfig};
use thinkfl_train::run::{ModelParts, RunData, oracle_trajectories, tokenize_recorded};

fn parts() -> ModelParts {
    let path = thinkfl_candle::fetch::resolve_model("default", true).expect("the default model");
    let ct = thinkfl_candle::load::read_gguf_content(&path).unwrap();
    let tokenizer = Tok::from_gguf(&ct).unwrap();
    let template = ChatTemplate::from_gguf(&ct, &tokenizer).unwrap();
    ModelParts {
        token_bytes: tokenizer.token_bytes(),
        template_source: template.source().to_string(),
        name: "smollm2".into(),
        tokenizer,
    }
}

fn config(loss_tokens: &str) -> TrainConfig {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs/stages.toml"),
    )
    .unwrap()
    .replacen(
        "seed = ",
        &format!("loss_tokens = \"{loss_tokens}\"\nseed = "),
        1,
    );
    TrainConfig::from_toml(&text, Path::new("stages.toml")).unwrap()
}

#[test]
fn free_targets_are_the_experts_choices_not_the_forced_bytes() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/aiops2022-sample");
    let (store, _) = TelemetryStore::load(&dir, &LoadOptions::default()).unwrap();
    let store = Arc::new(store);
    let parts = parts();
    let template = parts.template().unwrap();
    let (all, free) = (config("all"), config("free"));
    assert_eq!(free.loss_tokens, LossTokens::Free);
    let data = RunData::all_train(store.clone(), &all).unwrap();
    let expert = Arc::new(ExpertPolicy::new(store.clone(), ExpertConfig::default()));
    let (kept, _) = oracle_trajectories(&data, &all, 10, expert).unwrap();
    let rec = kept.first().expect("the expert is right on the sample");
    assert_eq!(
        rec.grammars.len(),
        rec.trajectory
            .messages
            .iter()
            .filter(|m| m.role == thinkfl_llm::Role::Assistant)
            .count(),
        "one grammar per assistant message"
    );
    let a = tokenize_recorded(&all, &parts, &template, rec).unwrap();
    let f = tokenize_recorded(&free, &parts, &template, rec).unwrap();
    assert_eq!(a.ids, f.ids, "the same tokens, fewer targets");
    assert!(f.mask.iter().zip(&a.mask).all(|(f, a)| !*f || *a));
    let text = |s: &thinkfl_train::loss::Sequence| {
        let ids: Vec<u32> = s.targets().iter().map(|&j| s.ids[j]).collect();
        parts.tokenizer.decode(&ids, false).unwrap()
    };
    let (ta, tf) = (text(&a), text(&f));
    assert!(
        f.num_targets() * 2 < a.num_targets(),
        "most of a constrained call is forced: {} of {} targets kept\n{tf}",
        f.num_targets(),
        a.num_targets()
    );
    // The call skeleton and the facts that follow from a chosen pod are forced...
    assert!(
        ta.contains("\"arguments\"") && ta.contains("\"service\":"),
        "{ta}"
    );
    assert!(
        !tf.contains("\"arguments\"") && !tf.contains("\"service\":"),
        "{tf}"
    );
    // ...the choices are not: the tool (up to where the names part), the pod (up to where the
    // data's pod names part: `recomm` + `1`), the reasons.
    for choice in [
        "searchtra",
        "searchflu",
        "print",
        "recomm1",
        "slowest span; error logs 2",
    ] {
        assert!(
            tf.contains(choice),
            "{choice:?} missing from the free targets: {tf}"
        );
    }
}
