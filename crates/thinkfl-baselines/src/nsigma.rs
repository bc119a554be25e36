//! N-sigma: every metric series standardized by the mean and standard deviation of a reference
//! period before the case window; components ranked by their largest deviation in the window.
//!
//! Reference: the classic three-sigma rule as the "N-Sigma" baseline of Luan Pham, Huong Ha,
//! Hongyu Zhang, "BARO: Robust Root Cause Analysis for Microservices via Multivariate Bayesian
//! Online Change Point Detection", FSE 2024, and of the RCAEval benchmark (Pham et al., "RCAEval:
//! A Benchmark for Root Cause Analysis of Microservice Systems with Telemetry Data", WWW 2025
//! companion).

use crate::common::{Context, rank_components};
use crate::metric::{MetricConfig, Scaler, metric_scores};
use std::sync::Arc;
use thinkfl_store::TelemetryStore;
use thinkfl_tools::{CaseWindow, DiagnoseError, Diagnoser, Diagnosis, Query};

/// See the module documentation.
#[derive(Debug)]
pub struct NSigma {
    ctx: Arc<Context>,
    cfg: MetricConfig,
    scaler: Scaler,
    name: &'static str,
}

impl NSigma {
    /// The diagnoser over a shared context, after checking `cfg`; metrics are compared with the
    /// mean and standard deviation of their reference period.
    pub fn new(ctx: Arc<Context>, cfg: MetricConfig) -> Result<Self, crate::Error> {
        cfg.validate()?;
        Ok(Self {
            ctx,
            cfg,
            scaler: Scaler::Standard,
            name: "nsigma",
        })
    }

    /// BARO's ranking stage: the same comparison with the robust scaler (see [`crate::baro`]).
    pub(crate) fn robust(ctx: Arc<Context>, cfg: MetricConfig) -> Result<Self, crate::Error> {
        cfg.validate()?;
        Ok(Self {
            ctx,
            cfg,
            scaler: Scaler::Robust,
            name: "baro",
        })
    }
}

impl Diagnoser for NSigma {
    fn name(&self) -> &str {
        self.name
    }

    fn diagnose(
        &self,
        store: &TelemetryStore,
        window: CaseWindow,
        _query: &Query,
    ) -> Result<Diagnosis, DiagnoseError> {
        let t0 = std::time::Instant::now();
        let scores = metric_scores(store, window, self.scaler, &self.cfg);
        let mut path: Vec<String> = scores
            .nodes
            .keys()
            .chain(scores.services.keys())
            .chain(scores.pods.keys())
            .cloned()
            .collect();
        path.dedup();
        Ok(Diagnosis {
            ranking: rank_components(&scores, &self.ctx),
            path,
            elapsed_ms: t0.elapsed().as_secs_f64() * 1e3,
            ..Default::default()
        })
    }
}
