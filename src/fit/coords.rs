//! Minimiser coordinates. A model may name parameters whose likelihood is
//! far from quadratic in the parameter itself but close to quadratic in its
//! reciprocal ([`Likelihood::reciprocal_pars`]: the tail exponents `n` of a
//! Crystal Ball, which enter the tail as `(n/alpha - alpha - t)^-n` and tend to
//! a Gaussian tail as `1/n -> 0`). The minimiser then steps in `u = 1/x` for
//! them: the Newton steps of a double-sided Crystal Ball fit go from 6 to 3
//! (docs/benchmarks.md). The minimum is the same point; results are mapped
//! back to the model's parameters, and the covariance is `2 H^-1` of the
//! model's own Hessian (exact, see [`Reciprocal`]).

use super::{FitOptions, FitResult, FitSpec};
use crate::model::{HessianLayout, Likelihood};

/// The model seen in minimiser coordinates: `x_i = 1/u_i` where `rec[i]`.
///
/// Its Hessian is `J H_x J` with `J = diag(dx/du)` (`-x^2` for the mapped
/// parameters, 1 elsewhere), without the term `g_x d2x/du2` of the exact
/// Hessian in `u`. That term vanishes at the minimum, so convergence (edm is
/// the same number in both coordinates) and the covariance (`J^-1 C_u J^-1`
/// is exactly `2 H_x^-1`) keep their meaning, and no extra evaluation is
/// needed for the errors. (Newton in `u` with that term took 3 iterations
/// instead of 4 on the fit of docs/benchmarks.md, but its covariance at the
/// end was off by about 1e-6 relative, from the small gradient left there.)
pub(super) struct Reciprocal<'a, L: Likelihood> {
    inner: &'a L,
    rec: Vec<bool>,
    init: Vec<f64>,
    bounds: Vec<(f64, f64)>,
}

/// Per-thread buffers: the model's own and the mapped point.
pub(super) struct RecScratch<S> {
    inner: S,
    x: Vec<f64>,
}

/// The parameters to map for this batch: those the model names, free in
/// every spec, with positive starts (and a positive suggested start, used by
/// restarts) and room above zero in their bounds. `None` when there are none.
pub(super) fn reciprocal_mask<L: Likelihood>(model: &L, specs: &[FitSpec]) -> Option<Vec<bool>> {
    let named = model.reciprocal_pars();
    if named.is_empty() {
        return None;
    }
    let pos = |v: f64| v > 0.0 && v.is_finite();
    let mut rec = vec![false; model.n_pars()];
    for &i in named {
        rec[i] = pos(model.init()[i])
            && specs.iter().all(|s| {
                let (lo, hi) = s.bounds[i];
                !s.fixed[i] && pos(s.init[i].clamp(lo.min(hi), hi.max(lo))) && hi > 0.0
            });
    }
    rec.iter().any(|&r| r).then_some(rec)
}

/// `u`-space bounds of `x` in `[lo, hi]` (`x > 0` in any case: the model is
/// not defined at `x <= 0` for these parameters).
fn rec_bounds((lo, hi): (f64, f64)) -> (f64, f64) {
    let u_lo = if hi.is_finite() { 1.0 / hi } else { 0.0 };
    let u_hi = if lo > 0.0 { 1.0 / lo } else { f64::INFINITY };
    (u_lo, u_hi)
}

impl<'a, L: Likelihood> Reciprocal<'a, L> {
    /// The adapter for the parameters marked in `rec`.
    pub(super) fn new(inner: &'a L, rec: Vec<bool>) -> Self {
        let init = invert(&rec, inner.init());
        let bounds = inner
            .bounds()
            .iter()
            .zip(&rec)
            .map(|(&b, &r)| if r { rec_bounds(b) } else { b })
            .collect();
        Reciprocal {
            inner,
            rec,
            init,
            bounds,
        }
    }

    /// A spec in `u` coordinates.
    pub(super) fn spec(&self, s: &FitSpec) -> FitSpec {
        let mut out = s.clone();
        for (i, &r) in self.rec.iter().enumerate() {
            if r {
                let (lo, hi) = s.bounds[i];
                out.init[i] = 1.0 / s.init[i].clamp(lo.min(hi), hi.max(lo));
                out.bounds[i] = rec_bounds(s.bounds[i]);
            }
        }
        out
    }

    /// A result in the model's parameters: `x = 1/u`, the covariance
    /// `J C_u J` with `J = dx/du = -x^2` (signed: it flips the correlations
    /// with unmapped parameters back), the errors by `x^2`.
    pub(super) fn result(&self, mut r: FitResult) -> FitResult {
        let p = r.x.len();
        let mut jac = vec![1.0; p];
        for i in 0..p {
            if self.rec[i] {
                r.x[i] = 1.0 / r.x[i];
                jac[i] = -r.x[i] * r.x[i];
                r.errors[i] *= -jac[i];
            }
        }
        if let Some(c) = r.covariance.as_mut() {
            for i in 0..p {
                for j in 0..p {
                    c[i * p + j] *= jac[i] * jac[j];
                }
            }
        }
        r
    }

    fn map(&self, u: &[f64], x: &mut Vec<f64>) {
        x.clear();
        x.extend(
            u.iter()
                .zip(&self.rec)
                .map(|(&v, &r)| if r { 1.0 / v } else { v }),
        );
    }
}

/// `g_u = (dx/du) g_x` in place.
fn scale(rec: &[bool], x: &[f64], g: &mut [f64]) {
    for i in 0..rec.len() {
        if rec[i] {
            g[i] *= -x[i] * x[i];
        }
    }
}

/// `x <-> u` where `rec` (`1/v` is its own inverse).
fn invert(rec: &[bool], x: &[f64]) -> Vec<f64> {
    x.iter()
        .zip(rec)
        .map(|(&v, &r)| if r { 1.0 / v } else { v })
        .collect()
}

/// Fit a batch in `u` coordinates and map the results back.
pub(super) fn fit_reciprocal<L: Likelihood>(
    model: &L,
    data: &[&L::Data],
    specs: &[FitSpec],
    opts: &FitOptions,
    rec: Vec<bool>,
) -> Vec<FitResult> {
    let adapter = Reciprocal::new(model, rec);
    let specs_u: Vec<FitSpec> = specs.iter().map(|s| adapter.spec(s)).collect();
    let out = super::fit_batch_plain(&adapter, data, &specs_u, opts);
    out.into_iter()
        .zip(specs)
        .map(|(r, s)| {
            let mut r = adapter.result(r);
            // 1/(1/b) can miss a bound b by an ulp: a fit at its bound reports the bound.
            for (i, &m) in adapter.rec.iter().enumerate() {
                if m {
                    let (lo, hi) = s.bounds[i];
                    r.x[i] = r.x[i].clamp(lo.min(hi), hi.max(lo));
                }
            }
            r
        })
        .collect()
}

impl<L: Likelihood> Likelihood for Reciprocal<'_, L> {
    type Data = L::Data;
    type Scratch = RecScratch<L::Scratch>;
    type Generator = L::Generator;

    fn par_names(&self) -> &[String] {
        self.inner.par_names()
    }
    fn init(&self) -> &[f64] {
        &self.init
    }
    fn bounds(&self) -> &[(f64, f64)] {
        &self.bounds
    }
    fn fixed(&self) -> &[bool] {
        self.inner.fixed()
    }
    fn poi(&self) -> Option<usize> {
        self.inner.poi()
    }
    fn observed(&self) -> &L::Data {
        self.inner.observed()
    }
    fn scratch(&self) -> Self::Scratch {
        RecScratch {
            inner: self.inner.scratch(),
            x: Vec::with_capacity(self.rec.len()),
        }
    }
    fn eval(
        &self,
        theta: &[f64],
        data: &L::Data,
        s: &mut Self::Scratch,
        mut grad: Option<&mut [f64]>,
        mut hess: Option<&mut [f64]>,
    ) -> f64 {
        self.map(theta, &mut s.x);
        let f = self.inner.eval(
            &s.x,
            data,
            &mut s.inner,
            grad.as_deref_mut(),
            hess.as_deref_mut(),
        );
        let n = self.rec.len();
        let jac = |i: usize| if self.rec[i] { -s.x[i] * s.x[i] } else { 1.0 };
        if let Some(h) = hess {
            for i in 0..n {
                for j in 0..n {
                    if self.rec[i] || self.rec[j] {
                        h[i * n + j] *= jac(i) * jac(j);
                    }
                }
            }
        }
        if let Some(g) = grad {
            scale(&self.rec, &s.x, g);
        }
        f
    }
    fn eval_block(
        &self,
        theta: &[f64],
        data: &L::Data,
        s: &mut Self::Scratch,
        mut grad: Option<&mut [f64]>,
        mut hb: Option<&mut [f64]>,
        fisher: bool,
    ) -> f64 {
        self.map(theta, &mut s.x);
        let f = self.inner.eval_block(
            &s.x,
            data,
            &mut s.inner,
            grad.as_deref_mut(),
            hb.as_deref_mut(),
            fisher,
        );
        let lay = self.inner.layout();
        let jac = |i: usize| if self.rec[i] { -s.x[i] * s.x[i] } else { 1.0 };
        if let Some(hb) = hb {
            lay.for_each_entry(|i, j| {
                let (a, b) = (lay.perm[i], lay.perm[j]);
                if self.rec[a] || self.rec[b] {
                    hb[lay.pos(i, j)] *= jac(a) * jac(b);
                }
            });
        }
        if let Some(g) = grad {
            scale(&self.rec, &s.x, g);
        }
        f
    }
    fn asimov(&self, theta: &[f64]) -> L::Data {
        self.inner.asimov(&invert(&self.rec, theta))
    }
    fn generator(&self, theta: &[f64]) -> L::Generator {
        self.inner.generator(&invert(&self.rec, theta))
    }
    fn sample(&self, g: &L::Generator, seed: u64, toy: u32, purpose: u32) -> L::Data {
        self.inner.sample(g, seed, toy, purpose)
    }
    fn layout(&self) -> &HessianLayout {
        self.inner.layout()
    }
    fn magnitude(&self, data: &L::Data) -> f64 {
        self.inner.magnitude(data)
    }
    fn outside_domain(&self, s: &Self::Scratch, data: &L::Data) -> bool {
        self.inner.outside_domain(&s.inner, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::{FitStatus, fit_batch, fit_batch_plain};
    use crate::model::CombinedModel;
    use serde_json::json;

    /// A double-sided Crystal Ball on an exponential, with 20,000 events drawn
    /// from the model itself (Philox, seed 7).
    fn dscb() -> (CombinedModel, <CombinedModel as Likelihood>::Data) {
        let doc = json!({
            "distributions": [
                {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["ns", "nb"], "extended": true},
                {"name": "sig", "type": "crystalball_doublesided_dist", "m": "m", "m0": "m0", "sigma_L": "sl", "sigma_R": "sr",
                 "alpha_L": "al", "n_L": "nl", "alpha_R": "ar", "n_R": "nr"},
                {"name": "bkg", "type": "exponential_dist", "x": "m", "c": "c"}
            ],
            "data": [{"name": "d", "type": "unbinned", "axes": [{"name": "m", "min": 60.0, "max": 120.0}], "entries": [[91.0]]}],
            "parameter_points": [{"name": "p", "parameters": [
                {"name": "ns", "value": 8000.0}, {"name": "nb", "value": 12000.0}, {"name": "m0", "value": 91.0},
                {"name": "sl", "value": 2.3}, {"name": "sr", "value": 2.8}, {"name": "al", "value": 1.3},
                {"name": "nl", "value": 3.0}, {"name": "ar", "value": 1.6}, {"name": "nr", "value": 5.0},
                {"name": "c", "value": 0.03}]}]
        });
        let m = crate::model::unbinned::parts::load_hs3(&doc, "t", std::path::Path::new("."), None)
            .unwrap();
        let data = m.sample(&m.generator(m.init()), 7, 0, 0);
        (m, data)
    }

    fn idx(m: &CombinedModel, name: &str) -> usize {
        m.par_names().iter().position(|p| p == name).unwrap()
    }

    #[test]
    fn crystal_ball_tail_exponents_are_fitted_in_reciprocal_coordinates() {
        let (m, data) = dscb();
        let (nl, nr) = (idx(&m, "nl"), idx(&m, "nr"));
        assert_eq!(m.reciprocal_pars(), &[nl.min(nr), nl.max(nr)]);
        let spec = FitSpec::from_model(&m);
        let opts = FitOptions::default();
        let rec = fit_batch(&m, &[&data], std::slice::from_ref(&spec), &opts).remove(0);
        let plain = fit_batch_plain(&m, &[&data], std::slice::from_ref(&spec), &opts).remove(0);
        assert_eq!(rec.status, FitStatus::Converged);
        assert_eq!(plain.status, FitStatus::Converged);
        assert!(
            rec.iterations < plain.iterations,
            "{} vs {} iterations",
            rec.iterations,
            plain.iterations
        );
        // The same minimum, the same covariance (2 H^-1 of the model's own Hessian).
        assert!(
            (rec.twice_nll - plain.twice_nll).abs() < 1e-7,
            "{} {}",
            rec.twice_nll,
            plain.twice_nll
        );
        let p = m.n_pars();
        let (cr, cp) = (rec.covariance.unwrap(), plain.covariance.unwrap());
        for i in 0..p {
            assert!(
                (rec.x[i] - plain.x[i]).abs() < 1e-4 * plain.errors[i],
                "{}: {} vs {}",
                m.par_names()[i],
                rec.x[i],
                plain.x[i]
            );
            // Both fits stop within about 1e-6 standard deviations of the
            // minimum (edm 1e-12 to 1e-15), where the tails' curvature
            // still changes the errors in the sixth digit.
            assert!((rec.errors[i] / plain.errors[i] - 1.0).abs() < 1e-5);
            for j in 0..p {
                let scale = (cp[i * p + i] * cp[j * p + j]).sqrt();
                assert!((cr[i * p + j] - cp[i * p + j]).abs() < 1e-5 * scale);
            }
        }
    }

    #[test]
    fn fixed_exponents_keep_their_bits_and_bounded_ones_end_on_their_bounds() {
        let (m, data) = dscb();
        let (nl, nr) = (idx(&m, "nl"), idx(&m, "nr"));
        // nl fixed at a value 1/(1/x) does not return bit for bit: not mapped.
        let spec = FitSpec::from_model(&m).fix(nl, 2.9);
        let mask = reciprocal_mask(&m, std::slice::from_ref(&spec)).unwrap();
        assert!(!mask[nl] && mask[nr]);
        let r = fit_batch(&m, &[&data], &[spec], &FitOptions::default()).remove(0);
        assert_eq!(r.x[nl], 2.9);
        assert_eq!(r.status, FitStatus::Converged);
        // At a bound, the bound itself (1/(1/1.97) > 1.97, 1/(1/5.808) < 5.808).
        const LO: f64 = 5.808;
        let mut spec = FitSpec::from_model(&m);
        spec.bounds[nr] = (0.5, 1.97);
        spec.bounds[nl] = (LO, 20.0);
        let recip = |b: f64| 1.0 / std::hint::black_box(1.0 / b);
        assert!(recip(1.97) > 1.97 && recip(LO) < LO);
        spec.init[nr] = 1.5;
        spec.init[nl] = 7.0;
        let r = fit_batch(&m, &[&data], &[spec], &FitOptions::default()).remove(0);
        assert_eq!((r.x[nl], r.x[nr]), (LO, 1.97));
        // A start at or below 0, or bounds without room above 0: not mapped.
        let mut spec = FitSpec::from_model(&m);
        spec.init[nr] = -1.0;
        spec.bounds[nl] = (-5.0, 0.0);
        assert!(reciprocal_mask(&m, &[spec]).is_none());
    }

    #[test]
    fn the_adapter_gradient_and_hessian_are_the_chain_rule_of_the_models() {
        let (m, data) = dscb();
        let rec = reciprocal_mask(&m, &[FitSpec::from_model(&m)]).unwrap();
        let a = Reciprocal::new(&m, rec.clone());
        let p = m.n_pars();
        let u = a.init().to_vec();
        let mut s = a.scratch();
        let (mut g, mut h) = (vec![0.0; p], vec![0.0; p * p]);
        a.eval(&u, &data, &mut s, Some(&mut g), Some(&mut h));
        let mut hb = vec![0.0; a.layout().n_packed];
        let mut gb = vec![0.0; p];
        a.eval_block(&u, &data, &mut s, Some(&mut gb), Some(&mut hb), false);
        let mut full = vec![0.0; p * p];
        a.layout().expand(&hb, &mut full);
        assert_eq!(g, gb);
        assert_eq!(h, full);
        // d/du_i by central differences of the gradient, for the mapped parameters.
        for i in (0..p).filter(|&i| rec[i]) {
            let e = 1e-6 * u[i];
            let grad_at = |v: f64| {
                let mut w = u.clone();
                w[i] = v;
                let mut gg = vec![0.0; p];
                let f = a.eval(&w, &data, &mut a.scratch(), Some(&mut gg), None);
                (f, gg)
            };
            let (fp, gp) = grad_at(u[i] + e);
            let (fm, gm) = grad_at(u[i] - e);
            let tol = |x: f64| 1e-5 * x.abs().max(1.0);
            assert!(((fp - fm) / (2.0 * e) - g[i]).abs() < tol(g[i]), "g[{i}]");
            for j in 0..p {
                let fd = (gp[j] - gm[j]) / (2.0 * e);
                // Without the term g_x d2x/du2 on the diagonal (see `Reciprocal`).
                let exact = h[j * p + i]
                    + if i == j {
                        let x = 1.0 / u[i];
                        2.0 * x * x * x * g[i] / (-x * x)
                    } else {
                        0.0
                    };
                assert!(
                    (fd - exact).abs() < 1e-4 * exact.abs().max(1.0),
                    "h[{j},{i}]: {fd} vs {exact}"
                );
            }
        }
    }
}
