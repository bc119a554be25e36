//! The RL environment for other engines (OpenRLHF, TRL, verl):
//!
//! - `thinkfl serve env --data DIR...` (or `--corpus corpus.json`): episodes over HTTP and
//!   OpenRLHF's `/get_reward`, on 127.0.0.1:5002;
//! - `thinkfl export rl-dataset --corpus corpus.json --out DIR`: the training and held-out
//!   questions as OpenRLHF JSONL, a TRL dataset and verl parquet;
//! - `thinkfl bench env`: steps/s and step latency with many concurrent episodes;
//! - `thinkfl grade --data DIR... TRAJECTORIES.jsonl`: `thinkfl`'s own grade of trajectories an
//!   engine played (replayed through the in-process actor), the reference of the served rewards.

use anyhow::{Context, bail};
use clap::Args as ClapArgs;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thinkfl_agent::{ActorConfig, Phase, PromptSet};
use thinkfl_env::bench::{EnvBenchConfig, Question};
use thinkfl_env::export::{Format, Split};
use thinkfl_env::{EnvConfig, EnvDataset, EnvService};
use thinkfl_grader::Reward;
use thinkfl_server::{LoadedDataset, ServeLimits};
use thinkfl_store::{LoadOptions, TelemetryStore};
use thinkfl_tools::OutputMode;

/// The episode settings; the server, the export and the grader must agree on them.
#[derive(Debug, Clone, ClapArgs)]
pub struct EpisodeArgs {
    /// Most tool rounds before the forced final print (`D_max`).
    #[arg(long, default_value_t = ActorConfig::DEFAULT_D_MAX)]
    d_max: usize,
    /// Prompt set: `ours` (with the global view) or `thinkfl` (the paper's, plain tool output).
    #[arg(long, default_value = "ours")]
    prompts: String,
    /// Tool output: `enriched` or `plain` (default: plain with `--prompts thinkfl`).
    #[arg(long)]
    tool_mode: Option<String>,
    /// Most rows in one tool result (default: the prompt set's).
    #[arg(long)]
    max_rows: Option<usize>,
    /// Most bytes of one tool result (default: the prompt set's).
    #[arg(long)]
    max_tool_output_bytes: Option<usize>,
}

impl EpisodeArgs {
    fn actor(&self) -> anyhow::Result<ActorConfig> {
        let set: PromptSet = self.prompts.parse()?;
        let mut cfg = match set {
            PromptSet::ThinkFl => ActorConfig::thinkfl_compatible(),
            PromptSet::Ours => ActorConfig::default(),
        };
        cfg.d_max = self.d_max;
        if let Some(m) = &self.tool_mode {
            cfg.tool_mode = m.parse::<OutputMode>()?;
        }
        if let Some(n) = self.max_rows {
            cfg.max_rows = n;
        }
        if let Some(n) = self.max_tool_output_bytes {
            cfg.max_tool_output_bytes = n;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn env_config(&self) -> anyhow::Result<EnvConfig> {
        Ok(EnvConfig {
            actor: self.actor()?,
            ..EnvConfig::default()
        })
    }
}

/// `--data` and `--corpus`: the data sets to load.
#[derive(Debug, Clone, ClapArgs)]
pub struct DataArgs {
    /// Data sets in the AIOps 2022 layout (comma separated or repeated); ids are directory names.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    data: Vec<PathBuf>,
    /// A corpus manifest (`corpus.json`): its data sets, with their roles.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Skip malformed rows instead of failing.
    #[arg(long)]
    lenient: bool,
}

impl DataArgs {
    /// Every data set with its corpus role (`None` for `--data`).
    fn sets(&self) -> anyhow::Result<Vec<(PathBuf, Option<String>)>> {
        let mut out: Vec<(PathBuf, Option<String>)> =
            self.data.iter().map(|d| (d.clone(), None)).collect();
        if let Some(c) = &self.corpus {
            out.extend(
                super::train::corpus_sets(c)?
                    .into_iter()
                    .map(|(p, r)| (p, Some(r))),
            );
        }
        if out.is_empty() {
            bail!("give --data DIR... or --corpus corpus.json");
        }
        Ok(out)
    }

    fn load(&self, dir: &std::path::Path) -> anyhow::Result<EnvDataset> {
        let ds = EnvDataset::load(
            dir,
            &LoadOptions {
                lenient: self.lenient,
            },
        )?;
        let with_queries = ds.queries.iter().filter(|q| !q.is_empty()).count();
        eprintln!(
            "loaded {} as {:?}: {} spans, {} fault cases ({with_queries} with queries)",
            dir.display(),
            ds.id(),
            ds.loaded.store.span_count(),
            ds.queries.len()
        );
        Ok(ds)
    }

    fn load_all(&self) -> anyhow::Result<Vec<EnvDataset>> {
        self.sets()?.iter().map(|(d, _)| self.load(d)).collect()
    }
}

#[derive(Debug, ClapArgs)]
pub struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    episode: EpisodeArgs,
    /// Address to bind; loopback by default.
    #[arg(long, default_value = "127.0.0.1:5002")]
    addr: SocketAddr,
    /// The reward of an episode that names none: 1, 2, 3 or mrr.
    #[arg(long, default_value = "3")]
    reward: String,
    /// Seconds an untouched episode is kept.
    #[arg(long, default_value_t = EnvConfig::DEFAULT_TTL.as_secs())]
    ttl: u64,
    /// Most episodes held at once.
    #[arg(long, default_value_t = EnvConfig::DEFAULT_MAX_EPISODES)]
    max_episodes: usize,
    /// Worker threads (tool calls run on blocking threads besides).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = ServeLimits::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Largest request body; `/get_reward` batches carry whole decoded rollouts.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Seconds one request may take.
    #[arg(long, default_value_t = 60)]
    request_timeout: u64,
}

pub fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let cfg = EnvConfig {
        default_reward: a.reward.parse::<Reward>()?,
        ttl: Duration::from_secs(a.ttl),
        max_episodes: a.max_episodes,
        ..a.episode.env_config()?
    };
    let limits = ServeLimits {
        max_connections: a.max_connections,
        max_body_bytes: a.max_body_bytes,
        request_timeout: Duration::from_secs(a.request_timeout),
        ..Default::default()
    };
    limits.validate()?;
    let service = Arc::new(EnvService::new(a.data.load_all()?, cfg)?);
    thinkfl_env::http::serve_blocking(service, a.addr, a.threads, limits)?;
    Ok(())
}

#[derive(Debug, ClapArgs)]
pub struct ExportArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    episode: EpisodeArgs,
    /// Output directory (`openrlhf/`, `trl/`, `verl/` under it).
    #[arg(long)]
    out: PathBuf,
    /// Formats, comma separated: openrlhf, trl, verl.
    #[arg(long, value_delimiter = ',', default_value = "openrlhf,trl,verl")]
    formats: Vec<String>,
    /// Questions (anomalous entry traces) per fault case.
    #[arg(long, default_value_t = 1)]
    queries_per_case: usize,
    /// For `--data` sets: the fraction of cases held out (a corpus holds out whole data sets).
    #[arg(long, default_value_t = 0.25)]
    held_out_fraction: f64,
    /// Seed of the `--data` split (the same split `thinkfl train --data` makes with this seed).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write `sft/train.jsonl`: the scripted expert's episodes on the training questions
    /// whose answer is right (rejection sampling, as stage 0 of `thinkfl train`), as chat
    /// messages for the engines' SFT trainers.
    #[arg(long)]
    sft: bool,
}

pub fn export(a: ExportArgs) -> anyhow::Result<()> {
    let formats: Vec<Format> = a
        .formats
        .iter()
        .map(|f| f.parse())
        .collect::<Result<_, _>>()?;
    if a.queries_per_case == 0 {
        bail!("--queries-per-case must be at least 1");
    }
    if !(0.0..1.0).contains(&a.held_out_fraction) {
        bail!("--held-out-fraction must be in [0, 1)");
    }
    let cfg = a.episode.env_config()?;
    let mut rows = Vec::new();
    let mut sft: Vec<serde_json::Value> = Vec::new();
    for (dir, role) in a.data.sets()? {
        let ds = a.data.load(&dir)?;
        let n = ds.queries.len();
        let cases: Vec<(usize, Split)> = match role.as_deref() {
            Some("train") => (0..n).map(|c| (c, Split::Train)).collect(),
            Some("held_out") => (0..n).map(|c| (c, Split::Test)).collect(),
            Some(other) => bail!("{}: unknown corpus role {other:?}", dir.display()),
            None => {
                let (train, held) =
                    thinkfl_train::config::split_cases(n, a.held_out_fraction, a.seed);
                let mut v: Vec<(usize, Split)> =
                    train.into_iter().map(|c| (c, Split::Train)).collect();
                v.extend(held.into_iter().map(|c| (c, Split::Test)));
                v.sort_unstable_by_key(|(c, _)| *c);
                v
            }
        };
        if a.sft {
            sft.extend(expert_episodes(&ds, &cfg, &cases, a.queries_per_case)?);
        }
        rows.extend(thinkfl_env::export::rows_of(
            ds,
            &cfg,
            &cases,
            a.queries_per_case,
        )?);
    }
    let tools = cfg.actor.prompt_set.tools(Phase::Rethink);
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    for (path, n) in thinkfl_env::export::write(&a.out, &rows, &formats, tools)? {
        println!("{n:>6} rows  {}", path.display());
    }
    if a.sft {
        let dir = a.out.join("sft");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("train.jsonl");
        let mut text = String::new();
        for l in &sft {
            text.push_str(&l.to_string());
            text.push('\n');
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!(
            "{:>6} rows  {} (expert episodes with a right answer)",
            sft.len(),
            path.display()
        );
    }
    Ok(())
}

/// The expert's episodes on the training questions of a data set, right answers only.
fn expert_episodes(
    ds: &EnvDataset,
    cfg: &EnvConfig,
    cases: &[(usize, Split)],
    per_case: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    use thinkfl_agent::expert::ExpertConfig;
    // The expert shares its store by `Arc`, the served data set owns its own: a copy for the
    // duration of one data set's episodes.
    let store = Arc::new(TelemetryStore::from_dataset(ds.loaded.store.to_dataset()));
    let actor = thinkfl_agent::Actor::new(
        thinkfl_agent::ExpertPolicy::new(store.clone(), ExpertConfig::default()),
        cfg.episode_config(),
    )?;
    let mut out = Vec::new();
    for &(case, split) in cases {
        if split != Split::Train {
            continue;
        }
        for q in ds.queries[case].iter().take(per_case) {
            let t = actor.run(&store, q)?;
            let truth = &ds.loaded.store.faults()[case];
            if thinkfl_grader::grade(&cfg.grader, &t, truth).rank != Some(0) {
                continue;
            }
            let messages: Vec<serde_json::Value> = t
                .messages
                .iter()
                .map(|m| serde_json::json!({"role": m.role.as_str(), "content": m.content}))
                .collect();
            out.push(serde_json::json!({
                "messages": messages, "dataset": ds.id(), "case": case, "query_span": q.span_id,
            }));
        }
    }
    Ok(out)
}

#[derive(Debug, ClapArgs)]
pub struct BenchArgs {
    /// A data set to play (default: a simulated hour of Online Boutique with 5 faults, seed 3).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Episodes in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Episodes each client plays in a row.
    #[arg(long, default_value_t = 4)]
    episodes_per_client: usize,
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Upper bound (s) on the run.
    #[arg(long, default_value_t = 120)]
    deadline: u64,
    #[arg(long)]
    json: bool,
}

pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    let ds = match &a.data {
        Some(d) => EnvDataset::load(d, &LoadOptions::default())?,
        None => {
            let data = thinkfl_sim::simulate_dataset(&thinkfl_sim::SimConfig {
                duration_s: 3600,
                faults: 5,
                seed: 3,
                ..Default::default()
            })?;
            EnvDataset::new(LoadedDataset::new(
                "sim-online-boutique-s3",
                TelemetryStore::from_dataset(data),
            ))
        }
    };
    let questions: Vec<Question> = ds
        .queries
        .iter()
        .enumerate()
        .filter_map(|(c, qs)| {
            qs.first().map(|q| Question {
                dataset: ds.id().to_string(),
                case: c,
                span: q.span_id.clone(),
            })
        })
        .collect();
    if questions.is_empty() {
        bail!("the data set has no fault case with an anomalous-trace query");
    }
    let limits = ServeLimits::default();
    let service = Arc::new(EnvService::new(vec![ds], EnvConfig::default())?);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.server_threads.max(1))
        .enable_all()
        .build()?;
    let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn({
        let service = service.clone();
        async move {
            thinkfl_env::http::serve(listener, service, &limits, async {
                let _ = rx.await;
            })
            .await
        }
    });
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.client_threads.max(1))
        .enable_all()
        .build()?;
    let cfg = EnvBenchConfig {
        addr,
        concurrency: a.concurrency,
        episodes_per_client: a.episodes_per_client,
        deadline: Duration::from_secs(a.deadline),
        io_timeout: Duration::from_secs(60),
    };
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let rep = client_rt.block_on(thinkfl_env::bench::run(&cfg, Arc::new(questions)))?;
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let _ = tx.send(());
    server_rt.block_on(server)??;
    let valid_steps = rep.steps - rep.malformed_text_steps;
    let figures = serde_json::json!({
        "concurrency": a.concurrency,
        "episodes": rep.episodes,
        "steps": rep.steps,
        "valid_steps": valid_steps,
        "malformed_text_steps": rep.malformed_text_steps,
        "malformed_requests": rep.malformed_requests,
        "errors": rep.errors,
        "seconds": rep.elapsed.as_secs_f64(),
        "steps_per_s": rep.steps_per_s(),
        "step_p50_ms": rep.step_latency_us(0.5) as f64 / 1e3,
        "step_p99_ms": rep.step_latency_us(0.99) as f64 / 1e3,
        "server_threads": a.server_threads,
        "client_threads": a.client_threads,
        "loadavg_before": load_before.trim(),
        "loadavg_after": load_after.trim(),
        "examples": rep.examples,
    });
    if a.json {
        println!("{figures}");
    } else {
        println!(
            "bench env: {} concurrent episodes, {} played to the end in {:.2} s",
            a.concurrency,
            rep.episodes,
            rep.elapsed.as_secs_f64()
        );
        println!(
            "  steps {} ({} valid, {} malformed text) + {} malformed requests: {:.0} steps/s",
            rep.steps,
            valid_steps,
            rep.malformed_text_steps,
            rep.malformed_requests,
            rep.steps_per_s()
        );
        println!(
            "  step latency p50 {:.2} ms, p99 {:.2} ms; errors {}",
            rep.step_latency_us(0.5) as f64 / 1e3,
            rep.step_latency_us(0.99) as f64 / 1e3,
            rep.errors
        );
        println!(
            "  load average before {} / after {}",
            load_before.trim(),
            load_after.trim()
        );
        for e in &rep.examples {
            println!("  error: {e}");
        }
    }
    if rep.errors > 0 {
        bail!("{} answers were not what the script expected", rep.errors);
    }
    Ok(())
}

#[derive(Debug, ClapArgs)]
pub struct GradeArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    episode: EpisodeArgs,
    /// JSON lines, each `{"dataset"?, "case", "query_span"?, "texts": [the model's replies]}`, a
    /// trajectory (`case`, `query_span`, `messages`), or `{"dataset", "trajectory": {...}}`;
    /// `dataset` may be left out when one data set is loaded.
    trajectories: PathBuf,
    /// 1, 2, 3 or mrr (stage 2 grades each trajectory as the first of its question).
    #[arg(long, default_value = "3")]
    reward: String,
    /// Grade the trajectories as recorded instead of replaying their assistant texts through the
    /// in-process actor.
    #[arg(long)]
    no_replay: bool,
}

pub fn grade(a: GradeArgs) -> anyhow::Result<()> {
    let reward: Reward = a.reward.parse()?;
    let cfg = a.episode.env_config()?;
    let sets = a.data.load_all()?;
    let f = std::fs::File::open(&a.trajectories)
        .with_context(|| format!("opening {}", a.trajectories.display()))?;
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", a.trajectories.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(&line).with_context(at)?;
        let dataset = v["dataset"].as_str().map(str::to_string);
        let ds = match &dataset {
            Some(id) => sets
                .iter()
                .find(|d| d.id() == id)
                .with_context(|| format!("{}: data set {id:?} is not loaded", at()))?,
            None if sets.len() == 1 => &sets[0],
            None => bail!("{}: no \"dataset\" and several data sets loaded", at()),
        };
        // `{"case", "query_span", "texts": [...]}`: the model's replies alone, replayed.
        let t = if let Some(texts) = v.get("texts") {
            let texts: Vec<String> = serde_json::from_value(texts.clone()).with_context(at)?;
            let case = v["case"]
                .as_u64()
                .with_context(|| format!("{}: no case", at()))? as usize;
            thinkfl_env::replay::replay(ds, &cfg, case, v["query_span"].as_str(), texts)?
        } else {
            let t = v.get("trajectory").cloned().unwrap_or(v);
            let t: thinkfl_core::Trajectory = serde_json::from_value(t).with_context(at)?;
            let case = t.case.with_context(|| format!("{}: no case", at()))?;
            if a.no_replay {
                t
            } else {
                let texts = thinkfl_env::replay::assistant_texts(&t);
                thinkfl_env::replay::replay(ds, &cfg, case, t.query_span.as_deref(), texts)?
            }
        };
        let case = t.case.unwrap_or(0);
        let (r, b) = thinkfl_env::replay::grade_as_training(ds, &cfg, &t, reward);
        println!(
            "{}",
            serde_json::json!({
                "dataset": ds.id(), "case": case, "query_span": t.query_span,
                "reward": r, "reward_kind": reward.to_string(), "factors": b,
            })
        );
    }
    Ok(())
}

#[derive(Debug, ClapArgs)]
pub struct ExportCmd {
    #[command(subcommand)]
    command: ExportCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ExportCommand {
    /// The training and held-out questions as RL engines read them: OpenRLHF JSONL, a TRL
    /// dataset (JSONL), verl parquet; each prompt is the opening of the episode `serve env` plays.
    RlDataset(ExportArgs),
    /// A data set's spans as one Parquet table of the AIOps span columns (pandas, polars and
    /// DuckDB read it; `import --from parquet` reads it back).
    Spans(super::export_spans::Args),
}

pub fn run_export(a: ExportCmd) -> anyhow::Result<()> {
    match a.command {
        ExportCommand::RlDataset(a) => export(a),
        ExportCommand::Spans(a) => super::export_spans::run(a),
    }
}
