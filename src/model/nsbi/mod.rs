//! Unbinned channels with per-event density ratios (neural simulation-based
//! inference, the ATLAS off-shell Higgs likelihood of arXiv:2412.01600).
//!
//! With a reference density `p_ref` (it cancels in every likelihood ratio),
//! one channel contributes
//!
//! ```text
//! twice_nll = 2 nu + 2 ln Gamma(N + 1) - 2 sum_i w_i ln lambda_i
//! lambda_i  = sum_c A_c(theta) g_c(x_i, alpha) r_c(x_i)
//! nu        = sum_c A_c(theta),   N = sum_i w_i
//! A_c       = nu_c * f_c(mu) * G_c(alpha) * (normalisation factors)
//! g_c       = prod_k code4(alpha_k; r_ck^up(x_i), r_ck^down(x_i))
//! ```
//!
//! where `r_c = p_c / p_ref` are the per-event ratios of process `c`, `G_c` its
//! yield variations (code 4 on yield ratios) and `g_c` its per-event shape
//! variations (code 4 on ratios of varied to nominal densities, per event,
//! [`code4`]). The Gaussian constraints of the nuisance parameters are a
//! separate part ([`GaussConstraints`]) so that a parameter shared with a
//! binned channel is constrained once.
//!
//! The kernel ([`kernel`]) gives twice_nll, its gradient and exact Hessian in
//! one pass over contiguous per-event arrays, in fixed chunks of events whose
//! partial sums are added in chunk order: results do not depend on the
//! number of threads.

pub mod arrays;
mod binned;
pub mod code4;
pub mod coef;
pub mod constraint;
pub mod diag;
pub mod fnpart;
pub mod kernel;
mod kernel_block;
pub mod network;
#[cfg(feature = "onnx")]
mod onnx;
mod params;
pub mod part;
pub mod read;
pub mod synth;
pub mod synth_big;
pub mod synth_ws;
pub mod toys;

pub use coef::{Factor, FnFactor, NormFactor, YieldCode4};
pub use constraint::GaussConstraints;
pub use kernel::Scratch;
pub use part::NsbiPart;

use crate::error::{Error, Result};
use std::sync::Arc;

/// One process of an unbinned channel.
#[derive(Debug)]
pub struct Process {
    /// Sample name.
    pub name: String,
    /// Nominal yield `nu_c`.
    pub nu: f64,
    /// Factors of the rate coefficient (normfactors, yield variations, functions).
    pub factors: Vec<Box<dyn Factor>>,
}

/// A per-event shape variation of one process by one parameter.
#[derive(Debug, Clone)]
pub struct ShapeVar {
    /// Process index.
    pub process: usize,
    /// Local parameter index.
    pub par: usize,
    /// Label for messages ("sample S, modifier JES").
    pub label: String,
}

/// Per-event arrays of one set of events (the observed events or the
/// reference sample toys are drawn from).
#[derive(Debug, Clone)]
pub struct EventSet {
    /// Label for messages ("observed events", "reference sample").
    pub label: String,
    /// Number of events.
    pub n: usize,
    /// Per-event weights (None: all 1).
    pub weights: Option<Vec<f64>>,
    /// `r_c(x_i)` per process: `ratios[c][i]`.
    pub ratios: Vec<Vec<f64>>,
    /// Per shape variation: `[ln k+, ln k-]` per event (`k+-` are recomputed
    /// with [`code4::exp`]: half the bytes to stream per evaluation).
    pub shapes: Vec<[Vec<f64>; 2]>,
}

/// Raw per-event arrays of an event set, before checks.
#[derive(Debug, Clone, Default)]
pub struct EventArrays {
    /// Weights (None: all 1).
    pub weights: Option<Vec<f64>>,
    /// `r_c` per process.
    pub ratios: Vec<Vec<f64>>,
    /// Per shape variation `(up ratio, down ratio)` per event.
    pub shapes: Vec<(Vec<f64>, Vec<f64>)>,
}

impl EventSet {
    /// Check the arrays (lengths, finite, ratios >= 0, shape ratios > 0,
    /// weights >= 0) and precompute logarithms. `names` labels the arrays
    /// (process names, shape-variation labels) in errors.
    pub fn new(
        label: &str,
        arrays: EventArrays,
        process_names: &[String],
        shapes: &[ShapeVar],
    ) -> Result<Self> {
        let bad = |what: &str, msg: String| Error::input(format!("{label}: {what}: {msg}"));
        if arrays.ratios.len() != process_names.len() {
            return Err(bad(
                "ratios",
                format!(
                    "{} ratio arrays for {} processes",
                    arrays.ratios.len(),
                    process_names.len()
                ),
            ));
        }
        if arrays.shapes.len() != shapes.len() {
            return Err(bad(
                "shape ratios",
                format!(
                    "{} arrays for {} shape variations",
                    arrays.shapes.len(),
                    shapes.len()
                ),
            ));
        }
        let n = match (arrays.ratios.first(), &arrays.weights) {
            (Some(r), _) => r.len(),
            (None, Some(w)) => w.len(),
            (None, None) => 0,
        };
        let check_len = |what: String, len: usize| -> Result<()> {
            if len != n {
                let first = format!("ratios of '{}'", process_names.first().map_or("", |s| s));
                return Err(bad(
                    &what,
                    format!(
                        "{len} entries, but {first} have {n}: per-event arrays must have one entry per event"
                    ),
                ));
            }
            Ok(())
        };
        if let Some(w) = &arrays.weights {
            check_len("weights".into(), w.len())?;
            if let Some(i) = w.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
                return Err(bad(
                    "weights",
                    format!(
                        "event {i} has weight {} (weights must be finite and >= 0)",
                        w[i]
                    ),
                ));
            }
        }
        for (c, r) in arrays.ratios.iter().enumerate() {
            let what = format!("ratios of '{}'", process_names[c]);
            check_len(what.clone(), r.len())?;
            if let Some(i) = r.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
                return Err(bad(
                    &what,
                    format!(
                        "event {i} has ratio {} (ratios must be finite and >= 0)",
                        r[i]
                    ),
                ));
            }
        }
        let mut out = Vec::with_capacity(shapes.len());
        for (s, (up, dn)) in shapes.iter().zip(arrays.shapes) {
            for (dir, a) in [("up", &up), ("down", &dn)] {
                let what = format!("{} {dir} ratios", s.label);
                check_len(what.clone(), a.len())?;
                if let Some(i) = a.iter().position(|x| !(x.is_finite() && *x > 0.0)) {
                    return Err(bad(
                        &what,
                        format!(
                            "event {i} has ratio {} (shape ratios must be finite and > 0)",
                            a[i]
                        ),
                    ));
                }
                if let Some(i) = a.iter().position(|x| !(x.ln().abs() <= 700.0)) {
                    return Err(bad(
                        &what,
                        format!(
                            "event {i} has ratio {} (shape ratios must lie in [e^-700, e^700])",
                            a[i]
                        ),
                    ));
                }
            }
            let lp: Vec<f64> = up.iter().map(|x| x.ln()).collect();
            let lm: Vec<f64> = dn.iter().map(|x| x.ln()).collect();
            out.push([lp, lm]);
        }
        Ok(EventSet {
            label: label.to_string(),
            n,
            weights: arrays.weights,
            ratios: arrays.ratios,
            shapes: out,
        })
    }

    /// Sum of the weights.
    pub fn sum_w(&self) -> f64 {
        match &self.weights {
            Some(w) => w.iter().sum(),
            None => self.n as f64,
        }
    }
}

/// Which event set a dataset weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetId {
    /// The channel's observed events.
    Observed,
    /// The reference sample (toys and Asimov data).
    Reference,
}

/// Per-event weights of a dataset.
#[derive(Debug, Clone)]
pub enum Weights {
    /// Every event has weight 1.
    Unit,
    /// One weight per event of the set.
    Dense(Arc<Vec<f64>>),
    /// Only the events `idx` (increasing) with weights `w`; all others 0.
    Sparse {
        /// Event indices.
        idx: Arc<Vec<u32>>,
        /// Their weights.
        w: Arc<Vec<f64>>,
    },
}

/// The data of one unbinned channel: weights on one of its event sets.
#[derive(Debug, Clone)]
pub struct NsbiData {
    /// The event set.
    pub set: SetId,
    /// The weights.
    pub weights: Weights,
    /// `N = sum_i w_i`.
    pub sum_w: f64,
    /// `ln Gamma(N + 1)`.
    pub lgamma: f64,
}

impl NsbiData {
    /// Data with `weights` on `set` (`n` events in the set).
    pub fn new(set: SetId, weights: Weights, n: usize) -> Self {
        let sum_w = match &weights {
            Weights::Unit => n as f64,
            Weights::Dense(w) => w.iter().sum(),
            Weights::Sparse { w, .. } => w.iter().sum(),
        };
        NsbiData {
            set,
            weights,
            sum_w,
            lgamma: libm::lgamma(sum_w + 1.0),
        }
    }
}

/// A compiled unbinned channel.
#[derive(Debug)]
pub struct NsbiChannel {
    /// Channel name.
    pub name: String,
    /// Local parameter names.
    pub par_names: Vec<String>,
    /// Suggested starts.
    pub init: Vec<f64>,
    /// Bounds.
    pub bounds: Vec<(f64, f64)>,
    /// Fixed flags.
    pub fixed: Vec<bool>,
    /// Local index of the POI, if the channel has it.
    pub poi: Option<usize>,
    /// Processes.
    pub processes: Vec<Process>,
    /// Per-event shape variations.
    pub shapes: Vec<ShapeVar>,
    /// Local indices of the parameters with per-event shape variations (the
    /// "shape block"), in increasing order.
    pub shape_pars: Vec<usize>,
    /// Observed events.
    pub observed: EventSet,
    /// Reference sample for toys and Asimov data (None: the observed events,
    /// with their weights, serve as the reference sample).
    pub reference: Option<EventSet>,
    /// Network ensembles that gave ratios (spread summaries, for diagnostics).
    pub ensembles: Vec<network::EnsembleSummary>,
}

impl NsbiChannel {
    /// Assemble and check a channel. `reference = None` makes the observed
    /// events the reference sample.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        par_names: Vec<String>,
        init: Vec<f64>,
        bounds: Vec<(f64, f64)>,
        fixed: Vec<bool>,
        poi: Option<usize>,
        processes: Vec<Process>,
        shapes: Vec<ShapeVar>,
        observed: EventArrays,
        reference: Option<EventArrays>,
    ) -> Result<Self> {
        let p = par_names.len();
        let here = |msg: String| Error::input(format!("channel '{name}': {msg}"));
        if init.len() != p || bounds.len() != p || fixed.len() != p {
            return Err(here(format!(
                "{p} parameters but {} inits, {} bounds, {} fixed flags",
                init.len(),
                bounds.len(),
                fixed.len()
            )));
        }
        if processes.is_empty() {
            return Err(here("no processes (samples)".into()));
        }
        for pr in &processes {
            if !(pr.nu.is_finite()) {
                return Err(here(format!(
                    "sample '{}': yield {} is not finite",
                    pr.name, pr.nu
                )));
            }
            for f in &pr.factors {
                if let Some(&v) = f.vars().iter().find(|&&v| v >= p) {
                    return Err(here(format!(
                        "sample '{}': a factor uses parameter index {v} of {p}",
                        pr.name
                    )));
                }
            }
        }
        for s in &shapes {
            if s.process >= processes.len() || s.par >= p {
                return Err(here(format!(
                    "shape variation '{}' is out of range",
                    s.label
                )));
            }
        }
        for (i, s) in shapes.iter().enumerate() {
            if let Some(t) = shapes[..i]
                .iter()
                .find(|t| t.process == s.process && t.par == s.par)
            {
                return Err(here(format!(
                    "'{}' and '{}' vary the same sample with the same parameter; give one shape variation per sample and parameter",
                    t.label, s.label
                )));
            }
        }
        let mut shape_pars: Vec<usize> = shapes.iter().map(|s| s.par).collect();
        shape_pars.sort_unstable();
        shape_pars.dedup();
        let names: Vec<String> = processes.iter().map(|p| p.name.clone()).collect();
        let observed = EventSet::new(
            &format!("channel '{name}', observed events"),
            observed,
            &names,
            &shapes,
        )?;
        let reference = match reference {
            Some(r) => Some(EventSet::new(
                &format!("channel '{name}', reference sample"),
                r,
                &names,
                &shapes,
            )?),
            None => None,
        };
        if let Some(r) = &reference
            && r.weights.is_none()
        {
            return Err(here("the reference sample needs weights".into()));
        }
        Ok(NsbiChannel {
            name: name.to_string(),
            par_names,
            init,
            bounds,
            fixed,
            poi,
            processes,
            shapes,
            shape_pars,
            observed,
            reference,
            ensembles: Vec::new(),
        })
    }

    /// The event set a dataset refers to.
    pub fn set(&self, id: SetId) -> &EventSet {
        match id {
            SetId::Observed => &self.observed,
            SetId::Reference => self.reference.as_ref().unwrap_or(&self.observed),
        }
    }

    /// The observed data.
    pub fn observed_data(&self) -> NsbiData {
        let w = match &self.observed.weights {
            Some(w) => Weights::Dense(Arc::new(w.clone())),
            None => Weights::Unit,
        };
        NsbiData::new(SetId::Observed, w, self.observed.n)
    }

    /// The rate coefficients `A_c` at `theta` (value only).
    pub fn coefficients(&self, theta: &[f64]) -> Vec<f64> {
        let mut c = coef::Coef::new(theta.len());
        self.processes
            .iter()
            .map(|pr| {
                c.compute(pr.nu, &pr.factors, theta, 0);
                c.a
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
