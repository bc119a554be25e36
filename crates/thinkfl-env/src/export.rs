//! `thinkfl export rl-dataset`: the questions of the training and held-out cases as the RL
//! engines read them, each with the opening messages of its episode (the very messages
//! `POST /v1/episodes` answers, so a prompt an engine trains on is the prompt the environment
//! continues) and its label (which data set, case and entry span):
//!
//! - `openrlhf/{train,test}.jsonl`: `{"prompt": [messages], "label": "<label as JSON text>"}`
//!   (`--data.input_key prompt --data.label_key label --data.apply_chat_template`);
//! - `trl/{train,test}.jsonl`: `{"prompt": [messages], "dataset", "case", "query_span"}`, which
//!   `datasets.load_dataset("json")` reads and `GRPOTrainer` passes to the environment's `reset`;
//! - `verl/{train,test}.parquet`: `data_source`, `agent_name`, `prompt`, `ability`,
//!   `reward_model.{style, ground_truth}`, `extra_info.{split, index, dataset, case, query_span,
//!   tools_kwargs}` (each tool's `create_kwargs` carry the label).

use crate::data::EnvDataset;
use crate::service::{EnvConfig, EnvService, Label};
use crate::{Error, parquet_out};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use thinkfl_core::Message;

/// The name of the data source in every row (verl routes rewards by it).
pub const DATA_SOURCE: &str = "thinkfl";
/// The agent loop verl runs these rows with (registered by `thinkfl_rl.verl_agent`).
pub const AGENT_NAME: &str = "thinkfl_agent";

/// Which split a data set feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Training questions.
    Train,
    /// Held-out questions (evaluation only).
    Test,
}

impl Split {
    /// `train` or `test`, as the files are named.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// One question.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its split.
    pub split: Split,
    /// Which question.
    pub label: Label,
    /// The opening messages of its episode.
    pub prompt: Vec<Message>,
}

/// The engines an export writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenRLHF JSONL.
    OpenRlhf,
    /// A TRL dataset (JSONL).
    Trl,
    /// verl parquet.
    Verl,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "openrlhf" => Ok(Format::OpenRlhf),
            "trl" => Ok(Format::Trl),
            "verl" => Ok(Format::Verl),
            other => Err(Error::invalid(
                "format",
                format!("{other:?}: one of openrlhf, trl, verl"),
            )),
        }
    }
}

/// The rows of one data set: `queries_per_case` questions of each case that has any (cases
/// without an anomalous entry trace have nothing to start from), with `cases` saying which
/// cases go to which split.
pub fn rows_of(
    ds: EnvDataset,
    cfg: &EnvConfig,
    cases: &[(usize, Split)],
    queries_per_case: usize,
) -> Result<Vec<Row>, Error> {
    let id = ds.id().to_string();
    let spans: Vec<Vec<String>> = ds
        .queries
        .iter()
        .map(|qs| {
            qs.iter()
                .take(queries_per_case)
                .map(|q| q.span_id.clone())
                .collect()
        })
        .collect();
    let service = EnvService::new(vec![ds], cfg.clone())?;
    let mut rows = Vec::new();
    for &(case, split) in cases {
        for span in spans.get(case).into_iter().flatten() {
            rows.push(Row {
                split,
                prompt: service.opening(0, case, Some(span))?,
                label: Label {
                    dataset: Some(id.clone()),
                    case,
                    query_span: Some(span.clone()),
                },
            });
        }
    }
    Ok(rows)
}

fn chat(messages: &[Message]) -> serde_json::Value {
    serde_json::Value::Array(
        messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect(),
    )
}

/// The label as the text OpenRLHF and verl carry (`{"dataset", "case", "query_span"}`).
pub fn label_text(l: &Label) -> String {
    serde_json::to_string(l).expect("a label serializes")
}

fn write_jsonl(
    path: &Path,
    lines: impl Iterator<Item = serde_json::Value>,
) -> Result<usize, Error> {
    let f = std::fs::File::create(path).map_err(|e| Error::write(path, e))?;
    let mut w = std::io::BufWriter::new(f);
    let mut n = 0;
    for l in lines {
        serde_json::to_writer(&mut w, &l).map_err(|e| Error::write(path, e))?;
        w.write_all(b"\n").map_err(|e| Error::write(path, e))?;
        n += 1;
    }
    w.flush().map_err(|e| Error::write(path, e))?;
    Ok(n)
}

/// Writes `rows` under `out` in each of `formats`; answers the files written and their rows.
pub fn write(
    out: &Path,
    rows: &[Row],
    formats: &[Format],
    tools: &[&str],
) -> Result<Vec<(PathBuf, usize)>, Error> {
    let mut written = Vec::new();
    for &format in formats {
        let dir = out.join(match format {
            Format::OpenRlhf => "openrlhf",
            Format::Trl => "trl",
            Format::Verl => "verl",
        });
        std::fs::create_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
        for split in [Split::Train, Split::Test] {
            let part: Vec<&Row> = rows.iter().filter(|r| r.split == split).collect();
            let (path, n) = match format {
                Format::OpenRlhf => {
                    let p = dir.join(format!("{}.jsonl", split.as_str()));
                    let n = write_jsonl(
                        &p,
                        part.iter().map(|r| {
                            json!({"prompt": chat(&r.prompt), "label": label_text(&r.label), "datasource": DATA_SOURCE})
                        }),
                    )?;
                    (p, n)
                }
                Format::Trl => {
                    let p = dir.join(format!("{}.jsonl", split.as_str()));
                    let n = write_jsonl(
                        &p,
                        part.iter().map(|r| {
                            json!({
                                "prompt": chat(&r.prompt),
                                "dataset": r.label.dataset,
                                "case": r.label.case,
                                "query_span": r.label.query_span,
                            })
                        }),
                    )?;
                    (p, n)
                }
                Format::Verl => {
                    let p = dir.join(format!("{}.parquet", split.as_str()));
                    parquet_out::write_verl(&p, &part, tools)?;
                    (p, part.len())
                }
            };
            written.push((path, n));
        }
    }
    Ok(written)
}
