//! `thinkfl report train LOG [--out FILE]`: the curves of a training log as HTML with SVG charts.

use anyhow::Context as _;
use clap::{Args as ClapArgs, Subcommand};
use std::path::PathBuf;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, Subcommand)]
pub enum What {
    /// Training curves of a `train.jsonl` log.
    Train {
        /// The JSON-lines log written by `thinkfl train`.
        log: PathBuf,
        /// Output HTML file (default: next to the log, `train.html`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Train { log, out } => {
            let records = thinkfl_train::log::read_log(&log)?;
            if records.is_empty() {
                anyhow::bail!("{}: no steps logged", log.display());
            }
            let out = out.unwrap_or_else(|| log.with_file_name("train.html"));
            let html = thinkfl_train::log::report_html(
                &records,
                &format!("Training curves: {}", log.display()),
            );
            std::fs::write(&out, html).with_context(|| format!("writing {}", out.display()))?;
            let last = records.last().expect("non-empty");
            println!(
                "{} steps (last: stage {} {}, step {}); report written to {}",
                records.len(),
                last.stage,
                last.stage_name,
                last.global_step,
                out.display()
            );
            Ok(())
        }
    }
}
