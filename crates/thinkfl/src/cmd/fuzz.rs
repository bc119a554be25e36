//! `thinkfl fuzz --target NAME --iterations N --seed S`: the long run of a fuzz harness
//! (thinkfl-fuzz). Prints inputs tried, taken and refused, findings (panics and broken
//! contracts) with the iteration that reproduces each, and the slowest input; findings' inputs
//! are written to `--out` when given. Exits non-zero when anything was found.
//!
//! An input that runs longer than `--hang-ms` is a finding (a hang); one that is still running
//! then cannot be stopped from outside its harness, so the watchdog prints it, writes it to
//! `--out` (or the temporary directory) and ends the process with status 3.

use anyhow::{Context, bail};
use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use thinkfl_fuzz::{Corpus, Report, TARGETS};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Harness to run (`all` runs each in turn); `--list` names them.
    #[arg(long, default_value = "all")]
    pub target: String,
    /// Inputs to feed each target.
    #[arg(long, default_value_t = 100_000)]
    pub iterations: u64,
    /// Seed of the run: input i is a function of (seed, i) only.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First iteration (with `--iterations 1`, replays one finding).
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Directory holding `aiops2022-sample` (default: the shared fixtures beside the checkout,
    /// where present); without it, seeds come from the repository and the simulator.
    #[arg(long)]
    pub fixtures: Option<PathBuf>,
    /// Where to write each finding's input (`TARGET-ITERATION.bin`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Longest time one input may take before it is a finding (a hang), in milliseconds; 0
    /// turns the watchdog off. The default leaves room for a loaded machine: the slowest inputs
    /// of the long runs so far took under 1 s at load average 9 to 13.
    #[arg(long, default_value_t = 10_000)]
    pub hang_ms: u64,
    /// List the targets and exit.
    #[arg(long)]
    pub list: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.list {
        for (name, about) in TARGETS {
            println!("{name:<26} {about}");
        }
        return Ok(());
    }
    let shared = args.fixtures.clone().or_else(Corpus::default_shared);
    let corpus = Corpus::new(shared.clone())?;
    println!(
        "seeds: {}",
        match &shared {
            Some(p) => format!("{} and the repository's test data", p.display()),
            None => "the repository's test data and the simulator (no shared fixtures)".into(),
        }
    );
    let names: Vec<&str> = if args.target == "all" {
        TARGETS.iter().map(|t| t.0).collect()
    } else {
        args.target.split(',').map(str::trim).collect()
    };
    let mut total = 0;
    for name in names {
        let mut target = thinkfl_fuzz::target(name, &corpus)?;
        let start = Instant::now();
        let progress = |r: &Report| {
            if r.tried.is_multiple_of(50_000) {
                eprintln!(
                    "  {name}: {} inputs, {} findings, {:.0} inputs/s",
                    r.tried,
                    r.findings,
                    r.tried as f64 / start.elapsed().as_secs_f64()
                );
            }
        };
        let report = if args.hang_ms == 0 {
            thinkfl_fuzz::run(&mut target, args.seed, args.from, args.iterations, progress)
        } else {
            let bound = Duration::from_millis(args.hang_ms);
            let out = args.out.clone().unwrap_or_else(std::env::temp_dir);
            let seed = args.seed;
            thinkfl_fuzz::run_bounded(
                &mut target,
                args.seed,
                args.from,
                args.iterations,
                bound,
                move |h| hang(h, seed, bound, &out),
                progress,
            )
        };
        print_report(&report);
        if let Some(dir) = &args.out {
            std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
            for f in &report.kept {
                let p = dir.join(format!("{name}-{}.bin", f.iteration));
                std::fs::write(&p, &f.input).with_context(|| p.display().to_string())?;
            }
        }
        total += report.findings;
    }
    if total > 0 {
        bail!("{total} findings");
    }
    Ok(())
}

fn print_report(r: &Report) {
    let secs = r.elapsed.as_secs_f64();
    println!(
        "{:<24} seed {} tried {} accepted {} rejected {} findings {} in {:.1} s ({:.0} inputs/s); slowest input {:.1} ms (iteration {})",
        r.target,
        r.seed,
        r.tried,
        r.accepted,
        r.rejected,
        r.findings,
        secs,
        r.tried as f64 / secs.max(1e-9),
        r.slowest.0.as_secs_f64() * 1e3,
        r.slowest.1,
    );
    for f in &r.kept {
        let preview: String = String::from_utf8_lossy(&f.input[..f.input.len().min(160)])
            .chars()
            .map(|c| if c.is_control() { '.' } else { c })
            .collect();
        println!(
            "  {} at iteration {} ({} bytes): {}\n    input: {preview}",
            if f.panic { "PANIC" } else { "finding" },
            f.iteration,
            f.input.len(),
            f.message
        );
    }
}

/// The watchdog's report of an input still running past the bound: printed, written out, and
/// the process ends (the harness's thread cannot be stopped, and a run stuck on one input
/// would count nothing more).
fn hang(h: &thinkfl_fuzz::Hang<'_>, seed: u64, bound: Duration, out: &std::path::Path) {
    let p = out.join(format!("{}-hang-{}.bin", h.target, h.iteration));
    let written = std::fs::create_dir_all(out)
        .and_then(|()| std::fs::write(&p, h.input))
        .map_or_else(
            |e| format!("not written: {e}"),
            |()| format!("written to {}", p.display()),
        );
    println!(
        "{:<24} seed {seed} HANG at iteration {}: still running after {:.1} s (bound {:.1} s); \
         input ({} bytes) {written}; reproduce with --target {} --seed {seed} --from {} \
         --iterations 1",
        h.target,
        h.iteration,
        h.elapsed.as_secs_f64(),
        bound.as_secs_f64(),
        h.input.len(),
        h.target,
        h.iteration
    );
    std::process::exit(3);
}
