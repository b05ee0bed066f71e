//! The fused CPU kernel: twice_nll, its gradient and its exact Hessian.
//!
//! With `nu_b = sum_s F_sb(theta) * A_sb(theta)` (F: product of factors,
//! A: nominal plus additive deltas), the main term and its derivatives are
//!
//! ```text
//! f    = 2 sum_b (nu_b - n_b ln nu_b) + constraints + const
//! df   = 2 sum_b (1 - n_b/nu_b) dnu_b
//! d2f  = 2 sum_b [ n_b/nu_b^2 dnu_b dnu_b^T + (1 - n_b/nu_b) d2nu_b ]
//! ```
//!
//! `d2nu` is assembled per sample-bin from pairs of terms, using prefix and
//! suffix products so that a factor equal to zero (a normfactor at 0) never
//! causes a division. The outer-product part runs over the compact list of
//! parameters that touch each bin. A sample-bin whose yield is identically
//! zero (nominal 0, no additive terms: [`super::SampleBin::is_dead`]) has no
//! derivatives: it is skipped there and adds no parameters to its bin's row,
//! so a normsys of a sample that is empty in most bins meets only the others.

use super::{Constraint, Dataset, HistFactoryModel};
use crate::model::layout::HessianLayout;
use rayon::prelude::*;

/// Sparsity structure derived from the model.
#[derive(Debug, Clone, Default)]
pub struct Structure {
    /// Block layout of the Hessian (globals first, then per-bin locals).
    pub layout: HessianLayout,
    /// CSR pointers into `bin_pars`, one row per main bin.
    pub bin_ptr: Vec<u32>,
    /// Parameters (permuted indices, descending) that affect each bin
    /// through its live sample-bins (dead ones, [`super::SampleBin::is_dead`], add none).
    pub bin_pars: Vec<u32>,
    /// Position of each multiplicative term's parameter in its bin row (0, unused, in a dead sample-bin).
    pub mult_pos: Vec<u32>,
    /// Position of each additive term's parameter in its bin row.
    pub add_pos: Vec<u32>,
    /// Largest number of terms in one sample-bin.
    pub max_terms: usize,
    /// Constrained parameters: (parameter, aux index, constraint).
    pub constrained: Vec<(u32, u32, Constraint)>,
    /// CSR pointers into `sb_pars`, one row per sample-bin (empty for a dead one).
    pub sb_ptr: Vec<u32>,
    /// Permuted parameter index of each sample-bin's terms: multiplicative first, then additive.
    pub sb_pars: Vec<u32>,
}

impl Structure {
    pub(super) fn new(m: &HistFactoryModel) -> Self {
        let nb = m.n_main;
        let np = m.n_pars();
        // bins touched by each parameter -> local or global (`super::blocks`). A dead
        // sample-bin (`SampleBin::is_dead`: yield identically zero) touches
        // nothing; a parameter met only in dead sample-bins has no main-term
        // derivatives and is keyed to the first bin it appears in (a local
        // with only its constraint), so it does not grow the global block.
        let mut first_bin = vec![usize::MAX; np];
        let mut dead_bin = vec![usize::MAX; np];
        let mut multi = vec![false; np];
        let mut touch = |par: usize, bin: usize| {
            if first_bin[par] == usize::MAX {
                first_bin[par] = bin;
            } else if first_bin[par] != bin {
                multi[par] = true;
            }
        };
        for s in &m.sb {
            if s.is_dead() {
                for t in &m.mult[s.mult.0 as usize..s.mult.1 as usize] {
                    let d = &mut dead_bin[t.par as usize];
                    if *d == usize::MAX {
                        *d = s.bin as usize;
                    }
                }
                continue;
            }
            for t in &m.mult[s.mult.0 as usize..s.mult.1 as usize] {
                touch(t.par as usize, s.bin as usize);
            }
            for t in &m.add[s.add.0 as usize..s.add.1 as usize] {
                touch(t.par as usize, s.bin as usize);
            }
        }
        let keys = super::blocks::block_keys(m, &first_bin, &multi, &dead_bin);
        let layout = HessianLayout::from_keys(&keys);
        let nw = |par: u32| layout.inv[par as usize] as u32;

        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); nb];
        for s in m.sb.iter().filter(|s| !s.is_dead()) {
            let row = &mut rows[s.bin as usize];
            for t in &m.mult[s.mult.0 as usize..s.mult.1 as usize] {
                row.push(nw(t.par));
            }
            for t in &m.add[s.add.0 as usize..s.add.1 as usize] {
                row.push(nw(t.par));
            }
        }
        let mut bin_ptr = Vec::with_capacity(nb + 1);
        let mut bin_pars = Vec::new();
        bin_ptr.push(0u32);
        for r in rows.iter_mut() {
            r.sort_unstable_by(|a, b| b.cmp(a));
            r.dedup();
            bin_pars.extend_from_slice(r);
            bin_ptr.push(bin_pars.len() as u32);
        }
        let pos = |bin: u32, par: u32| -> u32 {
            let b = bin as usize;
            let row = &bin_pars[bin_ptr[b] as usize..bin_ptr[b + 1] as usize];
            row.iter().position(|&x| x == nw(par)).expect("par in row") as u32
        };
        let mut mult_pos = vec![0u32; m.mult.len()];
        let mut add_pos = vec![0u32; m.add.len()];
        let mut sb_ptr = vec![0u32];
        let mut sb_pars = Vec::new();
        let mut max_terms = 0;
        for s in &m.sb {
            // a dead sample-bin keeps an empty `sb_pars` row and position 0
            // for its terms: the kernels skip it and read neither
            if s.is_dead() {
                sb_ptr.push(sb_pars.len() as u32);
                continue;
            }
            for k in s.mult.0..s.mult.1 {
                mult_pos[k as usize] = pos(s.bin, m.mult[k as usize].par);
                sb_pars.push(nw(m.mult[k as usize].par));
            }
            for k in s.add.0..s.add.1 {
                add_pos[k as usize] = pos(s.bin, m.add[k as usize].par);
                sb_pars.push(nw(m.add[k as usize].par));
            }
            max_terms = max_terms.max(sb_pars.len() - *sb_ptr.last().unwrap() as usize);
            sb_ptr.push(sb_pars.len() as u32);
        }
        let constrained = m
            .constraints
            .iter()
            .enumerate()
            .filter_map(|(i, c)| m.aux_index[i].map(|a| (i as u32, a as u32, *c)))
            .collect();
        Structure {
            layout,
            bin_ptr,
            bin_pars,
            mult_pos,
            add_pos,
            max_terms,
            constrained,
            sb_ptr,
            sb_pars,
        }
    }
}

/// Reusable buffers for one evaluation (one per thread).
#[derive(Debug, Clone, Default)]
pub struct Scratch {
    mval: Vec<f64>,
    md1: Vec<f64>,
    /// `md1 / mval` per multiplicative term (computed in one vectorised pass).
    mrat: Vec<f64>,
    md2: Vec<f64>,
    aval: Vec<f64>,
    ad1: Vec<f64>,
    ad2: Vec<f64>,
    sbf: Vec<f64>,
    sba: Vec<f64>,
    nu: Vec<f64>,
    w1: Vec<f64>,
    w2: Vec<f64>,
    jac: Vec<f64>,
    pre: Vec<f64>,
    suf: Vec<f64>,
    tv: Vec<f64>,
    hb: Vec<f64>,
}

impl Scratch {
    /// Buffers sized for `m`.
    pub fn new(m: &HistFactoryModel) -> Self {
        let mut s = Scratch::default();
        s.ensure(m);
        s
    }

    fn ensure(&mut self, m: &HistFactoryModel) {
        let nm = m.mult.len();
        let na = m.add.len();
        if self.mval.len() != nm {
            self.mval.resize(nm, 0.0);
            self.md1.resize(nm, 0.0);
            self.mrat.resize(nm, 0.0);
            self.md2.resize(nm, 0.0);
        }
        if self.aval.len() != na {
            self.aval.resize(na, 0.0);
            self.ad1.resize(na, 0.0);
            self.ad2.resize(na, 0.0);
        }
        if self.sbf.len() != m.sb.len() {
            self.sbf.resize(m.sb.len(), 0.0);
            self.sba.resize(m.sb.len(), 0.0);
        }
        if self.nu.len() != m.n_main {
            self.nu.resize(m.n_main, 0.0);
            self.w1.resize(m.n_main, 0.0);
            self.w2.resize(m.n_main, 0.0);
        }
        if self.jac.len() != m.structure.bin_pars.len() {
            self.jac.resize(m.structure.bin_pars.len(), 0.0);
        }
        let mm = m.structure.max_terms + 1;
        if self.pre.len() < mm {
            self.pre.resize(mm, 0.0);
            self.suf.resize(mm, 0.0);
            self.tv.resize(mm, 0.0);
        }
    }
}

/// Expected rate below which a bin with data (`n > 0`) uses the extension of
/// its Poisson term (events).
pub const RATE_FLOOR: f64 = 1e-6;

/// Width (events) of the quadratic penalty on a negative expected rate in a
/// bin without data (`n = 0`).
pub const EMPTY_BIN_WIDTH: f64 = 1e-3;

/// One main bin's term of twice_nll (without the data constant) and its first
/// and second derivatives with respect to the expected rate `nu`:
/// `(t, dt/dnu, d2t/dnu2)`.
///
/// Inside the Poisson domain this is `2 (nu - n ln nu)` (`2 nu` for `n = 0`).
/// Outside it, unless `strict`, the term is extended so that fits can cross or
/// sit on the edge of the domain with a consistent gradient and Hessian:
///
/// - `n > 0` and `nu < RATE_FLOOR`: the second-order Taylor expansion of the
///   Poisson term at `RATE_FLOOR` (continuous with two derivatives, convex,
///   decreasing towards the floor, so fits are pushed back into the domain);
/// - `n = 0` and `nu < 0`: `2 nu + (nu / EMPTY_BIN_WIDTH)^2` (continuous with
///   one derivative at 0; bounded below where pyhf's `2 nu` is not).
///
/// With `strict` (or `nu` not finite) the term is `+inf` outside the domain.
#[inline]
pub fn bin_term(n: f64, nu: f64, strict: bool) -> (f64, f64, f64) {
    if n > 0.0 {
        if nu >= RATE_FLOOR || (strict && nu > 0.0) {
            return (
                2.0 * (nu - n * nu.ln()),
                2.0 * (1.0 - n / nu),
                2.0 * n / (nu * nu),
            );
        }
        if strict || !nu.is_finite() {
            return (f64::INFINITY, 0.0, 0.0);
        }
        let e = RATE_FLOOR;
        let d = nu - e;
        let c = n / (e * e);
        let g = 2.0 * (1.0 - n / e);
        (
            2.0 * (e - n * e.ln()) + g * d + c * d * d,
            g + 2.0 * c * d,
            2.0 * c,
        )
    } else {
        if nu >= 0.0 {
            return (2.0 * nu, 2.0, 0.0);
        }
        if strict || !nu.is_finite() {
            return (f64::INFINITY, 0.0, 0.0);
        }
        let k = 1.0 / (EMPTY_BIN_WIDTH * EMPTY_BIN_WIDTH);
        (2.0 * nu + k * nu * nu, 2.0 + 2.0 * k * nu, 2.0 * k)
    }
}

/// The expected-information weight of one main bin for scoring steps: `2 / nu`
/// inside the domain, the extension's exact curvature `w2` outside it.
#[inline]
pub fn fisher_weight(n: f64, nu: f64, w2: f64) -> f64 {
    if (n > 0.0 && nu >= RATE_FLOOR) || (n <= 0.0 && nu >= 0.0) {
        if nu > 0.0 { 2.0 / nu } else { 0.0 }
    } else {
        w2
    }
}
impl HistFactoryModel {
    /// Expected rate of every sample-bin at `theta`.
    pub fn expected_sample_bins(&self, theta: &[f64]) -> Vec<f64> {
        self.sb
            .iter()
            .map(|s| {
                let mut f = 1.0;
                for t in &self.mult[s.mult.0 as usize..s.mult.1 as usize] {
                    let x = theta[t.par as usize];
                    f *= if t.interp == u32::MAX {
                        x
                    } else {
                        self.interps[t.interp as usize].value(x)
                    };
                }
                let mut a = s.nom;
                for t in &self.add[s.add.0 as usize..s.add.1 as usize] {
                    a += self.interps[t.interp as usize].value(theta[t.par as usize]);
                }
                f * a
            })
            .collect()
    }

    /// Expected main-bin rates at `theta` (pyhf `expected_actualdata`).
    pub fn expected_main(&self, theta: &[f64]) -> Vec<f64> {
        let mut nu = vec![0.0; self.n_main];
        for (s, v) in self.sb.iter().zip(self.expected_sample_bins(theta)) {
            nu[s.bin as usize] += v;
        }
        nu
    }

    /// Explain why twice_nll is not finite at `theta` (first offending bin or constraint).
    pub fn domain_issue(&self, theta: &[f64], data: &Dataset) -> Option<String> {
        let nu = self.expected_main(theta);
        for (b, (&n, &v)) in data.main.iter().zip(nu.iter()).enumerate() {
            if (n > 0.0 && !(v > 0.0)) || !(v >= 0.0) {
                return Some(format!(
                    "expected rate {v} in {} (observed {n}): the Poisson likelihood is undefined there",
                    self.bin_label(b)
                ));
            }
        }
        for &(i, a, c) in &self.structure.constrained {
            if let Constraint::Poisson { .. } = c
                && data.aux[a as usize] > 0.0
                && !(theta[i as usize] > 0.0)
            {
                return Some(format!(
                    "parameter {} = {} must be positive for its Poisson constraint",
                    self.par_names[i as usize], theta[i as usize]
                ));
            }
        }
        None
    }

    /// Whether the rates of the last evaluation with `s` put a bin with data
    /// below [`RATE_FLOOR`], where the extension of its Poisson term applies
    /// (never for strict models, which are infinite there).
    pub fn outside_domain(&self, s: &Scratch, data: &Dataset) -> bool {
        !self.strict_domain
            && data
                .main
                .iter()
                .zip(&s.nu)
                .any(|(&n, &nu)| n > 0.0 && !(nu >= RATE_FLOOR))
    }

    /// twice_nll at `theta` on `data`.
    pub fn twice_nll(&self, theta: &[f64], data: &Dataset) -> f64 {
        let mut s = Scratch::new(self);
        self.eval(theta, data, &mut s, None, None)
    }

    /// twice_nll and its gradient.
    pub fn twice_nll_grad(&self, theta: &[f64], data: &Dataset) -> (f64, Vec<f64>) {
        let mut s = Scratch::new(self);
        let mut g = vec![0.0; self.n_pars()];
        let f = self.eval(theta, data, &mut s, Some(&mut g), None);
        (f, g)
    }

    /// twice_nll, gradient and exact Hessian (row-major P x P).
    pub fn twice_nll_hessian(&self, theta: &[f64], data: &Dataset) -> (f64, Vec<f64>, Vec<f64>) {
        let p = self.n_pars();
        let mut s = Scratch::new(self);
        let mut g = vec![0.0; p];
        let mut h = vec![0.0; p * p];
        let f = self.eval(theta, data, &mut s, Some(&mut g), Some(&mut h));
        (f, g, h)
    }

    /// Evaluate twice_nll, optionally writing the gradient (length P) and the
    /// Hessian (row-major P x P, original order). Returns `+inf` where an
    /// expected rate is not positive in a bin with data (or negative anywhere);
    /// gradient and Hessian are then meaningless.
    pub fn eval(
        &self,
        theta: &[f64],
        data: &Dataset,
        s: &mut Scratch,
        grad: Option<&mut [f64]>,
        hess: Option<&mut [f64]>,
    ) -> f64 {
        match hess {
            None => self.eval_impl(theta, data, s, grad, None, false),
            Some(h) => {
                let mut hb = std::mem::take(&mut s.hb);
                hb.resize(self.structure.layout.n_packed, 0.0);
                let f = self.eval_impl(theta, data, s, grad, Some(&mut hb), false);
                self.structure.layout.expand(&hb, h);
                s.hb = hb;
                f
            }
        }
    }

    /// Evaluate with the Hessian in packed block form (see [`HessianLayout`]:
    /// lower triangle, permuted order, structural entries only,
    /// `layout.n_packed` of them). With `fisher`, the
    /// Hessian is replaced by the expected (Fisher) information
    /// `2 sum_b J_b J_b^T / nu_b` plus the constraints' expected curvature:
    /// positive semi-definite everywhere and cheaper, for scoring steps.
    pub fn eval_block(
        &self,
        theta: &[f64],
        data: &Dataset,
        s: &mut Scratch,
        grad: Option<&mut [f64]>,
        hb: Option<&mut [f64]>,
        fisher: bool,
    ) -> f64 {
        self.eval_impl(theta, data, s, grad, hb, fisher)
    }

    fn eval_impl(
        &self,
        theta: &[f64],
        data: &Dataset,
        s: &mut Scratch,
        grad: Option<&mut [f64]>,
        hess: Option<&mut [f64]>,
        fisher: bool,
    ) -> f64 {
        s.ensure(self);
        let p = self.n_pars();
        let need_h = hess.is_some();
        let need_d = grad.is_some() || need_h;
        let st = &self.structure;

        // 1. term values (and derivatives)
        if need_d {
            for (k, t) in self.mult.iter().enumerate() {
                let x = theta[t.par as usize];
                if t.interp == u32::MAX {
                    s.mval[k] = x;
                    s.md1[k] = 1.0;
                    s.md2[k] = 0.0;
                } else {
                    let (v, d1, d2) = self.interps[t.interp as usize].eval(x);
                    s.mval[k] = v;
                    s.md1[k] = d1;
                    s.md2[k] = d2;
                }
            }
            for (k, t) in self.add.iter().enumerate() {
                let (v, d1, d2) = self.interps[t.interp as usize].eval(theta[t.par as usize]);
                s.aval[k] = v;
                s.ad1[k] = d1;
                s.ad2[k] = d2;
            }
            for ((r, d1), v) in s.mrat.iter_mut().zip(&s.md1).zip(&s.mval) {
                *r = d1 / v;
            }
        } else {
            for (k, t) in self.mult.iter().enumerate() {
                let x = theta[t.par as usize];
                s.mval[k] = if t.interp == u32::MAX {
                    x
                } else {
                    self.interps[t.interp as usize].value(x)
                };
            }
            for (k, t) in self.add.iter().enumerate() {
                s.aval[k] = self.interps[t.interp as usize].value(theta[t.par as usize]);
            }
        }

        // 2. rates
        s.nu.iter_mut().for_each(|x| *x = 0.0);
        for (j, sb) in self.sb.iter().enumerate() {
            let mut f = 1.0;
            for k in sb.mult.0..sb.mult.1 {
                f *= s.mval[k as usize];
            }
            let mut a = sb.nom;
            for k in sb.add.0..sb.add.1 {
                a += s.aval[k as usize];
            }
            s.sbf[j] = f;
            s.sba[j] = a;
            s.nu[sb.bin as usize] += f * a;
        }

        // 3. main term and per-bin weights (outside the Poisson domain: the
        // extension of [`bin_term`], unless the model is strict)
        let mut val = data.constant;
        let mut bad = false;
        for b in 0..self.n_main {
            let (t, w1, w2) = bin_term(data.main[b], s.nu[b], self.strict_domain);
            if !t.is_finite() {
                bad = true;
                break;
            }
            val += t;
            s.w1[b] = w1;
            s.w2[b] = w2;
        }
        // 4. constraints (value)
        for &(i, a, c) in &st.constrained {
            let x = theta[i as usize];
            let aux = data.aux[a as usize];
            match c {
                Constraint::Normal { sigma } => {
                    let r = (x - aux) / sigma;
                    val += r * r;
                }
                Constraint::Poisson { tau } => {
                    let lam = x * tau;
                    if aux > 0.0 {
                        if !(lam > 0.0) {
                            bad = true;
                        } else {
                            val += 2.0 * (lam - aux * lam.ln());
                        }
                    } else {
                        val += 2.0 * lam;
                    }
                }
                Constraint::None => {}
            }
        }
        if bad || !val.is_finite() {
            return f64::INFINITY;
        }
        if !need_d {
            return val;
        }
        if fisher {
            for b in 0..self.n_main {
                s.w2[b] = fisher_weight(data.main[b], s.nu[b], s.w2[b]);
            }
        }
        let pairs = need_h && !fisher;

        // 5. gradient (and Hessian pieces).
        //
        // The Hessian buffer first accumulates each unordered pair of terms once
        // (at [p_i][p_j], whichever order) and half of every self term on the
        // diagonal; the final fold H = A + A^T makes it symmetric. Per sample-bin
        // with all factors non-zero, d2nu is assembled from x_i = F f'_i / f_i:
        // mult-mult pairs w1 A x_i u_j, mult-add pairs w1 x_i a'_q; otherwise
        // (a factor at zero, e.g. mu = 0) prefix/suffix products are used.
        let mut gbuf;
        let grad: &mut [f64] = match grad {
            Some(g) => g,
            None => {
                gbuf = vec![0.0; p];
                &mut gbuf
            }
        };
        grad.iter_mut().for_each(|x| *x = 0.0);
        let mut hess = hess;
        let lay = &st.layout;
        if let Some(h) = hess.as_deref_mut() {
            lay.zero(h);
            s.jac.iter_mut().for_each(|x| *x = 0.0);
        }
        for (j, sb) in self.sb.iter().enumerate() {
            // identically zero: no derivative (its rate, f * 0, was summed above)
            if sb.is_dead() {
                continue;
            }
            let b = sb.bin as usize;
            let w1 = s.w1[b];
            let f = s.sbf[j];
            let a = s.sba[j];
            let (m0, m1) = (sb.mult.0 as usize, sb.mult.1 as usize);
            let (a0, a1) = (sb.add.0 as usize, sb.add.1 as usize);
            let m = m1 - m0;
            let row = st.bin_ptr[b] as usize;
            if f != 0.0 {
                // x_i = F f'_i / f_i ; tv holds A u_j (mult) then a'_q (add)
                let nt = m + (a1 - a0);
                for k in 0..m {
                    let u = s.mrat[m0 + k];
                    let x = f * u;
                    s.pre[k] = x;
                    s.tv[k] = a * u;
                    let d = x * a;
                    grad[self.mult[m0 + k].par as usize] += w1 * d;
                    if need_h {
                        s.jac[row + st.mult_pos[m0 + k] as usize] += d;
                    }
                }
                for (k, q) in (a0..a1).enumerate() {
                    s.tv[m + k] = s.ad1[q];
                    let d = f * s.ad1[q];
                    grad[self.add[q].par as usize] += w1 * d;
                    if need_h {
                        s.jac[row + st.add_pos[q] as usize] += d;
                    }
                }
                if let Some(h) = hess.as_deref_mut().filter(|_| pairs) {
                    if w1 == 0.0 {
                        continue;
                    }
                    let tp = &st.sb_pars[st.sb_ptr[j] as usize..st.sb_ptr[j + 1] as usize];
                    for k in 0..m {
                        let pk = tp[k] as usize;
                        let d2 = s.md2[m0 + k];
                        if d2 != 0.0 {
                            h[lay.pos(pk, pk)] += 0.5 * w1 * a * f * d2 / s.mval[m0 + k];
                        }
                        let ck = w1 * s.pre[k];
                        if ck != 0.0 {
                            for t in k + 1..nt {
                                let q = tp[t] as usize;
                                let (r, c) = if pk >= q { (pk, q) } else { (q, pk) };
                                h[lay.pos(r, c)] += ck * s.tv[t];
                            }
                        }
                    }
                    for (k, q) in (a0..a1).enumerate() {
                        let d2 = s.ad2[q];
                        if d2 != 0.0 {
                            let pq = tp[m + k] as usize;
                            h[lay.pos(pq, pq)] += 0.5 * w1 * f * d2;
                        }
                    }
                }
                continue;
            }
            // Some factor is zero: prefix / suffix products, no division.
            s.pre[0] = 1.0;
            for k in 0..m {
                s.pre[k + 1] = s.pre[k] * s.mval[m0 + k];
            }
            s.suf[m] = 1.0;
            for k in (0..m).rev() {
                s.suf[k] = s.suf[k + 1] * s.mval[m0 + k];
            }
            for k in 0..m {
                let d = s.pre[k] * s.suf[k + 1] * s.md1[m0 + k] * a;
                grad[self.mult[m0 + k].par as usize] += w1 * d;
                if need_h {
                    s.jac[row + st.mult_pos[m0 + k] as usize] += d;
                }
            }
            for k in a0..a1 {
                let d = f * s.ad1[k];
                grad[self.add[k].par as usize] += w1 * d;
                if need_h {
                    s.jac[row + st.add_pos[k] as usize] += d;
                }
            }
            if let Some(h) = hess.as_deref_mut().filter(|_| pairs) {
                if w1 == 0.0 {
                    continue;
                }
                let tp = &st.sb_pars[st.sb_ptr[j] as usize..st.sb_ptr[j + 1] as usize];
                let mut put = |x: usize, y: usize, v: f64| {
                    let (r, c) = if x >= y { (x, y) } else { (y, x) };
                    h[lay.pos(r, c)] += v;
                };
                for k in 0..m {
                    let pk = tp[k] as usize;
                    let fk = s.pre[k] * s.suf[k + 1];
                    let d2 = s.md2[m0 + k];
                    if d2 != 0.0 {
                        put(pk, pk, 0.5 * w1 * fk * d2 * a);
                    }
                    let d1k = s.md1[m0 + k];
                    if d1k != 0.0 {
                        let c = w1 * d1k;
                        let mut mid = s.pre[k];
                        for l in k + 1..m {
                            let v = c * mid * s.suf[l + 1] * s.md1[m0 + l] * a;
                            put(pk, tp[l] as usize, v);
                            mid *= s.mval[m0 + l];
                        }
                        let ck = c * fk;
                        for (qq, q) in (a0..a1).enumerate() {
                            put(pk, tp[m + qq] as usize, ck * s.ad1[q]);
                        }
                    }
                }
                for (qq, q) in (a0..a1).enumerate() {
                    let d2 = s.ad2[q];
                    if d2 != 0.0 {
                        let pq = tp[m + qq] as usize;
                        put(pq, pq, 0.5 * w1 * f * d2);
                    }
                }
            }
        }
        // outer products: sum_b w2_b J_b J_b^T (bin rows are in descending permuted
        // order, so pairs land in the lower triangle; halves on the diagonal)
        if let Some(h) = hess.as_deref_mut() {
            for b in 0..self.n_main {
                let w2 = s.w2[b];
                if w2 == 0.0 {
                    continue;
                }
                let (r0, r1) = (st.bin_ptr[b] as usize, st.bin_ptr[b + 1] as usize);
                let pars = &st.bin_pars[r0..r1];
                let jac = &s.jac[r0..r1];
                let g = lay.n_global;
                for i in 0..pars.len() {
                    let wi = w2 * jac[i];
                    if wi == 0.0 {
                        continue;
                    }
                    let pi = pars[i] as usize;
                    // packed row pi: globals at off + c, its block at off + g + c - bs
                    let (off, bs) = (lay.row_off[pi], lay.row_bs[pi]);
                    h[off + if pi < g { pi } else { g + pi - bs }] += 0.5 * wi * jac[i];
                    for jj in i + 1..pars.len() {
                        let c = pars[jj] as usize;
                        h[off + if c < g { c } else { g + c - bs }] += wi * jac[jj];
                    }
                }
            }
            // every self term was added as a half, every pair once: double the diagonal
            lay.scale_diagonal(h, 2.0);
        }
        // constraints (derivatives)
        for &(i, a, c) in &st.constrained {
            let i = i as usize;
            let x = theta[i];
            let aux = data.aux[a as usize];
            match c {
                Constraint::Normal { sigma } => {
                    let is2 = 1.0 / (sigma * sigma);
                    grad[i] += 2.0 * (x - aux) * is2;
                    if let Some(h) = hess.as_deref_mut() {
                        let k = lay.inv[i];
                        h[lay.pos(k, k)] += 2.0 * is2;
                    }
                }
                Constraint::Poisson { tau } => {
                    grad[i] += 2.0 * (tau - aux / x);
                    if let Some(h) = hess.as_deref_mut() {
                        let k = lay.inv[i];
                        h[lay.pos(k, k)] += if fisher {
                            2.0 * tau / x
                        } else {
                            2.0 * aux / (x * x)
                        };
                    }
                }
                Constraint::None => {}
            }
        }
        val
    }

    /// Batched evaluation over T parameter vectors (row-major `thetas`, T x P)
    /// and one dataset per member (or one shared dataset). Writes `f` (T),
    /// optionally `grad` (T x P) and `hess` (T x P x P). Members run in parallel.
    pub fn eval_batch(
        &self,
        thetas: &[f64],
        data: &[&Dataset],
        f: &mut [f64],
        grad: Option<&mut [f64]>,
        hess: Option<&mut [f64]>,
    ) {
        let p = self.n_pars();
        let t = f.len();
        assert_eq!(thetas.len(), t * p, "thetas must be T x P");
        assert!(
            data.len() == 1 || data.len() == t,
            "one dataset or one per member"
        );
        let dat = |i: usize| if data.len() == 1 { data[0] } else { data[i] };
        match (grad, hess) {
            (None, None) => {
                f.par_iter_mut().enumerate().for_each_init(
                    || Scratch::new(self),
                    |s, (i, fi)| {
                        *fi = self.eval(&thetas[i * p..(i + 1) * p], dat(i), s, None, None)
                    },
                );
            }
            (Some(g), None) => {
                f.par_iter_mut()
                    .zip(g.par_chunks_mut(p))
                    .enumerate()
                    .for_each_init(
                        || Scratch::new(self),
                        |s, (i, (fi, gi))| {
                            *fi = self.eval(&thetas[i * p..(i + 1) * p], dat(i), s, Some(gi), None)
                        },
                    );
            }
            (g, Some(h)) => {
                let mut gtmp;
                let g = match g {
                    Some(g) => g,
                    None => {
                        gtmp = vec![0.0; t * p];
                        &mut gtmp[..]
                    }
                };
                f.par_iter_mut()
                    .zip(g.par_chunks_mut(p))
                    .zip(h.par_chunks_mut(p * p))
                    .enumerate()
                    .for_each_init(
                        || Scratch::new(self),
                        |s, (i, ((fi, gi), hi))| {
                            *fi = self.eval(
                                &thetas[i * p..(i + 1) * p],
                                dat(i),
                                s,
                                Some(gi),
                                Some(hi),
                            )
                        },
                    );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences of `bin_term` against its derivatives.
    fn check(n: f64, nu: f64) {
        let (t, w1, w2) = bin_term(n, nu, false);
        assert!(
            t.is_finite() && w1.is_finite() && w2.is_finite(),
            "n {n} nu {nu}"
        );
        let h = 1e-4 * nu.abs().max(1e-9);
        let (tp, w1p, _) = bin_term(n, nu + h, false);
        let (tm, w1m, _) = bin_term(n, nu - h, false);
        let d1 = (tp - tm) / (2.0 * h);
        let d2 = (w1p - w1m) / (2.0 * h);
        assert!(
            (d1 - w1).abs() <= 1e-6 * w1.abs().max(1.0),
            "n {n} nu {nu}: dt {d1} vs {w1}"
        );
        assert!(
            (d2 - w2).abs() <= 1e-6 * w2.abs().max(1.0),
            "n {n} nu {nu}: d2t {d2} vs {w2}"
        );
    }

    #[test]
    fn extension_has_consistent_derivatives() {
        for n in [0.0, 1.0, 7.0, 250.0] {
            for nu in [-3.0, -0.2, -1e-4, -2e-6, 3e-7, 0.9e-6, 2e-6, 0.5, 40.0] {
                check(n, nu);
            }
        }
    }

    #[test]
    fn extension_joins_the_poisson_term_smoothly() {
        // value and two derivatives continuous at the floor (bins with data),
        // value and first derivative continuous at 0 (bins without)
        for n in [1.0, 12.0] {
            let a = bin_term(n, RATE_FLOOR * (1.0 - 1e-12), false);
            let b = bin_term(n, RATE_FLOOR, false);
            assert!((a.0 - b.0).abs() <= 1e-9 * b.0.abs());
            assert!((a.1 - b.1).abs() <= 1e-6 * b.1.abs());
            assert!((a.2 - b.2).abs() <= 1e-6 * b.2.abs());
        }
        let a = bin_term(0.0, -1e-300, false);
        let b = bin_term(0.0, 0.0, false);
        assert!((a.0 - b.0).abs() < 1e-200 && (a.1 - b.1).abs() < 1e-12);
        assert_eq!(b.2, 0.0);
        assert!(a.2 > 0.0);
    }

    #[test]
    fn extension_is_bounded_below_and_pushes_back_into_the_domain() {
        for n in [0.0, 1.0, 30.0] {
            let edge = bin_term(n, if n > 0.0 { RATE_FLOOR } else { 0.0 }, false);
            for nu in [-1e6, -10.0, -1e-3, -1e-7] {
                let (t, w1, w2) = bin_term(n, nu, false);
                assert!(w2 > 0.0, "convex outside the domain");
                if n > 0.0 {
                    assert!(
                        w1 < 0.0 && t > edge.0,
                        "n {n} nu {nu}: decreasing towards the floor"
                    );
                }
            }
            // the lowest value outside the domain is within EMPTY_BIN_WIDTH^2 of the edge
            let lowest = bin_term(n, -EMPTY_BIN_WIDTH * EMPTY_BIN_WIDTH, false).0;
            assert!(lowest >= edge.0 - 2.0 * EMPTY_BIN_WIDTH * EMPTY_BIN_WIDTH);
        }
    }

    #[test]
    fn inside_the_domain_nothing_changes_and_strict_keeps_the_wall() {
        for (n, nu) in [(0.0, 0.0), (0.0, 3.5), (4.0, 2.5), (1.0, 1e-6), (2.0, 1e4)] {
            let a = bin_term(n, nu, false);
            let b = bin_term(n, nu, true);
            let exact = if n > 0.0 {
                (
                    2.0 * (nu - n * f64::ln(nu)),
                    2.0 * (1.0 - n / nu),
                    2.0 * n / (nu * nu),
                )
            } else {
                (2.0 * nu, 2.0, 0.0)
            };
            assert_eq!(a, exact);
            assert_eq!(b, exact);
        }
        // strict: tiny positive rates keep the Poisson term, non-positive ones are infinite
        assert_eq!(
            bin_term(3.0, 1e-9, true).0,
            2.0 * (1e-9 - 3.0 * f64::ln(1e-9))
        );
        assert_eq!(bin_term(3.0, 0.0, true).0, f64::INFINITY);
        assert_eq!(bin_term(0.0, -1e-9, true).0, f64::INFINITY);
        assert_eq!(bin_term(3.0, f64::NAN, false).0, f64::INFINITY);
        assert_eq!(bin_term(0.0, f64::NAN, false).0, f64::INFINITY);
    }
}
