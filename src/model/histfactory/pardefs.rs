//! The parameters of a HistFactory model, one compile step per modifier kind:
//! pyhf's defaults (initial value, bounds, constraint and auxiliary datum of
//! each component) for normfactor, shapefactor, normsys and histosys, lumi,
//! shapesys and staterror, then the overrides of the measurement's
//! `config.parameters`, with errors that name the JSON location.

use super::Constraint;
use crate::error::{Error, Result};
use crate::workspace::ParameterConfig;
use rustc_hash::FxHashMap as HashMap;

/// The measurement's parameter configuration, as the steps read it.
pub(super) struct MeasConfig<'a> {
    /// Source of the workspace (for errors).
    pub src: &'a str,
    /// Name of the measurement.
    pub meas_name: &'a str,
    /// Index of the measurement in the workspace.
    pub meas_idx: usize,
    /// `config.parameters` by name, with their indices.
    pub config_of: &'a HashMap<&'a str, (usize, &'a ParameterConfig)>,
}

impl MeasConfig<'_> {
    fn err(&self, loc: String, msg: String) -> Error {
        Error::workspace(self.src, loc, msg)
    }

    fn param_loc(&self, pi: usize) -> String {
        format!("/measurements/{}/config/parameters/{pi}", self.meas_idx)
    }
}

/// The components of one parameter set.
pub(super) struct ParDefs {
    pub init: Vec<f64>,
    pub bounds: Vec<(f64, f64)>,
    pub fixed: Vec<bool>,
    pub con: Vec<Constraint>,
    pub aux: Vec<f64>,
}

impl ParDefs {
    fn new(n: usize) -> Self {
        ParDefs {
            init: vec![0.0; n],
            bounds: vec![(0.0, 0.0); n],
            fixed: vec![false; n],
            con: vec![Constraint::None; n],
            aux: vec![0.0; n],
        }
    }

    /// normfactor and shapefactor: free factors, 1 in [0, 10].
    pub fn free_factor(n: usize) -> Self {
        let mut d = Self::new(n);
        d.init.fill(1.0);
        d.bounds.fill((0.0, 10.0));
        d
    }

    /// normsys and histosys: one shift, 0 in [-5, 5], unit Gaussian constraint.
    pub fn gaussian_shift() -> Self {
        let mut d = Self::new(1);
        d.bounds.fill((-5.0, 5.0));
        d.con.fill(Constraint::Normal { sigma: 1.0 });
        d
    }

    /// lumi: its auxdata and sigma come from the measurement (required).
    pub fn lumi(name: &str, mc: &MeasConfig<'_>) -> Result<Self> {
        let Some((pi, cfg)) = mc.config_of.get(name) else {
            return Err(mc.err(
                format!("/measurements/{}/config/parameters", mc.meas_idx),
                format!(
                    "lumi parameter '{name}' needs an entry in measurement '{}' \
                     config.parameters with its auxdata and sigmas",
                    mc.meas_name
                ),
            ));
        };
        let ploc = mc.param_loc(*pi);
        let (Some(aux), Some(sig)) = (&cfg.auxdata, &cfg.sigmas) else {
            return Err(mc.err(
                ploc,
                format!("lumi parameter '{name}' needs both 'auxdata' and 'sigmas' in its measurement config"),
            ));
        };
        if aux.len() != 1 || sig.len() != 1 {
            return Err(mc.err(
                ploc,
                format!("lumi parameter '{name}' takes one auxdata and one sigma"),
            ));
        }
        let mut d = Self::new(1);
        d.init[0] = aux[0];
        d.bounds[0] = (0.0, 10.0 * aux[0]);
        d.con[0] = Constraint::Normal { sigma: sig[0] };
        d.aux[0] = aux[0];
        Ok(d)
    }

    /// shapesys: Poisson-constrained factors, 1 in [1e-10, 10], with the
    /// per-bin tau (and bins without an uncertainty fixed).
    pub fn shapesys(tau: &[f64], fixed: &[bool]) -> Self {
        let mut d = Self::new(tau.len());
        d.init.fill(1.0);
        d.bounds.fill((1e-10, 10.0));
        for k in 0..tau.len() {
            d.con[k] = Constraint::Poisson { tau: tau[k] };
            d.aux[k] = tau[k];
            d.fixed[k] = fixed[k];
        }
        d
    }

    /// staterror: Gaussian-constrained factors around 1 with the relative
    /// uncertainties `sigma`; a bin without one is fixed.
    pub fn staterror(sigma: &[f64]) -> Self {
        let mut d = Self::new(sigma.len());
        d.init.fill(1.0);
        d.bounds.fill((1e-10, 10.0));
        d.aux.fill(1.0);
        for (k, &s) in sigma.iter().enumerate() {
            if s == 0.0 {
                d.fixed[k] = true;
                d.con[k] = Constraint::Normal { sigma: 1.0 };
            } else {
                d.con[k] = Constraint::Normal { sigma: s };
            }
        }
        d
    }

    /// The measurement's overrides of parameter set `name` (of kind `kind`).
    pub fn apply_config(&mut self, name: &str, kind: &str, mc: &MeasConfig<'_>) -> Result<()> {
        let Some((pi, cfg)) = mc.config_of.get(name) else {
            return Ok(());
        };
        let n = self.init.len();
        let ploc = mc.param_loc(*pi);
        let len_check = |key: &str, len: usize| -> Result<()> {
            if len != n {
                Err(mc.err(
                    format!("{ploc}/{key}"),
                    format!("'{name}' has {n} component(s) but {len} {key} were given"),
                ))
            } else {
                Ok(())
            }
        };
        let constrained = matches!(
            self.con[0],
            Constraint::Normal { .. } | Constraint::Poisson { .. }
        );
        if let Some(v) = &cfg.inits {
            len_check("inits", v.len())?;
            self.init.copy_from_slice(v);
        }
        if let Some(v) = &cfg.bounds {
            len_check("bounds", v.len())?;
            for (k, b) in v.iter().enumerate() {
                self.bounds[k] = (b[0], b[1]);
            }
        }
        if let Some(f) = cfg.fixed {
            self.fixed.fill(f);
        }
        if let Some(v) = &cfg.auxdata {
            if !constrained {
                return Err(mc.err(
                    format!("{ploc}/auxdata"),
                    format!("'{name}' is unconstrained ({kind}) and has no auxdata"),
                ));
            }
            len_check("auxdata", v.len())?;
            self.aux.copy_from_slice(v);
        }
        if let Some(v) = &cfg.sigmas {
            if !(kind == "lumi" || kind == "staterror") {
                return Err(mc.err(
                    format!("{ploc}/sigmas"),
                    format!("'{name}' ({kind}) does not use sigmas (only lumi and staterror do)"),
                ));
            }
            len_check("sigmas", v.len())?;
            for k in 0..n {
                self.con[k] = Constraint::Normal { sigma: v[k] };
            }
        }
        if let Some(v) = &cfg.factors {
            if kind != "shapesys" {
                return Err(mc.err(
                    format!("{ploc}/factors"),
                    format!("'{name}' ({kind}) does not use factors (only shapesys does)"),
                ));
            }
            len_check("factors", v.len())?;
            for k in 0..n {
                if !(v[k] > 0.0) {
                    return Err(mc.err(
                        format!("{ploc}/factors/{k}"),
                        "factors must be positive".into(),
                    ));
                }
                self.con[k] = Constraint::Poisson { tau: v[k] };
            }
        }
        Ok(())
    }

    /// Every initial value inside its bounds; the error points at the
    /// measurement's entry, or at the modifier (`first_seen`) without one.
    pub fn check_inits(&self, name: &str, mc: &MeasConfig<'_>, first_seen: &str) -> Result<()> {
        for (k, &(lo, hi)) in self.bounds.iter().enumerate() {
            let x = self.init[k];
            if !(lo <= x && x <= hi) {
                let where_ = mc
                    .config_of
                    .get(name)
                    .map(|(pi, _)| mc.param_loc(*pi))
                    .unwrap_or_else(|| first_seen.to_string());
                return Err(mc.err(
                    where_,
                    format!("initial value {x} of '{name}' lies outside its bounds [{lo}, {hi}]"),
                ));
            }
        }
        Ok(())
    }
}
