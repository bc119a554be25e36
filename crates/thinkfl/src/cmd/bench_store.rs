//! `thinkfl bench store`: generates a synthetic span file, loads and indexes it, and prints
//! spans/s and bytes per span; then runs the same load with pandas `read_csv`
//! (`crates/thinkfl-bench/scripts/pandas_load.py`) when python3 and pandas are there, so the
//! ratio is measured in one run (polars too, when installed), and the snapshot's write and open.
//! Figures only; nothing is asserted.

use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::process::Command;
use thinkfl_bench::store::{BenchConfig, bench_store};

#[derive(Debug, ClapArgs)]
pub struct StoreArgs {
    /// Spans in the generated trace file.
    #[arg(long, default_value_t = BenchConfig::DEFAULT_SPANS)]
    pub spans: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = BenchConfig::DEFAULT_SEED)]
    pub seed: u64,
    /// Mean spans per trace.
    #[arg(long, default_value_t = BenchConfig::DEFAULT_SPANS_PER_TRACE)]
    pub spans_per_trace: usize,
    /// Where to write the data set (default: a directory under the system temp dir, removed
    /// afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Python interpreter for the pandas comparison; `none` skips it.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The pandas script, at its place in the source tree.
const PANDAS_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../thinkfl-bench/scripts/pandas_load.py"
);

pub fn run(args: StoreArgs) -> anyhow::Result<()> {
    let owned = args.dir.is_none();
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("thinkfl-bench-store-{}", std::process::id()))
    });
    let cfg = BenchConfig {
        spans: args.spans,
        seed: args.seed,
        spans_per_trace: args.spans_per_trace,
        dir: Some(dir.clone()),
    };
    cfg.validate().map_err(anyhow::Error::msg)?;
    let r = bench_store(&cfg)?;
    let pandas = if args.python == "none" {
        None
    } else {
        let out = Command::new(&args.python)
            .arg(PANDAS_SCRIPT)
            .arg(&r.span_file)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                serde_json::from_slice::<serde_json::Value>(&o.stdout).ok()
            }
            Ok(o) => {
                eprintln!(
                    "pandas comparison failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("pandas comparison skipped: {} ({e})", args.python);
                None
            }
        }
    };
    if owned {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if args.json {
        let v = serde_json::json!({ "thinkfl": r, "pandas": pandas });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "file        {} spans, {} traces, {:.1} MB ({:.1} s to generate)",
        r.spans,
        r.traces,
        r.file_bytes as f64 / 1e6,
        r.generate_seconds
    );
    println!(
        "thinkfl     load+index {:.2} s on {} threads: {:.0} spans/s",
        r.load_seconds, r.threads, r.spans_per_second
    );
    if let Some(cpu) = r.load_cpu_seconds {
        println!(
            "            CPU time {cpu:.2} s (all threads): {:.0} spans per CPU-second, {:.2} cores busy on average",
            r.spans as f64 / cpu,
            cpu / r.load_seconds
        );
    }
    match r.rss_bytes_per_span {
        Some(b) => println!("            resident (VmRSS growth over the load): {b:.1} bytes/span"),
        None => println!("            resident: /proc/self/status unavailable"),
    }
    if let Some(b) = r.rss_trimmed_bytes_per_span {
        println!(
            "            resident after malloc_trim (freed temporaries returned): {b:.1} bytes/span"
        );
    }
    println!(
        "            store heap (sum of its column and index capacities): {:.1} bytes/span",
        r.heap_bytes_per_span
    );
    println!(
        "snapshot    written in {:.2} s, {:.1} MB ({:.1} bytes/span)",
        r.snapshot_write_seconds,
        r.snapshot_bytes as f64 / 1e6,
        r.snapshot_bytes as f64 / r.spans as f64
    );
    println!(
        "            opened in {:.3} s ({:.1}x faster than the CSV load; CPU {:.2} s), {} sampled spans answer as loaded",
        r.snapshot_open_seconds,
        r.load_seconds / r.snapshot_open_seconds,
        r.snapshot_open_cpu_seconds.unwrap_or(f64::NAN),
        r.snapshot_checked_spans
    );
    if let Some(b) = r.snapshot_rss_bytes_per_span {
        println!(
            "            resident growth {b:.1} bytes/span (mapped file pages), heap {:.1} bytes/span",
            r.snapshot_heap_bytes_per_span
        );
    }
    if let Some(p) = pandas {
        let secs = p["seconds"].as_f64().unwrap_or(f64::NAN);
        let sps = p["spans_per_second"].as_f64().unwrap_or(f64::NAN);
        println!(
            "pandas      read_csv {:.2} s: {:.0} spans/s; resident growth {:.1} bytes/span, frame {:.1} bytes/span (pandas {})",
            secs,
            sps,
            p["rss_bytes_per_span"].as_f64().unwrap_or(f64::NAN),
            p["frame_bytes_per_span"].as_f64().unwrap_or(f64::NAN),
            p["pandas"].as_str().unwrap_or("?")
        );
        let pcpu = p["cpu_seconds"].as_f64().unwrap_or(f64::NAN);
        println!(
            "            CPU time {pcpu:.2} s: {:.0} spans per CPU-second",
            r.spans as f64 / pcpu
        );
        println!(
            "ratio       wall: thinkfl load+index is {:.2}x the speed of pandas read_csv (which builds no index)",
            r.spans_per_second / sps
        );
        if let Some(cpu) = r.load_cpu_seconds {
            println!(
                "            CPU: thinkfl uses {:.2}x the CPU time of pandas per span",
                cpu / pcpu
            );
        }
        println!(
            "            snapshot open is {:.1}x the speed of pandas read_csv",
            secs / r.snapshot_open_seconds
        );
        if let Some(pl) = p["polars"].as_object() {
            let num = |k: &str| pl.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
            println!(
                "polars      read_csv {:.2} s: {:.0} spans/s, CPU {:.2} s, frame {:.1} bytes/span (polars {}); thinkfl load+index is {:.2}x its speed",
                num("seconds"),
                num("spans_per_second"),
                num("cpu_seconds"),
                num("frame_bytes_per_span"),
                pl.get("version").and_then(|v| v.as_str()).unwrap_or("?"),
                r.spans_per_second / num("spans_per_second")
            );
        }
    }
    Ok(())
}
