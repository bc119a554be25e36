//! The JSON-lines training log (one [`StepLog`] per step) and its report: an HTML page with one
//! SVG line chart per logged quantity.

use crate::config::{StageConfig, StageKind};
use crate::error::{Error, Result};
use crate::trainer::UpdateStats;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use thinkfl_core::Trajectory;
use thinkfl_grader::GradeBreakdown;

/// One step of training.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// Steps since the start of the run, over every stage.
    pub global_step: u64,
    /// Index of the stage in the stages file.
    pub stage: usize,
    /// The stage's name.
    pub stage_name: String,
    /// `sft`, or `grpo` followed by the reward (`grpo1`, `grpo2`, `grpomrr`).
    pub kind: String,
    /// Step within the stage, 1-based.
    pub stage_step: usize,
    /// Learning rate of the step.
    pub lr: f64,
    /// Loss of the update; `None` when nothing was trained.
    pub loss: Option<f64>,
    /// Gradient norm before clipping.
    pub grad_norm: Option<f64>,
    /// Tokens through forward and backward.
    pub tokens: usize,
    /// Tokens the loss was computed on.
    pub trained_tokens: usize,
    /// Wall time of the update (forward, backward, optimizer step).
    pub update_seconds: f64,
    /// `tokens` per second of the update.
    pub tokens_per_second: f64,
    /// GRPO: rollouts graded in the step (0 for SFT, which leaves the rollout fields empty).
    pub rollouts: usize,
    /// GRPO: wall time of running and grading the rollouts.
    pub rollout_seconds: f64,
    /// GRPO: mean reward of the rollouts.
    pub reward: Option<f64>,
    /// GRPO: population standard deviation of the rewards.
    pub reward_std: Option<f64>,
    /// GRPO: mean recall component of the grades.
    pub recall: Option<f64>,
    /// GRPO: mean format component of the grades.
    pub format: Option<f64>,
    /// GRPO: mean route component of the grades.
    pub route: Option<f64>,
    /// GRPO: mean hallucination component of the grades.
    pub hallucination: Option<f64>,
    /// GRPO: mean diversity component, over the rollouts that have one.
    pub diversity: Option<f64>,
    /// Share of rollouts whose first answer is right.
    pub r_at_1: Option<f64>,
    /// Max minus min advantage over the batch.
    pub advantage_spread: Option<f64>,
    /// GRPO: mean k3 KL to the reference per trained token.
    pub kl: Option<f64>,
    /// GRPO: share of trained tokens whose objective took the clipped branch.
    pub clip_fraction: Option<f64>,
    /// Mean completion tokens per rollout.
    pub response_tokens: Option<f64>,
    /// GRPO: mean tool calls per rollout.
    pub tool_calls: Option<f64>,
    /// GRPO: groups whose rewards differ, so that they give advantages and are trained on.
    pub groups_used: usize,
    /// GRPO: groups skipped because all their rewards agreed (no advantage).
    pub groups_skipped: usize,
    /// Batches of questions drawn for this step: a draw whose groups all agree (no advantage)
    /// is followed by another, up to `grpo.max_draws` (DAPO's dynamic sampling).
    #[serde(default)]
    pub draws: usize,
    /// The teacher's decisions reproduced on training questions (see [`crate::watch`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_train: Option<crate::watch::Agreement>,
    /// ...and on held-out questions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_held_out: Option<crate::watch::Agreement>,
    #[serde(skip)]
    acc: Acc,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Acc {
    rewards: Vec<f64>,
    recall: f64,
    format: f64,
    route: f64,
    halluc: f64,
    div: f64,
    div_n: usize,
    r1: usize,
    resp: f64,
    calls: f64,
}

impl StepLog {
    /// The record of step `stage_step` (1-based) of stage `stage`, global step `global_step`.
    pub fn new(stage: usize, sc: &StageConfig, stage_step: usize, global_step: u64) -> Self {
        StepLog {
            global_step,
            stage,
            stage_name: sc.name.clone(),
            kind: match sc.kind {
                StageKind::Sft => "sft".into(),
                StageKind::Grpo => format!(
                    "grpo{}",
                    sc.reward.map(|r| r.to_string()).unwrap_or_default()
                ),
            },
            stage_step,
            lr: sc.lr,
            ..Default::default()
        }
    }

    /// Counts one graded rollout and its `reward` (turned into means by [`StepLog::finish`]).
    pub fn add_rollout(&mut self, b: &GradeBreakdown, reward: f64, t: &Trajectory) {
        let a = &mut self.acc;
        a.rewards.push(reward);
        a.recall += b.recall;
        a.format += b.format;
        a.route += b.route;
        a.halluc += b.hallucination;
        if let Some(v) = b.diversity {
            a.div += v;
            a.div_n += 1;
        }
        a.r1 += usize::from(b.rank == Some(0));
        a.resp += t.tokens.completion as f64;
        a.calls += t.calls.len() as f64;
    }

    /// Records the spread of the batch's advantages.
    pub fn set_advantages(&mut self, adv: &[f64]) {
        if !adv.is_empty() {
            let max = adv.iter().cloned().fold(f64::MIN, f64::max);
            let min = adv.iter().cloned().fold(f64::MAX, f64::min);
            self.advantage_spread = Some(max - min);
        }
    }

    /// Records the update's loss, gradient norm, tokens and time (and, for GRPO, KL and clip
    /// fraction).
    pub fn set_update(&mut self, s: &UpdateStats) {
        self.loss = Some(s.loss);
        self.grad_norm = Some(s.grad_norm);
        self.tokens = s.tokens;
        self.trained_tokens = s.trained_tokens;
        self.update_seconds = s.seconds;
        self.tokens_per_second = s.tokens_per_second();
        if self.kind != "sft" {
            self.kl = Some(s.kl);
            self.clip_fraction = Some(s.clip_fraction);
        }
    }

    /// Turn the per-rollout sums into means.
    pub fn finish(&mut self) {
        let a = &self.acc;
        let n = a.rewards.len();
        self.rollouts = n;
        if n == 0 {
            return;
        }
        let nf = n as f64;
        let mean = a.rewards.iter().sum::<f64>() / nf;
        self.reward = Some(mean);
        self.reward_std =
            Some((a.rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / nf).sqrt());
        self.recall = Some(a.recall / nf);
        self.format = Some(a.format / nf);
        self.route = Some(a.route / nf);
        self.hallucination = Some(a.halluc / nf);
        self.diversity = (a.div_n > 0).then(|| a.div / a.div_n as f64);
        self.r_at_1 = Some(a.r1 as f64 / nf);
        self.response_tokens = Some(a.resp / nf);
        self.tool_calls = Some(a.calls / nf);
    }
}

/// Append-only JSON-lines writer (flushed per line, so a crash loses nothing written).
#[derive(Debug)]
pub struct LogWriter {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl LogWriter {
    /// Opens (or creates) the log at `path` for appending: a resumed run continues its log.
    pub fn append(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(LogWriter {
            file,
            path: path.to_path_buf(),
        })
    }
    /// Appends one record as a JSON line and flushes it.
    pub fn write(&mut self, rec: &StepLog) -> Result<()> {
        let mut line = serde_json::to_string(rec)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(&self.path, e))?;
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// Read a log; a bad line is an error naming its number.
pub fn read_log(path: &Path) -> Result<Vec<StepLog>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::file(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

type Getter = fn(&StepLog) -> Option<f64>;

/// The charted quantities.
pub const SERIES: [(&str, Getter); 19] = [
    ("loss", |r| r.loss),
    ("reward", |r| r.reward),
    ("recall R", |r| r.recall),
    ("format F", |r| r.format),
    ("diversity V", |r| r.diversity),
    ("route P", |r| r.route),
    ("hallucination H", |r| r.hallucination),
    ("R@1 on batch", |r| r.r_at_1),
    ("advantage spread", |r| r.advantage_spread),
    ("KL (k3)", |r| r.kl),
    ("clip fraction", |r| r.clip_fraction),
    ("response tokens", |r| r.response_tokens),
    ("watch, train: top pod = teacher's", |r| {
        r.watch_train.as_ref().map(|a| a.top_pod)
    }),
    ("watch, train: spans = teacher's", |r| {
        r.watch_train.as_ref().map(|a| a.spans)
    }),
    ("watch, train: right", |r| {
        r.watch_train.as_ref().map(|a| a.right)
    }),
    ("watch, held-out: top pod = teacher's", |r| {
        r.watch_held_out.as_ref().map(|a| a.top_pod)
    }),
    ("watch, held-out: right", |r| {
        r.watch_held_out.as_ref().map(|a| a.right)
    }),
    ("watch, held-out: distinct top pods", |r| {
        r.watch_held_out
            .as_ref()
            .map(|a| a.distinct_top_pods as f64)
    }),
    ("tokens/s (fwd+bwd)", |r| {
        if r.tokens > 0 {
            Some(r.tokens_per_second)
        } else {
            None
        }
    }),
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One SVG line chart of `(x, y)` points, with stage boundaries as dashed lines.
pub fn svg_chart(
    title: &str,
    pts: &[(f64, f64)],
    boundaries: &[(f64, String)],
    xmax: f64,
) -> String {
    let (w, h, m) = (420.0, 220.0, 40.0);
    let (ymin, ymax) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (ymin, ymax) = if pts.is_empty() {
        (0.0, 1.0)
    } else if (ymax - ymin).abs() < 1e-12 {
        (ymin - 0.5, ymax + 0.5)
    } else {
        (ymin, ymax)
    };
    let sx = |x: f64| m + (x / xmax.max(1.0)) * (w - 1.5 * m);
    let sy = |y: f64| h - m + -(y - ymin) / (ymax - ymin) * (h - 1.7 * m);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    s += &format!(
        r#"<text x="{m}" y="16" font-size="13" font-weight="bold">{}</text>"#,
        esc(title)
    );
    s += &format!(
        r#"<line x1="{m}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{m}" y1="{}" x2="{m}" y2="{}" stroke="black"/>"#,
        h - m,
        w - m / 2.0,
        h - m,
        h - m,
        0.7 * m
    );
    s += &format!(
        r#"<text x="2" y="{}">{:.3}</text><text x="2" y="{}">{:.3}</text>"#,
        sy(ymax) + 4.0,
        ymax,
        sy(ymin) + 4.0,
        ymin
    );
    s += &format!(
        r#"<text x="{}" y="{}">step {}</text>"#,
        w - 3.0 * m,
        h - m / 3.0,
        xmax
    );
    for (x, name) in boundaries {
        s += &format!(
            r#"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="gray" stroke-dasharray="3,3"/><text x="{3:.1}" y="{4}" fill="gray">{5}</text>"#,
            sx(*x),
            0.7 * m,
            h - m,
            sx(*x) + 2.0,
            0.7 * m + 10.0,
            esc(name)
        );
    }
    if !pts.is_empty() {
        let path: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        s += &format!(
            r#"<polyline fill="none" stroke="steelblue" stroke-width="1.5" points="{}"/>"#,
            path.join(" ")
        );
    }
    s += "</svg>";
    s
}

/// The HTML report of a log.
pub fn report_html(records: &[StepLog], title: &str) -> String {
    let xmax = records
        .iter()
        .map(|r| r.global_step as f64)
        .fold(0.0, f64::max);
    let mut boundaries = Vec::new();
    let mut last = None;
    for r in records {
        if last != Some(r.stage) {
            boundaries.push((r.global_step.saturating_sub(1) as f64, r.stage_name.clone()));
            last = Some(r.stage);
        }
    }
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{0}</title></head><body><h1>{0}</h1><p>{1} steps.</p><div style=\"display:flex;flex-wrap:wrap;gap:8px\">",
        esc(title),
        records.len()
    );
    for (name, get) in SERIES {
        let pts: Vec<(f64, f64)> = records
            .iter()
            .filter_map(|r| get(r).map(|y| (r.global_step as f64, y)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        html += &svg_chart(name, &pts, &boundaries, xmax);
    }
    html += "</div></body></html>\n";
    html
}
