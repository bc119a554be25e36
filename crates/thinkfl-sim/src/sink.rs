//! Where generated rows go: a data set in memory (tests, small runs), a counter (benchmarks of
//! the generator alone), or the store's streaming AIOps 2022 writer.

use crate::Error;
use thinkfl_core::{Dataset, LogRecord, MetricPoint, Span};

/// Receives rows in generation order: spans and logs in time order, metrics minute by minute.
pub trait Sink {
    /// Takes one span.
    fn span(&mut self, s: &Span) -> Result<(), Error>;
    /// Takes one metric sample.
    fn metric(&mut self, m: &MetricPoint) -> Result<(), Error>;
    /// Takes one log line.
    fn log(&mut self, l: &LogRecord) -> Result<(), Error>;
}

/// Collects every row into a [`Dataset`].
#[derive(Debug, Default)]
pub struct MemorySink {
    /// Everything received so far; the caller fills in faults and topology from the
    /// [`Outcome`](crate::Outcome).
    pub dataset: Dataset,
}

impl Sink for MemorySink {
    fn span(&mut self, s: &Span) -> Result<(), Error> {
        self.dataset.spans.push(s.clone());
        Ok(())
    }
    fn metric(&mut self, m: &MetricPoint) -> Result<(), Error> {
        self.dataset.metrics.push(m.clone());
        Ok(())
    }
    fn log(&mut self, l: &LogRecord) -> Result<(), Error> {
        self.dataset.logs.push(l.clone());
        Ok(())
    }
}

/// Counts rows and bytes of their text fields without keeping them: measures the generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingSink {
    /// Spans received.
    pub spans: u64,
    /// Metric samples received.
    pub metrics: u64,
    /// Log lines received.
    pub logs: u64,
    /// Bytes of the text fields counted (ids, names, log text), a proxy for output size.
    pub bytes: u64,
}

impl Sink for CountingSink {
    fn span(&mut self, s: &Span) -> Result<(), Error> {
        self.spans += 1;
        self.bytes +=
            (s.cmdb_id.len() + s.span_id.len() + s.trace_id.len() + s.operation_name.len()) as u64;
        Ok(())
    }
    fn metric(&mut self, m: &MetricPoint) -> Result<(), Error> {
        self.metrics += 1;
        self.bytes += (m.cmdb_id.len() + m.kpi_name.len()) as u64;
        Ok(())
    }
    fn log(&mut self, l: &LogRecord) -> Result<(), Error> {
        self.logs += 1;
        self.bytes += l.value.len() as u64;
        Ok(())
    }
}

impl Sink for thinkfl_store::AiopsWriter {
    fn span(&mut self, s: &Span) -> Result<(), Error> {
        Ok(self.write_span(s)?)
    }
    fn metric(&mut self, m: &MetricPoint) -> Result<(), Error> {
        Ok(self.write_metric(m)?)
    }
    fn log(&mut self, l: &LogRecord) -> Result<(), Error> {
        Ok(self.write_log(l)?)
    }
}
