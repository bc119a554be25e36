//! Checkpoints: adapter, optimizer moments, RNG position, step counters and the config, in
//! `RUN/checkpoints/step-NNNNNN/`. A checkpoint directory is complete before the one-line
//! `RUN/checkpoints/latest` is atomically replaced to name it, so a crash mid-write leaves the
//! previous checkpoint in force. The two newest are kept.

use crate::error::{Error, Result};
use crate::lora::Policy;
use crate::optim::AdamW;
use crate::peft::save_safetensors;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where training stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer updates so far, all stages together.
    pub global_step: u64,
    /// Index of the stage in the config's list.
    pub stage: usize,
    /// Steps done in that stage.
    pub stage_step: usize,
    /// AdamW's step count.
    pub adam_t: u64,
    /// The training RNG's seed; with stream and word position, ChaCha8 restores exactly.
    pub rng_seed: [u8; 32],
    /// The RNG's stream.
    pub rng_stream: u64,
    /// Decimal, as JSON numbers lose precision past 2^53.
    pub rng_word_pos: String,
    /// The TOML config the run started with.
    pub config: String,
}

impl TrainState {
    /// The seed, stream and word position of `rng` ([`TrainState`]'s three fields).
    pub fn capture_rng(rng: &ChaCha8Rng) -> ([u8; 32], u64, String) {
        (
            rng.get_seed(),
            rng.get_stream(),
            rng.get_word_pos().to_string(),
        )
    }

    /// The training RNG restored exactly where it was captured.
    pub fn rng(&self) -> Result<ChaCha8Rng> {
        use rand::SeedableRng;
        let mut r = ChaCha8Rng::from_seed(self.rng_seed);
        r.set_stream(self.rng_stream);
        let pos: u128 = self
            .rng_word_pos
            .parse()
            .map_err(|_| Error::Checkpoint(format!("bad rng_word_pos {:?}", self.rng_word_pos)))?;
        r.set_word_pos(pos);
        Ok(r)
    }
}

/// The adapter weights in a checkpoint directory (PEFT's file name).
pub const ADAPTER_FILE: &str = "adapter_model.safetensors";
/// AdamW's moments in a checkpoint directory.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// [`TrainState`] as JSON in a checkpoint directory.
pub const STATE_FILE: &str = "state.json";

fn ckpt_root(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// Write a checkpoint of `policy`, `opt` and `state` under `run`.
pub fn save(run: &Path, policy: &Policy, opt: &AdamW, state: &TrainState) -> Result<PathBuf> {
    let root = ckpt_root(run);
    let name = format!("step-{:06}", state.global_step);
    let dir = root.join(&name);
    let tmp = root.join(format!(".{name}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let adapter = policy
        .params
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    save_safetensors(&adapter, &tmp.join(ADAPTER_FILE))?;
    save_safetensors(
        &opt.state_tensors(&policy.params),
        &tmp.join(OPTIMIZER_FILE),
    )?;
    let json = serde_json::to_vec_pretty(state)?;
    std::fs::write(tmp.join(STATE_FILE), json).map_err(|e| Error::io(&tmp, e))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
    let latest = root.join("latest");
    let mut f = tempfile::NamedTempFile::new_in(&root).map_err(|e| Error::io(&root, e))?;
    std::io::Write::write_all(&mut f, name.as_bytes()).map_err(|e| Error::io(&latest, e))?;
    f.as_file().sync_all().map_err(|e| Error::io(&latest, e))?;
    f.persist(&latest)
        .map_err(|e| Error::io(&latest, e.error))?;
    prune(&root, 2)?;
    Ok(dir)
}

fn prune(root: &Path, keep: usize) -> Result<()> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| Error::io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("step-"))
        })
        .collect();
    dirs.sort();
    let n = dirs.len().saturating_sub(keep);
    for d in &dirs[..n] {
        std::fs::remove_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    Ok(())
}

/// The directory named by `RUN/checkpoints/latest`, if any.
pub fn latest(run: &Path) -> Result<Option<PathBuf>> {
    let p = ckpt_root(run).join("latest");
    if !p.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let dir = ckpt_root(run).join(name.trim());
    if !dir.join(STATE_FILE).exists() {
        return Err(Error::file(
            &p,
            format!("names {}, which has no {STATE_FILE}", dir.display()),
        ));
    }
    Ok(Some(dir))
}

/// Restore adapter and optimizer from checkpoint `dir` into `policy` and `opt`; returns the state.
pub fn restore(dir: &Path, policy: &Policy, opt: &mut AdamW) -> Result<TrainState> {
    let sp = dir.join(STATE_FILE);
    let s = std::fs::read_to_string(&sp).map_err(|e| Error::io(&sp, e))?;
    let state: TrainState =
        serde_json::from_str(&s).map_err(|e| Error::file(&sp, e.to_string()))?;
    let dev = policy.model.device();
    let ap = dir.join(ADAPTER_FILE);
    let mut adapter =
        candle_core::safetensors::load(&ap, dev).map_err(|e| Error::file(&ap, e.to_string()))?;
    for (name, var) in &policy.params {
        let t = adapter
            .remove(name)
            .ok_or_else(|| Error::file(&ap, format!("lacks {name}")))?;
        if t.dims() != var.as_tensor().dims() {
            return Err(Error::file(
                &ap,
                format!(
                    "{name} has shape {:?}, the model wants {:?}",
                    t.dims(),
                    var.as_tensor().dims()
                ),
            ));
        }
        var.set(&t)?;
    }
    let op = dir.join(OPTIMIZER_FILE);
    let ostate =
        candle_core::safetensors::load(&op, dev).map_err(|e| Error::file(&op, e.to_string()))?;
    opt.load_state(&policy.params, state.adam_t, ostate)
        .map_err(|e| Error::file(&op, e.to_string()))?;
    Ok(state)
}
