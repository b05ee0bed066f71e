//! Crystal Ball per-event log-density with derivatives in the native parameter
//! order (one-sided: m0, sigma, alpha, n; double-sided: m0, sigma_L, sigma_R,
//! alpha_L, n_L, alpha_R, n_R).
//!
//! On a side with scale sigma, t = (x - m0)/sigma. The core is -t^2/2; a tail is
//! F(t', a, n) = n ln(n/a) - a^2/2 - n ln(n/a - a - t') with t' = t (left tail)
//! or -t (right tail; for the one-sided shape with alpha < 0, a = -alpha).

use super::atoms::tri;
use super::lanes::{LANES, finish, lanes_acc};
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
    /// 1/n.
    inn: f64,
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
                inn: 1.0 / n,
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
    #[cfg_attr(not(test), allow(dead_code))]
    fn side(&self, x: f64) -> &Side {
        if x <= self.m0 {
            &self.left
        } else {
            &self.right
        }
    }

    /// ln f at x; the gradient into `g` (native order) when `grad` (the
    /// scalar form of [`CbEval::block`], kept as its test reference).
    #[cfg(test)]
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

    /// `acc[tri(k, j)] += c d2 ln f / dp_k dp_j` at x (native order; the
    /// scalar form of [`CbEval::hess_block`], kept as its test reference).
    #[cfg(test)]
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

/// Per-event lanes of a side selection (the left side where `x <= m0`).
#[inline(always)]
fn pick(left: bool, l: f64, r: f64) -> f64 {
    if left { l } else { r }
}

/// Per event at `xb` (with `ub`, `lub` = u and ln u of [`CbEval::block`]):
/// whether it is on the left, and d ln f / dm0, / dsigma, / dalpha, / dn of its side.
#[inline(always)]
fn side_grads(
    l: &Side,
    r: &Side,
    m0: f64,
    sa: f64,
    xb: f64,
    ub: f64,
    lub: f64,
) -> (bool, f64, f64, f64, f64) {
    let (lt, rt) = (l.tail as u8 as f64, r.tail as u8 as f64);
    let left = xb <= m0;
    let is = pick(left, l.is, r.is);
    let st = pick(left, l.st, r.st);
    let a = pick(left, l.a, r.a);
    let n = pick(left, l.n, r.n);
    let tail = pick(left, lt, rt) != 0.0;
    let t = (xb - m0) * is;
    let in_tail = tail & (st * t < -a);
    let iu = 1.0 / ub;
    let d_t = if in_tail { st * n * iu } else { -t };
    let ia = pick(left, l.ia, r.ia);
    let q = pick(left, l.q, r.q);
    let ga = if in_tail {
        sa * (-n * ia - a + n * q * iu)
    } else {
        0.0
    };
    let gn = if in_tail {
        pick(left, l.ln_na1, r.ln_na1) - lub - n * ia * iu
    } else {
        0.0
    };
    let gs = -d_t * t * is;
    (left, -d_t * is, gs, ga, gn)
}

/// The first `D` rows (each `bs` long) of `g`, cut to `nb` entries.
#[inline(always)]
fn rows<const D: usize>(g: &mut [f64], bs: usize, nb: usize) -> [&mut [f64]; D] {
    let mut it = g.chunks_mut(bs);
    std::array::from_fn(|_| {
        let r = it.next().expect("gradient rows of the block");
        &mut r[..nb]
    })
}

impl CbEval {
    /// Block version of [`CbEval::event`] without branches on the data (so
    /// that it vectorises): `lnq[b] = ln f(x_b) - ln_n` and, when `grad`, the
    /// gradient rows `g[k * bs + b]` minus `ng[k]`. `d`: 4 (one-sided) or 7.
    ///
    /// Every slice is cut to the block's length before the loops, so that
    /// they have no bounds checks and compile to vector code; the arithmetic
    /// per event is that of the scalar form.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn block(
        &self,
        x: &[f64],
        ln_n: f64,
        grad: bool,
        ng: &[f64],
        d: usize,
        bs: usize,
        lnq: &mut [f64],
        g: &mut [f64],
    ) {
        let (l, r) = (self.left, self.right);
        let nb = x.len().min(super::kernel::BS);
        let x = &x[..nb];
        let lnq = &mut lnq[..nb];
        let m0 = self.m0;
        let (lt, rt) = (l.tail as u8 as f64, r.tail as u8 as f64);
        let mut u_buf = [0.0f64; super::kernel::BS];
        let mut lu_buf = [0.0f64; super::kernel::BS];
        let u = &mut u_buf[..nb];
        // u = B - t' in the tails (1 elsewhere: ln 1 = 0 is not used)
        for (ub, &xb) in u.iter_mut().zip(x) {
            let left = xb <= m0;
            let is = pick(left, l.is, r.is);
            let st = pick(left, l.st, r.st);
            let a = pick(left, l.a, r.a);
            let tail = pick(left, lt, rt) != 0.0;
            let tp = st * (xb - m0) * is;
            let in_tail = tail & (tp < -a);
            *ub = if in_tail {
                pick(left, l.b, r.b) - tp
            } else {
                1.0
            };
        }
        super::vmath::ln_slice(u, &mut lu_buf[..nb]);
        let lu = &lu_buf[..nb];
        for ((lb, &xb), &lub) in lnq.iter_mut().zip(x).zip(lu) {
            let left = xb <= m0;
            let is = pick(left, l.is, r.is);
            let st = pick(left, l.st, r.st);
            let a = pick(left, l.a, r.a);
            let n = pick(left, l.n, r.n);
            let tail = pick(left, lt, rt) != 0.0;
            let t = (xb - m0) * is;
            let in_tail = tail & (st * t < -a);
            let ln_a = pick(left, l.ln_a, r.ln_a);
            *lb = if in_tail {
                ln_a - n * lub
            } else {
                -0.5 * t * t
            } - ln_n;
        }
        if !grad {
            return;
        }
        let u = &u_buf[..nb];
        // per event: d ln f / dm0, / dsigma, / dalpha, / dn of its side
        let (sa, lu) = (self.sa, &lu_buf[..nb]);
        if d == 4 {
            let [g0, g1, g2, g3] = rows::<4>(g, bs, nb);
            for b in 0..nb {
                let (_, gm, gs, ga, gn) = side_grads(&l, &r, m0, sa, x[b], u[b], lu[b]);
                g0[b] = gm - ng[0];
                g1[b] = gs - ng[1];
                g2[b] = ga - ng[2];
                g3[b] = gn - ng[3];
            }
        } else {
            let [g0, g1, g2, g3, g4, g5, g6] = rows::<7>(g, bs, nb);
            let ng: [f64; 7] = std::array::from_fn(|k| ng[k]);
            for b in 0..nb {
                let (left, gm, gs, ga, gn) = side_grads(&l, &r, m0, sa, x[b], u[b], lu[b]);
                let (lm, rm) = if left { (1.0, 0.0) } else { (0.0, 1.0) };
                g0[b] = gm - ng[0];
                g1[b] = lm * gs - ng[1];
                g2[b] = rm * gs - ng[2];
                g3[b] = lm * ga - ng[3];
                g4[b] = lm * gn - ng[4];
                g5[b] = rm * ga - ng[5];
                g6[b] = rm * gn - ng[6];
            }
        }
    }

    /// Block version of [`CbEval::hess_acc`]: `out[tri(k, j)] += sum_b c_b d2 ln f(x_b)`
    /// (native order, without the normalisation's part).
    #[inline(always)]
    pub fn hess_block(&self, x: &[f64], c: &[f64], d: usize, out: &mut [f64]) {
        let (l, r) = (self.left, self.right);
        let nb = x.len().min(c.len()).min(super::kernel::BS);
        let (x, c) = (&x[..nb], &c[..nb]);
        let m0 = self.m0;
        let (lt, rt) = (l.tail as u8 as f64, r.tail as u8 as f64);
        // per event: 10 second-derivative terms, weighted by c and by the
        // side; formed SB events at a time (rows that stay in the L1 cache)
        // and summed into lanes that run over the block, so that each sum has
        // the bits of a dot product over the block
        const K: usize = 10;
        const SB: usize = 64;
        let mut qv = [[0.0f64; SB]; K];
        let mut cl = [0.0f64; SB];
        let mut cr = [0.0f64; SB];
        let (mut ll, mut lr) = ([[0.0f64; LANES]; K], [[0.0f64; LANES]; K]);
        let (mut rest_l, mut rest_r) = ([0.0f64; K], [0.0f64; K]);
        let full = nb - nb % LANES;
        let mut s0 = 0;
        while s0 < nb {
            let n = SB.min(nb - s0);
            let (x, c) = (&x[s0..s0 + n], &c[s0..s0 + n]);
            let [q0, q1, q2, q3, q4, q5, q6, q7, q8, q9] = qv.each_mut().map(|q| &mut q[..n]);
            let (cl, cr) = (&mut cl[..n], &mut cr[..n]);
            for b in 0..n {
                let left = x[b] <= m0;
                let is = pick(left, l.is, r.is);
                let st = pick(left, l.st, r.st);
                let a = pick(left, l.a, r.a);
                let n = pick(left, l.n, r.n);
                let tail = pick(left, lt, rt) != 0.0;
                let t = (x[b] - m0) * is;
                let tp = st * t;
                let in_tail = tail & (tp < -a);
                let u = if in_tail {
                    pick(left, l.b, r.b) - tp
                } else {
                    1.0
                };
                let iu = 1.0 / u;
                let (ia, q) = (pick(left, l.ia, r.ia), pick(left, l.q, r.q));
                let (t_m, t_s, t_ms, t_ss) = (-is, -t * is, is * is, 2.0 * t * is * is);
                // core: F = -t^2/2 (F_t = -t, F_tt = -1); tail: F(t', a, n)
                let f_tt = if in_tail { n * iu * iu } else { -1.0 };
                let d_t = if in_tail { st * n * iu } else { -t };
                let m = if in_tail { 1.0 } else { 0.0 };
                let d_ta = m * st * self.sa * n * q * iu * iu;
                let d_tn = m * st * (iu - n * ia * iu * iu);
                let f_aa =
                    m * (n * ia * ia - 1.0 - 2.0 * n * n * ia * ia * ia * iu + n * q * q * iu * iu);
                let f_an =
                    m * self.sa * (-ia + (2.0 * n * ia * ia + 1.0) * iu - n * q * ia * iu * iu);
                let inn = pick(left, l.inn, r.inn);
                let f_nn = m * (inn - 2.0 * ia * iu + n * ia * ia * iu * iu);
                q0[b] = f_tt * t_m * t_m;
                q1[b] = f_tt * t_m * t_s + d_t * t_ms;
                q2[b] = f_tt * t_s * t_s + d_t * t_ss;
                q3[b] = d_ta * t_m;
                q4[b] = d_ta * t_s;
                q5[b] = d_tn * t_m;
                q6[b] = d_tn * t_s;
                q7[b] = f_aa;
                q8[b] = f_an;
                q9[b] = f_nn;
                cl[b] = if left { c[b] } else { 0.0 };
                cr[b] = if left { 0.0 } else { c[b] };
            }
            // whole chunks of LANES events into the lanes, the rest (the
            // block's last events) in order, as in a dot product
            let nf = full.saturating_sub(s0).min(n);
            let qs: [&[f64]; K] = std::array::from_fn(|k| &qv[k][..n]);
            lanes_acc(&cl[..nf], qs, &mut ll);
            lanes_acc(&cr[..nf], qs, &mut lr);
            for k in 0..K {
                for b in nf..n {
                    rest_l[k] += cl[b] * qs[k][b];
                }
                for b in nf..n {
                    rest_r[k] += cr[b] * qs[k][b];
                }
            }
            s0 += n;
        }
        let sl: [f64; K] = std::array::from_fn(|k| finish(&ll[k], rest_l[k]));
        let sr: [f64; K] = std::array::from_fn(|k| finish(&lr[k], rest_r[k]));
        let _ = d;
        for (s, side) in [(sl, &l), (sr, &r)] {
            let [isg, ia, inn] = side.idx;
            out[tri(0, 0)] += s[0];
            out[tri(isg, 0)] += s[1];
            out[tri(isg, isg)] += s[2];
            out[tri(ia, 0)] += s[3];
            out[tri(ia, isg)] += s[4];
            out[tri(inn, 0)] += s[5];
            out[tri(inn, isg)] += s[6];
            out[tri(ia, ia)] += s[7];
            out[tri(inn, ia)] += s[8];
            out[tri(inn, inn)] += s[9];
        }
    }
}
