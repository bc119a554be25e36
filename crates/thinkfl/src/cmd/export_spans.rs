//! `thinkfl export spans --data DATASET --out FILE.parquet`: the data set's spans as one Parquet
//! table of the AIOps span columns, for pandas (`read_parquet`), polars and DuckDB. The data
//! set is opened as every command opens it (from its snapshot when fresh).

use anyhow::Context;
use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::time::Instant;
use thinkfl_store::{LoadOptions, write_spans_parquet};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The data set (AIOps 2022 layout).
    #[arg(long)]
    pub data: PathBuf,
    /// The Parquet file to write (replaced if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Skip malformed rows of the data set instead of stopping at the first.
    #[arg(long)]
    pub lenient: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let opts = LoadOptions { lenient: a.lenient };
    let (store, report) = super::open_store(&a.data, &opts)
        .with_context(|| format!("opening {}", a.data.display()))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let t = Instant::now();
    let n = write_spans_parquet(&store, &a.out)?;
    let bytes = std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {n} spans to {} ({:.1} MB, {:.2} s)",
        a.out.display(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
