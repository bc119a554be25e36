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
