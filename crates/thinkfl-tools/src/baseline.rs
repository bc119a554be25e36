//! Normal durations of operations: the median duration of the spans of each (service,
//! operation), over the whole store. The enriched output mode prints it beside each span so that
//! a small model sees at once which call is slow.

use std::collections::HashMap;
use thinkfl_core::service_of;
use thinkfl_store::{SpanIdx, TelemetryStore};

/// Statistics of one (service, operation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpStats {
    /// Median duration, µs.
    pub median_us: f64,
    /// Spans the median was taken over.
    pub count: usize,
}

/// Per service, per operation name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Baselines {
    by_service: HashMap<String, HashMap<String, OpStats>>,
}

/// Median of a non-empty slice (mean of the two middle values for an even length); NaN if empty.
pub fn median_in_place(v: &mut [i64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let (_, hi, _) = v.select_nth_unstable(n / 2);
    let hi = *hi as f64;
    if n % 2 == 1 {
        hi
    } else {
        let lo = *v[..n / 2].iter().max().expect("n >= 2") as f64;
        (lo + hi) / 2.0
    }
}

impl Baselines {
    /// One pass over every span of the store.
    pub fn compute(store: &TelemetryStore) -> Self {
        let mut groups: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
        for i in 0..store.span_count() {
            let s = store.span(SpanIdx(i as u32));
            groups
                .entry((service_of(s.cmdb_id()), s.operation_name()))
                .or_default()
                .push(s.duration());
        }
        let mut by_service: HashMap<String, HashMap<String, OpStats>> = HashMap::new();
        for ((svc, op), mut d) in groups {
            let count = d.len();
            let median_us = median_in_place(&mut d);
            by_service
                .entry(svc.to_string())
                .or_default()
                .insert(op.to_string(), OpStats { median_us, count });
        }
        Self { by_service }
    }

    /// Statistics of the operation `op` as served by the pod or service `cmdb_id`.
    pub fn get(&self, cmdb_id: &str, op: &str) -> Option<OpStats> {
        self.by_service.get(service_of(cmdb_id))?.get(op).copied()
    }

    /// Number of (service, operation) pairs.
    pub fn len(&self) -> usize {
        self.by_service.values().map(HashMap::len).sum()
    }

    /// Whether no operation has statistics (a store without spans).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median_in_place(&mut [5, 1, 3]), 3.0);
        assert_eq!(median_in_place(&mut [4, 1, 3, 2]), 2.5);
        assert_eq!(median_in_place(&mut [7]), 7.0);
        assert!(median_in_place(&mut []).is_nan());
    }
}
