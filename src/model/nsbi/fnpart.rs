//! A part whose inner parameters are functions of the outer ones: how
//! `customfunc` modifiers of binned channels work.
//!
//! The binned channels compile into a HistFactory model in which each
//! `customfunc` modifier is a free normalisation factor `phi_k`; this part
//! sets `phi_k = f_k(theta)` (the modifier's expression) and passes the other
//! inner parameters through. With `L(theta) = H(phi(theta))` and `J = dphi/dtheta`,
//!
//! ```text
//! grad L = J^T grad H
//! hess L = J^T (hess H) J + sum_k (dH/dphi_k) hess f_k
//! ```
//!
//! exact to rounding, since the expressions' derivatives are exact
//! ([`crate::expr`]) and so are the HistFactory kernel's.

use super::coef::{ExprFactor, Factor};
use crate::model::combined::{ConstraintInfo, Part, PartData, PartGen, PartScratch};
use serde_json::{Value, json};

/// Where an inner parameter comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Outer parameter with this index.
    Outer(usize),
    /// Function with this index.
    Func(usize),
}

/// One function of outer parameters.
#[derive(Debug)]
pub struct InnerFn {
    /// The expression with its outer variable indices.
    pub factor: ExprFactor,
    /// Where it comes from (a JSON pointer), for messages.
    pub label: String,
}

/// An inner part seen through a map of parameters.
pub struct FnPart {
    inner: Box<dyn Part>,
    names: Vec<String>,
    init: Vec<f64>,
    bounds: Vec<(f64, f64)>,
    fixed: Vec<bool>,
    poi: Option<usize>,
    src: Vec<Source>,
    funcs: Vec<InnerFn>,
}

/// Per-thread buffers.
struct FnScratch {
    inner: PartScratch,
    phi: Vec<f64>,
    g: Vec<f64>,
    h: Vec<f64>,
    /// Per function: value, gradient and Hessian over its variables.
    fg: Vec<Vec<f64>>,
    fh: Vec<Vec<f64>>,
    x: Vec<f64>,
    /// Rows of the Jacobian `dphi/dtheta` (non-zero entries).
    rows: Vec<Vec<(usize, f64)>>,
}

impl FnPart {
    /// `inner` with inner parameter `i` taken from `src[i]`; the outer table
    /// (names, starts, bounds, fixed flags, POI) is given.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        inner: Box<dyn Part>,
        names: Vec<String>,
        init: Vec<f64>,
        bounds: Vec<(f64, f64)>,
        fixed: Vec<bool>,
        poi: Option<usize>,
        src: Vec<Source>,
        funcs: Vec<InnerFn>,
    ) -> Self {
        debug_assert_eq!(src.len(), inner.par_names().len());
        FnPart {
            inner,
            names,
            init,
            bounds,
            fixed,
            poi,
            src,
            funcs,
        }
    }

    fn map(&self, theta: &[f64], s: &mut FnScratch, order: u8) {
        for (k, f) in self.funcs.iter().enumerate() {
            s.x.clear();
            s.x.extend(f.factor.vars().iter().map(|&v| theta[v]));
            let v = if order == 0 {
                f.factor.value(&s.x)
            } else {
                f.factor.eval(&s.x, &mut s.fg[k][1..], &mut s.fh[k])
            };
            s.fg[k][0] = v;
        }
        for (i, src) in self.src.iter().enumerate() {
            s.phi[i] = match *src {
                Source::Outer(j) => theta[j],
                Source::Func(k) => s.fg[k][0],
            };
        }
    }

    fn phi(&self, theta: &[f64]) -> Vec<f64> {
        self.src
            .iter()
            .map(|s| match *s {
                Source::Outer(j) => theta[j],
                Source::Func(k) => {
                    let f = &self.funcs[k].factor;
                    let x: Vec<f64> = f.vars().iter().map(|&v| theta[v]).collect();
                    f.value(&x)
                }
            })
            .collect()
    }

    /// Non-zero entries `(outer index, dphi_i/dtheta)` of each row of the
    /// Jacobian, into `s.rows` (after [`FnPart::map`] with derivatives).
    fn jacobian(&self, s: &mut FnScratch) {
        for (i, src) in self.src.iter().enumerate() {
            let row = &mut s.rows[i];
            row.clear();
            match *src {
                Source::Outer(j) => row.push((j, 1.0)),
                Source::Func(k) => row.extend(
                    self.funcs[k]
                        .factor
                        .vars()
                        .iter()
                        .enumerate()
                        .map(|(a, &v)| (v, s.fg[k][1 + a])),
                ),
            }
        }
    }
}

impl Part for FnPart {
    fn label(&self) -> String {
        format!("{} with customfunc", self.inner.label())
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
    fn poi(&self) -> Option<usize> {
        self.poi
    }
    fn observed(&self) -> PartData {
        self.inner.observed()
    }
    fn scratch(&self) -> PartScratch {
        let n = self.src.len();
        Box::new(FnScratch {
            inner: self.inner.scratch(),
            phi: vec![0.0; n],
            g: vec![0.0; n],
            h: vec![0.0; n * n],
            fg: self
                .funcs
                .iter()
                .map(|f| vec![0.0; 1 + f.factor.vars().len()])
                .collect(),
            fh: self
                .funcs
                .iter()
                .map(|f| vec![0.0; f.factor.vars().len().pow(2)])
                .collect(),
            x: Vec::new(),
            rows: vec![Vec::new(); n],
        })
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
            .downcast_mut::<FnScratch>()
            .expect("a customfunc part is always given its own scratch");
        let order = if hess.is_some() {
            2
        } else {
            u8::from(grad.is_some())
        };
        self.map(theta, s, order);
        let n_in = self.src.len();
        let n = self.names.len();
        let (g_in, h_in) = (&mut s.g, &mut s.h);
        let f = self.inner.eval(
            &s.phi,
            data,
            &mut s.inner,
            (order >= 1).then_some(&mut g_in[..]),
            (order >= 2).then_some(&mut h_in[..]),
        );
        if order >= 1 {
            self.jacobian(s);
        }
        let s = &*s;
        if let Some(g) = grad {
            g.fill(0.0);
            for i in 0..n_in {
                for &(j, c) in &s.rows[i] {
                    g[j] += c * s.g[i];
                }
            }
        }
        if let Some(h) = hess {
            h.fill(0.0);
            for i in 0..n_in {
                for i2 in 0..n_in {
                    let hv = s.h[i * n_in + i2];
                    if hv == 0.0 {
                        continue;
                    }
                    for &(a, ca) in &s.rows[i] {
                        for &(b, cb) in &s.rows[i2] {
                            h[a * n + b] += ca * cb * hv;
                        }
                    }
                }
            }
            for (i, src) in self.src.iter().enumerate() {
                if let Source::Func(k) = *src {
                    let vars = self.funcs[k].factor.vars();
                    let m = vars.len();
                    for (a, &va) in vars.iter().enumerate() {
                        for (b, &vb) in vars.iter().enumerate() {
                            h[va * n + vb] += s.g[i] * s.fh[k][a * m + b];
                        }
                    }
                }
            }
        }
        f
    }
    fn asimov(&self, theta: &[f64]) -> PartData {
        self.inner.asimov(&self.phi(theta))
    }
    fn generator(&self, theta: &[f64]) -> PartGen {
        self.inner.generator(&self.phi(theta))
    }
    fn sample(&self, generator: &PartGen, seed: u64, toy: u32, purpose: u32) -> PartData {
        self.inner.sample(generator, seed, toy, purpose)
    }
    fn magnitude(&self, data: &PartData) -> f64 {
        self.inner.magnitude(data)
    }
    fn constraint(&self, i: usize) -> Option<ConstraintInfo> {
        let k = self.src.iter().position(|s| *s == Source::Outer(i))?;
        self.inner.constraint(k)
    }
    fn domain_issue(&self, theta: &[f64], data: &PartData) -> Option<String> {
        let phi = self.phi(theta);
        for (i, src) in self.src.iter().enumerate() {
            if let Source::Func(k) = *src
                && !phi[i].is_finite()
            {
                return Some(format!(
                    "customfunc at {} is {} here",
                    self.funcs[k].label, phi[i]
                ));
            }
        }
        self.inner.domain_issue(&phi, data)
    }
    fn describe(&self) -> Value {
        json!({
            "type": "customfunc",
            "inner": self.inner.describe(),
            "functions": self.funcs.iter().map(|f| json!({
                "at": f.label,
                "expr": f.factor.describe(&self.names)["expr"],
                "parameters": f.factor.vars().iter().map(|&v| self.names[v].clone()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}
