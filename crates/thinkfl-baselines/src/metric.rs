//! Shared by N-sigma and BARO: every metric series compared between a reference period before
//! the case window and the window itself; a component scores its most deviating series.

use crate::common::{Scores, quantile_sorted, series_component};
use thinkfl_store::TelemetryStore;
use thinkfl_tools::CaseWindow;

/// How a series is centred and scaled on its reference period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaler {
    /// Mean and sample standard deviation.
    Standard,
    /// Median and interquartile range (scikit-learn's RobustScaler, as BARO uses it).
    Robust,
}

/// Settings of a metric-deviation ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricConfig {
    /// Length (s) of the reference period just before the window.
    pub reference_s: i64,
    /// Fewest reference points for a series to be scored.
    pub min_reference_points: usize,
    /// Floor of the scale, as a share of the centre's magnitude: a series constant in the
    /// reference would otherwise turn any change into an infinite score.
    pub min_relative_scale: f64,
}

impl Default for MetricConfig {
    fn default() -> Self {
        Self {
            reference_s: 1200,
            min_reference_points: 5,
            min_relative_scale: 0.01,
        }
    }
}

impl MetricConfig {
    /// Checks every field's range; the error names the field.
    pub fn validate(&self) -> Result<(), crate::Error> {
        if self.reference_s <= 0 {
            return Err(crate::Error::Config {
                field: "reference_s",
                msg: format!("must be > 0, got {}", self.reference_s),
            });
        }
        if self.min_reference_points < 2 {
            return Err(crate::Error::Config {
                field: "min_reference_points",
                msg: "must be at least 2".into(),
            });
        }
        if !(self.min_relative_scale.is_finite() && self.min_relative_scale >= 0.0) {
            return Err(crate::Error::Config {
                field: "min_relative_scale",
                msg: "must be >= 0".into(),
            });
        }
        Ok(())
    }
}

/// Centre and scale of reference values (finite values only).
pub fn fit(values: &[f64], scaler: Scaler, cfg: &MetricConfig) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < cfg.min_reference_points {
        return None;
    }
    let (centre, scale) = match scaler {
        Scaler::Standard => {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            (mean, var.sqrt())
        }
        Scaler::Robust => {
            v.sort_by(f64::total_cmp);
            (
                quantile_sorted(&v, 0.5),
                quantile_sorted(&v, 0.75) - quantile_sorted(&v, 0.25),
            )
        }
    };
    Some((
        centre,
        scale.max(cfg.min_relative_scale * centre.abs()).max(1e-9),
    ))
}

/// Largest `|x - centre| / scale` of the window points of one series.
pub fn series_score(
    ts: &[i64],
    vs: &[f64],
    window: CaseWindow,
    scaler: Scaler,
    cfg: &MetricConfig,
) -> Option<f64> {
    let r0 = ts.partition_point(|&t| t < window.start_s.saturating_sub(cfg.reference_s));
    let r1 = ts.partition_point(|&t| t < window.start_s);
    let w1 = ts.partition_point(|&t| t < window.end_s);
    let (centre, scale) = fit(&vs[r0..r1], scaler, cfg)?;
    vs[r1..w1]
        .iter()
        .filter(|x| x.is_finite())
        .map(|x| (x - centre).abs() / scale)
        .reduce(f64::max)
}

/// Scores of every component with metrics, for one window.
pub fn metric_scores(
    store: &TelemetryStore,
    window: CaseWindow,
    scaler: Scaler,
    cfg: &MetricConfig,
) -> Scores {
    let mut scores = Scores::default();
    for s in store.all_series() {
        let Some((level, name)) = series_component(s.cmdb_id(), s.source()) else {
            continue;
        };
        if let Some(z) = series_score(s.timestamps(), s.values(), window, scaler, cfg) {
            scores.add(level, &name, z);
        }
    }
    scores
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_scores() {
        let cfg = MetricConfig {
            reference_s: 100,
            min_reference_points: 3,
            min_relative_scale: 0.0,
        };
        let ts: Vec<i64> = (0..10).map(|i| i * 20).collect(); // 0..180
        let vs = vec![1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 10.0, 2.0, 2.0, 2.0];
        let w = CaseWindow {
            start_s: 120,
            end_s: 160,
        };
        // Reference [20, 120): 3, 1, 3, 1, 3: mean 2.2, sd sqrt(1.2); window: 10, 2.
        let z = series_score(&ts, &vs, w, Scaler::Standard, &cfg).unwrap();
        assert!((z - 7.8 / 1.2f64.sqrt()).abs() < 1e-9);
        // Median 3, IQR 3 - 1 = 2: |10 - 3| / 2.
        let r = series_score(&ts, &vs, w, Scaler::Robust, &cfg).unwrap();
        assert!((r - 3.5).abs() < 1e-9);
        // Too few reference points: no score.
        let short = MetricConfig {
            min_reference_points: 6,
            ..cfg
        };
        assert_eq!(series_score(&ts, &vs, w, Scaler::Standard, &short), None);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// The windows by scanning every point, as a reference for the binary searches.
    fn naive(
        ts: &[i64],
        vs: &[f64],
        w: CaseWindow,
        scaler: Scaler,
        cfg: &MetricConfig,
    ) -> Option<f64> {
        let reference: Vec<f64> = ts
            .iter()
            .zip(vs)
            .filter(|(t, _)| **t >= w.start_s - cfg.reference_s && **t < w.start_s)
            .map(|(_, v)| *v)
            .collect();
        let (c, s) = fit(&reference, scaler, cfg)?;
        ts.iter()
            .zip(vs)
            .filter(|(t, v)| **t >= w.start_s && **t < w.end_s && v.is_finite())
            .map(|(_, v)| (v - c).abs() / s)
            .reduce(f64::max)
    }

    proptest! {
        #[test]
        fn windows_match_a_scan(
            mut ts in proptest::collection::vec(0i64..400, 0..60),
            vals in proptest::collection::vec(-50.0f64..50.0, 60),
            start in 0i64..400,
            len in 1i64..200,
            robust in any::<bool>(),
        ) {
            ts.sort_unstable();
            let vs = &vals[..ts.len()];
            let cfg = MetricConfig { reference_s: 100, min_reference_points: 2, min_relative_scale: 0.01 };
            let w = CaseWindow { start_s: start, end_s: start + len };
            let scaler = if robust { Scaler::Robust } else { Scaler::Standard };
            prop_assert_eq!(series_score(&ts, vs, w, scaler, &cfg), naive(&ts, vs, w, scaler, &cfg));
        }
    }
}
