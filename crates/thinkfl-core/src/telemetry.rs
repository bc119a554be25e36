//! Telemetry rows as the AIOps 2022 data set writes them.

use serde::{Deserialize, Serialize};

/// One span (`trace/all/trace_jaeger-span.csv`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    /// Start time, ms since the Unix epoch.
    pub timestamp: i64,
    /// The pod that emitted the span (`frontend-2`).
    pub cmdb_id: String,
    /// The span's id, unique within the data set.
    pub span_id: String,
    /// The trace the span belongs to.
    pub trace_id: String,
    /// Duration in µs.
    pub duration: i64,
    /// `http`, `rpc`, `db`, `telemetry`, or empty as in the data.
    #[serde(rename = "type")]
    pub kind: String,
    /// As written by the data: `0`, `OK`, `Ok`, `200`, `1`, `500`, `Error`...
    pub status_code: String,
    /// The operation (`hipstershop.CartService/GetCart`, `POST /cart`).
    pub operation_name: String,
    /// Empty for a root span.
    pub parent_span: String,
}

impl Span {
    /// Whether the span has no parent.
    pub fn is_root(&self) -> bool {
        self.parent_span.is_empty()
    }

    /// End time in µs since the epoch.
    pub fn end_us(&self) -> i64 {
        self.timestamp * 1000 + self.duration
    }

    /// Whether the status code means success. The data mixes gRPC codes (`0`), HTTP codes
    /// (`200`) and words (`OK`, `Ok`, `Unset`).
    pub fn status_ok(&self) -> bool {
        status_is_ok(&self.status_code)
    }
}

/// See [`Span::status_ok`].
pub fn status_is_ok(code: &str) -> bool {
    let c = code.trim();
    if c.is_empty() || c.eq_ignore_ascii_case("ok") || c.eq_ignore_ascii_case("unset") {
        return true;
    }
    match c.parse::<i64>() {
        Ok(0) => true,
        Ok(n) => (100..400).contains(&n),
        Err(_) => false,
    }
}

/// Where a metric row lives in the AIOps 2022 layout; kept so that a data set is written back to
/// the file it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricSource {
    /// `metric/container/kpi_container_*.csv`, cmdb_id `node-6.adservice2-0`.
    Container,
    /// `metric/node/kpi_node.csv`, cmdb_id `node-1`.
    Node,
    /// `metric/istio/kpi_istio_*.csv`, cmdb_id `cartservice-1.source.cartservice.redis-cart`.
    Istio,
    /// `metric/service/metric_service.csv`, one row per (service, timestamp) with kpis rr, sr,
    /// mrt, count; cmdb_id `adservice-grpc`.
    Service,
}

impl MetricSource {
    /// Every source, in the order the files are written.
    pub const ALL: [MetricSource; 4] = [
        MetricSource::Container,
        MetricSource::Node,
        MetricSource::Istio,
        MetricSource::Service,
    ];
    /// The lowercase name of the source (`"istio"`).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricSource::Container => "container",
            MetricSource::Node => "node",
            MetricSource::Istio => "istio",
            MetricSource::Service => "service",
        }
    }
}

/// One metric sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// Seconds since the epoch.
    pub timestamp: i64,
    /// The emitting component; its shape depends on `source` (see [`MetricSource`]).
    pub cmdb_id: String,
    /// The KPI (`container_cpu_usage_seconds`, `system.cpu.pct_usage`, `mrt`...).
    pub kpi_name: String,
    /// The sample's value, in the KPI's own unit.
    pub value: f64,
    /// The file family the row came from (and is written back to).
    pub source: MetricSource,
}

/// One log line (`log/all/log_filebeat-testbed-log-service.csv`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogRecord {
    /// The row's id in the data set.
    pub log_id: String,
    /// Seconds since the epoch.
    pub timestamp: i64,
    /// The pod (`cartservice-0`).
    pub cmdb_id: String,
    /// `log_cartservice-service_application`, `log_frontend-envoy_gateway`...
    pub log_name: String,
    /// The log line itself, verbatim.
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_of_the_data() {
        for ok in ["0", "OK", "Ok", "200", "", "Unset", "302"] {
            assert!(status_is_ok(ok), "{ok}");
        }
        for bad in ["1", "2", "14", "500", "404", "Error", "STATUS_CODE_ERROR"] {
            assert!(!status_is_ok(bad), "{bad}");
        }
    }
}
