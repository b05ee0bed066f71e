//! HistFactory models compiled from pyhf workspaces.
//!
//! A [`HistFactoryModel`] holds the parameter table (pyhf order, inits, bounds,
//! fixed flags, constraints), the observed data and a flat list of sample-bins,
//! each with its multiplicative and additive terms. Three evaluators share it:
//! the fused CPU kernel ([`kernel`]: value, gradient, exact Hessian), the candle
//! graph ([`graph`]: autodiff to parameters and templates) and the candle custom
//! op ([`op`]) that wraps the kernel.

mod blocks;
mod build;
mod checks;
mod describe;
pub mod generate;
pub mod graph;
pub mod interp;
pub mod kernel;
pub mod op;
mod pardefs;
mod terms;
pub mod yields;

pub use describe::describe;
pub use generate::ToyGenerator;
pub use interp::{Interp, InterpCode};
pub use kernel::Scratch;
pub use yields::YieldJacobian;

use crate::error::{Error, Result};
use crate::workspace::{ReadOptions, Workspace};
use serde_json::Value;
use std::path::Path;

/// Options that change how a workspace is compiled.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// Measurement to use (default: the first).
    pub measurement: Option<String>,
    /// Override of the POI name (default: the measurement's).
    pub poi: Option<String>,
    /// Interpolation code for normsys (default code4).
    pub normsys_code: InterpCode,
    /// Interpolation code for histosys (default code4p).
    pub histosys_code: InterpCode,
    /// pyhf's domain only: twice_nll is infinite where a bin with data has an
    /// expected rate that is not positive, or any bin a negative one (no
    /// extension, see [`kernel::bin_term`]). Off by default.
    pub strict_domain: bool,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            measurement: None,
            poi: None,
            normsys_code: InterpCode::Code4,
            histosys_code: InterpCode::Code4p,
            strict_domain: false,
        }
    }
}

/// Constraint term of one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Constraint {
    /// Unconstrained (normfactor, shapefactor).
    None,
    /// Gaussian `Normal(aux | theta, sigma)`.
    Normal {
        /// Width.
        sigma: f64,
    },
    /// Continuous Poisson `Pois(aux | gamma * tau)`.
    Poisson {
        /// Scale factor tau.
        tau: f64,
    },
}

/// A named parameter set (one modifier name; several components for per-bin types).
#[derive(Debug, Clone)]
pub struct ParSet {
    /// Name as in the workspace.
    pub name: String,
    /// The type that placed the set (pyhf order).
    pub kind: &'static str,
    /// All modifier types that use the name.
    pub types: Vec<&'static str>,
    /// Index of the first component in the parameter vector.
    pub offset: usize,
    /// Number of components.
    pub n: usize,
}

/// A channel in sorted order with its range of global bins.
#[derive(Debug, Clone)]
pub struct ChannelInfo {
    /// Channel name.
    pub name: String,
    /// First global bin.
    pub bin_offset: usize,
    /// Number of bins.
    pub nbins: usize,
}

/// A (channel, sample) pair in traversal order.
#[derive(Debug, Clone)]
pub struct SampleInfo {
    /// Index into `channels` (sorted order).
    pub channel: usize,
    /// Sample name.
    pub name: String,
    /// Index into the global sorted sample names.
    pub global_index: usize,
    /// First sample-bin of this sample (it has `nbins` consecutive ones).
    pub first_sb: usize,
    /// JSON pointer of the sample in the workspace.
    pub loc: String,
}

/// One sample in one bin.
#[derive(Debug, Clone, Copy)]
pub struct SampleBin {
    /// Global main bin.
    pub bin: u32,
    /// Nominal yield.
    pub nom: f64,
    /// Range of multiplicative terms.
    pub mult: (u32, u32),
    /// Range of additive terms.
    pub add: (u32, u32),
}

impl SampleBin {
    /// Whether the sample-bin's yield is zero for every parameter value: a
    /// nominal of exactly 0 and no additive terms (its factors only scale 0).
    /// Such a sample-bin adds nothing to the rates' derivatives, so the
    /// kernels skip it and its parameters do not enter its bin's row.
    #[inline]
    pub fn is_dead(&self) -> bool {
        self.nom == 0.0 && self.add.0 == self.add.1
    }
}

/// A multiplicative factor: the parameter itself (`interp == u32::MAX`) or an interpolated factor.
#[derive(Debug, Clone, Copy)]
pub struct MultTerm {
    /// Parameter index.
    pub par: u32,
    /// Index into `interps`, or `u32::MAX` for a linear factor.
    pub interp: u32,
}

/// An additive histosys delta.
#[derive(Debug, Clone, Copy)]
pub struct AddTerm {
    /// Parameter index.
    pub par: u32,
    /// Index into `interps`.
    pub interp: u32,
}

/// Template numbers the model was compiled from (inputs of the differentiable graph).
#[derive(Debug, Clone, Default)]
pub struct Templates {
    /// Nominal yield per sample-bin.
    pub nominal: Vec<f64>,
    /// Histosys up template per histosys entry.
    pub histo_hi: Vec<f64>,
    /// Histosys down template per histosys entry.
    pub histo_lo: Vec<f64>,
    /// Normsys up factor per normsys entry.
    pub norm_hi: Vec<f64>,
    /// Normsys down factor per normsys entry.
    pub norm_lo: Vec<f64>,
}

/// Index tables of the terms (sample-bin and parameter of each entry).
#[derive(Debug, Clone, Default)]
pub struct TermLayout {
    /// Linear factors: (sample-bin, parameter).
    pub lin: Vec<(u32, u32)>,
    /// Sample-bin of each normsys entry.
    pub norm_sb: Vec<u32>,
    /// Parameter of each normsys entry.
    pub norm_par: Vec<u32>,
    /// Sample-bin of each histosys entry.
    pub histo_sb: Vec<u32>,
    /// Parameter of each histosys entry.
    pub histo_par: Vec<u32>,
}

/// Observed (or toy, or Asimov) data: main counts, aux data and the data-only constant.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Main-bin counts in global bin order.
    pub main: Vec<f64>,
    /// Auxiliary data in parameter order.
    pub aux: Vec<f64>,
    /// Parameter-independent part of twice_nll (log-factorials, Gaussian normalisations).
    pub constant: f64,
}

/// A compiled HistFactory model.
#[derive(Debug, Clone)]
pub struct HistFactoryModel {
    /// Flattened parameter names in pyhf order.
    pub par_names: Vec<String>,
    /// Parameter sets in order.
    pub par_sets: Vec<ParSet>,
    /// Suggested initial values.
    pub init: Vec<f64>,
    /// Suggested bounds.
    pub bounds: Vec<(f64, f64)>,
    /// Fixed flags.
    pub fixed: Vec<bool>,
    /// Constraint per parameter.
    pub constraints: Vec<Constraint>,
    /// Position of each parameter's aux datum, if constrained.
    pub aux_index: Vec<Option<usize>>,
    /// POI index.
    pub poi: Option<usize>,
    /// Channels in sorted order.
    pub channels: Vec<ChannelInfo>,
    /// Global sorted sample names.
    pub sample_names: Vec<String>,
    /// (channel, sample) pairs in traversal order.
    pub samples: Vec<SampleInfo>,
    /// Number of main bins.
    pub n_main: usize,
    /// Sample-bins.
    pub sb: Vec<SampleBin>,
    /// Multiplicative terms.
    pub mult: Vec<MultTerm>,
    /// Additive terms.
    pub add: Vec<AddTerm>,
    /// Interpolations referenced by terms.
    pub interps: Vec<Interp>,
    /// Raw template numbers.
    pub templates: Templates,
    /// Term index tables.
    pub layout: TermLayout,
    /// Code used for normsys.
    pub normsys_code: InterpCode,
    /// Code used for histosys.
    pub histosys_code: InterpCode,
    /// No extension of the Poisson terms outside pyhf's domain ([`ModelOptions::strict_domain`]).
    pub strict_domain: bool,
    observed: Option<Dataset>,
    /// Non-fatal findings while compiling (printed by the CLI).
    pub warnings: Vec<String>,
    /// Name of the measurement used.
    pub measurement: String,
    /// Derived sparsity structure used by the kernel.
    pub(crate) structure: kernel::Structure,
}

impl HistFactoryModel {
    /// Compile a validated workspace.
    pub fn from_workspace(ws: &Workspace, opts: &ModelOptions, source_name: &str) -> Result<Self> {
        build::build(ws, opts, source_name)
    }

    /// Read a workspace file, apply patches, validate and compile.
    pub fn load(
        path: &Path,
        patches: &[Value],
        read: &ReadOptions,
        opts: &ModelOptions,
    ) -> Result<Self> {
        let ws = Workspace::load(path, patches, read)?;
        Self::from_workspace(&ws, opts, &path.display().to_string())
    }

    /// Number of parameters.
    pub fn n_pars(&self) -> usize {
        self.par_names.len()
    }

    /// Number of aux data.
    pub fn n_aux(&self) -> usize {
        self.aux_index.iter().filter(|a| a.is_some()).count()
    }

    /// Index of a parameter by its flattened name (`NAME` or `NAME[i]`).
    pub fn par_index(&self, name: &str) -> Option<usize> {
        self.par_names.iter().position(|n| n == name)
    }

    /// The observed dataset.
    pub fn observed(&self) -> &Dataset {
        self.observed.as_ref().expect("observed data set at build")
    }

    /// Main data followed by aux data, as pyhf orders them.
    pub fn observed_data(&self) -> Vec<f64> {
        let d = self.observed();
        d.main.iter().chain(d.aux.iter()).copied().collect()
    }

    /// Pre-fit width of a parameter as cabinetry defines it (0 for unconstrained).
    pub fn prefit_sigma(&self, i: usize) -> f64 {
        match self.constraints[i] {
            Constraint::None => 0.0,
            Constraint::Normal { sigma } => sigma,
            Constraint::Poisson { tau } => (1.0 / tau).sqrt(),
        }
    }

    /// Build a dataset from main counts and aux data, computing its constant.
    pub fn dataset(&self, main: Vec<f64>, aux: Vec<f64>) -> Result<Dataset> {
        if main.len() != self.n_main {
            return Err(Error::input(format!(
                "dataset has {} main bins, the model has {}",
                main.len(),
                self.n_main
            )));
        }
        if aux.len() != self.n_aux() {
            return Err(Error::input(format!(
                "dataset has {} aux data, the model has {}",
                aux.len(),
                self.n_aux()
            )));
        }
        if let Some((i, v)) = main
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(Error::input(format!(
                "main count {i} ({}) is {v}; counts must be finite and >= 0",
                self.bin_label(i)
            )));
        }
        if let Some((k, v)) = aux.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            let owner = self
                .aux_index
                .iter()
                .position(|a| *a == Some(k))
                .map(|i| format!(" (of parameter '{}')", self.par_names[i]))
                .unwrap_or_default();
            return Err(Error::input(format!("aux datum {k}{owner} is {v}")));
        }
        let constant = self.data_constant(&main, &aux);
        Ok(Dataset {
            main,
            aux,
            constant,
        })
    }

    /// Build a dataset from a pyhf-ordered data vector (main then aux).
    pub fn dataset_from_vec(&self, data: &[f64]) -> Result<Dataset> {
        if data.len() != self.n_main + self.n_aux() {
            return Err(Error::input(format!(
                "data vector has {} entries, the model expects {} main + {} aux",
                data.len(),
                self.n_main,
                self.n_aux()
            )));
        }
        self.dataset(data[..self.n_main].to_vec(), data[self.n_main..].to_vec())
    }

    fn data_constant(&self, main: &[f64], aux: &[f64]) -> f64 {
        let mut c = 0.0;
        for &n in main {
            c += 2.0 * crate::rng::ln_factorial(n);
        }
        let ln2pi = (2.0 * std::f64::consts::PI).ln();
        for (i, con) in self.constraints.iter().enumerate() {
            match *con {
                Constraint::None => {}
                Constraint::Normal { sigma } => c += ln2pi + 2.0 * sigma.ln(),
                Constraint::Poisson { .. } => {
                    let a = aux[self.aux_index[i].expect("constrained")];
                    c += 2.0 * crate::rng::ln_factorial(a);
                }
            }
        }
        c
    }

    /// Expected aux data at `theta` (theta for Gaussian, gamma * tau for Poisson constraints).
    pub fn expected_aux(&self, theta: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.n_aux()];
        for (i, con) in self.constraints.iter().enumerate() {
            if let Some(k) = self.aux_index[i] {
                out[k] = match *con {
                    Constraint::Poisson { tau } => theta[i] * tau,
                    _ => theta[i],
                };
            }
        }
        out
    }

    /// Expected main data followed by expected aux data (pyhf `expected_data`).
    pub fn expected_data(&self, theta: &[f64]) -> Vec<f64> {
        let mut v = self.expected_main(theta);
        v.extend(self.expected_aux(theta));
        v
    }

    /// Channel and bin of a global bin, for messages.
    pub fn bin_label(&self, bin: usize) -> String {
        for c in &self.channels {
            if bin >= c.bin_offset && bin < c.bin_offset + c.nbins {
                return format!("channel '{}' bin {}", c.name, bin - c.bin_offset);
            }
        }
        format!("bin {bin}")
    }

    /// Check a parameter vector's length and finiteness.
    pub fn check_pars(&self, theta: &[f64]) -> Result<()> {
        if theta.len() != self.n_pars() {
            return Err(Error::input(format!(
                "parameter vector has {} entries, the model has {} parameters",
                theta.len(),
                self.n_pars()
            )));
        }
        if let Some((i, v)) = theta.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::input(format!(
                "parameter {} ({}) is {v}",
                i, self.par_names[i]
            )));
        }
        Ok(())
    }

    /// Recompile the interpolation tables after templates changed (and the
    /// kernel's sparsity structure, when a sample-bin's nominal becomes 0 or
    /// stops being 0: see [`SampleBin::is_dead`]).
    pub fn set_templates(&mut self, t: Templates) -> Result<()> {
        if t.nominal.len() != self.sb.len()
            || t.histo_hi.len() != self.layout.histo_sb.len()
            || t.histo_lo.len() != self.layout.histo_sb.len()
            || t.norm_hi.len() != self.layout.norm_sb.len()
            || t.norm_lo.len() != self.layout.norm_sb.len()
        {
            return Err(Error::input(
                "template arrays do not match the model layout",
            ));
        }
        // the interpolation table is rebuilt (normsys terms share entries:
        // see `terms::NormsysCache`); nothing changes unless every template
        // is valid
        let mut interps = Vec::new();
        let mut cache = terms::NormsysCache::default();
        let mut norm_idx = Vec::with_capacity(t.norm_hi.len());
        for (h, l) in t.norm_hi.iter().zip(&t.norm_lo) {
            let i = cache
                .index(self.normsys_code, *h, *l, &mut interps)
                .map_err(Error::Input)?;
            norm_idx.push(i);
        }
        let mut histo_idx = Vec::with_capacity(t.histo_hi.len());
        for (j, s) in self.sb.iter().enumerate() {
            for _ in s.add.0..s.add.1 {
                let q = histo_idx.len();
                let ip = terms::histosys_interp(
                    self.histosys_code,
                    t.histo_hi[q],
                    t.nominal[j],
                    t.histo_lo[q],
                )
                .map_err(Error::Input)?;
                histo_idx.push(interps.len() as u32);
                interps.push(ip);
            }
        }
        let (mut ni, mut hi) = (0, 0);
        for s in &self.sb {
            for m in &mut self.mult[s.mult.0 as usize..s.mult.1 as usize] {
                if m.interp != u32::MAX {
                    m.interp = norm_idx[ni];
                    ni += 1;
                }
            }
            for a in &mut self.add[s.add.0 as usize..s.add.1 as usize] {
                a.interp = histo_idx[hi];
                hi += 1;
            }
        }
        self.interps = interps;
        // a nominal that becomes (or stops being) 0 changes which sample-bins
        // are dead, so the kernel's rows and layout follow
        let mut pattern_changed = false;
        for (k, s) in self.sb.iter_mut().enumerate() {
            let was_dead = s.is_dead();
            s.nom = t.nominal[k];
            pattern_changed |= was_dead != s.is_dead();
        }
        if pattern_changed {
            self.finish_structure();
        }
        self.templates = t;
        Ok(())
    }

    /// Drop the constraint term of parameter `i` (a free nuisance parameter,
    /// which pyhf's schema cannot express: training and INFERNO's benchmarks
    /// use it). Its aux datum leaves the observed data.
    pub fn set_unconstrained(&mut self, i: usize) -> Result<()> {
        let Some(k) = self.aux_index.get(i).copied().flatten() else {
            return Err(Error::input(format!(
                "parameter {i} is not constrained (or does not exist)"
            )));
        };
        self.constraints[i] = Constraint::None;
        self.aux_index[i] = None;
        for a in self.aux_index.iter_mut().flatten() {
            if *a > k {
                *a -= 1;
            }
        }
        if let Some(obs) = self.observed.take() {
            let mut aux = obs.aux;
            aux.remove(k);
            self.observed = Some(self.dataset(obs.main, aux)?);
        }
        self.finish_structure();
        Ok(())
    }

    fn finish_structure(&mut self) {
        self.structure = kernel::Structure::new(self);
    }
}
