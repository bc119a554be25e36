//! `thinkfl chat`: one completion from a local model (greedy at temperature 0).

use clap::Args as ClapArgs;
use std::io::Write;
use thinkfl_candle::CandleChatModel;
use thinkfl_llm::{ChatModel, ChatRequest, Message, SamplingParams};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// `default` (SmolLM2-135M-Instruct, fetched on first use), a known name, a GGUF file or a
    /// Hugging Face model directory.
    #[arg(long, default_value = "default")]
    model: String,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A system message.
    #[arg(long)]
    system: Option<String>,
    /// Stop strings (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Print token counts and speed to stderr.
    #[arg(long, short)]
    verbose: bool,
    /// The user's message.
    prompt: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.temperature >= 0.0, "--temperature must be >= 0");
    anyhow::ensure!(
        args.top_p > 0.0 && args.top_p <= 1.0,
        "--top-p must be in (0, 1]"
    );
    let path = thinkfl_candle::fetch::resolve_model(&args.model, true)?;
    let t0 = std::time::Instant::now();
    let model = CandleChatModel::load(&path)?;
    let load_s = t0.elapsed().as_secs_f64();
    let mut messages = Vec::new();
    if let Some(s) = args.system {
        messages.push(Message::system(s));
    }
    messages.push(Message::user(args.prompt));
    let params = SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        max_tokens: args.max_tokens,
        stop: args.stop,
        seed: args.seed,
        grammar: None,
    };
    let t1 = std::time::Instant::now();
    let resp = model.chat(&ChatRequest {
        messages,
        tools: Vec::new(),
        params,
    })?;
    let gen_s = t1.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", resp.text)?;
    if args.verbose {
        eprintln!(
            "[{}: load {load_s:.2}s, prompt {} tokens, completion {} tokens in {gen_s:.2}s ({:.1} tok/s), stop {:?}]",
            path.display(),
            resp.prompt_tokens,
            resp.completion_tokens,
            resp.completion_tokens as f64 / gen_s,
            resp.stop
        );
    }
    Ok(())
}
