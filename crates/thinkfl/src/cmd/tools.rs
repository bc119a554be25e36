//! `thinkfl tools call NAME --args JSON --data DATASET [--mode plain|enriched]`: one tool call,
//! as a model would make it, for humans; `thinkfl tools list`: the OpenAI function schemas.

use clap::{Args as ClapArgs, Subcommand};
use std::path::PathBuf;
use thinkfl_store::LoadOptions;
use thinkfl_tools::{OutputMode, ToolEnv, ToolRegistry, ToolsConfig};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: ToolsCommand,
}

#[derive(Debug, Subcommand)]
enum ToolsCommand {
    /// Call one tool and print its output (the components it touched go to stderr).
    Call(CallArgs),
    /// Print the tools as OpenAI function schemas (JSON).
    List,
}

#[derive(Debug, ClapArgs)]
struct CallArgs {
    /// search_traces, search_fluctuating_metrics, search_logs or print_results.
    name: String,
    /// The arguments as a JSON object, e.g. '{"parent_span_id": "d1b3f238e544e3f0"}'.
    #[arg(long, default_value = "{}")]
    args: String,
    /// A data set in the AIOps 2022 layout.
    #[arg(long)]
    data: PathBuf,
    /// plain (the paper's tool server output) or enriched.
    #[arg(long, default_value = "plain")]
    mode: String,
    /// Most rows in one output.
    #[arg(long, default_value_t = ToolsConfig::DEFAULT_MAX_ROWS)]
    max_rows: usize,
    /// Skip malformed rows of the data set instead of stopping at the first.
    #[arg(long)]
    lenient: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        ToolsCommand::List => {
            let reg = ToolRegistry::standard();
            println!("{}", serde_json::to_string_pretty(&reg.openai_schemas())?);
            Ok(())
        }
        ToolsCommand::Call(a) => call(a),
    }
}

fn call(a: CallArgs) -> anyhow::Result<()> {
    let mode: OutputMode = a.mode.parse()?;
    let config = ToolsConfig {
        mode,
        max_rows: a.max_rows,
        ..Default::default()
    };
    config.validate()?;
    // Parse the arguments before loading, so that a typo fails fast with the position.
    let args: serde_json::Value = serde_json::from_str(&a.args)
        .map_err(|e| anyhow::anyhow!("--args is not valid JSON: {e} (in {:?})", a.args))?;
    let (store, report) = super::open_store(&a.data, &LoadOptions { lenient: a.lenient })?;
    if report.skipped_rows > 0 {
        eprintln!("skipped {} malformed rows", report.skipped_rows);
    }
    let env = ToolEnv::new(&store, config);
    match ToolRegistry::standard().call(&env, &a.name, &args) {
        Ok(out) => {
            print!("{}", out.text);
            if !out.text.ends_with('\n') {
                println!();
            }
            if !out.touched.is_empty() {
                eprintln!("touched: {}", out.touched.join(", "));
            }
            Ok(())
        }
        // The same text a model would get, already prefixed with "Error: ".
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
