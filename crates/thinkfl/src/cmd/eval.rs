//! `thinkfl eval --data DATASET --methods descent,microrank,... --out DIR`: runs localization
//! methods over every fault case of a data set and writes `report.json`, `report.md` and
//! `report.html` (DESIGN.md section 8).

use anyhow::{Context as _, bail};
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use thinkfl_baselines::{CommonConfig, METHODS, build};
use thinkfl_eval::{EvalConfig, Progress, evaluate};
use thinkfl_store::LoadOptions;
use thinkfl_tools::Diagnoser;

/// Methods that run the RoT actor rather than a classic baseline.
const ACTOR_METHODS: [&str; 2] = ["expert", "thinkfl"];

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// A data set in the AIOps 2022 layout, with its ground truth (`groundtruth.csv`).
    #[arg(long)]
    pub data: PathBuf,
    /// Comma-separated methods; `all` stands for the classic baselines (`all,expert`). Besides the baselines:
    /// `expert` (the scripted expert through the actor) and `thinkfl` (the RoT actor on `--model`).
    #[arg(long, default_value = "all")]
    pub methods: String,
    /// Model of the `thinkfl` method.
    #[arg(long, default_value = "default", help = super::models::MODEL_HELP)]
    pub model: String,
    #[arg(long, help = super::models::ADAPTER_HELP)]
    pub adapter: Option<PathBuf>,
    /// Prompt set of the `thinkfl` method: `ours` or `thinkfl`.
    #[arg(long, default_value = "ours")]
    pub prompts: String,
    /// Most tool rounds per episode of the `thinkfl` and `expert` methods.
    #[arg(long, default_value_t = 10)]
    pub d_max: usize,
    #[arg(long, default_value = "calls", help = super::models::CONSTRAIN_HELP)]
    pub constrain: String,
    /// Directory the reports are written to (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// Queries (anomalous traces) per fault case whose rankings are fused.
    #[arg(long, default_value_t = 3)]
    pub k: usize,
    /// Seed of every random choice (the random method).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Reciprocal-rank fusion offset: an item scores sum 1 / (offset + rank).
    #[arg(long, default_value_t = 0.0)]
    pub fusion_offset: f64,
    /// Evaluate only the first N fault cases (of `--cases` / `--held-out` when given).
    #[arg(long)]
    pub max_cases: Option<usize>,
    /// Evaluate only these fault case indices (comma-separated, as `thinkfl incidents` lists them).
    #[arg(long, value_delimiter = ',', conflicts_with = "held_out")]
    pub cases: Option<Vec<usize>>,
    /// Evaluate only the held-out cases of a training run: its `split.json`
    /// (`thinkfl train --out RUN` writes RUN/split.json).
    #[arg(long)]
    pub held_out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Run the cases one after another (cleaner per-case wall times).
    #[arg(long)]
    pub sequential: bool,
    /// Skip malformed rows of the data set instead of stopping at the first.
    #[arg(long)]
    pub lenient: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn case_done(&self, method: &str) {
        self.0.set_message(method.to_string());
        self.0.inc(1);
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // `all` stands for the classic baselines, alone or in a list (`all,expert`).
    let mut names: Vec<&str> = Vec::new();
    for n in args
        .methods
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let add: Vec<&str> = if n == "all" {
            METHODS.to_vec()
        } else {
            vec![n]
        };
        for a in add {
            if !names.contains(&a) {
                names.push(a);
            }
        }
    }
    if names.is_empty() {
        bail!(
            "--methods names no method (known: {}, expert, thinkfl)",
            METHODS.join(", ")
        );
    }
    if let Some(j) = args.jobs {
        rayon::ThreadPoolBuilder::new()
            .num_threads(j.max(1))
            .build_global()
            .context("setting --jobs")?;
    }
    let (store, load) = super::open_store(
        &args.data,
        &LoadOptions {
            lenient: args.lenient,
        },
    )
    .with_context(|| format!("loading {}", args.data.display()))?;
    for w in &load.warnings {
        eprintln!("warning: {w}");
    }
    if store.faults().is_empty() {
        bail!(
            "{}: no fault cases (groundtruth.csv is missing or empty)",
            args.data.display()
        );
    }
    let store = std::sync::Arc::new(store);
    let classic: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !ACTOR_METHODS.contains(n))
        .collect();
    let mut methods = build(&store, &classic, CommonConfig::default(), args.seed)?;
    for &n in names.iter().filter(|n| ACTOR_METHODS.contains(n)) {
        let spec = if n == "expert" {
            "expert"
        } else {
            args.model.as_str()
        };
        let prompts = if n == "expert" {
            "ours"
        } else {
            args.prompts.as_str()
        };
        let adapter = if n == "expert" {
            None
        } else {
            args.adapter.as_deref()
        };
        let model = super::models::build_model(spec, adapter, &store)?;
        let cfg =
            super::models::actor_config(prompts, args.d_max, 0.0, args.seed, &args.constrain)?;
        let actor = thinkfl_agent::Actor::new(model, cfg)?.with_name(n);
        methods.push(Box::new(actor));
    }
    let refs: Vec<&dyn Diagnoser> = methods.iter().map(|m| m.as_ref()).collect();
    let selected = match (&args.cases, &args.held_out) {
        (Some(c), _) => Some(in_range(c.clone(), store.faults().len(), "--cases")?),
        (None, Some(p)) => Some(in_range(
            held_out_cases(p)?,
            store.faults().len(),
            &p.display().to_string(),
        )?),
        (None, None) => None,
    };
    let cfg = EvalConfig {
        k_queries: args.k,
        fusion_offset: args.fusion_offset,
        max_cases: args.max_cases,
        cases: selected.clone(),
        parallel: !args.sequential,
        ..EvalConfig::default()
    };
    cfg.validate()?;
    let cases = selected
        .as_ref()
        .map_or(store.faults().len(), Vec::len)
        .min(args.max_cases.unwrap_or(usize::MAX));
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new((cases * refs.len()) as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} cases {msg}",
        )
        .expect("a valid template"),
    );
    let report = evaluate(
        &store,
        &refs,
        &cfg,
        &args.data.display().to_string(),
        args.seed,
        &Bar(bar.clone()),
    )?;
    bar.finish_and_clear();
    report.write_all(&args.out)?;
    let md = report.to_markdown();
    // The headline tables: everything up to the per-level breakdown.
    let head = md.split("\n## MRR by fault level").next().unwrap_or(&md);
    println!("{head}");
    if let (Some(e), Some(r)) = (&report.random_expectation, report.method("random")) {
        println!(
            "random MRR: strict {:.4} observed vs {:.4} ± {:.4} expected; lenient {:.4} observed vs {:.4} ± {:.4} expected ({} candidates)",
            r.overall.strict.mrr,
            e.strict_mrr,
            e.strict_mrr_se,
            r.overall.lenient.mrr,
            e.lenient_mrr,
            e.lenient_mrr_se,
            e.candidates
        );
    }
    println!("reports written to {}", args.out.display());
    Ok(())
}

/// The `held_out_cases` of a training run's `split.json`, checked against the data set.
fn held_out_cases(path: &std::path::Path) -> anyhow::Result<Vec<usize>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let cases: Vec<usize> = v
        .get("held_out_cases")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .with_context(|| {
            format!(
                "{}: field held_out_cases (a list of case indices) missing",
                path.display()
            )
        })?;
    Ok(cases)
}

/// Case indices that exist in a data set of `n_faults` cases; `from` names where they came from.
fn in_range(cases: Vec<usize>, n_faults: usize, from: &str) -> anyhow::Result<Vec<usize>> {
    if let Some(bad) = cases.iter().find(|&&c| c >= n_faults) {
        bail!("{from}: case {bad} but the data set has {n_faults} fault cases (another data set?)");
    }
    Ok(cases)
}
