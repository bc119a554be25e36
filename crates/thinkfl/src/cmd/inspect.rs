//! `thinkfl inspect DATASET`: what a data set holds (time range; spans, traces, metric series
//! and points, logs; services, pods, nodes; fault cases by level and type).

use clap::Args as ClapArgs;
use std::path::PathBuf;
use thinkfl_store::LoadOptions;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// A data set in the AIOps 2022 layout (raw or preprocessed).
    pub dataset: PathBuf,
    /// Skip malformed rows (and say how many) instead of stopping at the first.
    #[arg(long)]
    pub lenient: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = LoadOptions {
        lenient: args.lenient,
    };
    let (store, report) = super::open_store(&args.dataset, &opts)?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if report.skipped_rows > 0 {
        eprintln!("skipped {} malformed rows", report.skipped_rows);
    }
    print!(
        "{}",
        thinkfl_store::summary::render(&store, &args.dataset.display().to_string())
    );
    Ok(())
}
