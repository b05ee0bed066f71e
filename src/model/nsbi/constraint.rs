//! Gaussian constraint terms `Normal(a_k | alpha_k, sigma_k)` of nuisance
//! parameters, as a part of their own.
//!
//! In a combination every constraint term must appear once: the parameters
//! of unbinned channels that a binned (HistFactory) part already constrains
//! are left out of this part.

use crate::model::combined::{ConstraintInfo, Part, PartData, PartGen, PartScratch};
use crate::rng::Stream;
use serde_json::{Value, json};
use std::sync::Arc;

/// Gaussian constraints of a set of parameters.
#[derive(Debug, Clone)]
pub struct GaussConstraints {
    names: Vec<String>,
    sigma: Vec<f64>,
    aux: Vec<f64>,
    init: Vec<f64>,
    bounds: Vec<(f64, f64)>,
    fixed: Vec<bool>,
}

/// `ln(2 pi)`.
const LN_2PI: f64 = 1.837_877_066_409_345_5;

impl GaussConstraints {
    /// Constraints of `names` with widths `sigma` and observed global
    /// observables `aux`; `init`, `bounds`, `fixed` as the channels declare them.
    pub fn new(
        names: Vec<String>,
        sigma: Vec<f64>,
        aux: Vec<f64>,
        init: Vec<f64>,
        bounds: Vec<(f64, f64)>,
        fixed: Vec<bool>,
    ) -> Self {
        GaussConstraints {
            names,
            sigma,
            aux,
            init,
            bounds,
            fixed,
        }
    }

    fn aux<'a>(&self, d: &'a PartData) -> &'a Vec<f64> {
        d.downcast_ref::<Vec<f64>>()
            .expect("a constraint part is always given its own global observables")
    }
}

impl Part for GaussConstraints {
    fn label(&self) -> String {
        format!("Gaussian constraints ({} parameters)", self.names.len())
    }
    fn par_names(&self) -> &[String] {
        &self.names
    }
    fn init(&self) -> &[f64] {
        &self.init
    }
    fn bounds(&self) -> &[(f64, f64)] {
        &self.bounds
    }
    fn fixed(&self) -> &[bool] {
        &self.fixed
    }
    fn observed(&self) -> PartData {
        Arc::new(self.aux.clone())
    }
    fn scratch(&self) -> PartScratch {
        Box::new(())
    }
    fn eval(
        &self,
        theta: &[f64],
        data: &PartData,
        _scratch: &mut PartScratch,
        grad: Option<&mut [f64]>,
        hess: Option<&mut [f64]>,
    ) -> f64 {
        let aux = self.aux(data);
        let n = self.names.len();
        let mut v = 0.0;
        for k in 0..n {
            let z = (theta[k] - aux[k]) / self.sigma[k];
            v += z * z + LN_2PI + 2.0 * self.sigma[k].ln();
        }
        if let Some(g) = grad {
            for k in 0..n {
                g[k] = 2.0 * (theta[k] - aux[k]) / (self.sigma[k] * self.sigma[k]);
            }
        }
        if let Some(h) = hess {
            h[..n * n].fill(0.0);
            for k in 0..n {
                h[k * n + k] = 2.0 / (self.sigma[k] * self.sigma[k]);
            }
        }
        v
    }
    fn asimov(&self, theta: &[f64]) -> PartData {
        Arc::new(theta.to_vec())
    }
    fn generator(&self, theta: &[f64]) -> PartGen {
        Box::new(theta.to_vec())
    }
    fn sample(&self, g: &PartGen, seed: u64, toy: u32, purpose: u32) -> PartData {
        let centre = g
            .downcast_ref::<Vec<f64>>()
            .expect("a constraint part is always given its own generator");
        Arc::new(
            centre
                .iter()
                .zip(&self.sigma)
                .enumerate()
                .map(|(k, (c, s))| c + s * Stream::new(seed, toy, purpose, k as u32).normal())
                .collect::<Vec<f64>>(),
        )
    }
    fn magnitude(&self, _data: &PartData) -> f64 {
        self.names.len() as f64 * LN_2PI
    }
    fn constraint(&self, i: usize) -> Option<ConstraintInfo> {
        Some(ConstraintInfo {
            kind: "normal",
            sigma: self.sigma[i],
            center: self.aux[i],
        })
    }
    fn describe(&self) -> Value {
        json!({"type": "gaussian constraints", "parameters": self.names, "sigma": self.sigma, "aux": self.aux})
    }
}
