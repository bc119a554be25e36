//! AdamW (Loshchilov and Hutter, arXiv 1711.05101) with global-norm gradient clipping, written
//! here rather than taken from candle-nn so that its moments can be checkpointed and restored.

use crate::error::{Error, Result};
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Settings of the optimizer (the learning rate comes from the stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// Decay of the first moment.
    #[serde(default = "OptimConfig::default_beta1")]
    pub beta1: f64,
    /// Decay of the second moment.
    #[serde(default = "OptimConfig::default_beta2")]
    pub beta2: f64,
    /// Added to the second moment's root in the denominator.
    #[serde(default = "OptimConfig::default_eps")]
    pub eps: f64,
    /// Decoupled weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Gradients are scaled down to this global L2 norm; 0 disables clipping.
    #[serde(default = "OptimConfig::default_max_grad_norm")]
    pub max_grad_norm: f64,
}

impl OptimConfig {
    fn default_beta1() -> f64 {
        0.9
    }
    fn default_beta2() -> f64 {
        0.999
    }
    fn default_eps() -> f64 {
        1e-8
    }
    fn default_max_grad_norm() -> f64 {
        1.0
    }
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return Err(Error::Config(
                "optim.beta1 and optim.beta2 must be in [0, 1)".into(),
            ));
        }
        if self.eps.is_nan()
            || self.eps <= 0.0
            || self.weight_decay < 0.0
            || self.max_grad_norm < 0.0
        {
            return Err(Error::Config(
                "optim.eps must be > 0, weight_decay and max_grad_norm >= 0".into(),
            ));
        }
        Ok(())
    }
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            beta1: Self::default_beta1(),
            beta2: Self::default_beta2(),
            eps: Self::default_eps(),
            weight_decay: 0.0,
            max_grad_norm: Self::default_max_grad_norm(),
        }
    }
}

/// Gradients summed over the sequences of a batch, by parameter index.
#[derive(Debug, Default)]
pub struct GradAccum {
    grads: HashMap<usize, Tensor>,
}

impl GradAccum {
    /// No gradient yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Backpropagate `loss` and add the gradients of `params` to the sums.
    pub fn backward(&mut self, loss: &Tensor, params: &[(String, Var)]) -> Result<()> {
        self.add(&loss.backward()?, params)
    }

    /// Add the gradients of `params` found in `store` to the sums.
    pub fn add(
        &mut self,
        store: &candle_core::backprop::GradStore,
        params: &[(String, Var)],
    ) -> Result<()> {
        for (i, (_, v)) in params.iter().enumerate() {
            if let Some(g) = store.get(v.as_tensor()) {
                let g = g.detach();
                let sum = match self.grads.remove(&i) {
                    Some(s) => (s + g)?,
                    None => g,
                };
                self.grads.insert(i, sum);
            }
        }
        Ok(())
    }

    /// The summed gradient of parameter `i`, if it got one.
    pub fn get(&self, i: usize) -> Option<&Tensor> {
        self.grads.get(&i)
    }

    /// Whether no parameter got a gradient.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }

    /// Global L2 norm.
    pub fn norm(&self) -> Result<f64> {
        let mut s = 0.0f64;
        for g in self.grads.values() {
            s += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
        Ok(s.sqrt())
    }
}

/// AdamW state: step count and the two moments per parameter.
#[derive(Debug)]
pub struct AdamW {
    /// Its settings.
    pub config: OptimConfig,
    /// Updates taken so far (bias correction uses it).
    pub t: u64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl AdamW {
    /// Zero moments for `params`, after checking `config`.
    pub fn new(config: OptimConfig, params: &[(String, Var)]) -> Result<Self> {
        config.validate()?;
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        Ok(AdamW {
            config,
            t: 0,
            m: params
                .iter()
                .map(|(_, v)| zeros(v))
                .collect::<candle_core::Result<_>>()?,
            v: params
                .iter()
                .map(|(_, v)| zeros(v))
                .collect::<candle_core::Result<_>>()?,
        })
    }

    /// One update with learning rate `lr`; returns the gradient norm before clipping.
    pub fn step(&mut self, params: &[(String, Var)], grads: &GradAccum, lr: f64) -> Result<f64> {
        let norm = grads.norm()?;
        let clip = if self.config.max_grad_norm > 0.0 && norm > self.config.max_grad_norm {
            self.config.max_grad_norm / (norm + 1e-6)
        } else {
            1.0
        };
        self.t += 1;
        let c = &self.config;
        let (b1, b2) = (c.beta1, c.beta2);
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        for (i, (_, var)) in params.iter().enumerate() {
            let Some(g) = grads.get(i) else { continue };
            let g = (g * clip)?;
            let m = ((&self.m[i] * b1)? + (&g * (1.0 - b1))?)?;
            let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let mhat = (&m / bc1)?;
            let vhat = (&v / bc2)?;
            let update = (mhat / (vhat.sqrt()? + c.eps)?)?;
            let theta = var.as_tensor();
            let decayed = (theta * (1.0 - lr * c.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(norm)
    }

    /// Moments by parameter name (`m.NAME`, `v.NAME`) for a checkpoint.
    pub fn state_tensors(&self, params: &[(String, Var)]) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in params.iter().enumerate() {
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        out
    }

    /// Restore moments written by [`AdamW::state_tensors`].
    pub fn load_state(
        &mut self,
        params: &[(String, Var)],
        t: u64,
        mut state: HashMap<String, Tensor>,
    ) -> Result<()> {
        for (i, (name, var)) in params.iter().enumerate() {
            for (kind, slot) in [("m", &mut self.m), ("v", &mut self.v)] {
                let key = format!("{kind}.{name}");
                let ten = state
                    .remove(&key)
                    .ok_or_else(|| Error::Checkpoint(format!("optimizer state lacks {key}")))?;
                if ten.dims() != var.as_tensor().dims() {
                    return Err(Error::Checkpoint(format!(
                        "optimizer state {key} has shape {:?}, parameter {:?}",
                        ten.dims(),
                        var.as_tensor().dims()
                    )));
                }
                slot[i] = ten;
            }
        }
        self.t = t;
        Ok(())
    }
}
