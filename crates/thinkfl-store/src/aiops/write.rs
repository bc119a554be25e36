//! Writers of the raw AIOps 2022 layout: a whole data set ([`write_aiops`]) or row by row
//! ([`AiopsWriter`], what the simulator streams into).

use super::FAULT_DURATIONS;
use crate::sink::SPAN_HEADER;
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use thinkfl_core::{Dataset, FaultCase, LogRecord, MetricPoint, MetricSource, Span, Topology};

/// Writes a whole data set in the raw AIOps 2022 layout.
pub fn write_aiops(ds: &Dataset, dir: &Path) -> Result<()> {
    let mut w = AiopsWriter::create(dir)?;
    for s in &ds.spans {
        w.write_span(s)?;
    }
    for m in &ds.metrics {
        w.write_metric(m)?;
    }
    for l in &ds.logs {
        w.write_log(l)?;
    }
    w.finish(&ds.faults, ds.topology.as_ref())
}

type CsvOut = csv::Writer<BufWriter<File>>;

/// Streaming writer of the raw AIOps 2022 layout: spans, long-format metrics and logs go to disk
/// row by row; service metrics (one wide row per service and timestamp) are gathered and written
/// by [`AiopsWriter::finish`].
#[derive(Debug)]
pub struct AiopsWriter {
    dir: PathBuf,
    spans: CsvOut,
    logs: CsvOut,
    /// Long-format metric files by (source, kpi file name).
    metric_files: HashMap<(MetricSource, String), CsvOut>,
    /// (service, timestamp) -> kpi -> value, in first-seen row order.
    service_rows: Vec<(String, i64, BTreeMap<String, f64>)>,
    service_index: HashMap<(String, i64), usize>,
    buf: String,
}

fn create_csv(path: &Path, header: &[&str]) -> Result<CsvOut> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let f = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = csv::WriterBuilder::new().from_writer(BufWriter::with_capacity(1 << 20, f));
    w.write_record(header).map_err(|e| write_err(path, e))?;
    Ok(w)
}

fn write_err(path: &Path, e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        other => Error::format(path, format!("{other:?}")),
    }
}

/// A kpi name as a file name part: the data's names are already tame, but a simulator's may not be.
fn file_part(kpi: &str) -> String {
    kpi.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl AiopsWriter {
    /// Creates `dir` and opens the span and log files of the layout in it; metric files are
    /// opened as their first row arrives.
    pub fn create(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let spans = create_csv(&dir.join("trace/all/trace_jaeger-span.csv"), &SPAN_HEADER)?;
        let logs = create_csv(
            &dir.join("log/all/log_filebeat-testbed-log-service.csv"),
            &["log_id", "timestamp", "cmdb_id", "log_name", "value"],
        )?;
        Ok(Self {
            dir: dir.to_path_buf(),
            spans,
            logs,
            metric_files: HashMap::new(),
            service_rows: Vec::new(),
            service_index: HashMap::new(),
            buf: String::new(),
        })
    }

    fn span_path(&self) -> PathBuf {
        self.dir.join("trace/all/trace_jaeger-span.csv")
    }

    /// Appends one row to `trace/all/trace_jaeger-span.csv`.
    pub fn write_span(&mut self, s: &Span) -> Result<()> {
        let mut ib = itoa_buf();
        let mut db = itoa_buf();
        let ts = fmt_i64(&mut ib, s.timestamp);
        let du = fmt_i64(&mut db, s.duration);
        let r = self.spans.write_record([
            ts.as_bytes(),
            s.cmdb_id.as_bytes(),
            s.span_id.as_bytes(),
            s.trace_id.as_bytes(),
            du.as_bytes(),
            s.kind.as_bytes(),
            s.status_code.as_bytes(),
            s.operation_name.as_bytes(),
            s.parent_span.as_bytes(),
        ]);
        r.map_err(|e| write_err(&self.span_path(), e))
    }

    /// Routed by `m.source`: container and istio kpis to one file per kpi, node kpis to
    /// `kpi_node.csv`, service kpis gathered into `metric_service.csv`.
    pub fn write_metric(&mut self, m: &MetricPoint) -> Result<()> {
        let file_name = match m.source {
            MetricSource::Service => {
                let key = (m.cmdb_id.clone(), m.timestamp);
                let n = self.service_rows.len();
                let i = *self.service_index.entry(key).or_insert(n);
                if i == n {
                    self.service_rows
                        .push((m.cmdb_id.clone(), m.timestamp, BTreeMap::new()));
                }
                self.service_rows[i].2.insert(m.kpi_name.clone(), m.value);
                return Ok(());
            }
            MetricSource::Node => "kpi_node.csv".to_string(),
            MetricSource::Container => format!("kpi_container_{}.csv", file_part(&m.kpi_name)),
            MetricSource::Istio => format!("kpi_istio_{}.csv", file_part(&m.kpi_name)),
        };
        let key = (m.source, file_name);
        if !self.metric_files.contains_key(&key) {
            let path = self.dir.join("metric").join(m.source.as_str()).join(&key.1);
            let w = create_csv(&path, &["timestamp", "cmdb_id", "kpi_name", "value"])?;
            self.metric_files.insert(key.clone(), w);
        }
        let w = self.metric_files.get_mut(&key).expect("inserted above");
        self.buf.clear();
        use std::fmt::Write as _;
        let _ = write!(self.buf, "{}", m.value);
        let ts = m.timestamp.to_string();
        w.write_record([
            ts.as_bytes(),
            m.cmdb_id.as_bytes(),
            m.kpi_name.as_bytes(),
            self.buf.as_bytes(),
        ])
        .map_err(|e| {
            write_err(
                &self.dir.join("metric").join(key.0.as_str()).join(&key.1),
                e,
            )
        })
    }

    /// Appends one row to `log/all/log_filebeat-testbed-log-service.csv`.
    pub fn write_log(&mut self, l: &LogRecord) -> Result<()> {
        let ts = l.timestamp.to_string();
        let path = self
            .dir
            .join("log/all/log_filebeat-testbed-log-service.csv");
        self.logs
            .write_record([
                l.log_id.as_bytes(),
                ts.as_bytes(),
                l.cmdb_id.as_bytes(),
                l.log_name.as_bytes(),
                l.value.as_bytes(),
            ])
            .map_err(|e| write_err(&path, e))
    }

    /// Writes the gathered service metrics, `groundtruth.csv` (the data set's four columns),
    /// `fault_durations.csv` when faults know their durations, and `topology.json`, and flushes
    /// every file.
    pub fn finish(mut self, faults: &[FaultCase], topology: Option<&Topology>) -> Result<()> {
        let span_path = self.span_path();
        self.spans.flush().map_err(|e| Error::io(&span_path, e))?;
        let log_path = self
            .dir
            .join("log/all/log_filebeat-testbed-log-service.csv");
        self.logs.flush().map_err(|e| Error::io(&log_path, e))?;
        for ((src, name), mut w) in self.metric_files.drain() {
            let p = self.dir.join("metric").join(src.as_str()).join(name);
            w.flush().map_err(|e| Error::io(&p, e))?;
        }
        if !self.service_rows.is_empty() {
            let mut kpis: Vec<String> = ["rr", "sr", "mrt", "count"].map(String::from).to_vec();
            for (_, _, m) in &self.service_rows {
                for k in m.keys() {
                    if !kpis.contains(k) {
                        kpis.push(k.clone());
                    }
                }
            }
            let path = self.dir.join("metric/service/metric_service.csv");
            let mut header = vec!["service", "timestamp"];
            header.extend(kpis.iter().map(String::as_str));
            let mut w = create_csv(&path, &header)?;
            for (svc, ts, m) in &self.service_rows {
                let mut row = vec![svc.clone(), ts.to_string()];
                row.extend(
                    kpis.iter()
                        .map(|k| m.get(k).map(|v| format!("{v}")).unwrap_or_default()),
                );
                w.write_record(&row).map_err(|e| write_err(&path, e))?;
            }
            w.flush().map_err(|e| Error::io(&path, e))?;
        }
        let gt_path = self.dir.join("groundtruth.csv");
        let mut w = create_csv(&gt_path, &["timestamp", "level", "cmdb_id", "failure_type"])?;
        for f in faults {
            let row = [
                f.timestamp.to_string(),
                f.level.as_str().to_string(),
                f.cmdb_id.clone(),
                f.failure_type.clone(),
            ];
            w.write_record(&row).map_err(|e| write_err(&gt_path, e))?;
        }
        w.flush().map_err(|e| Error::io(&gt_path, e))?;
        if faults.iter().any(|f| f.duration.is_some()) {
            let path = self.dir.join(FAULT_DURATIONS);
            let mut w = create_csv(&path, &["timestamp", "cmdb_id", "duration"])?;
            for f in faults {
                if let Some(d) = f.duration {
                    w.write_record([f.timestamp.to_string(), f.cmdb_id.clone(), d.to_string()])
                        .map_err(|e| write_err(&path, e))?;
                }
            }
            w.flush().map_err(|e| Error::io(&path, e))?;
        }
        if let Some(t) = topology {
            let p = self.dir.join("topology.json");
            let text = serde_json::to_string_pretty(t).expect("topology serializes");
            fs::write(&p, text + "\n").map_err(|e| Error::io(&p, e))?;
        }
        Ok(())
    }
}

fn itoa_buf() -> [u8; 24] {
    [0; 24]
}

/// Formats an integer into `buf` without allocating.
fn fmt_i64(buf: &mut [u8; 24], v: i64) -> &str {
    let mut i = buf.len();
    let neg = v < 0;
    let mut u = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    std::str::from_utf8(&buf[i..]).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::fmt_i64;

    #[test]
    fn integers_format() {
        let mut b = [0u8; 24];
        assert_eq!(fmt_i64(&mut b, 0), "0");
        assert_eq!(fmt_i64(&mut b, -42), "-42");
        assert_eq!(fmt_i64(&mut b, i64::MIN), "-9223372036854775808");
        assert_eq!(fmt_i64(&mut b, 1647747340693), "1647747340693");
    }
}
