//! BARO: the case window's metrics scaled robustly (median and interquartile range of the period
//! before the change point), components ranked by their largest scaled deviation.
//!
//! Reference: Luan Pham, Huong Ha, Hongyu Zhang, "BARO: Robust Root Cause Analysis for
//! Microservices via Multivariate Bayesian Online Change Point Detection", FSE 2024.
//!
//! BARO finds the change point with multivariate Bayesian online change point detection, then
//! ranks with the RobustScaler fitted before it. Every method here sees the same case window,
//! whose start is the change point BARO's first stage would estimate; only the ranking stage is
//! run, on the reference period `[start - reference_s, start)`.

use crate::common::Context;
use crate::metric::MetricConfig;
use crate::nsigma::NSigma;
use std::sync::Arc;

/// BARO's robust ranking as a [`thinkfl_tools::Diagnoser`] named `baro`.
pub fn baro(ctx: Arc<Context>, cfg: MetricConfig) -> Result<NSigma, crate::Error> {
    NSigma::robust(ctx, cfg)
}
