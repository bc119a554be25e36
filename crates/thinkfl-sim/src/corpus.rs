//! The training corpus: many simulated data sets, each in the AIOps 2022 layout, with a
//! `corpus.json` manifest that says which are for training and which are held out
//! (`thinkfl corpus build`).
//!
//! A corpus is decided by its seed and its [`Scale`]. It covers the Online Boutique preset and
//! synthetic systems of two sizes for training, at the three difficulties, with every fault type
//! (the 15 of AIOps 2022 and the two code-level ones), several seeds each. Held out are:
//!
//! * data sets of the training topologies made with seeds that no training data set uses (every
//!   data set of a corpus has a seed of its own), one per topology and difficulty; and
//! * one whole topology, Train-Ticket, never used for training, at the three difficulties.
//!
//! Each simulated data set also gives an excerpt (`<name>-excerpt`, same role): a few minutes
//! around a few of its faults with a few traces, the logs, no metrics and no topology, the shape
//! of a real incident export such as the AIOps 2022 sample (see [`crate::excerpt`]).
//!
//! Each data set is a few hours of simulated time at a modest request rate with a few dozen
//! faults, so that it loads in a moment; the whole `full` corpus takes a few minutes to write.

use crate::config::{Difficulty, Preset, SimConfig};
use crate::excerpt::ExcerptConfig;
use crate::{Error, Stats};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use thinkfl_core::FaultType;

/// File name of the manifest in the corpus directory.
pub const MANIFEST: &str = "corpus.json";
/// Version of the manifest's layout.
pub const MANIFEST_VERSION: u32 = 1;

/// How much to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// A quick corpus for tests and trials: every topology and difficulty, half-hour data sets
    /// with a few faults, one training seed.
    Small,
    /// The training corpus: two-hour data sets with 24 faults, three training seeds per
    /// topology and difficulty (648 training cases; at `hard` a weak fault often leaves no
    /// anomalous entry trace: with seed 1, 478 of them have queries).
    Full,
}

impl Scale {
    /// The lowercase name used on the command line and in `corpus.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scale::Small => "small",
            Scale::Full => "full",
        }
    }

    /// Training seeds per training topology and difficulty.
    fn train_seeds(self) -> usize {
        match self {
            Scale::Small => 1,
            Scale::Full => 3,
        }
    }

    fn duration_s(self) -> i64 {
        match self {
            Scale::Small => 1_800,
            Scale::Full => 7_200,
        }
    }

    fn faults(self) -> usize {
        match self {
            Scale::Small => 4,
            Scale::Full => 24,
        }
    }

    /// Request rate relative to each topology's own.
    fn rate_factor(self) -> f64 {
        match self {
            Scale::Small => 0.5,
            Scale::Full => 1.0,
        }
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scale {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "small" => Ok(Scale::Small),
            "full" => Ok(Scale::Full),
            _ => Err(Error::Config(format!(
                "unknown corpus scale {s:?} (expected small or full)"
            ))),
        }
    }
}

/// What a data set is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Used to train on.
    Train,
    /// Kept for evaluation: a seed no training data set uses, or a topology never trained on.
    HeldOut,
}

impl Role {
    /// The name of the role's subdirectory and of its value in `corpus.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Train => "train",
            Role::HeldOut => "held_out",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One simulated system of the corpus.
#[derive(Debug, Clone, Copy, PartialEq)]
struct System {
    preset: Preset,
    /// Services of a synthetic system (0 for the presets).
    services: usize,
    /// Mean traces per minute at `full` scale: about 1,200 spans a minute on each system.
    traces_per_minute: f64,
}

impl System {
    fn name(self) -> String {
        match self.preset {
            Preset::Synthetic => format!("synthetic-{}", self.services),
            p => p.as_str().to_string(),
        }
    }
}

/// The training systems: Online Boutique and synthetic systems of two sizes.
const TRAIN_SYSTEMS: [System; 3] = [
    System {
        preset: Preset::OnlineBoutique,
        services: 0,
        traces_per_minute: 50.0,
    },
    System {
        preset: Preset::Synthetic,
        services: 24,
        traces_per_minute: 90.0,
    },
    System {
        preset: Preset::Synthetic,
        services: 80,
        traces_per_minute: 90.0,
    },
];

/// The system held out entirely.
const HELD_OUT_SYSTEM: System = System {
    preset: Preset::TrainTicket,
    services: 0,
    traces_per_minute: 40.0,
};

const DIFFICULTIES: [Difficulty; 3] = [Difficulty::Easy, Difficulty::Standard, Difficulty::Hard];

/// One data set to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// `online-boutique-hard-s7003`.
    pub name: String,
    /// Relative to the corpus directory: `train/online-boutique-hard-s7003`.
    pub path: String,
    /// Training or held out.
    pub role: Role,
    /// `online-boutique`, `train-ticket`, `synthetic-24`.
    pub topology: String,
    /// The simulation to run.
    pub config: SimConfig,
}

/// The data sets of a corpus, in the order they are written. Every data set has a seed of its
/// own: `seed * 1000 + k` for the k-th data set (k from 1).
pub fn plan(seed: u64, scale: Scale) -> Vec<Spec> {
    let mut out = Vec::new();
    let mut add = |role: Role, sys: System, difficulty: Difficulty| {
        let k = out.len() as u64 + 1;
        let ds_seed = seed.wrapping_mul(1000).wrapping_add(k);
        let topology = sys.name();
        let name = format!("{topology}-{difficulty}-s{ds_seed}");
        let config = SimConfig {
            preset: sys.preset,
            services: if sys.services > 0 {
                sys.services
            } else {
                SimConfig::default().services
            },
            seed: ds_seed,
            duration_s: scale.duration_s(),
            traces_per_minute: sys.traces_per_minute * scale.rate_factor(),
            faults: scale.faults(),
            fault_types: FaultType::ALL.to_vec(),
            difficulty,
            ..SimConfig::default()
        };
        out.push(Spec {
            path: format!("{}/{name}", role.as_str()),
            name,
            role,
            topology,
            config,
        });
    };
    for sys in TRAIN_SYSTEMS {
        for difficulty in DIFFICULTIES {
            for _ in 0..scale.train_seeds() {
                add(Role::Train, sys, difficulty);
            }
        }
    }
    for sys in TRAIN_SYSTEMS {
        for difficulty in DIFFICULTIES {
            add(Role::HeldOut, sys, difficulty);
        }
    }
    for difficulty in DIFFICULTIES {
        add(Role::HeldOut, HELD_OUT_SYSTEM, difficulty);
    }
    out
}

/// One data set in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The data set's name (`online-boutique-hard-s7003`).
    pub name: String,
    /// Relative to the corpus directory.
    pub path: String,
    /// Training or held out.
    pub role: Role,
    /// The topology's name (`online-boutique`, `train-ticket`, `synthetic-24`).
    pub topology: String,
    /// The simulator preset the topology comes from.
    pub preset: Preset,
    /// Services of a synthetic system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<usize>,
    /// The data set's seed.
    pub seed: u64,
    /// The difficulty it was simulated at.
    pub difficulty: Difficulty,
    /// Simulated time, seconds.
    pub duration_s: i64,
    /// Mean request rate of the simulation.
    pub traces_per_minute: f64,
    /// Fault cases in its `groundtruth.csv`.
    pub faults: usize,
    /// Fault cases by type (slug).
    pub fault_types: BTreeMap<String, usize>,
    /// Traces written.
    pub traces: u64,
    /// Spans written.
    pub spans: u64,
    /// Metric samples written.
    pub metrics: u64,
    /// Log lines written.
    pub logs: u64,
    /// The simulated data set this one is an excerpt of ([`crate::excerpt`]); `None` for a
    /// simulated one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt_of: Option<String>,
}

/// Counts of one role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Data sets of the role.
    pub datasets: usize,
    /// Fault cases in them (ground-truth rows).
    pub cases: usize,
}

/// `corpus.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version, [`MANIFEST_VERSION`].
    pub version: u32,
    /// The corpus seed; data set `k` has seed `seed * 1000 + k`.
    pub seed: u64,
    /// How much was generated.
    pub scale: Scale,
    /// Topologies of which no data set is for training.
    pub held_out_topologies: Vec<String>,
    /// Totals of the training data sets.
    pub train: Totals,
    /// Totals of the held-out data sets.
    pub held_out: Totals,
    /// Every data set, in the order written.
    pub datasets: Vec<Entry>,
}

impl Manifest {
    /// Reads `corpus.json` of a corpus directory.
    pub fn read(dir: &Path) -> Result<Manifest, Error> {
        let p = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&p)
            .map_err(|e| Error::Sink(format!("reading {}: {e}", p.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{} is not a corpus manifest: {e}", p.display())))
    }

    /// The data sets of one role.
    pub fn of(&self, role: Role) -> impl Iterator<Item = &Entry> {
        self.datasets.iter().filter(move |e| e.role == role)
    }
}

/// What [`build`] reports after each data set.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The data set just written.
    pub entry: &'a Entry,
    /// Its excerpt, when one was written.
    pub excerpt: Option<&'a Entry>,
    /// Data sets written so far, this one included, of `total`.
    pub done: usize,
    /// Data sets of the corpus.
    pub total: usize,
    /// Seconds this data set took.
    pub seconds: f64,
}

fn io_err(p: &Path, e: std::io::Error) -> Error {
    Error::Sink(format!("{}: {e}", p.display()))
}

/// Writes the corpus of `seed` at `scale` into `dir` (created): every data set of [`plan`],
/// then `corpus.json`. Refuses a directory that already holds a corpus (a manifest or a `train`
/// or `held_out` folder). `progress` is called after each data set.
pub fn build(
    dir: &Path,
    seed: u64,
    scale: Scale,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Manifest, Error> {
    for p in [MANIFEST, Role::Train.as_str(), Role::HeldOut.as_str()] {
        if dir.join(p).exists() {
            return Err(Error::Config(format!(
                "{} already holds a corpus ({p}); choose another directory or remove it",
                dir.display()
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let specs = plan(seed, scale);
    let total = specs.len();
    let mut datasets = Vec::with_capacity(total);
    for (i, spec) in specs.into_iter().enumerate() {
        let t = std::time::Instant::now();
        let out = crate::simulate_to_dir(&spec.config, &dir.join(&spec.path), &mut |_, _| {})?;
        let fault_types = fault_types(&out.faults);
        let Stats {
            traces,
            spans,
            metrics,
            logs,
            ..
        } = out.stats;
        let c = &spec.config;
        let entry = Entry {
            name: spec.name,
            path: spec.path,
            role: spec.role,
            topology: spec.topology,
            preset: c.preset,
            services: (c.preset == Preset::Synthetic).then_some(c.services),
            seed: c.seed,
            difficulty: c.difficulty,
            duration_s: c.duration_s,
            traces_per_minute: c.traces_per_minute,
            faults: out.faults.len(),
            fault_types,
            traces,
            spans,
            metrics,
            logs,
            excerpt_of: None,
        };
        let excerpt = write_excerpt(dir, &entry)?;
        progress(Progress {
            entry: &entry,
            excerpt: excerpt.as_ref(),
            done: i + 1,
            total,
            seconds: t.elapsed().as_secs_f64(),
        });
        datasets.push(entry);
        datasets.extend(excerpt);
    }
    let totals = |role: Role| Totals {
        datasets: datasets.iter().filter(|e| e.role == role).count(),
        cases: datasets
            .iter()
            .filter(|e| e.role == role)
            .map(|e| e.faults)
            .sum(),
    };
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        seed,
        scale,
        held_out_topologies: vec![HELD_OUT_SYSTEM.name()],
        train: totals(Role::Train),
        held_out: totals(Role::HeldOut),
        datasets,
    };
    let p = dir.join(MANIFEST);
    let mut text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::Sink(format!("encoding the manifest: {e}")))?;
    text.push('\n');
    std::fs::write(&p, text).map_err(|e| io_err(&p, e))?;
    Ok(manifest)
}

/// Fault cases by type slug (the raw `failure_type` for an unknown type), as the manifest counts them.
fn fault_types(faults: &[thinkfl_core::FaultCase]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for f in faults {
        let slug = f
            .fault_type()
            .map_or_else(|| f.failure_type.clone(), |t| t.slug().to_string());
        *out.entry(slug).or_insert(0) += 1;
    }
    out
}

/// Writes the excerpt of a simulated data set beside it (`<path>-excerpt`), from the files just
/// written; `None` when none of its faults makes a window (a short data set, only node faults).
fn write_excerpt(dir: &Path, source: &Entry) -> Result<Option<Entry>, Error> {
    let (ds, _) = thinkfl_store::read_aiops(
        &dir.join(&source.path),
        &thinkfl_store::LoadOptions::default(),
    )?;
    // Its own stream: the excerpt's draws never move the simulation's.
    let seed = source.seed ^ 0x6578_6365_7270_7400;
    let (ex, report) = crate::excerpt::excerpt(&ds, &ExcerptConfig::default(), seed)?;
    if report.windows == 0 {
        return Ok(None);
    }
    let name = format!("{}-excerpt", source.name);
    let path = format!("{}-excerpt", source.path);
    thinkfl_store::write_aiops(&ex, &dir.join(&path))?;
    Ok(Some(Entry {
        name,
        path,
        role: source.role,
        topology: source.topology.clone(),
        preset: source.preset,
        services: source.services,
        seed,
        difficulty: source.difficulty,
        duration_s: ExcerptConfig::DEFAULT_LENGTH_S * report.windows as i64,
        traces_per_minute: source.traces_per_minute,
        faults: report.windows,
        fault_types: fault_types(&ex.faults),
        traces: report.traces as u64,
        spans: ex.spans.len() as u64,
        metrics: 0,
        logs: ex.logs.len() as u64,
        excerpt_of: Some(source.name.clone()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn full_plan_has_enough_training_cases_and_clean_held_out_sets() {
        let specs = plan(1, Scale::Full);
        for s in &specs {
            s.config.validate().unwrap();
        }
        let cases = |role: Role| -> usize {
            specs
                .iter()
                .filter(|s| s.role == role)
                .map(|s| s.config.faults)
                .sum()
        };
        assert!(
            cases(Role::Train) >= 300,
            "{} training cases",
            cases(Role::Train)
        );
        assert!(cases(Role::HeldOut) >= 100);
        // Held-out data sets share no seed with training ones; every seed is unique.
        let seeds = |role: Role| -> BTreeSet<u64> {
            specs
                .iter()
                .filter(|s| s.role == role)
                .map(|s| s.config.seed)
                .collect()
        };
        assert!(seeds(Role::Train).is_disjoint(&seeds(Role::HeldOut)));
        let all: BTreeSet<u64> = specs.iter().map(|s| s.config.seed).collect();
        assert_eq!(all.len(), specs.len());
        // One topology is only held out; every training topology is also held out with new
        // seeds.
        let topos = |role: Role| -> BTreeSet<&str> {
            specs
                .iter()
                .filter(|s| s.role == role)
                .map(|s| s.topology.as_str())
                .collect()
        };
        let (held, train) = (topos(Role::HeldOut), topos(Role::Train));
        let only_held: Vec<&&str> = held.difference(&train).collect();
        assert_eq!(only_held, [&"train-ticket"]);
        assert!(topos(Role::Train).is_subset(&topos(Role::HeldOut)));
        assert!(topos(Role::Train).contains("online-boutique"));
        assert!(
            topos(Role::Train)
                .iter()
                .filter(|t| t.starts_with("synthetic-"))
                .count()
                >= 2,
            "synthetic systems of different sizes"
        );
        // Every difficulty and every fault type, the code-level ones included.
        for role in [Role::Train, Role::HeldOut] {
            let diffs: BTreeSet<&str> = specs
                .iter()
                .filter(|s| s.role == role)
                .map(|s| s.config.difficulty.as_str())
                .collect();
            assert_eq!(diffs.len(), 3, "{role}");
        }
        for s in &specs {
            assert_eq!(s.config.fault_types(), FaultType::ALL.to_vec());
            assert!(
                s.config.faults >= FaultType::ALL.len(),
                "each type appears in a data set"
            );
            assert!(s.path.starts_with(s.role.as_str()));
        }
        // Different corpus seeds give different data sets.
        let other: BTreeSet<u64> = plan(2, Scale::Full).iter().map(|s| s.config.seed).collect();
        assert!(other.is_disjoint(&all));
    }

    #[test]
    fn scales_and_roles_parse_and_print() {
        assert_eq!("small".parse::<Scale>().unwrap(), Scale::Small);
        assert_eq!("FULL".parse::<Scale>().unwrap(), Scale::Full);
        assert!("huge".parse::<Scale>().is_err());
        assert_eq!(
            serde_json::to_string(&Role::HeldOut).unwrap(),
            "\"held_out\""
        );
        assert_eq!(Role::HeldOut.to_string(), "held_out");
        let small = plan(3, Scale::Small);
        assert!(small.len() < 25);
        for s in &small {
            s.config.validate().unwrap();
        }
    }
}
