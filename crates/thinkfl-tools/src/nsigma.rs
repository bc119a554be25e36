//! The n-sigma rule of `search_fluctuating_metrics`, as the paper's tool server applies it: over
//! the points within `±regular_window_s` of the query time (both ends inclusive) take the mean and
//! the sample standard deviation; the series fluctuates when a point within `±current_window_s`
//! lies strictly more than `n_sigma` standard deviations from that mean. A series with fewer than
//! two points in the regular window has no standard deviation and never fluctuates. NaN values are
//! skipped, as pandas does.

use crate::pyfmt::{pandas_mean, pandas_std};

/// Settings of the rule; the defaults are the paper's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NSigmaConfig {
    /// Half width (s) of the window the "regular" mean and deviation come from.
    pub regular_window_s: i64,
    /// Half width (s) of the window whose points are tested.
    pub current_window_s: i64,
    /// How many standard deviations count as a fluctuation.
    pub n_sigma: f64,
}

impl NSigmaConfig {
    /// Default [`NSigmaConfig::regular_window_s`]: the paper's ±1200 s.
    pub const DEFAULT_REGULAR_WINDOW_S: i64 = 1200;
    /// Default [`NSigmaConfig::current_window_s`]: the paper's ±600 s.
    pub const DEFAULT_CURRENT_WINDOW_S: i64 = 600;
    /// Default [`NSigmaConfig::n_sigma`]: the paper's 3σ.
    pub const DEFAULT_N_SIGMA: f64 = 3.0;

    /// Checks that the regular window is positive, the current window within it, and
    /// `n_sigma` finite and positive; the error names the field.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |field: &'static str, msg: String| Err(crate::Error::Config { field, msg });
        if self.regular_window_s <= 0 {
            return bad(
                "regular_window_s",
                format!("must be > 0, got {}", self.regular_window_s),
            );
        }
        if self.current_window_s <= 0 || self.current_window_s > self.regular_window_s {
            return bad(
                "current_window_s",
                format!(
                    "must be in 1..={} (the regular window), got {}",
                    self.regular_window_s, self.current_window_s
                ),
            );
        }
        if !(self.n_sigma.is_finite() && self.n_sigma > 0.0) {
            return bad("n_sigma", format!("must be > 0, got {}", self.n_sigma));
        }
        Ok(())
    }
}

impl Default for NSigmaConfig {
    fn default() -> Self {
        Self {
            regular_window_s: Self::DEFAULT_REGULAR_WINDOW_S,
            current_window_s: Self::DEFAULT_CURRENT_WINDOW_S,
            n_sigma: Self::DEFAULT_N_SIGMA,
        }
    }
}

/// Statistics of a fluctuating series (unrounded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fluctuation {
    /// Mean of the finite points in the regular window.
    pub regular_mean: f64,
    /// Sample standard deviation (pandas' `std`, n - 1) of the finite points in the regular
    /// window.
    pub regular_std: f64,
    /// Mean of the tested points (NaN when none).
    pub current_mean: f64,
    /// Sample deviation of the tested points (NaN with fewer than two).
    pub current_std: f64,
    /// Largest distance of a tested point from the regular mean, in regular deviations.
    pub max_sigma: f64,
}

fn window(ts: &[i64], from: i64, to: i64) -> std::ops::Range<usize> {
    let a = ts.partition_point(|&t| t < from);
    let b = ts.partition_point(|&t| t <= to);
    a..b.max(a)
}

/// The values without NaN, borrowed when there is none (the common case).
fn finite_values(vs: &[f64]) -> std::borrow::Cow<'_, [f64]> {
    if vs.iter().any(|v| v.is_nan()) {
        std::borrow::Cow::Owned(vs.iter().copied().filter(|v| !v.is_nan()).collect())
    } else {
        std::borrow::Cow::Borrowed(vs)
    }
}

/// Applies the rule to one series (`ts` in seconds, ascending) around `t` (seconds).
pub fn fluctuation(ts: &[i64], vs: &[f64], t: i64, cfg: &NSigmaConfig) -> Option<Fluctuation> {
    debug_assert_eq!(ts.len(), vs.len());
    let reg = window(
        ts,
        t.saturating_sub(cfg.regular_window_s),
        t.saturating_add(cfg.regular_window_s),
    );
    let regular = finite_values(&vs[reg]);
    let mean = pandas_mean(&regular);
    let std = pandas_std(&regular);
    if mean.is_nan() || std.is_nan() {
        return None;
    }
    let cur = window(
        ts,
        t.saturating_sub(cfg.current_window_s),
        t.saturating_add(cfg.current_window_s),
    );
    let current = finite_values(&vs[cur]);
    let threshold = cfg.n_sigma * std;
    let fluctuating = current
        .iter()
        .any(|&v| v < mean - threshold || v > mean + threshold);
    if !fluctuating {
        return None;
    }
    let max_dev = current.iter().map(|v| (v - mean).abs()).fold(0.0, f64::max);
    Some(Fluctuation {
        regular_mean: mean,
        regular_std: std,
        current_mean: pandas_mean(&current),
        current_std: pandas_std(&current),
        max_sigma: if std > 0.0 {
            max_dev / std
        } else {
            f64::INFINITY
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flat series every 60 s over ±1200 s around t = 10_000, with optional spikes.
    fn series(spikes: &[(i64, f64)]) -> (Vec<i64>, Vec<f64>) {
        let ts: Vec<i64> = (0..=40).map(|i| 10_000 - 1200 + i * 60).collect();
        let vs = ts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                spikes
                    .iter()
                    .find(|(st, _)| st == t)
                    .map(|(_, v)| *v)
                    .unwrap_or(if i % 2 == 0 { 10.0 } else { 12.0 })
            })
            .collect();
        (ts, vs)
    }

    #[test]
    fn a_spike_inside_the_current_window_fluctuates() {
        let (ts, vs) = series(&[(10_060, 100.0)]);
        let f = fluctuation(&ts, &vs, 10_000, &NSigmaConfig::default()).expect("fluctuates");
        // 41 points: 20 of 12, 20 of 10 (one 10 replaced... see below), one spike.
        let n = vs.len() as f64;
        let mean = vs.iter().sum::<f64>() / n;
        assert!((f.regular_mean - mean).abs() < 1e-12);
        let var = vs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        assert!((f.regular_std - var.sqrt()).abs() < 1e-12);
        assert!(f.max_sigma > 3.0);
        // Current window ±600 holds 21 points (inclusive ends).
        let cur: Vec<f64> = ts
            .iter()
            .zip(&vs)
            .filter(|(t, _)| (9_400..=10_600).contains(*t))
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(cur.len(), 21);
        assert!((f.current_mean - cur.iter().sum::<f64>() / 21.0).abs() < 1e-12);
    }

    #[test]
    fn a_spike_outside_the_current_window_does_not() {
        // At t+900: inside the regular window (it inflates the deviation) but not tested.
        let (ts, vs) = series(&[(10_900, 100.0)]);
        assert_eq!(
            fluctuation(&ts, &vs, 10_000, &NSigmaConfig::default()),
            None
        );
    }

    #[test]
    fn flat_and_alternating_series_do_not_fluctuate() {
        let (ts, vs) = series(&[]);
        assert_eq!(
            fluctuation(&ts, &vs, 10_000, &NSigmaConfig::default()),
            None
        );
        let flat = vec![5.0; ts.len()];
        // Deviation 0: nothing is strictly beyond mean ± 0.
        assert_eq!(
            fluctuation(&ts, &flat, 10_000, &NSigmaConfig::default()),
            None
        );
    }

    #[test]
    fn window_ends_are_inclusive() {
        // Two points only, at exactly t-1200 and t+600; the second is tested.
        // mean 0.5*(0+x); with 2 points |x - mean| = std/sqrt(2) < 3 std: never fluctuates.
        let ts = [8_800, 10_600];
        assert_eq!(
            fluctuation(&ts, &[0.0, 1.0], 10_000, &NSigmaConfig::default()),
            None
        );
        // With n_sigma 0.5 the point at exactly t+600 is tested and counts.
        let cfg = NSigmaConfig {
            n_sigma: 0.5,
            ..Default::default()
        };
        let f = fluctuation(&ts, &[0.0, 1.0], 10_000, &cfg).expect("inclusive end");
        assert_eq!(f.current_mean, 1.0);
        assert!(f.current_std.is_nan());
        // One second later it is outside both windows' tested range.
        let ts = [8_800, 10_601];
        assert_eq!(fluctuation(&ts, &[0.0, 1.0], 10_000, &cfg), None);
    }

    #[test]
    fn too_few_points_have_no_deviation() {
        assert_eq!(
            fluctuation(&[10_000], &[1.0], 10_000, &NSigmaConfig::default()),
            None
        );
        assert_eq!(
            fluctuation(&[], &[], 10_000, &NSigmaConfig::default()),
            None
        );
    }

    #[test]
    fn nan_values_are_skipped() {
        let (ts, mut vs) = series(&[(10_060, 100.0)]);
        vs[0] = f64::NAN;
        let f = fluctuation(&ts, &vs, 10_000, &NSigmaConfig::default()).expect("fluctuates");
        assert!(f.regular_mean.is_finite() && f.regular_std.is_finite());
    }

    #[test]
    fn validate_names_fields() {
        assert!(NSigmaConfig::default().validate().is_ok());
        let e = NSigmaConfig {
            current_window_s: 2000,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("current_window_s"));
    }
}
