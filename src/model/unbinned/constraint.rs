//! Constraint terms: one-dimensional distributions of global observables
//! (HS3 `aux_distributions`, inline numbers in a likelihood's `data`, or factors
//! of a product on a variable that is not an axis of the data).
//!
//! They are normalised over the whole real line (over k = 0, 1, ... for the
//! Poisson), as pyhf normalises its constraint terms, not over a domain range:
//! - gaussian: `((x - mean)/sigma)^2 + ln(2 pi) + 2 ln sigma`
//! - poisson: `2 (mean - x ln mean + ln Gamma(x + 1))`
//! - lognormal: `((ln x - mu)/sigma)^2 + ln(2 pi) + 2 ln sigma + 2 ln x`

use super::slots::{Slot, SlotFn, SlotValues, chain_to_params};
use crate::rng::Stream;

/// Kind of a constraint term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    /// Gaussian (slots: mean, sigma).
    Gauss,
    /// Poisson (slot: mean).
    Poisson,
    /// Log-normal (slots: mu, sigma).
    LogNormal,
}

impl ConstraintKind {
    /// Number of slots.
    pub fn n_slots(self) -> usize {
        match self {
            ConstraintKind::Poisson => 1,
            _ => 2,
        }
    }
}

/// One term: a density of the global observable `obs`.
#[derive(Debug, Clone)]
pub struct ConstraintTerm {
    /// The density.
    pub kind: ConstraintKind,
    /// Its parameter slots (over the part's local parameters).
    pub slots: Vec<Slot>,
    /// Name of the global observable.
    pub obs: String,
    /// Name of the HS3 distribution.
    pub name: String,
}

/// All constraint terms of a likelihood, with their observed global observables.
#[derive(Debug, Clone)]
pub struct ConstraintPart {
    /// The terms.
    pub terms: Vec<ConstraintTerm>,
    /// Local parameter names.
    pub par_names: Vec<String>,
    /// Suggested initial values.
    pub init: Vec<f64>,
    /// Bounds.
    pub bounds: Vec<(f64, f64)>,
    /// Fixed flags.
    pub fixed: Vec<bool>,
    /// Observed global observables, one per term.
    pub observed: std::sync::Arc<Vec<f64>>,
}

const LN_2PI: f64 = 1.837_877_066_409_345_5;

impl ConstraintTerm {
    /// twice_nll of the term at slot values `v` and datum `x`, with derivatives
    /// in the slots (`g`, row-major `h` of n_slots^2).
    pub fn value(&self, v: &[f64], x: f64, g: &mut [f64], h: &mut [f64]) -> f64 {
        match self.kind {
            ConstraintKind::Gauss | ConstraintKind::LogNormal => {
                let (m, s) = (v[0], v[1]);
                if !(s > 0.0) {
                    return f64::INFINITY;
                }
                let (y, extra) = if self.kind == ConstraintKind::LogNormal {
                    if !(x > 0.0) {
                        return f64::INFINITY;
                    }
                    (x.ln(), 2.0 * x.ln())
                } else {
                    (x, 0.0)
                };
                let d = y - m;
                let is = 1.0 / s;
                g[0] = -2.0 * d * is * is;
                g[1] = -2.0 * d * d * is * is * is + 2.0 * is;
                h[0] = 2.0 * is * is;
                h[1] = 4.0 * d * is * is * is;
                h[2] = h[1];
                h[3] = 6.0 * d * d * is.powi(4) - 2.0 * is * is;
                d * d * is * is + LN_2PI + 2.0 * s.ln() + extra
            }
            ConstraintKind::Poisson => {
                let lam = v[0];
                if !(lam > 0.0) || !(x >= 0.0) {
                    return f64::INFINITY;
                }
                g[0] = 2.0 * (1.0 - x / lam);
                h[0] = 2.0 * x / (lam * lam);
                2.0 * (lam - x * lam.ln() + libm::lgamma(x + 1.0))
            }
        }
    }

    /// A draw of the global observable at slot values `v`.
    pub fn sample(&self, v: &[f64], s: &mut Stream) -> f64 {
        match self.kind {
            ConstraintKind::Gauss => v[0] + v[1] * s.normal(),
            ConstraintKind::LogNormal => (v[0] + v[1] * s.normal()).exp(),
            ConstraintKind::Poisson => s.poisson(v[0]),
        }
    }

    /// The Asimov datum (the value at which the term is largest in its mean).
    pub fn asimov(&self, v: &[f64]) -> f64 {
        match self.kind {
            ConstraintKind::Gauss | ConstraintKind::Poisson => v[0],
            ConstraintKind::LogNormal => v[0].exp(),
        }
    }
}

impl ConstraintPart {
    /// Short label.
    pub fn label(&self) -> String {
        let names: Vec<&str> = self.terms.iter().map(|t| t.name.as_str()).collect();
        format!("constraints ({})", names.join(", "))
    }

    /// Slot values of every term at `theta`.
    fn slot_values(&self, t: &ConstraintTerm, theta: &[f64], sv: &mut SlotValues) {
        sv.compute(&t.slots, theta, true);
    }

    /// twice_nll at local `theta` on data `x` (one datum per term); OVERWRITES
    /// `grad` and the row-major `hess` when given.
    pub fn eval(
        &self,
        theta: &[f64],
        x: &[f64],
        sv: &mut SlotValues,
        mut grad: Option<&mut [f64]>,
        mut hess: Option<&mut [f64]>,
    ) -> f64 {
        let np = self.par_names.len();
        if let Some(g) = grad.as_deref_mut() {
            g.iter_mut().for_each(|v| *v = 0.0);
        }
        if let Some(h) = hess.as_deref_mut() {
            h.iter_mut().for_each(|v| *v = 0.0);
        }
        let mut total = 0.0;
        let mut scratch_g = vec![0.0; np];
        for (k, t) in self.terms.iter().enumerate() {
            self.slot_values(t, theta, sv);
            let n = t.kind.n_slots();
            let (mut g, mut h) = ([0.0; 2], [0.0; 4]);
            let v = t.value(&sv.v[..n], x[k], &mut g, &mut h);
            if !v.is_finite() {
                return f64::INFINITY;
            }
            total += v;
            if grad.is_some() || hess.is_some() {
                let idx: Vec<usize> = (0..n).collect();
                let hu: Vec<f64> = if n == 1 { vec![h[0]] } else { h.to_vec() };
                let gsl = match grad.as_deref_mut() {
                    Some(g) => g,
                    None => &mut scratch_g[..],
                };
                chain_to_params(
                    &t.slots,
                    sv,
                    &idx,
                    &g[..n],
                    Some(&hu),
                    np,
                    gsl,
                    hess.as_deref_mut(),
                );
            }
        }
        total
    }

    /// Global observables drawn at `theta` from stream variables `base + k`.
    pub fn sample(&self, theta: &[f64], seed: u64, toy: u32, purpose: u32, base: u32) -> Vec<f64> {
        let mut sv = SlotValues::default();
        self.terms
            .iter()
            .enumerate()
            .map(|(k, t)| {
                sv.compute(&t.slots, theta, false);
                let mut s = Stream::new(seed, toy, purpose, base + k as u32);
                t.sample(&sv.v, &mut s)
            })
            .collect()
    }

    /// Asimov global observables at `theta`.
    pub fn asimov(&self, theta: &[f64]) -> Vec<f64> {
        let mut sv = SlotValues::default();
        self.terms
            .iter()
            .map(|t| {
                sv.compute(&t.slots, theta, false);
                t.asimov(&sv.v)
            })
            .collect()
    }

    /// Pull information of local parameter `i`: a Gaussian term whose mean is the
    /// parameter itself and whose width is constant gives ("normal", sigma, datum).
    pub fn constraint(&self, i: usize) -> Option<(&'static str, f64, f64)> {
        for (k, t) in self.terms.iter().enumerate() {
            if let SlotFn::Par(j) = t.slots[0].f {
                if j != i {
                    continue;
                }
                let sigma = match t.slots.get(1).map(|s| &s.f) {
                    Some(SlotFn::Const(s)) => Some(*s),
                    // a width parameter: its (fixed) initial value
                    Some(SlotFn::Par(j)) if self.fixed[*j] => Some(self.init[*j]),
                    _ => None,
                };
                match (t.kind, sigma) {
                    (ConstraintKind::Gauss, Some(sigma)) => {
                        return Some(("normal", sigma, self.observed[k]));
                    }
                    (ConstraintKind::Poisson, _) => {
                        let x = self.observed[k];
                        return Some(("poisson", x.max(1.0).sqrt(), x));
                    }
                    _ => {}
                }
            }
        }
        None
    }
}
