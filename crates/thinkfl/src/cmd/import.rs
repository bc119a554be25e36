//! `thinkfl import --from aiops2022|otlp|jaeger|parquet INPUT --out DATASET`: converts telemetry
//! into the AIOps 2022 layout every other command reads.

use anyhow::{Context, bail};
use clap::{Args as ClapArgs, ValueEnum};
use std::path::PathBuf;
use thinkfl_store::{
    LoadOptions, read_aiops, read_jaeger_json, read_otlp_json, read_spans_parquet, write_aiops,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A directory in the AIOps Challenge 2022 layout (raw or preprocessed).
    Aiops2022,
    /// An OTLP JSON trace export (`resourceSpans`).
    Otlp,
    /// A Jaeger JSON trace export (`data[].spans`).
    Jaeger,
    /// A span table in Parquet (a file, or a directory of `*.parquet` parts) with the AIOps
    /// span columns, as `thinkfl export spans`, pandas, polars or DuckDB write it.
    Parquet,
}

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Format of INPUT.
    #[arg(long = "from", value_enum)]
    pub from: Format,
    /// The directory or file to import.
    pub input: PathBuf,
    /// Output directory (AIOps 2022 layout); must not exist or be empty.
    #[arg(long)]
    pub out: PathBuf,
    /// Skip malformed rows (and say how many) instead of stopping at the first.
    #[arg(long)]
    pub lenient: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.out.exists()
        && std::fs::read_dir(&args.out)
            .with_context(|| format!("{}", args.out.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{}: output directory is not empty; choose a new one",
            args.out.display()
        );
    }
    let opts = LoadOptions {
        lenient: args.lenient,
    };
    let (ds, report) = match args.from {
        Format::Aiops2022 => read_aiops(&args.input, &opts)?,
        Format::Otlp => read_otlp_json(&args.input, &opts)?,
        Format::Jaeger => read_jaeger_json(&args.input, &opts)?,
        Format::Parquet => read_spans_parquet(&args.input, &opts)?,
    };
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    write_aiops(&ds, &args.out)?;
    println!(
        "imported {} spans, {} metric points, {} logs, {} fault cases into {}",
        ds.spans.len(),
        ds.metrics.len(),
        ds.logs.len(),
        ds.faults.len(),
        args.out.display()
    );
    if report.skipped_rows > 0 {
        println!("skipped {} malformed rows", report.skipped_rows);
    }
    Ok(())
}
