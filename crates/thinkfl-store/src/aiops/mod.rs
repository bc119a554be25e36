//! The AIOps Challenge 2022 layout (DESIGN.md 4.1): reader of the raw layout and of the
//! preprocessed variant of the paper's repositories, and writers (whole data set, streaming).
//!
//! Raw layout:
//! ```text
//! trace/all/*.csv            timestamp,cmdb_id,span_id,trace_id,duration,type,status_code,operation_name,parent_span
//! metric/container/*.csv     timestamp,cmdb_id,kpi_name,value
//! metric/node/*.csv          timestamp,cmdb_id,kpi_name,value
//! metric/istio/*.csv         timestamp,cmdb_id,kpi_name,value
//! metric/service/*.csv       service,timestamp,rr,sr,mrt,count  (any further column is one more kpi)
//! log/all/*.csv              log_id,timestamp,cmdb_id,log_name,value
//! groundtruth.csv, groundtruth/*.csv   timestamp,level,cmdb_id,failure_type[,duration]
//! fault_durations.csv (simulator)     timestamp,cmdb_id,duration
//! topology.json              optional
//! ```
//! Preprocessed variant: `metric/all/metrics.csv` with `timestamp,node_id,service_name,kpi_name,value`
//! (mapped as: empty `service_name` is a node row `node_id`; a `service_name` with a `.` is an
//! istio row; a pod name with a `node_id` is the container row `node_id.pod`; otherwise a
//! service row) and `log/all/logs.csv` (same columns as the raw logs).

mod write;

pub use write::{AiopsWriter, write_aiops};

use crate::chunks::FileBytes;
use crate::csvio::{Csv, FieldErr};
use crate::fastspans;
use crate::sink::RowSink;
pub use crate::sink::SPAN_HEADER;
use crate::store::{SpanFields, StoreBuilder};
use crate::{Error, LoadOptions, LoadReport, Result};
use rayon::prelude::*;
use std::borrow::Cow;
use std::fs;
use std::path::{Path, PathBuf};
use thinkfl_core::{
    Component, Dataset, FaultCase, Level, LogRecord, MetricPoint, MetricSource, Span, Topology,
};

impl RowSink for Dataset {
    fn span_bytes(
        &mut self,
        path: &Path,
        buf: &[u8],
        opts: &LoadOptions,
        report: &mut LoadReport,
    ) -> Result<bool> {
        fastspans::read_whole(path, buf, opts, report, self)
    }
    fn span(&mut self, s: SpanFields<'_>) {
        self.spans.push(Span {
            timestamp: s.timestamp,
            cmdb_id: s.cmdb_id.into(),
            span_id: s.span_id.into(),
            trace_id: s.trace_id.into(),
            duration: s.duration,
            kind: s.kind.into(),
            status_code: s.status_code.into(),
            operation_name: s.operation_name.into(),
            parent_span: s.parent_span.into(),
        });
    }
    fn metric(&mut self, ts: i64, cmdb_id: &str, kpi: &str, value: f64, source: MetricSource) {
        self.metrics.push(MetricPoint {
            timestamp: ts,
            cmdb_id: cmdb_id.into(),
            kpi_name: kpi.into(),
            value,
            source,
        });
    }
    fn log(&mut self, log_id: &str, ts: i64, cmdb_id: &str, name: &str, value: &str) {
        self.logs.push(LogRecord {
            log_id: log_id.into(),
            timestamp: ts,
            cmdb_id: cmdb_id.into(),
            log_name: name.into(),
            value: value.into(),
        });
    }
    fn fault(&mut self, f: FaultCase) {
        self.faults.push(f);
    }
    fn topology(&mut self, t: Topology) {
        self.topology = Some(t);
    }
    fn join(&mut self, part: Self) {
        self.spans.extend(part.spans);
        self.metrics.extend(part.metrics);
        self.logs.extend(part.logs);
        self.faults.extend(part.faults);
        if part.topology.is_some() {
            self.topology = part.topology;
        }
    }
}

impl RowSink for StoreBuilder {
    fn span(&mut self, s: SpanFields<'_>) {
        self.push_span(s);
    }
    fn metric(&mut self, ts: i64, cmdb_id: &str, kpi: &str, value: f64, source: MetricSource) {
        self.push_metric(ts, cmdb_id, kpi, value, source);
    }
    fn log(&mut self, log_id: &str, ts: i64, cmdb_id: &str, name: &str, value: &str) {
        self.push_log(log_id, ts, cmdb_id, name, value);
    }
    fn fault(&mut self, f: FaultCase) {
        self.push_fault(f);
    }
    fn topology(&mut self, t: Topology) {
        self.set_topology(Some(t));
    }
    fn join(&mut self, part: Self) {
        self.append(part);
    }
    fn span_bytes(
        &mut self,
        path: &Path,
        buf: &[u8],
        opts: &LoadOptions,
        report: &mut LoadReport,
    ) -> Result<bool> {
        fastspans::parse_parallel(path, buf, opts, report, self)
    }
}

/// Reads an AIOps 2022 layout directory (raw or preprocessed).
pub fn read_aiops(dir: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport)> {
    let mut ds = Dataset::default();
    let report = read_aiops_into(dir, opts, &mut ds)?;
    ds.faults.sort_by_key(|f| f.timestamp);
    Ok((ds, report))
}

/// `*.csv` files of a directory, sorted by name; none when the directory is absent.
fn csv_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if p.is_file() && p.extension().is_some_and(|x| x == "csv") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// The tables of the layout, by their readers.
#[derive(Debug, Clone, Copy)]
enum Table {
    Spans,
    Long(MetricSource),
    Service,
    Preprocessed,
    Logs,
}

/// Every table file, in the order a sequential read takes them; they are read at once (a
/// large one by pieces too) and their rows joined back in this order.
fn tables(dir: &Path) -> Result<Vec<(Table, PathBuf)>> {
    let mut jobs: Vec<(Table, PathBuf)> = Vec::new();
    for p in csv_files(&dir.join("trace/all"))? {
        jobs.push((Table::Spans, p));
    }
    for (sub, source) in [
        ("metric/container", MetricSource::Container),
        ("metric/node", MetricSource::Node),
        ("metric/istio", MetricSource::Istio),
    ] {
        for p in csv_files(&dir.join(sub))? {
            jobs.push((Table::Long(source), p));
        }
    }
    for p in csv_files(&dir.join("metric/service"))? {
        jobs.push((Table::Service, p));
    }
    for p in csv_files(&dir.join("metric/all"))? {
        jobs.push((Table::Preprocessed, p));
    }
    for p in csv_files(&dir.join("log/all"))? {
        jobs.push((Table::Logs, p));
    }
    Ok(jobs)
}

fn groundtruth_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut gt = Vec::new();
    if dir.join("groundtruth.csv").is_file() {
        gt.push(dir.join("groundtruth.csv"));
    }
    gt.extend(csv_files(&dir.join("groundtruth"))?);
    Ok(gt)
}

/// Every file a read of `dir` takes rows from: what a snapshot of the data set depends on.
pub(crate) fn input_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = tables(dir)?.into_iter().map(|(_, p)| p).collect();
    out.extend(groundtruth_files(dir)?);
    for name in [FAULT_DURATIONS, "topology.json"] {
        if dir.join(name).is_file() {
            out.push(dir.join(name));
        }
    }
    Ok(out)
}

pub(crate) fn read_aiops_into<S: RowSink + Default + Send>(
    dir: &Path,
    opts: &LoadOptions,
    sink: &mut S,
) -> Result<LoadReport> {
    if !dir.is_dir() {
        return Err(Error::format(dir, "not a directory"));
    }
    let mut report = LoadReport::default();
    let jobs = tables(dir)?;
    let mut found = jobs.len();
    let parts: Vec<Result<(S, LoadReport)>> = jobs
        .par_iter()
        .map(|(table, p)| {
            let mut local = S::default();
            let mut r = LoadReport::default();
            match *table {
                Table::Spans => read_spans(p, opts, &mut r, &mut local)?,
                Table::Long(source) => read_long_metrics(p, source, opts, &mut r, &mut local)?,
                Table::Service => read_service_metrics(p, opts, &mut r, &mut local)?,
                Table::Preprocessed => read_preprocessed_metrics(p, opts, &mut r, &mut local)?,
                Table::Logs => read_logs(p, opts, &mut r, &mut local)?,
            }
            Ok((local, r))
        })
        .collect();
    for part in parts {
        let (local, r) = part?;
        sink.join(local);
        report.merge(r);
    }
    let gt = groundtruth_files(dir)?;
    let durations = read_fault_durations(&dir.join(FAULT_DURATIONS), opts, &mut report)?;
    for p in gt {
        found += 1;
        read_groundtruth(&p, opts, &mut report, &durations, sink)?;
    }
    let topo = dir.join("topology.json");
    if topo.is_file() {
        found += 1;
        let text = fs::read_to_string(&topo).map_err(|e| Error::io(&topo, e))?;
        let t: Topology = serde_json::from_str(&text).map_err(|e| Error::Parse {
            file: topo.clone(),
            line: e.line() as u64,
            column: e.column().to_string(),
            message: e.to_string(),
        })?;
        sink.topology(t);
    }
    if found == 0 {
        return Err(Error::format(
            dir,
            "no AIOps 2022 data found (expected trace/all/*.csv, metric/*/*.csv, log/all/*.csv or groundtruth.csv)",
        ));
    }
    Ok(report)
}

fn read_spans(
    path: &Path,
    opts: &LoadOptions,
    report: &mut LoadReport,
    sink: &mut impl RowSink,
) -> Result<()> {
    let buf = FileBytes::open(path)?;
    if sink.span_bytes(path, &buf, opts, report)? {
        return Ok(());
    }
    drop(buf);
    read_spans_csv(path, opts, report, sink)
}

/// The general span reader (quoted fields, invalid UTF-8 rows).
pub(crate) fn read_spans_csv(
    path: &Path,
    opts: &LoadOptions,
    report: &mut LoadReport,
    sink: &mut impl RowSink,
) -> Result<()> {
    let csv = Csv::open(path)?;
    let c: Vec<usize> = SPAN_HEADER
        .iter()
        .map(|h| csv.column(h))
        .collect::<Result<_>>()?;
    csv.for_each(opts, report, |f| {
        let s = SpanFields {
            timestamp: f.i64(c[0])?,
            cmdb_id: f.str(c[1])?,
            span_id: nonempty(f.str(c[2])?, c[2])?,
            trace_id: f.str(c[3])?,
            duration: f.i64(c[4])?,
            kind: f.str(c[5])?,
            status_code: f.str(c[6])?,
            operation_name: f.str(c[7])?,
            parent_span: f.str(c[8])?,
        };
        sink.span(s);
        Ok(())
    })
}

fn nonempty(s: &str, col: usize) -> std::result::Result<&str, FieldErr> {
    if s.is_empty() {
        Err(FieldErr {
            col,
            message: "must not be empty".into(),
        })
    } else {
        Ok(s)
    }
}

fn read_long_metrics<S: RowSink + Default + Send>(
    path: &Path,
    source: MetricSource,
    opts: &LoadOptions,
    report: &mut LoadReport,
    sink: &mut S,
) -> Result<()> {
    let csv = Csv::open(path)?;
    let (t, c, k, v) = (
        csv.column("timestamp")?,
        csv.column("cmdb_id")?,
        csv.column("kpi_name")?,
        csv.column("value")?,
    );
    csv.par_for_each(opts, report, sink, |f, sink| {
        let (ts, id, kpi, val) = (f.i64(t)?, f.str(c)?, f.str(k)?, f.f64(v)?);
        sink.metric(ts, nonempty(id, c)?, nonempty(kpi, k)?, val, source);
        Ok(())
    })
}

/// `service,timestamp,rr,sr,mrt,count`: one point per non-empty kpi cell.
fn read_service_metrics<S: RowSink + Default + Send>(
    path: &Path,
    opts: &LoadOptions,
    report: &mut LoadReport,
    sink: &mut S,
) -> Result<()> {
    let csv = Csv::open(path)?;
    let (s, t) = (csv.column("service")?, csv.column("timestamp")?);
    let kpis: Vec<(usize, String)> = csv
        .headers
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != s && i != t)
        .map(|(i, h)| (i, h.clone()))
        .collect();
    csv.par_for_each(opts, report, sink, |f, sink| {
        let svc = nonempty(f.str(s)?, s)?;
        let ts = f.i64(t)?;
        let mut vals = Vec::with_capacity(kpis.len());
        for (i, _) in &kpis {
            if !f.str(*i)?.trim().is_empty() {
                vals.push((*i, f.f64(*i)?));
            }
        }
        for (i, v) in vals {
            let name = &kpis.iter().find(|(j, _)| *j == i).expect("known column").1;
            sink.metric(ts, svc, name, v, MetricSource::Service);
        }
        Ok(())
    })
}

fn read_preprocessed_metrics<S: RowSink + Default + Send>(
    path: &Path,
    opts: &LoadOptions,
    report: &mut LoadReport,
    sink: &mut S,
) -> Result<()> {
    let csv = Csv::open(path)?;
    let (t, n, s, k, v) = (
        csv.column("timestamp")?,
        csv.column("node_id")?,
        csv.column("service_name")?,
        csv.column("kpi_name")?,
        csv.column("value")?,
    );
    csv.par_for_each(opts, report, sink, |f, sink| {
        let (ts, node, svc, kpi, val) = (f.i64(t)?, f.str(n)?, f.str(s)?, f.str(k)?, f.f64(v)?);
        let kpi = nonempty(kpi, k)?;
        let (id, source): (Cow<'_, str>, _) = if svc.is_empty() {
            (nonempty(node, n)?.into(), MetricSource::Node)
        } else if svc.contains('.') {
            (svc.into(), MetricSource::Istio)
        } else if !node.is_empty() && Component::classify(svc).level == Level::Pod {
            (format!("{node}.{svc}").into(), MetricSource::Container)
        } else {
            (svc.into(), MetricSource::Service)
        };
        sink.metric(ts, &id, kpi, val, source);
        Ok(())
    })
}

fn read_logs<S: RowSink + Default + Send>(
    path: &Path,
    opts: &LoadOptions,
    report: &mut LoadReport,
    sink: &mut S,
) -> Result<()> {
    let csv = Csv::open(path)?;
    let (i, t, c, n, v) = (
        csv.column("log_id")?,
        csv.column("timestamp")?,
        csv.column("cmdb_id")?,
        csv.column("log_name")?,
        csv.column("value")?,
    );
    csv.par_for_each(opts, report, sink, |f, sink| {
        let (id, ts, cmdb, name, val) = (f.str(i)?, f.i64(t)?, f.str(c)?, f.str(n)?, f.str(v)?);
        sink.log(id, ts, nonempty(cmdb, c)?, name, val);
        Ok(())
    })
}

/// Simulator sidecar of `groundtruth.csv`: the data set's ground truth gives only fault starts,
/// and `groundtruth.csv` keeps exactly the data set's four columns, so the durations the
/// simulator knows go beside it, keyed by (timestamp, cmdb_id).
pub const FAULT_DURATIONS: &str = "fault_durations.csv";

type Durations = std::collections::HashMap<(i64, String), i64>;

fn read_fault_durations(
    path: &Path,
    opts: &LoadOptions,
    report: &mut LoadReport,
) -> Result<Durations> {
    let mut out = Durations::new();
    if !path.is_file() {
        return Ok(out);
    }
    let csv = Csv::open(path)?;
    let (t, c, d) = (
        csv.column("timestamp")?,
        csv.column("cmdb_id")?,
        csv.column("duration")?,
    );
    csv.for_each(opts, report, |f| {
        out.insert((f.i64(t)?, f.str(c)?.to_string()), f.i64(d)?);
        Ok(())
    })?;
    Ok(out)
}

fn read_groundtruth(
    path: &Path,
    opts: &LoadOptions,
    report: &mut LoadReport,
    durations: &Durations,
    sink: &mut impl RowSink,
) -> Result<()> {
    let csv = Csv::open(path)?;
    let (t, l, c, ft) = (
        csv.column("timestamp")?,
        csv.column("level")?,
        csv.column("cmdb_id")?,
        csv.column("failure_type")?,
    );
    let d = csv.optional_column("duration");
    csv.for_each(opts, report, |f| {
        let level: Level = f
            .str(l)?
            .parse()
            .map_err(|e: thinkfl_core::Error| FieldErr {
                col: l,
                message: e.to_string(),
            })?;
        let timestamp = f.i64(t)?;
        let cmdb_id = nonempty(f.str(c)?, c)?.to_string();
        let duration = match d {
            Some(d) if !f.str(d)?.trim().is_empty() => Some(f.i64(d)?),
            _ => durations.get(&(timestamp, cmdb_id.clone())).copied(),
        };
        sink.fault(FaultCase {
            timestamp,
            level,
            cmdb_id,
            failure_type: nonempty(f.str(ft)?, ft)?.to_string(),
            duration,
        });
        Ok(())
    })
}

#[cfg(test)]
mod fast_span_tests {
    //! The fast path against the `csv`-crate reader.
    use super::*;
    use crate::fastspans::{layout, parse_lines, parse_parallel};
    use proptest::prelude::*;
    use thinkfl_core::Dataset;

    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-f0-9]{1,16}",
            Just("12".to_string()),
            Just("-3".to_string()),
            Just("x1".to_string()),
            Just("é ü".to_string()),
            Just(" 7".to_string()),
        ]
    }

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => prop::collection::vec(field(), 9..=9),
            1 => prop::collection::vec(field(), 0..12),
        ]
        .prop_map(|f| f.join(","))
    }

    const HEADER: &str =
        "timestamp,cmdb_id,span_id,trace_id,duration,type,status_code,operation_name,parent_span";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The hand-rolled splitter (sequential and parallel) reads exactly what the `csv` crate
        /// reads, and fails or skips exactly where it does.
        #[test]
        fn fast_path_equals_the_csv_crate(
            lines in prop::collection::vec(line(), 0..40),
            crlf in any::<bool>(),
            trailing in any::<bool>(),
            lenient in any::<bool>(),
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut text = String::from(HEADER);
            for l in &lines {
                text.push_str(nl);
                text.push_str(l);
            }
            if trailing {
                text.push_str(nl);
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("spans.csv");
            std::fs::write(&path, &text).unwrap();
            let opts = LoadOptions { lenient };

            let mut want = Dataset::default();
            let mut want_report = LoadReport::default();
            let want_res = read_spans_csv(&path, &opts, &mut want_report, &mut want);

            let lay = layout(&path, &text).unwrap();
            let mut got = Dataset::default();
            let mut got_report = LoadReport::default();
            let got_res = parse_lines(&path, &text[lay.body()..], 2, &lay, &opts, &mut got_report, &mut got);

            let mut b = StoreBuilder::new();
            let mut par_report = LoadReport::default();
            let par_res = parse_parallel(&path, text.as_bytes(), &opts, &mut par_report, &mut b)
                .map(|fast| assert!(fast, "no quotes, valid UTF-8"));

            match (&want_res, &got_res, &par_res) {
                (Err(w), Err(g), Err(p)) => {
                    prop_assert_eq!(w.to_string(), g.to_string());
                    prop_assert_eq!(w.to_string(), p.to_string());
                }
                (Ok(()), Ok(()), Ok(())) => {
                    prop_assert_eq!(&want.spans, &got.spans);
                    prop_assert_eq!(&want_report, &got_report);
                    prop_assert_eq!(&want_report, &par_report);
                    let store = b.finish();
                    prop_assert_eq!(&store.to_dataset().spans, &want.spans);
                }
                other => prop_assert!(false, "paths disagree: {:?}", other),
            }
        }
    }
}

#[cfg(test)]
mod piece_tests {
    //! A data set read by pieces of a few bytes against the same data set read file by file in
    //! one piece each (the sequential reader), through both sinks.
    use super::*;
    use crate::TelemetryStore;
    use crate::chunks::TEST_TARGET;
    use std::sync::atomic::Ordering;
    use thinkfl_core::{LogRecord, MetricPoint, Span};

    fn dataset() -> Dataset {
        let mut ds = Dataset::default();
        for i in 0..60i64 {
            let pod = format!("svc{}-{}", i % 3, i % 2);
            ds.spans.push(Span {
                timestamp: 1_000 + (i * 7) % 50,
                cmdb_id: pod.clone(),
                span_id: format!("{:016x}", 100 + i),
                trace_id: format!("t{}", i / 6),
                duration: i * 10,
                kind: ["rpc", "http", "", "db"][i as usize % 4].into(),
                status_code: if i % 9 == 0 { "500".into() } else { "0".into() },
                // A comma makes the writer quote the field: the span file takes the `csv` path.
                operation_name: format!("op,{}", i % 4),
                parent_span: if i % 6 == 0 {
                    String::new()
                } else {
                    format!("{:016x}", 100 + i - 1)
                },
            });
            let sources = [
                (MetricSource::Container, format!("node-{}.{pod}", i % 2)),
                (MetricSource::Node, format!("node-{}", i % 2)),
                (MetricSource::Istio, format!("{pod}.source.{pod}.x")),
                (MetricSource::Service, format!("svc{}-grpc", i % 3)),
            ];
            for (source, id) in sources {
                ds.metrics.push(MetricPoint {
                    timestamp: 100 - i,
                    cmdb_id: id,
                    kpi_name: ["rr", "mrt"][i as usize % 2].into(),
                    value: i as f64 * 0.5 - 3.0,
                    source,
                });
            }
            ds.logs.push(LogRecord {
                log_id: format!("l{i}"),
                timestamp: 50 + i % 7,
                cmdb_id: pod,
                log_name: "log_app".into(),
                value: format!("line {i},\n\"quoted\" \r\nend"),
            });
        }
        ds
    }

    type Loaded = Result<(Dataset, LoadReport)>;

    fn load_both(dir: &Path, lenient: bool) -> (Loaded, Loaded) {
        let opts = LoadOptions { lenient };
        let via_store = TelemetryStore::load(dir, &opts).map(|(s, r)| (s.to_dataset(), r));
        let via_rows =
            read_aiops(dir, &opts).map(|(d, r)| (TelemetryStore::from_dataset(d).to_dataset(), r));
        (via_store, via_rows)
    }

    #[test]
    fn pieces_load_as_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        write_aiops(&dataset(), dir.path()).unwrap();
        // A bad value deep in a metric file and in the log file.
        let node = dir.path().join("metric/node/kpi_node.csv");
        let mut text = fs::read_to_string(&node).unwrap();
        text.push_str("7,node-1,rr,not-a-number\n8,node-1,rr,1.5\n");
        fs::write(&node, text).unwrap();
        let log = dir
            .path()
            .join("log/all/log_filebeat-testbed-log-service.csv");
        let mut text = fs::read_to_string(&log).unwrap();
        text.push_str("x,soon,pod,log_app,v\n");
        fs::write(&log, text).unwrap();

        TEST_TARGET.store(0, Ordering::Relaxed);
        let whole = [load_both(dir.path(), false), load_both(dir.path(), true)];
        for target in [1, 5, 64] {
            TEST_TARGET.store(target, Ordering::Relaxed);
            let pieces = [load_both(dir.path(), false), load_both(dir.path(), true)];
            for (w, p) in whole.iter().zip(&pieces) {
                for (a, b) in [(&w.0, &p.0), (&w.1, &p.1), (&w.0, &w.1)] {
                    match (a, b) {
                        (Ok(a), Ok(b)) => assert_eq!(a, b, "target {target}"),
                        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                        _ => panic!("loads disagree at target {target}: {a:?} {b:?}"),
                    }
                }
            }
        }
        TEST_TARGET.store(0, Ordering::Relaxed);
        let err = whole[0].0.as_ref().unwrap_err().to_string();
        assert!(
            err.contains("kpi_node.csv:") && err.contains("column 4 (value)"),
            "{err}"
        );
        let (ds, report) = whole[1].0.as_ref().unwrap();
        assert_eq!(report.skipped_rows, 2);
        assert_eq!(ds.spans.len(), 60);
        assert_eq!(ds.logs.len(), 60);
        assert_eq!(ds.metrics.len(), 241);
    }
}
