//! One likelihood over several parts that share parameters by name.
//!
//! A plain pyhf workspace is a [`HistFactoryModel`]. Everything else (HS3
//! files with unbinned channels and constraint terms, NSBI workspaces mixing
//! per-event and binned channels) is a [`CombinedModel`]: the sum of the
//! twice_nll of its [`Part`]s, each with its own data type, over one parameter
//! vector assembled from the parts' parameter names. It implements
//! [`Likelihood`] with a dense Hessian, so fits, test statistics, toys, scans
//! and reports work on it unchanged.
//!
//! Parameters are merged in order of first appearance. The first part that
//! declares a name sets its suggested start, bounds and fixed flag; a later,
//! different declaration is kept as a warning. Toys: part `k` draws from the
//! random streams of purpose `purpose + (k << 16)`, so parts never share a
//! stream and the toys stay counter-based (same seed, same toys, whatever the
//! thread count or shard split).

use super::{HessianLayout, Likelihood};
use crate::error::{Error, Result};
use serde_json::{Value, json};
use std::any::Any;
use std::sync::Arc;

/// The data of one part (each part downcasts to its own type).
pub type PartData = Arc<dyn Any + Send + Sync>;
/// A part's precomputed toy distribution at one parameter point.
pub type PartGen = Box<dyn Any + Send + Sync>;
/// A part's per-thread evaluation buffers.
pub type PartScratch = Box<dyn Any + Send>;

/// Constraint of a parameter, for pulls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConstraintInfo {
    /// "normal", "poisson", "lognormal", ...
    pub kind: &'static str,
    /// Pre-fit width.
    pub sigma: f64,
    /// Centre of the constraint on the observed global observables.
    pub center: f64,
}

/// One term of a combined likelihood: its parameters, data and twice_nll.
pub trait Part: Send + Sync {
    /// Short label for messages and `inspect` ("channel SR (unbinned)").
    fn label(&self) -> String;
    /// This part's parameter names (its local order).
    fn par_names(&self) -> &[String];
    /// Suggested initial values per local parameter.
    fn init(&self) -> &[f64];
    /// Bounds per local parameter.
    fn bounds(&self) -> &[(f64, f64)];
    /// Fixed flags per local parameter.
    fn fixed(&self) -> &[bool];
    /// The POI this part declares, if any (local index).
    fn poi(&self) -> Option<usize> {
        None
    }
    /// The observed data of this part.
    fn observed(&self) -> PartData;
    /// Fresh per-thread buffers.
    fn scratch(&self) -> PartScratch;
    /// twice_nll at the local parameters `theta`; overwrites `grad` (length
    /// n_local) and the dense row-major Hessian `hess` (n_local^2) when asked.
    /// Returns `+inf` outside the part's domain.
    fn eval(
        &self,
        theta: &[f64],
        data: &PartData,
        scratch: &mut PartScratch,
        grad: Option<&mut [f64]>,
        hess: Option<&mut [f64]>,
    ) -> f64;
    /// The Asimov data at `theta`.
    fn asimov(&self, theta: &[f64]) -> PartData;
    /// Precompute the toy distribution at `theta`.
    fn generator(&self, theta: &[f64]) -> PartGen;
    /// Toy `toy` of stream `purpose`, reproducible from `seed` alone
    /// ([`crate::rng::Stream`]).
    fn sample(&self, generator: &PartGen, seed: u64, toy: u32, purpose: u32) -> PartData;
    /// Typical size of the terms summed into twice_nll (its rounding scale).
    fn magnitude(&self, _data: &PartData) -> f64 {
        0.0
    }
    /// Constraint of local parameter `i` on the observed data, for pulls.
    fn constraint(&self, _i: usize) -> Option<ConstraintInfo> {
        None
    }
    /// Why twice_nll is not finite at `theta` on `data`, if it can tell.
    fn domain_issue(&self, _theta: &[f64], _data: &PartData) -> Option<String> {
        None
    }
    /// Local parameters the minimiser may step in as `1/x`
    /// ([`Likelihood::reciprocal_pars`]). Default: none.
    fn reciprocal_pars(&self) -> Vec<usize> {
        Vec::new()
    }
    /// JSON description for `gradfit inspect`.
    fn describe(&self) -> Value;
    /// For parts with weighted events: `sum_i w_i^2 s_i s_i^T` (local, row-major)
    /// with `s_i` the gradient of event i's log-density term, the middle matrix of
    /// the asymptotically correct covariance of weighted fits. `None` (the
    /// default): the part's terms have unit weights, and its Hessian stands in.
    fn score_outer(&self, _theta: &[f64], _data: &PartData) -> Option<Vec<f64>> {
        None
    }
    /// The part as `Any`, for reports that know concrete part types (plots of
    /// unbinned channels); `None` (the default) for parts that do not offer it.
    fn as_any(&self) -> Option<&dyn Any> {
        None
    }
}

/// Data of a combined model: one entry per part.
#[derive(Clone)]
pub struct CombinedData {
    /// Per-part data, in part order.
    pub parts: Vec<PartData>,
}

impl std::fmt::Debug for CombinedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CombinedData({} parts)", self.parts.len())
    }
}

/// Evaluation buffers of a combined model.
pub struct CombinedScratch {
    parts: Vec<PartScratch>,
    theta: Vec<f64>,
    grad: Vec<f64>,
    hess: Vec<f64>,
}

/// A likelihood that is the sum of parts sharing parameters by name.
pub struct CombinedModel {
    parts: Vec<Box<dyn Part>>,
    /// `map[k][j]` = global index of local parameter `j` of part `k`.
    map: Vec<Vec<usize>>,
    par_names: Vec<String>,
    init: Vec<f64>,
    bounds: Vec<(f64, f64)>,
    fixed: Vec<bool>,
    poi: Option<usize>,
    observed: CombinedData,
    layout: HessianLayout,
    /// Global indices of the parts' reciprocal parameters.
    reciprocal: Vec<usize>,
    /// Label (analysis or measurement name).
    pub label: String,
    /// Non-fatal findings while combining (printed by the CLI).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for CombinedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CombinedModel")
            .field("label", &self.label)
            .field(
                "parts",
                &self.parts.iter().map(|p| p.label()).collect::<Vec<_>>(),
            )
            .field("par_names", &self.par_names)
            .finish()
    }
}

impl CombinedModel {
    /// Combine `parts`; `poi` names the parameter of interest (default: the
    /// first part's POI, if it declares one).
    pub fn new(parts: Vec<Box<dyn Part>>, poi: Option<&str>, label: &str) -> Result<Self> {
        if parts.is_empty() {
            return Err(Error::input(format!(
                "{label}: a model needs at least one part"
            )));
        }
        let mut names: Vec<String> = Vec::new();
        let mut index = std::collections::HashMap::<String, usize>::new();
        let mut init: Vec<f64> = Vec::new();
        let mut bounds: Vec<(f64, f64)> = Vec::new();
        let mut fixed: Vec<bool> = Vec::new();
        let mut owner: Vec<usize> = Vec::new();
        let mut warnings = Vec::new();
        let mut map = Vec::with_capacity(parts.len());
        for (k, part) in parts.iter().enumerate() {
            let (pn, pi, pb, pf) = (part.par_names(), part.init(), part.bounds(), part.fixed());
            if pi.len() != pn.len() || pb.len() != pn.len() || pf.len() != pn.len() {
                return Err(Error::input(format!(
                    "{label}: part '{}' has {} parameter names but {} inits, {} bounds, {} fixed flags",
                    part.label(),
                    pn.len(),
                    pi.len(),
                    pb.len(),
                    pf.len()
                )));
            }
            let mut m = Vec::with_capacity(pn.len());
            for (j, name) in pn.iter().enumerate() {
                match index.get(name) {
                    Some(&g) => {
                        if m.contains(&g) {
                            return Err(Error::input(format!(
                                "{label}: part '{}' declares parameter '{name}' twice",
                                part.label()
                            )));
                        }
                        if init[g] != pi[j] || bounds[g] != pb[j] || fixed[g] != pf[j] {
                            warnings.push(format!(
                                "parameter '{name}': part '{}' declares init {}, bounds [{}, {}], fixed {}; \
                                 the combination keeps part '{}' (init {}, bounds [{}, {}], fixed {})",
                                part.label(),
                                pi[j],
                                pb[j].0,
                                pb[j].1,
                                pf[j],
                                parts[owner[g]].label(),
                                init[g],
                                bounds[g].0,
                                bounds[g].1,
                                fixed[g]
                            ));
                        }
                        m.push(g);
                    }
                    None => {
                        let g = names.len();
                        index.insert(name.clone(), g);
                        names.push(name.clone());
                        init.push(pi[j]);
                        bounds.push(pb[j]);
                        fixed.push(pf[j]);
                        owner.push(k);
                        m.push(g);
                    }
                }
            }
            map.push(m);
        }
        // A constraint term must enter the likelihood once.
        let mut constrained_by: Vec<Option<usize>> = vec![None; names.len()];
        for (k, part) in parts.iter().enumerate() {
            for (j, &g) in map[k].iter().enumerate() {
                if part.constraint(j).is_none() {
                    continue;
                }
                if let Some(first) = constrained_by[g] {
                    return Err(Error::input(format!(
                        "{label}: parameter '{}' is constrained in part '{}' and again in part '{}'; \
                         a constraint term must appear once in a combination",
                        names[g],
                        parts[first].label(),
                        part.label()
                    )));
                }
                constrained_by[g] = Some(k);
            }
        }
        let poi = match poi {
            Some(name) => Some(*index.get(name).ok_or_else(|| {
                Error::input(format!(
                    "{label}: the parameter of interest '{name}' is not a parameter of the model"
                ))
            })?),
            None => parts
                .iter()
                .enumerate()
                .find_map(|(k, p)| p.poi().map(|j| map[k][j])),
        };
        let observed = CombinedData {
            parts: parts.iter().map(|p| p.observed()).collect(),
        };
        let n = names.len();
        let mut reciprocal: Vec<usize> = parts
            .iter()
            .enumerate()
            .flat_map(|(k, p)| {
                p.reciprocal_pars()
                    .into_iter()
                    .map(|j| map[k][j])
                    .collect::<Vec<_>>()
            })
            .collect();
        reciprocal.sort_unstable();
        reciprocal.dedup();
        Ok(CombinedModel {
            parts,
            map,
            par_names: names,
            init,
            bounds,
            fixed,
            poi,
            observed,
            layout: HessianLayout::dense(n),
            reciprocal,
            label: label.to_string(),
            warnings,
        })
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[Box<dyn Part>] {
        &self.parts
    }

    /// Global index of each local parameter of part `k`.
    pub fn part_map(&self, k: usize) -> &[usize] {
        &self.map[k]
    }

    /// Index of a parameter by name.
    pub fn par_index(&self, name: &str) -> Option<usize> {
        self.par_names.iter().position(|n| n == name)
    }

    fn lookup(&self, name: &str, what: &str) -> Result<usize> {
        self.par_index(name).ok_or_else(|| {
            Error::input(format!(
                "{}: {what}: no parameter named '{name}'",
                self.label
            ))
        })
    }

    /// Override the suggested start of a parameter.
    pub fn set_init(&mut self, name: &str, value: f64) -> Result<()> {
        let i = self.lookup(name, "initial value")?;
        self.init[i] = value;
        Ok(())
    }

    /// Override the bounds of a parameter.
    pub fn set_bounds(&mut self, name: &str, lo: f64, hi: f64) -> Result<()> {
        let i = self.lookup(name, "bounds")?;
        if !(lo <= hi) {
            return Err(Error::input(format!(
                "{}: bounds of '{name}': lower {lo} is not below upper {hi}",
                self.label
            )));
        }
        self.bounds[i] = (lo, hi);
        Ok(())
    }

    /// Fix or release a parameter.
    pub fn set_fixed(&mut self, name: &str, fixed: bool) -> Result<()> {
        let i = self.lookup(name, "fixed flag")?;
        self.fixed[i] = fixed;
        Ok(())
    }

    /// Set the parameter of interest.
    pub fn set_poi(&mut self, name: &str) -> Result<()> {
        self.poi = Some(self.lookup(name, "parameter of interest")?);
        Ok(())
    }

    /// Replace the observed data (one entry per part).
    pub fn set_observed(&mut self, data: CombinedData) -> Result<()> {
        self.check_data(&data)?;
        self.observed = data;
        Ok(())
    }

    fn check_data(&self, data: &CombinedData) -> Result<()> {
        if data.parts.len() != self.parts.len() {
            return Err(Error::input(format!(
                "{}: data for {} parts, the model has {}",
                self.label,
                data.parts.len(),
                self.parts.len()
            )));
        }
        Ok(())
    }

    /// Constraint of global parameter `i` (from the first part that constrains it).
    pub fn constraint(&self, i: usize) -> Option<ConstraintInfo> {
        self.map
            .iter()
            .zip(&self.parts)
            .find_map(|(m, p)| m.iter().position(|&g| g == i).and_then(|j| p.constraint(j)))
    }

    /// Why twice_nll is not finite at `theta` on `data`, naming the part.
    pub fn domain_issue(&self, theta: &[f64], data: &CombinedData) -> Option<String> {
        for (k, part) in self.parts.iter().enumerate() {
            let local: Vec<f64> = self.map[k].iter().map(|&g| theta[g]).collect();
            let mut s = part.scratch();
            let f = part.eval(&local, &data.parts[k], &mut s, None, None);
            if !f.is_finite() {
                let why = part
                    .domain_issue(&local, &data.parts[k])
                    .unwrap_or_else(|| format!("twice_nll is {f}"));
                return Some(format!("{}: {why}", part.label()));
            }
        }
        None
    }

    /// The first part whose expected rates leave pyhf's domain at `theta`,
    /// finite twice_nll or not (binned parts extend their Poisson terms there).
    pub fn rate_issue(&self, theta: &[f64], data: &CombinedData) -> Option<String> {
        self.parts.iter().enumerate().find_map(|(k, part)| {
            let local: Vec<f64> = self.map[k].iter().map(|&g| theta[g]).collect();
            part.domain_issue(&local, &data.parts[k])
                .map(|why| format!("{}: {why}", part.label()))
        })
    }

    /// JSON description of the model for `gradfit inspect`.
    pub fn describe(&self) -> Value {
        json!({
            "label": self.label,
            "poi": self.poi.map(|i| self.par_names[i].clone()),
            "n_parameters": self.par_names.len(),
            "parts": self.parts.iter().map(|p| p.describe()).collect::<Vec<_>>(),
            "warnings": self.warnings,
        })
    }
}

impl Likelihood for CombinedModel {
    type Data = CombinedData;
    type Scratch = CombinedScratch;
    type Generator = Vec<PartGen>;

    fn reciprocal_pars(&self) -> &[usize] {
        &self.reciprocal
    }

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
    fn observed(&self) -> &CombinedData {
        &self.observed
    }
    fn scratch(&self) -> CombinedScratch {
        let nmax = self.map.iter().map(Vec::len).max().unwrap_or(0);
        CombinedScratch {
            parts: self.parts.iter().map(|p| p.scratch()).collect(),
            theta: vec![0.0; nmax],
            grad: vec![0.0; nmax],
            hess: vec![0.0; nmax * nmax],
        }
    }

    fn eval(
        &self,
        theta: &[f64],
        data: &CombinedData,
        s: &mut CombinedScratch,
        mut grad: Option<&mut [f64]>,
        mut hess: Option<&mut [f64]>,
    ) -> f64 {
        let n = self.par_names.len();
        if let Some(g) = grad.as_deref_mut() {
            g[..n].fill(0.0);
        }
        if let Some(h) = hess.as_deref_mut() {
            h[..n * n].fill(0.0);
        }
        let mut total = 0.0;
        for (k, part) in self.parts.iter().enumerate() {
            let m = &self.map[k];
            let nl = m.len();
            for (j, &g) in m.iter().enumerate() {
                s.theta[j] = theta[g];
            }
            let want_g = grad.is_some() || hess.is_some();
            let f = part.eval(
                &s.theta[..nl],
                &data.parts[k],
                &mut s.parts[k],
                if want_g {
                    Some(&mut s.grad[..nl])
                } else {
                    None
                },
                if hess.is_some() {
                    Some(&mut s.hess[..nl * nl])
                } else {
                    None
                },
            );
            if !f.is_finite() {
                return f64::INFINITY;
            }
            total += f;
            if let Some(g) = grad.as_deref_mut() {
                for (j, &gj) in m.iter().enumerate() {
                    g[gj] += s.grad[j];
                }
            }
            if let Some(h) = hess.as_deref_mut() {
                for (a, &ga) in m.iter().enumerate() {
                    for (b, &gb) in m.iter().enumerate() {
                        h[ga * n + gb] += s.hess[a * nl + b];
                    }
                }
            }
        }
        total
    }

    fn asimov(&self, theta: &[f64]) -> CombinedData {
        CombinedData {
            parts: self
                .parts
                .iter()
                .zip(&self.map)
                .map(|(p, m)| p.asimov(&gather(theta, m)))
                .collect(),
        }
    }

    fn generator(&self, theta: &[f64]) -> Vec<PartGen> {
        self.parts
            .iter()
            .zip(&self.map)
            .map(|(p, m)| p.generator(&gather(theta, m)))
            .collect()
    }

    fn sample(&self, g: &Vec<PartGen>, seed: u64, toy: u32, purpose: u32) -> CombinedData {
        CombinedData {
            parts: self
                .parts
                .iter()
                .zip(g)
                .enumerate()
                .map(|(k, (p, gk))| p.sample(gk, seed, toy, part_purpose(purpose, k)))
                .collect(),
        }
    }

    fn layout(&self) -> &HessianLayout {
        &self.layout
    }

    fn magnitude(&self, data: &CombinedData) -> f64 {
        self.parts
            .iter()
            .zip(&data.parts)
            .map(|(p, d)| p.magnitude(d))
            .sum()
    }
}

/// The random-stream purpose of part `k` for toys of purpose `purpose`.
pub fn part_purpose(purpose: u32, k: usize) -> u32 {
    purpose.wrapping_add((k as u32) << 16)
}

fn gather(theta: &[f64], map: &[usize]) -> Vec<f64> {
    map.iter().map(|&g| theta[g]).collect()
}

#[path = "combined_hf.rs"]
mod hf;
pub use hf::HistFactoryPart;

#[cfg(test)]
#[path = "combined_tests.rs"]
mod tests;
