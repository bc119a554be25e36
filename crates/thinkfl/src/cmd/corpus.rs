//! `thinkfl corpus build --out DIR [--seed S] [--scale small|full]`: the training corpus, many
//! simulated data sets in the AIOps 2022 layout with a `corpus.json` manifest of their roles
//! (`train`, `held_out`). Which data sets, seeds and sizes: `thinkfl_sim::corpus`.

use anyhow::Context;
use clap::{Args as ClapArgs, Subcommand};
use std::path::PathBuf;
use std::time::Instant;
use thinkfl_sim::corpus::{self, MANIFEST, Role, Scale};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: CorpusCommand,
}

#[derive(Debug, Subcommand)]
enum CorpusCommand {
    /// Simulate every data set of the corpus into DIR and write DIR/corpus.json.
    Build(BuildArgs),
}

#[derive(Debug, ClapArgs)]
struct BuildArgs {
    /// Output directory (created).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the corpus: the k-th data set gets seed S*1000+k.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// small (21 half-hour data sets, for trials) or full (39 two-hour data sets, 648 training
    /// cases).
    #[arg(long, default_value = "full")]
    scale: String,
    /// Replace a corpus already in DIR (its train/, held_out/ and corpus.json).
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        CorpusCommand::Build(a) => build(a),
    }
}

fn build(a: BuildArgs) -> anyhow::Result<()> {
    let scale: Scale = a.scale.parse()?;
    if a.force {
        for p in [Role::Train.as_str(), Role::HeldOut.as_str()] {
            let d = a.out.join(p);
            if d.exists() {
                std::fs::remove_dir_all(&d).with_context(|| format!("removing {}", d.display()))?;
            }
        }
        let m = a.out.join(MANIFEST);
        if m.exists() {
            std::fs::remove_file(&m).with_context(|| format!("removing {}", m.display()))?;
        }
    }
    let t = Instant::now();
    let manifest = corpus::build(&a.out, a.seed, scale, &mut |p| {
        let e = p.entry;
        let width = p.total.to_string().len();
        println!(
            "[{:>w$}/{}] {}: {} faults, {} traces, {} spans, {} metric points, {} log lines in {:.1} s",
            p.done,
            p.total,
            e.path,
            e.faults,
            e.traces,
            e.spans,
            e.metrics,
            e.logs,
            p.seconds,
            w = width
        );
        if let Some(x) = p.excerpt {
            println!(
                "{:>w$}  {}: {} faults, {} traces, {} spans, {} log lines",
                "",
                x.path,
                x.faults,
                x.traces,
                x.spans,
                x.logs,
                w = 2 * width + 3
            );
        }
    })
    .with_context(|| format!("building the corpus in {}", a.out.display()))?;
    println!(
        "corpus seed {} scale {} in {}: train {} data sets, {} fault cases; held out {} data sets, \
         {} fault cases ({} held out entirely); manifest {} ({:.1} s)",
        manifest.seed,
        manifest.scale,
        a.out.display(),
        manifest.train.datasets,
        manifest.train.cases,
        manifest.held_out.datasets,
        manifest.held_out.cases,
        manifest.held_out_topologies.join(", "),
        a.out.join(MANIFEST).display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
