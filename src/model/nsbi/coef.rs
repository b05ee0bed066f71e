//! Rate coefficients `A_c(theta) = nu_c * prod_j factor_j(theta)` of the
//! processes of an unbinned channel, with exact gradients and Hessians.
//!
//! A factor is a normalisation factor, a code-4 yield variation `G_c(alpha)`,
//! or a coefficient function `f_c(mu, ...)` (a `customfunc` expression or a
//! closure built in code). Factors may be negative or zero (the interference
//! coefficient `1 - sqrt(mu)`), so products are differentiated directly, never
//! through logarithms.

use crate::model::histfactory::Interp;
use serde_json::{Value, json};
use std::fmt;

/// One factor of a rate coefficient, a function of a few local parameters.
pub trait Factor: Send + Sync + fmt::Debug {
    /// Local parameter indices (into the channel's parameters) it depends on.
    fn vars(&self) -> &[usize];
    /// Value at `x` (the values of `vars()`, in order); writes the gradient
    /// (`vars().len()`) and the row-major Hessian (`vars().len()^2`).
    fn eval(&self, x: &[f64], grad: &mut [f64], hess: &mut [f64]) -> f64;
    /// Value only.
    fn value(&self, x: &[f64]) -> f64 {
        let n = self.vars().len();
        let mut g = vec![0.0; n];
        let mut h = vec![0.0; n * n];
        self.eval(x, &mut g, &mut h)
    }
    /// JSON description for `inspect`.
    fn describe(&self, par_names: &[String]) -> Value;
}

/// A free normalisation factor `theta`.
#[derive(Debug, Clone)]
pub struct NormFactor {
    var: [usize; 1],
}

impl NormFactor {
    /// Factor equal to local parameter `var`.
    pub fn new(var: usize) -> Self {
        NormFactor { var: [var] }
    }
}

impl Factor for NormFactor {
    fn vars(&self) -> &[usize] {
        &self.var
    }
    fn eval(&self, x: &[f64], grad: &mut [f64], hess: &mut [f64]) -> f64 {
        grad[0] = 1.0;
        hess[0] = 0.0;
        x[0]
    }
    fn describe(&self, par_names: &[String]) -> Value {
        json!({"type": "normfactor", "parameter": par_names[self.var[0]]})
    }
}

/// A yield variation `G(alpha)`: code 4 through `k+` at +1 and `k-` at -1.
#[derive(Debug, Clone)]
pub struct YieldCode4 {
    var: [usize; 1],
    interp: Interp,
    kp: f64,
    km: f64,
}

impl YieldCode4 {
    /// Code-4 factor of local parameter `var` with yield ratios `kp`, `km` (> 0).
    pub fn new(var: usize, kp: f64, km: f64) -> Self {
        YieldCode4 {
            var: [var],
            interp: Interp::multiplicative(crate::model::InterpCode::Code4, kp, km),
            kp,
            km,
        }
    }
}

impl Factor for YieldCode4 {
    fn vars(&self) -> &[usize] {
        &self.var
    }
    fn eval(&self, x: &[f64], grad: &mut [f64], hess: &mut [f64]) -> f64 {
        let (v, d1, d2) = self.interp.eval(x[0]);
        grad[0] = d1;
        hess[0] = d2;
        v
    }
    fn describe(&self, par_names: &[String]) -> Value {
        json!({"type": "yield code4", "parameter": par_names[self.var[0]], "hi": self.kp, "lo": self.km})
    }
}

/// Value, gradient and Hessian of a function of some parameters.
pub type FactorFn = dyn Fn(&[f64], &mut [f64], &mut [f64]) -> f64 + Send + Sync;

/// A coefficient function given in code (`f(x, grad, hess) -> value`).
pub struct FnFactor {
    vars: Vec<usize>,
    label: String,
    f: Box<FactorFn>,
}

impl FnFactor {
    /// Factor of local parameters `vars`; `f` fills the gradient and Hessian.
    pub fn new(vars: Vec<usize>, label: &str, f: Box<FactorFn>) -> Self {
        FnFactor {
            vars,
            label: label.to_string(),
            f,
        }
    }
}

impl fmt::Debug for FnFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FnFactor({})", self.label)
    }
}

impl Factor for FnFactor {
    fn vars(&self) -> &[usize] {
        &self.vars
    }
    fn eval(&self, x: &[f64], grad: &mut [f64], hess: &mut [f64]) -> f64 {
        (self.f)(x, grad, hess)
    }
    fn describe(&self, par_names: &[String]) -> Value {
        json!({"type": "function", "label": self.label,
               "parameters": self.vars.iter().map(|&v| par_names[v].clone()).collect::<Vec<_>>()})
    }
}

/// A coefficient `A`, its gradient and Hessian over all `p` local parameters.
#[derive(Debug, Clone)]
pub struct Coef {
    /// Value.
    pub a: f64,
    /// Gradient (p).
    pub g: Vec<f64>,
    /// Hessian (p x p, row-major).
    pub h: Vec<f64>,
}

impl Coef {
    /// Buffers for `p` parameters.
    pub fn new(p: usize) -> Self {
        Coef {
            a: 0.0,
            g: vec![0.0; p],
            h: vec![0.0; p * p],
        }
    }

    /// `nu * prod factors` at local parameters `theta`; derivatives when `order >= 1, 2`.
    pub fn compute(&mut self, nu: f64, factors: &[Box<dyn Factor>], theta: &[f64], order: u8) {
        let p = theta.len();
        self.a = nu;
        self.g[..p].fill(0.0);
        if order >= 2 {
            self.h[..p * p].fill(0.0);
        }
        let mut x = Vec::new();
        let mut fg = Vec::new();
        let mut fh = Vec::new();
        for f in factors {
            let vars = f.vars();
            let m = vars.len();
            x.clear();
            x.extend(vars.iter().map(|&v| theta[v]));
            fg.clear();
            fg.resize(m, 0.0);
            fh.clear();
            fh.resize(m * m, 0.0);
            let fv = f.eval(&x, &mut fg, &mut fh);
            if order >= 2 {
                // h <- fv h + g fg^T + fg g^T + a fh   (uses the old g and a)
                for v in self.h[..p * p].iter_mut() {
                    *v *= fv;
                }
                for (j, &vj) in vars.iter().enumerate() {
                    for q in 0..p {
                        let t = self.g[q] * fg[j];
                        self.h[q * p + vj] += t;
                        self.h[vj * p + q] += t;
                    }
                    for (l, &vl) in vars.iter().enumerate() {
                        self.h[vj * p + vl] += self.a * fh[j * m + l];
                    }
                }
            }
            if order >= 1 {
                for v in self.g[..p].iter_mut() {
                    *v *= fv;
                }
                for (j, &vj) in vars.iter().enumerate() {
                    self.g[vj] += self.a * fg[j];
                }
            }
            self.a *= fv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqrt_mix() -> Box<dyn Factor> {
        // f(mu, k) = mu - k sqrt(mu)
        Box::new(FnFactor::new(
            vec![0, 2],
            "mu - k sqrt(mu)",
            Box::new(|x, g, h| {
                let (mu, k) = (x[0], x[1]);
                let s = mu.sqrt();
                g[0] = 1.0 - 0.5 * k / s;
                g[1] = -s;
                h[0] = 0.25 * k / (s * mu);
                h[1] = -0.5 / s;
                h[2] = h[1];
                h[3] = 0.0;
                mu - k * s
            }),
        ))
    }

    #[test]
    fn product_derivatives_match_finite_differences() {
        let factors: Vec<Box<dyn Factor>> = vec![
            sqrt_mix(),
            Box::new(NormFactor::new(1)),
            Box::new(YieldCode4::new(3, 1.2, 0.9)),
            Box::new(YieldCode4::new(1, 1.1, 0.95)),
        ];
        let theta = [2.3, 0.8, 0.6, 0.4];
        let p = theta.len();
        let mut c = Coef::new(p);
        c.compute(7.5, &factors, &theta, 2);
        let val = |t: &[f64]| {
            let mut c = Coef::new(p);
            c.compute(7.5, &factors, t, 0);
            c.a
        };
        let grad = |t: &[f64]| {
            let mut c = Coef::new(p);
            c.compute(7.5, &factors, t, 1);
            c.g
        };
        let h = 1e-6;
        for i in 0..p {
            let mut tp = theta;
            let mut tm = theta;
            tp[i] += h;
            tm[i] -= h;
            let fd = (val(&tp) - val(&tm)) / (2.0 * h);
            assert!(
                (fd - c.g[i]).abs() < 1e-7 * (1.0 + fd.abs()),
                "g[{i}] {} vs {fd}",
                c.g[i]
            );
            let (gp, gm) = (grad(&tp), grad(&tm));
            for j in 0..p {
                let fd = (gp[j] - gm[j]) / (2.0 * h);
                let an = c.h[j * p + i];
                assert!(
                    (fd - an).abs() < 1e-6 * (1.0 + fd.abs()),
                    "h[{j},{i}] {an} vs {fd}"
                );
            }
        }
    }
}

/// A coefficient function given as an expression (`customfunc`), with the
/// exact derivatives of [`crate::expr`].
#[derive(Debug, Clone)]
pub struct ExprFactor {
    vars: Vec<usize>,
    expr: crate::expr::Expr,
}

impl ExprFactor {
    /// `expr` over local parameters `vars` (one per expression variable, in
    /// the order of [`crate::expr::Expr::variables`]).
    pub fn new(expr: crate::expr::Expr, vars: Vec<usize>) -> Self {
        debug_assert_eq!(expr.variables().len(), vars.len());
        ExprFactor { vars, expr }
    }
}

impl Factor for ExprFactor {
    fn vars(&self) -> &[usize] {
        &self.vars
    }
    /// Where the value is finite but a derivative is not (`sqrt(mu)` at
    /// `mu = 0`), the derivatives are taken just inside, at `x + 1e-12 (1 + |x|)`:
    /// the value stays exact and fits at and near such a point see a large,
    /// finite slope instead of an infinite one.
    fn eval(&self, x: &[f64], grad: &mut [f64], hess: &mut [f64]) -> f64 {
        let v = self.expr.hessian(x, grad, hess);
        if v.is_finite() && !(grad.iter().chain(hess.iter()).all(|d| d.is_finite())) {
            let xn: Vec<f64> = x.iter().map(|&t| t + 1e-12 * (1.0 + t.abs())).collect();
            self.expr.hessian(&xn, grad, hess);
        }
        v
    }
    fn value(&self, x: &[f64]) -> f64 {
        self.expr.eval(x)
    }
    fn describe(&self, _par_names: &[String]) -> Value {
        json!({"type": "customfunc", "expr": self.expr.to_string()})
    }
}
