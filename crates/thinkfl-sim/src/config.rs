//! The one configuration struct of the simulator, its named defaults and its validation.

use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thinkfl_core::FaultType;

/// Which microservice system to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Hipster Shop / Online Boutique as deployed in AIOps Challenge 2022: 10 services plus
    /// `redis-cart`, pods `svc-0..2` and `svc2-0`, nodes `node-1..6`.
    OnlineBoutique,
    /// A Train-Ticket-like system of about 40 HTTP services with MongoDB back ends.
    TrainTicket,
    /// A generated layered system of `services` gRPC services.
    Synthetic,
}

impl Preset {
    /// The kebab-case name used on the command line and in `corpus.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::OnlineBoutique => "online-boutique",
            Preset::TrainTicket => "train-ticket",
            Preset::Synthetic => "synthetic",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "online-boutique" | "onlineboutique" | "hipster-shop" | "ob" => {
                Ok(Preset::OnlineBoutique)
            }
            "train-ticket" | "trainticket" | "tt" => Ok(Preset::TrainTicket),
            "synthetic" => Ok(Preset::Synthetic),
            _ => Err(Error::Config(format!(
                "unknown preset {s:?} (expected online-boutique, train-ticket or synthetic)"
            ))),
        }
    }
}

/// How hard the incidents are to localize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    /// Strong faults, no confounders.
    Easy,
    /// Faults of the strengths seen in AIOps 2022, some confounders.
    Standard,
    /// Weak faults (small latency effect), many confounders, noisy pods.
    Hard,
}

impl Difficulty {
    /// The lowercase name used on the command line and in data set names.
    pub fn as_str(self) -> &'static str {
        match self {
            Difficulty::Easy => "easy",
            Difficulty::Standard => "standard",
            Difficulty::Hard => "hard",
        }
    }

    /// Range of the fault severity in [0, 1] that scales every fault parameter.
    pub(crate) fn severity_range(self) -> (f64, f64) {
        match self {
            Difficulty::Easy => (0.8, 1.0),
            Difficulty::Standard => (0.45, 1.0),
            Difficulty::Hard => (0.15, 0.6),
        }
    }

    /// Confounders per simulated hour (background spikes, load bursts, latency hiccups).
    pub(crate) fn confounders_per_hour(self) -> f64 {
        match self {
            Difficulty::Easy => 0.0,
            Difficulty::Standard => 4.0,
            Difficulty::Hard => 12.0,
        }
    }

    /// Fraction of pods that are noisy (more variable latency and resource use).
    pub(crate) fn noisy_pod_fraction(self) -> f64 {
        match self {
            Difficulty::Easy => 0.0,
            Difficulty::Standard => 0.05,
            Difficulty::Hard => 0.15,
        }
    }

    /// Imperfections of the exported traces: none at `easy` and `standard`, messy at `hard`.
    pub fn trace_noise(self) -> TraceNoise {
        match self {
            Difficulty::Easy | Difficulty::Standard => TraceNoise::NONE,
            Difficulty::Hard => TraceNoise::HARD,
        }
    }
}

/// What a real tracing pipeline does to spans on their way to the data set: the exporter drops
/// some, handlers answer before their work ends or hand work to a queue, host clocks disagree,
/// and some services' instrumentation never sets a status. None of it changes what happens in
/// the system (latencies, failures, metrics, logs); only what the traces show.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceNoise {
    /// Probability that the exporter drops a non-root span (its children keep pointing at it).
    pub drop_span: f64,
    /// Probability that a call to a non-critical operation (e-mail, ads, notifications) is made
    /// fire-and-forget: the caller's client span ends at once, the callee's server span starts
    /// after a queueing delay (often after its parent ended) and its outcome never reaches the
    /// caller.
    pub async_call: f64,
    /// Probability that a server span of a called operation goes on after it answered (deferred
    /// work, flushes) and so outlives its parent; entry spans end with their answer.
    pub outlive: f64,
    /// Standard deviation of each node's clock offset, ms; span timestamps of pods on the node
    /// are shifted by it (clamped to ±`MAX_SKEW_MS`).
    pub clock_skew_ms: f64,
    /// Fraction of the non-entry services whose spans carry no status: half of them write an
    /// empty `status_code`, half always their OK code; their errors show only in logs and in
    /// their callers' spans.
    pub statusless_services: f64,
}

impl TraceNoise {
    /// Clean traces, as the simulator wrote them before this knob existed.
    pub const NONE: TraceNoise = TraceNoise {
        drop_span: 0.0,
        async_call: 0.0,
        outlive: 0.0,
        clock_skew_ms: 0.0,
        statusless_services: 0.0,
    };
    /// The `hard` difficulty's traces.
    pub const HARD: TraceNoise = TraceNoise {
        drop_span: 0.02,
        async_call: 0.5,
        outlive: 0.03,
        clock_skew_ms: 40.0,
        statusless_services: 0.3,
    };
    /// Largest clock offset of a node, ms.
    pub const MAX_SKEW_MS: f64 = 400.0;

    /// Whether this is [`TraceNoise::NONE`]: traces exported exactly as simulated.
    pub fn is_none(&self) -> bool {
        *self == TraceNoise::NONE
    }

    fn validate(&self) -> Result<(), Error> {
        for (name, p) in [
            ("drop_span", self.drop_span),
            ("async_call", self.async_call),
            ("outlive", self.outlive),
            ("statusless_services", self.statusless_services),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::Config(format!(
                    "trace_noise.{name} = {p} must be a probability in [0, 1]"
                )));
            }
        }
        if !(0.0..=Self::MAX_SKEW_MS).contains(&self.clock_skew_ms) {
            return Err(Error::Config(format!(
                "trace_noise.clock_skew_ms = {} must be in [0, {}]",
                self.clock_skew_ms,
                Self::MAX_SKEW_MS
            )));
        }
        Ok(())
    }
}

impl Default for TraceNoise {
    fn default() -> Self {
        TraceNoise::NONE
    }
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Difficulty {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "easy" => Ok(Difficulty::Easy),
            "standard" | "normal" => Ok(Difficulty::Standard),
            "hard" => Ok(Difficulty::Hard),
            _ => Err(Error::Config(format!(
                "unknown difficulty {s:?} (expected easy, standard or hard)"
            ))),
        }
    }
}

/// Everything the simulator needs; one seed drives every random choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// The system to simulate.
    pub preset: Preset,
    /// Number of services of the `synthetic` preset (ignored by the others).
    pub services: usize,
    /// Seed of every random choice: same seed, byte-identical output.
    pub seed: u64,
    /// First second of the simulated period (Unix epoch). The default is the first second of
    /// the AIOps 2022 day 2022-03-20 in UTC+8.
    pub start_epoch_s: i64,
    /// Length of the simulated period in seconds (whole minutes).
    pub duration_s: i64,
    /// Mean number of user requests (traces) per minute at the average of the daily curve.
    pub traces_per_minute: f64,
    /// Peak-to-trough amplitude of the daily rate curve, as a fraction of the mean (0 = flat).
    pub daily_amplitude: f64,
    /// Offset of the local time zone from UTC in hours, for the daily curve (AIOps 2022: +8).
    pub utc_offset_h: i64,
    /// Number of faults to inject.
    pub faults: usize,
    /// Shortest fault, seconds.
    pub fault_min_s: i64,
    /// Longest fault, seconds.
    pub fault_max_s: i64,
    /// Quiet time kept between two faults, seconds.
    pub min_gap_s: i64,
    /// Quiet time at the start, before the first fault, seconds (gives baselines to compare with).
    pub warmup_s: i64,
    /// Fault types to draw from; empty means the 15 of AIOps 2022 (the code-level types are
    /// drawn only when listed).
    pub fault_types: Vec<FaultType>,
    /// Strength of faults and number of confounders.
    pub difficulty: Difficulty,
    /// Whether to add confounders (background spikes, load bursts, hiccups, noisy pods) at the
    /// rate the difficulty sets.
    pub confounders: bool,
    /// Write service application logs.
    pub logs: bool,
    /// Write istio-style call metrics (the largest metric family on big topologies).
    pub istio_metrics: bool,
    /// Client deadline of a call, ms: a call slower than this fails with DEADLINE_EXCEEDED.
    pub call_timeout_ms: f64,
    /// Imperfections of the exported traces; `None` takes the difficulty's
    /// ([`Difficulty::trace_noise`]: messy at `hard` only).
    pub trace_noise: Option<TraceNoise>,
}

/// Default seed.
pub const DEFAULT_SEED: u64 = 7;
/// 2022-03-20 00:00:00 UTC+8, the first second of an AIOps 2022 day.
pub const DEFAULT_START_EPOCH_S: i64 = 1_647_705_600;
/// Two hours.
pub const DEFAULT_DURATION_S: i64 = 7_200;
/// About 25 spans per Online Boutique trace: ~300 k spans in two hours.
pub const DEFAULT_TRACES_PER_MINUTE: f64 = 100.0;
/// Default [`SimConfig::daily_amplitude`]: the rate runs from 25% below its mean before dawn to
/// 25% above it in the afternoon.
pub const DEFAULT_DAILY_AMPLITUDE: f64 = 0.5;
/// Default [`SimConfig::utc_offset_h`]: UTC+8, the time zone of AIOps 2022.
pub const DEFAULT_UTC_OFFSET_H: i64 = 8;
/// Default [`SimConfig::faults`].
pub const DEFAULT_FAULTS: usize = 10;
/// Default [`SimConfig::fault_min_s`]: two minutes.
pub const DEFAULT_FAULT_MIN_S: i64 = 120;
/// Three minutes: the paper's `search_fluctuating_metrics` flags a value beyond 3σ of the
/// ±1200 s baseline, and that baseline contains the fault itself; a step change is visible only
/// while it covers less than about a tenth of the 40-minute baseline (sqrt((1-f)/f) > 3).
/// Longer faults are allowed (`fault_max_s`) but hide their metric steps from that tool.
pub const DEFAULT_FAULT_MAX_S: i64 = 180;
/// Default [`SimConfig::min_gap_s`]: a minute of quiet between faults.
pub const DEFAULT_MIN_GAP_S: i64 = 60;
/// Default [`SimConfig::warmup_s`]: ten minutes of normal behaviour before the first fault.
pub const DEFAULT_WARMUP_S: i64 = 600;
/// Default [`SimConfig::services`] of the `synthetic` preset.
pub const DEFAULT_SYNTHETIC_SERVICES: usize = 100;
/// Largest synthetic system accepted.
pub const MAX_SYNTHETIC_SERVICES: usize = 5_000;
/// Default [`SimConfig::call_timeout_ms`]: 20 s.
pub const DEFAULT_CALL_TIMEOUT_MS: f64 = 20_000.0;

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            preset: Preset::OnlineBoutique,
            services: DEFAULT_SYNTHETIC_SERVICES,
            seed: DEFAULT_SEED,
            start_epoch_s: DEFAULT_START_EPOCH_S,
            duration_s: DEFAULT_DURATION_S,
            traces_per_minute: DEFAULT_TRACES_PER_MINUTE,
            daily_amplitude: DEFAULT_DAILY_AMPLITUDE,
            utc_offset_h: DEFAULT_UTC_OFFSET_H,
            faults: DEFAULT_FAULTS,
            fault_min_s: DEFAULT_FAULT_MIN_S,
            fault_max_s: DEFAULT_FAULT_MAX_S,
            min_gap_s: DEFAULT_MIN_GAP_S,
            warmup_s: DEFAULT_WARMUP_S,
            fault_types: Vec::new(),
            difficulty: Difficulty::Standard,
            confounders: true,
            logs: true,
            istio_metrics: true,
            call_timeout_ms: DEFAULT_CALL_TIMEOUT_MS,
            trace_noise: None,
        }
    }
}

impl SimConfig {
    /// Fault types in use: `fault_types`, or the 15 of AIOps 2022 when empty.
    pub fn fault_types(&self) -> Vec<FaultType> {
        if self.fault_types.is_empty() {
            FaultType::AIOPS_2022.to_vec()
        } else {
            self.fault_types.clone()
        }
    }

    /// The trace imperfections in effect: `trace_noise`, else the difficulty's.
    pub fn trace_noise(&self) -> TraceNoise {
        self.trace_noise
            .unwrap_or_else(|| self.difficulty.trace_noise())
    }

    /// Number of minutes simulated.
    pub fn minutes(&self) -> i64 {
        self.duration_s / 60
    }

    /// Checks every field; the message names the field and the accepted range.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if self.duration_s < 600 || self.duration_s % 60 != 0 {
            return bad(format!(
                "duration_s = {} must be a whole number of minutes and at least 600",
                self.duration_s
            ));
        }
        if self.duration_s > 31 * 86_400 {
            return bad(format!("duration_s = {} exceeds 31 days", self.duration_s));
        }
        if self.start_epoch_s < 0 || self.start_epoch_s % 60 != 0 {
            return bad(format!(
                "start_epoch_s = {} must be a non-negative whole minute",
                self.start_epoch_s
            ));
        }
        if !(self.traces_per_minute.is_finite()
            && self.traces_per_minute > 0.0
            && self.traces_per_minute <= 1.0e6)
        {
            return bad(format!(
                "traces_per_minute = {} must be in (0, 1e6]",
                self.traces_per_minute
            ));
        }
        if !(0.0..=0.95).contains(&self.daily_amplitude) {
            return bad(format!(
                "daily_amplitude = {} must be in [0, 0.95]",
                self.daily_amplitude
            ));
        }
        if !(-12..=14).contains(&self.utc_offset_h) {
            return bad(format!(
                "utc_offset_h = {} must be in [-12, 14]",
                self.utc_offset_h
            ));
        }
        if self.preset == Preset::Synthetic
            && !(3..=MAX_SYNTHETIC_SERVICES).contains(&self.services)
        {
            return bad(format!(
                "services = {} must be in [3, {MAX_SYNTHETIC_SERVICES}] for the synthetic preset",
                self.services
            ));
        }
        if self.fault_min_s < 60 || self.fault_max_s < self.fault_min_s {
            return bad(format!(
                "fault_min_s = {} must be >= 60 and <= fault_max_s = {}",
                self.fault_min_s, self.fault_max_s
            ));
        }
        if self.min_gap_s < 0 || self.warmup_s < 0 {
            return bad("min_gap_s and warmup_s must be >= 0".into());
        }
        if !(self.call_timeout_ms.is_finite() && self.call_timeout_ms >= 100.0) {
            return bad(format!(
                "call_timeout_ms = {} must be >= 100",
                self.call_timeout_ms
            ));
        }
        if let Some(n) = &self.trace_noise {
            n.validate()?;
        }
        if self.faults > 0 {
            // Faults are placed one per slot; each slot must hold the shortest fault and a gap.
            let usable = self.duration_s - self.warmup_s;
            let slot = usable / self.faults as i64;
            if slot < self.fault_min_s + self.min_gap_s {
                return bad(format!(
                    "{} faults do not fit in {} s after a {} s warm-up: each needs at least \
                     fault_min_s + min_gap_s = {} s; lengthen the duration or lower faults",
                    self.faults,
                    self.duration_s,
                    self.warmup_s,
                    self.fault_min_s + self.min_gap_s
                ));
            }
        }
        Ok(())
    }
}

/// Parses `90s`, `45m`, `2h`, `1d` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<i64, Error> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('s') => (&t[..t.len() - 1], 1),
        Some('m') => (&t[..t.len() - 1], 60),
        Some('h') => (&t[..t.len() - 1], 3600),
        Some('d') => (&t[..t.len() - 1], 86_400),
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().map_err(|_| {
        Error::Config(format!(
            "bad duration {s:?} (expected e.g. 90s, 45m, 2h, 1d)"
        ))
    })?;
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::Config(format!("duration {s:?} must be positive")));
    }
    Ok((v * mult as f64).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_fields_are_named() {
        SimConfig::default().validate().unwrap();
        let c = SimConfig {
            faults: 30,
            ..SimConfig::default()
        };
        c.validate().unwrap();
        let c = SimConfig {
            faults: 60,
            ..SimConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("faults"));
        let c = SimConfig {
            traces_per_minute: 0.0,
            ..SimConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("traces_per_minute")
        );
        let c = SimConfig {
            preset: Preset::Synthetic,
            services: 2,
            ..SimConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("services"));
        let c = SimConfig {
            trace_noise: Some(TraceNoise {
                drop_span: 1.5,
                ..TraceNoise::HARD
            }),
            ..SimConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("drop_span"));
        let c = SimConfig {
            trace_noise: Some(TraceNoise {
                clock_skew_ms: 5_000.0,
                ..TraceNoise::NONE
            }),
            ..SimConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("clock_skew_ms")
        );
    }

    #[test]
    fn trace_noise_follows_the_difficulty_unless_set() {
        let c = SimConfig::default();
        assert!(c.trace_noise().is_none());
        assert_eq!(
            c.fault_types().len(),
            15,
            "code-level types only when listed"
        );
        let hard = SimConfig {
            difficulty: Difficulty::Hard,
            ..SimConfig::default()
        };
        assert_eq!(hard.trace_noise(), TraceNoise::HARD);
        let clean_hard = SimConfig {
            trace_noise: Some(TraceNoise::NONE),
            ..hard
        };
        assert!(clean_hard.trace_noise().is_none());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("2h").unwrap(), 7200);
        assert_eq!(parse_duration("45m").unwrap(), 2700);
        assert_eq!(parse_duration("1d").unwrap(), 86_400);
        assert_eq!(parse_duration("600").unwrap(), 600);
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1h").is_err());
        assert_eq!("hard".parse::<Difficulty>().unwrap(), Difficulty::Hard);
        assert_eq!(
            "online-boutique".parse::<Preset>().unwrap(),
            Preset::OnlineBoutique
        );
    }
}
