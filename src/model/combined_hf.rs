//! A compiled HistFactory model as one part of a combined likelihood.

use super::{ConstraintInfo, Part, PartData, PartGen, PartScratch};
use crate::model::{Dataset, HistFactoryModel, histfactory};
use serde_json::{Value, json};
use std::sync::Arc;

/// A compiled HistFactory model as a part of a combination (binned channels
/// of an NSBI workspace, HS3 `histfactory_dist` channels).
pub struct HistFactoryPart {
    /// The model.
    pub model: HistFactoryModel,
}

impl HistFactoryPart {
    fn data<'a>(&self, d: &'a PartData) -> &'a Dataset {
        d.downcast_ref::<Dataset>()
            .expect("a HistFactory part is always given its own Dataset")
    }
}

impl Part for HistFactoryPart {
    fn label(&self) -> String {
        let names: Vec<&str> = self
            .model
            .channels
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        format!(
            "binned channels {} ({})",
            names.join(", "),
            self.model.measurement
        )
    }
    fn par_names(&self) -> &[String] {
        &self.model.par_names
    }
    fn init(&self) -> &[f64] {
        &self.model.init
    }
    fn bounds(&self) -> &[(f64, f64)] {
        &self.model.bounds
    }
    fn fixed(&self) -> &[bool] {
        &self.model.fixed
    }
    fn poi(&self) -> Option<usize> {
        self.model.poi
    }
    fn observed(&self) -> PartData {
        Arc::new(self.model.observed().clone())
    }
    fn scratch(&self) -> PartScratch {
        Box::new(histfactory::Scratch::new(&self.model))
    }
    fn eval(
        &self,
        theta: &[f64],
        data: &PartData,
        scratch: &mut PartScratch,
        grad: Option<&mut [f64]>,
        hess: Option<&mut [f64]>,
    ) -> f64 {
        let s = scratch
            .downcast_mut::<histfactory::Scratch>()
            .expect("a HistFactory part is always given its own scratch");
        self.model.eval(theta, self.data(data), s, grad, hess)
    }
    fn asimov(&self, theta: &[f64]) -> PartData {
        Arc::new(self.model.asimov_dataset(theta))
    }
    fn generator(&self, theta: &[f64]) -> PartGen {
        Box::new(self.model.toy_generator(theta))
    }
    fn sample(&self, g: &PartGen, seed: u64, toy: u32, purpose: u32) -> PartData {
        let g = g
            .downcast_ref::<histfactory::ToyGenerator>()
            .expect("a HistFactory part is always given its own generator");
        Arc::new(self.model.sample_dataset(g, seed, toy, purpose))
    }
    fn magnitude(&self, data: &PartData) -> f64 {
        self.data(data).constant.abs()
    }
    fn constraint(&self, i: usize) -> Option<ConstraintInfo> {
        let a = self.model.aux_index[i].map(|k| self.model.observed().aux[k])?;
        match self.model.constraints[i] {
            histfactory::Constraint::None => None,
            histfactory::Constraint::Normal { sigma } => Some(ConstraintInfo {
                kind: "normal",
                sigma,
                center: a,
            }),
            histfactory::Constraint::Poisson { tau } => Some(ConstraintInfo {
                kind: "poisson",
                sigma: self.model.prefit_sigma(i),
                center: a / tau,
            }),
        }
    }
    fn domain_issue(&self, theta: &[f64], data: &PartData) -> Option<String> {
        self.model.domain_issue(theta, self.data(data))
    }
    fn describe(&self) -> Value {
        json!({
            "type": "histfactory",
            "measurement": self.model.measurement,
            "channels": self.model.channels.iter().map(|c| json!({"name": c.name, "nbins": c.nbins})).collect::<Vec<_>>(),
            "n_parameters": self.model.n_pars(),
        })
    }
}
