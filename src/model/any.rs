//! What the command line (and any front end) needs of a model beyond the
//! [`Likelihood`]: a label, constraints for pulls, a description, and where
//! its fits run. [`AnyModel`] holds whichever model an input file compiles to.

use super::combined::{CombinedModel, ConstraintInfo};
use super::histfactory::Constraint;
use super::{HistFactoryModel, Likelihood};
use crate::device::{CpuEngine, Device, Engine, Session};
use crate::error::{Error, Result};
use serde_json::Value;

/// A likelihood with what reports and front ends need to describe it.
pub trait ModelInfo: Likelihood + Sized {
    /// Label for titles and messages (the measurement or analysis name).
    fn label(&self) -> &str;
    /// Non-fatal findings while reading the model.
    fn warnings(&self) -> &[String];
    /// Constraint of parameter `i` on the observed data (`None`: unconstrained).
    fn constraint_info(&self, i: usize) -> Option<ConstraintInfo>;
    /// Why twice_nll is not finite at `theta` on `data`, if it can tell.
    fn domain_issue(&self, theta: &[f64], data: &Self::Data) -> Option<String>;
    /// JSON description for `gradfit inspect`.
    fn describe(&self) -> Value;
    /// Put the model on `device` for its fits, toys and batched evaluations.
    fn engine<'a>(&'a self, device: &Device) -> Result<Box<dyn Engine<Self> + 'a>>;
    /// The model as a HistFactory model, where it is one (binned yields tables).
    fn as_histfactory(&self) -> Option<&HistFactoryModel> {
        None
    }
    /// The model as a combined model (HS3, unbinned, NSBI), where it is one
    /// (weighted-fit covariances, unbinned plots).
    fn as_combined(&self) -> Option<&CombinedModel> {
        None
    }
    /// Set the bounds of parameter `i` (the suggested start is clipped into them by fits).
    fn set_bounds(&mut self, i: usize, lo: f64, hi: f64);
    /// Pre-fit width of parameter `i` (0 when unconstrained).
    fn prefit_sigma(&self, i: usize) -> f64 {
        self.constraint_info(i).map_or(0.0, |c| c.sigma)
    }
}

impl ModelInfo for HistFactoryModel {
    fn label(&self) -> &str {
        &self.measurement
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
    fn constraint_info(&self, i: usize) -> Option<ConstraintInfo> {
        let a = self.aux_index[i].map(|k| self.observed().aux[k])?;
        let (kind, center) = match self.constraints[i] {
            Constraint::None => return None,
            Constraint::Normal { .. } => ("normal", a),
            Constraint::Poisson { tau } => ("poisson", a / tau),
        };
        Some(ConstraintInfo {
            kind,
            sigma: HistFactoryModel::prefit_sigma(self, i),
            center,
        })
    }
    fn domain_issue(&self, theta: &[f64], data: &Self::Data) -> Option<String> {
        HistFactoryModel::domain_issue(self, theta, data)
    }
    fn describe(&self) -> Value {
        super::histfactory::describe(self)
    }
    fn engine<'a>(&'a self, device: &Device) -> Result<Box<dyn Engine<Self> + 'a>> {
        Ok(Box::new(Session::new(device, self)?))
    }
    fn as_histfactory(&self) -> Option<&HistFactoryModel> {
        Some(self)
    }
    fn set_bounds(&mut self, i: usize, lo: f64, hi: f64) {
        self.bounds[i] = (lo, hi);
    }
}

impl ModelInfo for CombinedModel {
    fn label(&self) -> &str {
        &self.label
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
    fn constraint_info(&self, i: usize) -> Option<ConstraintInfo> {
        self.constraint(i)
    }
    fn domain_issue(&self, theta: &[f64], data: &Self::Data) -> Option<String> {
        CombinedModel::domain_issue(self, theta, data)
    }
    fn describe(&self) -> Value {
        CombinedModel::describe(self)
    }
    fn as_combined(&self) -> Option<&CombinedModel> {
        Some(self)
    }
    fn engine<'a>(&'a self, device: &Device) -> Result<Box<dyn Engine<Self> + 'a>> {
        if device.is_gpu() {
            return Err(Error::input(format!(
                "{}: --device {device}: the GPU path runs HistFactory (pyhf) workspaces only; \
                 this model runs on the CPU (--device cpu)",
                self.label
            )));
        }
        Ok(Box::new(CpuEngine))
    }
    fn set_bounds(&mut self, i: usize, lo: f64, hi: f64) {
        let name = self.par_names()[i].clone();
        CombinedModel::set_bounds(self, &name, lo, hi).expect("a parameter of the model, lo < hi");
    }
}

/// Whichever model an input compiles to.
#[derive(Debug)]
pub enum AnyModel {
    /// A pyhf workspace.
    HistFactory(Box<HistFactoryModel>),
    /// Anything else: a sum of parts sharing parameters (HS3, NSBI, ...).
    Combined(Box<CombinedModel>),
}

/// Run `$body` with `$m` bound to the model inside an [`AnyModel`], whatever
/// its type (the body is compiled once per model type).
#[macro_export]
macro_rules! with_model {
    (&mut $any:expr, $m:ident => $body:expr) => {
        match &mut $any {
            $crate::model::AnyModel::HistFactory($m) => {
                let $m = &mut **$m;
                $body
            }
            $crate::model::AnyModel::Combined($m) => {
                let $m = &mut **$m;
                $body
            }
        }
    };
    ($any:expr, $m:ident => $body:expr) => {
        match $any {
            $crate::model::AnyModel::HistFactory($m) => {
                let $m = &**$m;
                $body
            }
            $crate::model::AnyModel::Combined($m) => {
                let $m = &**$m;
                $body
            }
        }
    };
}

/// The input formats gradfit reads, recognised by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A pyhf JSON workspace (binned channels only).
    Pyhf,
    /// An HS3 file (`distributions`, `likelihoods`, ...).
    Hs3,
    /// A pyhf-style workspace with unbinned (per-event ratio) channels.
    Nsbi,
}

impl Format {
    /// A phrase for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Pyhf => "a pyhf workspace",
            Format::Hs3 => "an HS3 file",
            Format::Nsbi => "a workspace with unbinned (NSBI) channels",
        }
    }
}

/// Recognise the format of an input document by its content.
pub fn format_of(value: &Value) -> Format {
    let is_hs3 = value.get("distributions").is_some()
        || (value.get("likelihoods").is_some() && value.get("channels").is_none());
    if is_hs3 {
        return Format::Hs3;
    }
    let unbinned = value
        .get("channels")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.get("type").and_then(Value::as_str) == Some("unbinned"))
        });
    if unbinned { Format::Nsbi } else { Format::Pyhf }
}

/// Compile an input that is not a plain pyhf workspace; `base_dir` resolves
/// the relative paths of external data files.
pub fn load_other(
    format: Format,
    value: &Value,
    source: &str,
    base_dir: &std::path::Path,
) -> Result<CombinedModel> {
    match format {
        Format::Hs3 => super::unbinned::load_hs3(value, source, base_dir, None),
        Format::Nsbi => super::nsbi::read::load(value, source, base_dir),
        _ => Err(Error::input(format!(
            "{source}: {} is recognised, but this build of gradfit cannot read it yet",
            format.describe()
        ))),
    }
}
