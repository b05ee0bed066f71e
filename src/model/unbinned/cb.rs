//! Crystal Ball per-event log-density with derivatives in the native parameter
//! order (one-sided: m0, sigma, alpha, n; double-sided: m0, sigma_L, sigma_R,
//! alpha_L, n_L, alpha_R, n_R).
//!
//! On a side with scale sigma, t = (x - m0)/sigma. The core is -t^2/2; a tail is
//! F(t', a, n) = n ln(n/a) - a^2/2 - n ln(n/a - a - t') with t' = t (left tail)
//! or -t (right tail; for the one-sided shape with alpha < 0, a = -alpha).

use super::atoms::tri;
use super::shapes::{CbPars, Shape};

/// Constants of one side at fixed parameters.
#[derive(Clone, Copy)]
struct Side {
    /// 1 / sigma.
    is: f64,
    a: f64,
    n: f64,
    tail: bool,
    /// t' = st t puts this side's tail on the left.
    st: f64,
    /// n/a - a (the tail's B).
    b: f64,
    /// ln A = n ln(n/a) - a^2/2.
    ln_a: f64,
    /// ln(n/a) + 1.
    ln_na1: f64,
    ia: f64,
    /// n/a^2 + 1.
    q: f64,
    /// Native indices of (sigma, alpha, n).
    idx: [usize; 3],
}

/// Crystal Ball evaluation at fixed parameters.
pub(crate) struct CbEval {
    m0: f64,
    left: Side,
    right: Side,
    /// d alpha_eff / d alpha of the one-sided shape's tail.
    sa: f64,
}

impl CbEval {
    pub fn new(shape: &Shape, p: &[f64]) -> Self {
        let c = CbPars::new(shape, p);
        let (il, ir, sa) = match shape {
            Shape::CrystalBall => ([1, 2, 3], [1, 2, 3], if p[2] < 0.0 { -1.0 } else { 1.0 }),
            _ => ([1, 3, 4], [2, 5, 6], 1.0),
        };
        let side = |s: f64, a: f64, n: f64, tail: bool, st: f64, idx: [usize; 3]| {
            let (na, ia) = if tail { (n / a, 1.0 / a) } else { (0.0, 0.0) };
            Side {
                is: 1.0 / s,
                a,
                n,
                tail,
                st,
                b: na - a,
                ln_a: if tail { n * na.ln() - 0.5 * a * a } else { 0.0 },
                ln_na1: if tail { na.ln() + 1.0 } else { 0.0 },
                ia,
                q: n * ia * ia + 1.0,
                idx,
            }
        };
        CbEval {
            m0: c.m0,
            left: side(c.sl, c.al, c.nl, c.left, 1.0, il),
            right: side(c.sr, c.ar, c.nr, c.right, -1.0, ir),
            sa,
        }
    }

    #[inline]
    fn side(&self, x: f64) -> &Side {
        if x <= self.m0 {
            &self.left
        } else {
            &self.right
        }
    }

    /// ln f at x; the gradient into `g` (native order) when `grad`.
    #[inline(always)]
    pub fn event(&self, x: f64, grad: bool, g: &mut [f64; 7]) -> f64 {
        let sd = self.side(x);
        let t = (x - self.m0) * sd.is;
        let tp = sd.st * t;
        let [isg, ia, inn] = sd.idx;
        if !(sd.tail && tp < -sd.a) {
            if grad {
                g.iter_mut().for_each(|v| *v = 0.0);
                // d(-t^2/2) = -t dt, dt/dm0 = -1/s, dt/ds = -t/s
                g[0] = t * sd.is;
                g[isg] = t * t * sd.is;
            }
            return -0.5 * t * t;
        }
        let u = sd.b - tp;
        let lu = u.ln();
        let (n, a) = (sd.n, sd.a);
        let lnf = sd.ln_a - n * lu;
        if grad {
            g.iter_mut().for_each(|v| *v = 0.0);
            let iu = 1.0 / u;
            let d_t = sd.st * n * iu;
            g[0] = -d_t * sd.is;
            g[isg] = -d_t * t * sd.is;
            g[ia] = self.sa * (-n * sd.ia - a + n * sd.q * iu);
            g[inn] = sd.ln_na1 - lu - n * sd.ia * iu;
        }
        lnf
    }

    /// `acc[tri(k, j)] += c d2 ln f / dp_k dp_j` at x (native order).
    #[inline(always)]
    pub fn hess_acc(&self, x: f64, c: f64, acc: &mut [f64; 28]) {
        let sd = self.side(x);
        let is = sd.is;
        let t = (x - self.m0) * is;
        let tp = sd.st * t;
        let [isg, ia, inn] = sd.idx;
        let (t_m, t_s) = (-is, -t * is);
        let (t_ms, t_ss) = (is * is, 2.0 * t * is * is);
        if !(sd.tail && tp < -sd.a) {
            // F = -t^2/2: F_t = -t, F_tt = -1
            acc[tri(0, 0)] -= c * t_m * t_m;
            acc[tri(isg, 0)] -= c * (t_m * t_s + t * t_ms);
            acc[tri(isg, isg)] -= c * (t_s * t_s + t * t_ss);
            return;
        }
        let (n, st) = (sd.n, sd.st);
        let u = sd.b - tp;
        let (iu, ia_, q) = (1.0 / u, sd.ia, sd.q);
        let d_t = st * n * iu;
        let f_tt = n * iu * iu;
        let f_ta = n * q * iu * iu;
        let f_tn = iu - n * ia_ * iu * iu;
        let f_aa = n * ia_ * ia_ - 1.0 - 2.0 * n * n * ia_ * ia_ * ia_ * iu + n * q * q * iu * iu;
        let f_an = -ia_ + (2.0 * n * ia_ * ia_ + 1.0) * iu - n * q * ia_ * iu * iu;
        let f_nn = 1.0 / n - 2.0 * ia_ * iu + n * ia_ * ia_ * iu * iu;
        let sa = self.sa;
        let d_ta = st * sa * f_ta;
        let d_tn = st * f_tn;
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
