//! Fuzzing of thinkfl's parsers and servers on stable Rust (cargo-fuzz needs nightly): a
//! seeded structured mutator ([`mutate`]) over the real fixtures and the repository's test
//! data, one harness per parser ([`TARGETS`]), and the run loop that counts inputs, catches
//! panics and flags rejections that do not say where the input is wrong.
//!
//! Input `i` of a run with seed `s` depends on `(s, i)` only, so every finding is reproduced
//! with `thinkfl fuzz --target NAME --seed S --from I --iterations 1`.

#![warn(missing_docs)]

mod http;
pub mod model;
pub mod mutate;
mod seeds;
mod snapshot;
mod store;
mod text;

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

pub use seeds::Corpus;

/// Errors of setting a harness up (not findings: those are [`Finding`]s of a [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A fixture or scratch file that could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A harness whose seeds or services could not be built.
    #[error("setting up fuzz target {target}: {message}")]
    Setup {
        /// The target.
        target: &'static str,
        /// What failed.
        message: String,
    },
    /// A target name that is not in [`TARGETS`].
    #[error("unknown fuzz target {name:?} (known: {})", known.join(", "))]
    UnknownTarget {
        /// The name asked for.
        name: String,
        /// The known names.
        known: Vec<&'static str>,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn setup(target: &'static str, message: impl std::fmt::Display) -> Self {
        Error::Setup {
            target,
            message: message.to_string(),
        }
    }
}

/// A result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What a harness made of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The parser took the input.
    Accepted,
    /// The parser refused it with an error that says where (file, line, field).
    Rejected,
    /// The input broke a contract without panicking: a rejection that names no place, two
    /// readers that disagree, a server error status for a client's mistake.
    Finding(String),
}

/// One parser under test: it gets raw bytes and says what became of them.
pub trait Harness {
    /// Feeds one input.
    fn run(&mut self, input: &[u8]) -> Verdict;
}

/// A harness with its seeds and its dictionary of format tokens.
pub struct Target {
    /// The name `thinkfl fuzz --target` takes.
    pub name: &'static str,
    /// Inputs the mutator starts from.
    pub seeds: Vec<Vec<u8>>,
    /// Tokens of the format that mutations insert.
    pub dict: Vec<Vec<u8>>,
    harness: Box<dyn Harness>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("seeds", &self.seeds.len())
            .field("dict", &self.dict.len())
            .finish()
    }
}

impl Target {
    /// A target of one's own harness (the crate's targets come from [`target`]).
    pub fn new(
        name: &'static str,
        seeds: Vec<Vec<u8>>,
        dict: &[&str],
        harness: impl Harness + 'static,
    ) -> Self {
        Self {
            name,
            seeds,
            dict: dict.iter().map(|d| d.as_bytes().to_vec()).collect(),
            harness: Box::new(harness),
        }
    }

    /// Feeds one input, a panic caught and returned as its message.
    pub fn feed(&mut self, input: &[u8]) -> std::result::Result<Verdict, String> {
        install_panic_hook();
        CAPTURE.with(|c| *c.borrow_mut() = Some(String::new()));
        let r = catch_unwind(AssertUnwindSafe(|| self.harness.run(input)));
        let msg = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
        r.map_err(|_| msg)
    }
}

/// The targets: name and what it feeds.
pub const TARGETS: &[(&str, &str)] = &[
    (
        "spans-csv",
        "trace/all/*.csv through both span readers (serial and parallel), which must agree",
    ),
    (
        "metric-csv",
        "metric/container/*.csv (long format: timestamp,cmdb_id,kpi_name,value)",
    ),
    (
        "service-metric-csv",
        "metric/service/*.csv (wide format, one kpi a column)",
    ),
    (
        "preprocessed-metric-csv",
        "metric/all/metrics.csv of the paper's preprocessed layout",
    ),
    ("log-csv", "log/all/*.csv"),
    (
        "groundtruth-csv",
        "groundtruth.csv, with and without fault_durations.csv",
    ),
    ("topology-json", "topology.json"),
    (
        "store-snapshot",
        "DIR/.thinkfl/store.snap, the store snapshot, as it is and resealed with fresh checksums",
    ),
    ("otlp-json", "an OTLP JSON trace export (resourceSpans)"),
    ("jaeger-json", "a Jaeger JSON trace export (data[].spans)"),
    (
        "tool-call",
        "the tool-call parser on model text (Hermes tags, the paper's unbalanced tags, OpenAI nesting, ReAct)",
    ),
    (
        "tool-args",
        "every tool's JSON arguments, called on the real sample",
    ),
    (
        "grammar",
        "the grammar compiler: grammars decoded from the bytes, compiled, and matched against the reference matcher",
    ),
    (
        "gguf",
        "a GGUF file: header, metadata, tokenizer, template, config and tensors of a tiny model",
    ),
    ("tokenizer-json", "a Hugging Face tokenizer.json"),
    (
        "chat-template",
        "a Jinja chat template, compiled and rendered on a tool-calling conversation",
    ),
    (
        "peft-adapter",
        "a PEFT adapter directory (adapter_config.json, adapter_model.safetensors) applied to a tiny model",
    ),
    (
        "tool-server-http",
        "HTTP requests (method, path, query, body) to every route of the tool server",
    ),
    (
        "env-server-http",
        "HTTP requests to every route of the RL environment server, episodes and steps included",
    ),
];

/// Builds the harness `name` over `corpus`'s seeds.
pub fn target(name: &str, corpus: &Corpus) -> Result<Target> {
    Ok(match name {
        "spans-csv" => store::spans(corpus)?,
        "metric-csv" => store::csv_table(corpus, "metric-csv")?,
        "service-metric-csv" => store::csv_table(corpus, "service-metric-csv")?,
        "preprocessed-metric-csv" => store::csv_table(corpus, "preprocessed-metric-csv")?,
        "log-csv" => store::csv_table(corpus, "log-csv")?,
        "groundtruth-csv" => store::csv_table(corpus, "groundtruth-csv")?,
        "topology-json" => store::csv_table(corpus, "topology-json")?,
        "store-snapshot" => snapshot::snapshot(corpus)?,
        "otlp-json" => store::import(corpus, "otlp-json")?,
        "jaeger-json" => store::import(corpus, "jaeger-json")?,
        "tool-call" => text::tool_call(),
        "tool-args" => text::tool_args(corpus)?,
        "grammar" => text::grammar(),
        "gguf" => model::gguf(corpus)?,
        "tokenizer-json" => model::tokenizer_json(corpus)?,
        "chat-template" => model::chat_template(corpus)?,
        "peft-adapter" => model::peft_adapter(corpus)?,
        "tool-server-http" => http::tool_server(corpus)?,
        "env-server-http" => http::env_server(corpus)?,
        _ => {
            return Err(Error::UnknownTarget {
                name: name.to_string(),
                known: TARGETS.iter().map(|t| t.0).collect(),
            });
        }
    })
}

/// A contract broken by one input: a panic or a [`Verdict::Finding`].
#[derive(Debug, Clone)]
pub struct Finding {
    /// The iteration that generated the input (with the run's seed, it reproduces it).
    pub iteration: u64,
    /// Whether the harness panicked (otherwise it returned a finding).
    pub panic: bool,
    /// The panic message or the finding.
    pub message: String,
    /// The input.
    pub input: Vec<u8>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The target.
    pub target: String,
    /// The run's seed.
    pub seed: u64,
    /// Inputs tried.
    pub tried: u64,
    /// Inputs the parser took.
    pub accepted: u64,
    /// Inputs it refused with an error that says where.
    pub rejected: u64,
    /// Panics and findings, all counted.
    pub findings: u64,
    /// The first [`Report::KEPT`] findings whose messages differ, with their inputs.
    pub kept: Vec<Finding>,
    /// The slowest input's time and iteration.
    pub slowest: (Duration, u64),
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Report {
    /// Findings kept with their inputs; the rest are only counted.
    pub const KEPT: usize = 20;
}

/// Runs `iterations` inputs from iteration `from` on, calling `progress` every 1,000 inputs.
/// No time bound: see [`run_bounded`].
pub fn run(
    target: &mut Target,
    seed: u64,
    from: u64,
    iterations: u64,
    progress: impl FnMut(&Report),
) -> Report {
    run_inner(target, seed, from, iterations, None, progress)
}

/// An input that has run longer than a run's bound, as the watchdog sees it while it runs.
#[derive(Debug)]
pub struct Hang<'a> {
    /// The target.
    pub target: &'a str,
    /// The iteration that generated the input.
    pub iteration: u64,
    /// How long it has run so far.
    pub elapsed: Duration,
    /// The input.
    pub input: &'a [u8],
}

/// [`run`] with a watchdog: an input that takes longer than `bound` is a finding (a hang).
/// One that comes back late is counted as such; for one still running, a watchdog thread calls
/// `on_hang` once, while it runs (a harness cannot be stopped from outside, so `thinkfl fuzz`
/// writes the input out and exits there; if `on_hang` returns, the run goes on waiting).
pub fn run_bounded(
    target: &mut Target,
    seed: u64,
    from: u64,
    iterations: u64,
    bound: Duration,
    on_hang: impl Fn(&Hang<'_>) + Sync,
    progress: impl FnMut(&Report),
) -> Report {
    run_inner(
        target,
        seed,
        from,
        iterations,
        Some((bound, &on_hang)),
        progress,
    )
}

/// The input being fed and when it started, shared with the watchdog.
#[derive(Default)]
struct Current {
    /// (iteration, start, input, reported) while an input runs.
    running: Option<(u64, Instant, Vec<u8>, bool)>,
    done: bool,
}

type OnHang<'a> = &'a (dyn Fn(&Hang<'_>) + Sync);

fn run_inner(
    target: &mut Target,
    seed: u64,
    from: u64,
    iterations: u64,
    bound: Option<(Duration, OnHang<'_>)>,
    progress: impl FnMut(&Report),
) -> Report {
    let current = std::sync::Mutex::new(Current::default());
    let wake = std::sync::Condvar::new();
    let name = target.name;
    std::thread::scope(|scope| {
        if let Some((bound, on_hang)) = bound {
            let (current, wake) = (&current, &wake);
            scope.spawn(move || {
                // Looks a few times per bound (at least every 100 ms), so a hang is seen at
                // most a quarter bound late.
                let tick = (bound / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
                let mut c = current.lock().unwrap_or_else(|e| e.into_inner());
                while !c.done {
                    if let Some((iteration, start, input, reported)) = c.running.as_mut()
                        && !*reported
                        && start.elapsed() > bound
                    {
                        *reported = true;
                        on_hang(&Hang {
                            target: name,
                            iteration: *iteration,
                            elapsed: start.elapsed(),
                            input,
                        });
                    }
                    c = wake
                        .wait_timeout(c, tick)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            });
        }
        let report = feed_all(
            target,
            seed,
            from,
            iterations,
            bound.map(|b| (b.0, &current)),
            progress,
        );
        current.lock().unwrap_or_else(|e| e.into_inner()).done = true;
        wake.notify_all();
        report
    })
}

fn feed_all(
    target: &mut Target,
    seed: u64,
    from: u64,
    iterations: u64,
    watch: Option<(Duration, &std::sync::Mutex<Current>)>,
    mut progress: impl FnMut(&Report),
) -> Report {
    let mut report = Report {
        target: target.name.to_string(),
        seed,
        ..Report::default()
    };
    let start = Instant::now();
    let mut input = Vec::new();
    for i in from..from.saturating_add(iterations) {
        let mut rng = mutate::iteration_rng(seed, i);
        mutate::generate(&mut rng, &target.seeds, &target.dict, &mut input);
        // One start time for the watchdog and the count below: an input the watchdog called
        // a hang is always counted as one.
        let t = Instant::now();
        if let Some((_, current)) = watch {
            let mut c = current.lock().unwrap_or_else(|e| e.into_inner());
            let mut buf = c.running.take().map(|r| r.2).unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(&input);
            c.running = Some((i, t, buf, false));
        }
        let outcome = target.feed(&input);
        let took = t.elapsed();
        if let Some((_, current)) = watch {
            let mut c = current.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = c.running.as_mut() {
                // Keeps the buffer for the next input; the watchdog skips reported ones.
                r.3 = true;
            }
        }
        if took > report.slowest.0 {
            report.slowest = (took, i);
        }
        report.tried += 1;
        if report.tried.is_multiple_of(1000) {
            report.elapsed = start.elapsed();
            progress(&report);
        }
        let over = watch.and_then(|(bound, _)| (took > bound).then_some(bound));
        let (panic, message) = match (outcome, over) {
            (Err(m), _) => (true, m),
            (Ok(_), Some(bound)) => (
                false,
                format!(
                    "hang: the input took {:.0} ms, over the bound of {:.0} ms",
                    took.as_secs_f64() * 1e3,
                    bound.as_secs_f64() * 1e3
                ),
            ),
            (Ok(Verdict::Accepted), None) => {
                report.accepted += 1;
                continue;
            }
            (Ok(Verdict::Rejected), None) => {
                report.rejected += 1;
                continue;
            }
            (Ok(Verdict::Finding(m)), None) => (false, m),
        };
        report.findings += 1;
        let hang = message.starts_with("hang: ");
        let seen = report
            .kept
            .iter()
            .any(|f| f.message == message || (hang && f.message.starts_with("hang: ")));
        if report.kept.len() < Report::KEPT && !seen {
            report.kept.push(Finding {
                iteration: i,
                panic,
                message,
                input: input.clone(),
            });
        }
    }
    report.elapsed = start.elapsed();
    report
}

thread_local! {
    /// `Some` while this thread feeds an input: the panic hook writes the message there instead
    /// of printing it.
    static CAPTURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Chains a hook before the default one that keeps a fuzzed input's panic quiet (a run may
/// panic millions of times) and records its message and place; other panics print as usual.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let captured = CAPTURE.with(|c| {
                let mut c = c.borrow_mut();
                match c.as_mut() {
                    Some(slot) => {
                        let payload = info
                            .payload()
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| info.payload().downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "non-string panic payload".into());
                        let at = info
                            .location()
                            .map(|l| format!(" at {}:{}", l.file(), l.line()))
                            .unwrap_or_default();
                        *slot = format!("panic: {payload}{at}");
                        true
                    }
                    None => false,
                }
            });
            if !captured {
                previous(info);
            }
        }));
    });
}

/// Rejection check shared by the file-reading harnesses: the message names the file.
pub(crate) fn names_file(message: &str, file: &str) -> Verdict {
    if message.contains(file) {
        Verdict::Rejected
    } else {
        Verdict::Finding(format!(
            "rejection does not name the file {file}: {message}"
        ))
    }
}
