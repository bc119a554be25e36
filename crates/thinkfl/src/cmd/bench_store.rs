//! `thinkfl bench store`: generates a synthetic span file, loads and indexes it, and prints
//! spans/s and bytes per span; then runs the same load with pandas `read_csv`
//! (`crates/thinkfl-bench/scripts/pandas_load.py`) when python3 and pandas are there, so the
//! ratio is measured in one run (polars too, when installed), the snapshot's write and open, and
//! the span table's Parquet write and its reading by pandas, polars and DuckDB (where installed).
//! Figures only; nothing is asserted.

use clap::Args as ClapArgs;
use std::path::{Path, PathBuf};
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
    /// The pandas comparison script (default: `crates/thinkfl-bench/scripts/pandas_load.py` of
    /// the repository holding the current directory or the binary).
    #[arg(long)]
    pub pandas_script: Option<PathBuf>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The pandas script's place in the repository.
const PANDAS_SCRIPT: &str = "crates/thinkfl-bench/scripts/pandas_load.py";

/// Finds the pandas script at run time: `--pandas-script` when given, else in the repository
/// holding the current directory or the binary (a binary built with another `CARGO_TARGET_DIR`
/// or copied elsewhere has no fixed path to the sources, so none is compiled in). The error
/// says where it looked.
fn find_pandas_script(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--pandas-script {}: no such file", p.display()))
        };
    }
    let mut starts: Vec<PathBuf> = [
        std::env::current_dir().ok(),
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf)),
    ]
    .into_iter()
    .flatten()
    .collect();
    starts.dedup();
    search_up(&starts)
}

/// The first `PANDAS_SCRIPT` under `starts` or a directory above one of them, in that order.
fn search_up(starts: &[PathBuf]) -> Result<PathBuf, String> {
    for start in starts {
        for dir in start.ancestors() {
            let p = dir.join(PANDAS_SCRIPT);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(format!(
        "{PANDAS_SCRIPT} not found in {} or any directory above; run from the thinkfl repository or pass --pandas-script PATH",
        starts
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    ))
}

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
    // Looked up before the run, so that a missing script is said before minutes of work.
    let script = if args.python == "none" {
        None
    } else {
        match find_pandas_script(args.pandas_script.as_deref()) {
            Ok(p) => Some(p),
            Err(e) if args.pandas_script.is_some() => anyhow::bail!(e),
            Err(e) => {
                eprintln!("pandas comparison skipped: {e}");
                None
            }
        }
    };
    let r = bench_store(&cfg)?;
    let pandas = if let Some(script) = script {
        let out = Command::new(&args.python)
            .arg(&script)
            .arg(&r.span_file)
            .arg(&r.parquet_file)
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
    } else {
        None
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
    println!(
        "parquet     span table written in {:.2} s (CPU {:.2} s), {:.1} MB ({:.1} bytes/span, snappy)",
        r.parquet_write_seconds,
        r.parquet_write_cpu_seconds.unwrap_or(f64::NAN),
        r.parquet_bytes as f64 / 1e6,
        r.parquet_bytes as f64 / r.spans as f64
    );
    if let Some(reads) = pandas.as_ref().and_then(|p| p["parquet"].as_object()) {
        for (lib, v) in reads {
            match v["seconds"].as_f64() {
                Some(s) => println!(
                    "            read by {lib} in {s:.2} s ({} rows{})",
                    v["rows"],
                    if v["rows_ok"].as_bool() == Some(true) {
                        ", as many as loaded"
                    } else {
                        ", NOT the span count"
                    }
                ),
                None => println!("            {lib}: {}", v["skipped"]),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pandas_script_is_found_above_a_start_and_its_absence_is_named() {
        let repo = tempfile::tempdir().unwrap();
        let deep = repo.path().join("target/release");
        std::fs::create_dir_all(&deep).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let starts = vec![elsewhere.path().to_path_buf(), deep.clone()];
        let e = search_up(&starts).unwrap_err();
        assert!(e.contains(PANDAS_SCRIPT), "{e}");
        assert!(e.contains(&deep.display().to_string()), "{e}");
        assert!(e.contains("--pandas-script"), "{e}");
        let script = repo.path().join(PANDAS_SCRIPT);
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        std::fs::write(&script, "").unwrap();
        assert_eq!(search_up(&starts).unwrap(), script);
        assert_eq!(find_pandas_script(Some(&script)).unwrap(), script);
        let missing = repo.path().join("nope.py");
        let e = find_pandas_script(Some(&missing)).unwrap_err();
        assert!(e.contains("nope.py") && e.contains("no such file"), "{e}");
    }

    #[test]
    fn the_repository_script_is_found_from_the_crate_directory() {
        // cargo runs tests in the crate's directory, inside the repository.
        let found = find_pandas_script(None).unwrap();
        assert!(found.ends_with(PANDAS_SCRIPT), "{}", found.display());
    }
}
