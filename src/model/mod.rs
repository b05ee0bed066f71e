//! Statistical models. Everything above this layer (fits, test statistics,
//! toys, impacts) talks to a model only through the [`Likelihood`] trait.

pub mod any;
pub mod combined;
pub mod histfactory;
pub mod layout;
pub mod nsbi;
pub mod unbinned;

pub use any::{AnyModel, Format, ModelInfo, format_of, load_other};
pub use combined::{CombinedData, CombinedModel, ConstraintInfo, Part};
pub use layout::HessianLayout;

pub use histfactory::{Dataset, HistFactoryModel, InterpCode, ModelOptions};

/// The one interface between models and inference: twice the negative
/// log-likelihood with its gradient and exact Hessian, plus the parameter table.
pub trait Likelihood: Send + Sync {
    /// The data a likelihood is evaluated on (observed, toy or Asimov).
    type Data: Send + Sync + Clone;
    /// Per-thread evaluation buffers.
    type Scratch: Send;
    /// Precomputed distribution of pseudo-data at a parameter point.
    type Generator: Send + Sync;

    /// Parameter names in model order.
    fn par_names(&self) -> &[String];
    /// Number of parameters.
    fn n_pars(&self) -> usize {
        self.par_names().len()
    }
    /// Suggested initial values.
    fn init(&self) -> &[f64];
    /// Bounds per parameter.
    fn bounds(&self) -> &[(f64, f64)];
    /// Fixed flags per parameter.
    fn fixed(&self) -> &[bool];
    /// Index of the parameter of interest.
    fn poi(&self) -> Option<usize>;
    /// The observed data.
    fn observed(&self) -> &Self::Data;
    /// Fresh evaluation buffers.
    fn scratch(&self) -> Self::Scratch;
    /// twice_nll at `theta`; writes the gradient and the row-major Hessian when asked.
    /// Returns `+inf` outside the model's domain.
    fn eval(
        &self,
        theta: &[f64],
        data: &Self::Data,
        scratch: &mut Self::Scratch,
        grad: Option<&mut [f64]>,
        hess: Option<&mut [f64]>,
    ) -> f64;
    /// The Asimov dataset at `theta` (expected main and aux data).
    fn asimov(&self, theta: &[f64]) -> Self::Data;
    /// Prepare toy generation at `theta`.
    fn generator(&self, theta: &[f64]) -> Self::Generator;
    /// Toy number `toy` of stream `purpose`, reproducible from `seed` alone.
    fn sample(&self, generator: &Self::Generator, seed: u64, toy: u32, purpose: u32) -> Self::Data;
    /// Block structure of the Hessian (see [`HessianLayout`]).
    fn layout(&self) -> &HessianLayout;
    /// Typical size of the terms that sum to twice_nll on `data` (rounding
    /// errors of twice_nll are about 1e-16 of it, even where twice_nll is small).
    fn magnitude(&self, _data: &Self::Data) -> f64 {
        0.0
    }
    /// Parameters the minimiser steps in as `1/x` (see `fit::coords`): those
    /// whose likelihood is closer to quadratic in the reciprocal, and which
    /// the model defines only at `x > 0`. Default: none.
    fn reciprocal_pars(&self) -> &[usize] {
        &[]
    }
    /// Whether the rates of the last evaluation with `scratch` leave the
    /// likelihood's domain in a bin with data, where the model evaluates an
    /// extension (a minimum found there is reported as
    /// [`crate::fit::FitStatus::OutsideDomain`]). Default: never.
    fn outside_domain(&self, _scratch: &Self::Scratch, _data: &Self::Data) -> bool {
        false
    }
    /// twice_nll with the Hessian in packed block form (`layout()`,
    /// `layout().n_packed` entries), or, with `fisher`, a positive
    /// semi-definite approximation of it (the expected information) for steps
    /// far from the minimum. The default evaluates the full Hessian and packs
    /// it (allocating; fine for small models), ignoring `fisher`.
    fn eval_block(
        &self,
        theta: &[f64],
        data: &Self::Data,
        scratch: &mut Self::Scratch,
        grad: Option<&mut [f64]>,
        hb: Option<&mut [f64]>,
        fisher: bool,
    ) -> f64 {
        let _ = fisher;
        match hb {
            None => self.eval(theta, data, scratch, grad, None),
            Some(hb) => {
                let n = self.n_pars();
                let mut full = vec![0.0; n * n];
                let f = self.eval(theta, data, scratch, grad, Some(&mut full));
                self.layout().pack(&full, hb);
                f
            }
        }
    }
}

impl Likelihood for HistFactoryModel {
    type Data = Dataset;
    type Scratch = histfactory::Scratch;
    type Generator = histfactory::ToyGenerator;

    fn par_names(&self) -> &[String] {
        &self.par_names
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
    fn poi(&self) -> Option<usize> {
        self.poi
    }
    fn observed(&self) -> &Dataset {
        HistFactoryModel::observed(self)
    }
    fn scratch(&self) -> histfactory::Scratch {
        histfactory::Scratch::new(self)
    }
    fn asimov(&self, theta: &[f64]) -> Dataset {
        self.asimov_dataset(theta)
    }
    fn generator(&self, theta: &[f64]) -> histfactory::ToyGenerator {
        self.toy_generator(theta)
    }
    fn sample(&self, g: &histfactory::ToyGenerator, seed: u64, toy: u32, purpose: u32) -> Dataset {
        self.sample_dataset(g, seed, toy, purpose)
    }
    fn eval(
        &self,
        theta: &[f64],
        data: &Dataset,
        scratch: &mut histfactory::Scratch,
        grad: Option<&mut [f64]>,
        hess: Option<&mut [f64]>,
    ) -> f64 {
        HistFactoryModel::eval(self, theta, data, scratch, grad, hess)
    }
    fn layout(&self) -> &HessianLayout {
        &self.structure.layout
    }
    fn magnitude(&self, data: &Dataset) -> f64 {
        data.constant.abs()
    }
    fn outside_domain(&self, scratch: &histfactory::Scratch, data: &Dataset) -> bool {
        HistFactoryModel::outside_domain(self, scratch, data)
    }
    fn eval_block(
        &self,
        theta: &[f64],
        data: &Dataset,
        scratch: &mut histfactory::Scratch,
        grad: Option<&mut [f64]>,
        hb: Option<&mut [f64]>,
        fisher: bool,
    ) -> f64 {
        HistFactoryModel::eval_block(self, theta, data, scratch, grad, hb, fisher)
    }
}
