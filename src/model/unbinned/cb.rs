//! Crystal Ball per-event log-density with derivatives in the native parameter
//! order (one-sided: m0, sigma, alpha, n; double-sided: m0, sigma_L, sigma_R,
//! alpha_L, n_L, alpha_R, n_R).
//!
//! On a side with scale sigma, t = (x - m0)/sigma. The core is -t^2/2; a tail is
//! F(t', a, n) = n ln(n/a) - a^2/2 - n ln(n/a - a - t') with t' = t (left tail)
//! or -t (right tail; for the one-sided shape with alpha < 0, a = -alpha).

use super::atoms::tri;
use super::shapes::{CbPars, Shape};

/// Crystal Ball evaluation at fixed parameters.
pub(crate) struct CbEval {
    c: CbPars<f64>,
    /// Native indices of (sigma, alpha, n) on the left and right sides.
    il: [usize; 3],
    ir: [usize; 3],
    /// d alpha_eff / d alpha of the one-sided shape's tail.
    sa: f64,
}

/// Derivatives of one event in (t, alpha, n) and the chain factors of t.
struct Ev {
    idx: [usize; 3],
    tail: bool,
    t: f64,
    is: f64,
    // first derivatives in (t, alpha, n) (signs applied)
    d_t: f64,
    d_a: f64,
    d_n: f64,
    lnf: f64,
}

impl CbEval {
    pub fn new(shape: &Shape, p: &[f64]) -> Self {
        let c = CbPars::new(shape, p);
        match shape {
            Shape::CrystalBall => CbEval {
                c,
                il: [1, 2, 3],
                ir: [1, 2, 3],
                sa: if p[2] < 0.0 { -1.0 } else { 1.0 },
            },
            _ => CbEval {
                c,
                il: [1, 3, 4],
                ir: [2, 5, 6],
                sa: 1.0,
            },
        }
    }

    #[inline]
    fn side(&self, x: f64) -> (f64, f64, f64, bool, [usize; 3], f64) {
        let c = &self.c;
        if x <= c.m0 {
            (c.sl, c.al, c.nl, c.left, self.il, 1.0)
        } else {
            (c.sr, c.ar, c.nr, c.right, self.ir, -1.0)
        }
    }

    #[inline]
    fn first(&self, x: f64, grad: bool) -> Ev {
        let (s, a, n, has_tail, idx, st) = self.side(x);
        let t = (x - self.c.m0) / s;
        let is = 1.0 / s;
        let tp = st * t;
        if !(has_tail && tp < -a) {
            return Ev {
                idx,
                tail: false,
                t,
                is,
                d_t: -t,
                d_a: 0.0,
                d_n: 0.0,
                lnf: -0.5 * t * t,
            };
        }
        let u = n / a - a - tp;
        let lu = u.ln();
        let lnf = n * (n / a).ln() - 0.5 * a * a - n * lu;
        if !grad {
            return Ev {
                idx,
                tail: true,
                t,
                is,
                d_t: 0.0,
                d_a: 0.0,
                d_n: 0.0,
                lnf,
            };
        }
        let (iu, ia) = (1.0 / u, 1.0 / a);
        let q = n * ia * ia + 1.0;
        let f_t = n * iu;
        let f_a = -n * ia - a + n * q * iu;
        let f_n = (n * ia).ln() + 1.0 - lu - n * ia * iu;
        Ev {
            idx,
            tail: true,
            t,
            is,
            d_t: st * f_t,
            d_a: self.sa * f_a,
            d_n: f_n,
            lnf,
        }
    }

    /// ln f at x; the gradient into `g` (native order) when `grad`.
    #[inline]
    pub fn event(&self, x: f64, grad: bool, g: &mut [f64; 7]) -> f64 {
        let e = self.first(x, grad);
        if grad {
            g.iter_mut().for_each(|v| *v = 0.0);
            let (t_m, t_s) = (-e.is, -e.t * e.is);
            let [isg, ia, inn] = e.idx;
            g[0] = e.d_t * t_m;
            g[isg] = e.d_t * t_s;
            if e.tail {
                g[ia] = e.d_a;
                g[inn] = e.d_n;
            }
        }
        e.lnf
    }

    /// `acc[tri(k, j)] += c d2 ln f / dp_k dp_j` at x (native order).
    #[inline]
    pub fn hess_acc(&self, x: f64, c: f64, acc: &mut [f64; 28]) {
        let e = self.first(x, true);
        let [isg, ia, inn] = e.idx;
        let (is, t) = (e.is, e.t);
        let (t_m, t_s) = (-is, -t * is);
        let (t_ms, t_ss) = (is * is, 2.0 * t * is * is);
        if !e.tail {
            // F = -t^2/2: F_t = -t, F_tt = -1
            acc[tri(0, 0)] -= c * t_m * t_m;
            acc[tri(isg, 0)] -= c * (t_m * t_s + t * t_ms);
            acc[tri(isg, isg)] -= c * (t_s * t_s + t * t_ss);
            return;
        }
        let (s, a, n, _, _, st) = self.side(x);
        let _ = s;
        let tp = st * t;
        let u = n / a - a - tp;
        let (iu, ia_) = (1.0 / u, 1.0 / a);
        let q = n * ia_ * ia_ + 1.0;
        let f_tt = n * iu * iu;
        let f_ta = n * q * iu * iu;
        let f_tn = iu - n * ia_ * iu * iu;
        let f_aa = n * ia_ * ia_ - 1.0 - 2.0 * n * n * ia_ * ia_ * ia_ * iu + n * q * q * iu * iu;
        let f_an = -ia_ + (2.0 * n * ia_ * ia_ + 1.0) * iu - n * q * ia_ * iu * iu;
        let f_nn = 1.0 / n - 2.0 * ia_ * iu + n * ia_ * ia_ * iu * iu;
        let sa = self.sa;
        let d_ta = st * sa * f_ta;
        let d_tn = st * f_tn;
        let d_t = e.d_t;
        acc[tri(0, 0)] += c * f_tt * t_m * t_m;
        acc[tri(isg, 0)] += c * (f_tt * t_m * t_s + d_t * t_ms);
        acc[tri(isg, isg)] += c * (f_tt * t_s * t_s + d_t * t_ss);
        acc[tri(ia, 0)] += c * d_ta * t_m;
        acc[tri(ia, isg)] += c * d_ta * t_s;
        acc[tri(inn, 0)] += c * d_tn * t_m;
        acc[tri(inn, isg)] += c * d_tn * t_s;
        acc[tri(ia, ia)] += c * f_aa;
        acc[tri(inn, ia)] += c * sa * f_an;
        acc[tri(inn, inn)] += c * f_nn;
    }
}
