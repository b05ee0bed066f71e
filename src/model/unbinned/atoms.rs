//! Per-event kernels of the one-dimensional densities: ln q = ln f - ln N and its
//! first and second derivatives in the shape's own parameters, over a block of
//! events at a time (contiguous columns, loops the compiler can vectorise).

use super::shapes::{CbPars, MAX_NL, Shape};

/// What a pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Values only.
    Value,
    /// Values and gradients.
    Grad,
    /// Values, gradients and Hessians.
    Hess,
}

/// Packed index of (k, j), j <= k, in a lower triangle.
#[inline]
pub fn tri(k: usize, j: usize) -> usize {
    if j <= k {
        k * (k + 1) / 2 + j
    } else {
        j * (j + 1) / 2 + k
    }
}

/// A shape on one observable with its parameters (values per evaluation).
#[derive(Debug, Clone)]
pub struct Atom {
    /// The density.
    pub shape: Shape,
    /// Index of its observable in the channel.
    pub obs: usize,
    /// Axis range of the observable (normalisation range).
    pub lo: f64,
    /// Upper end of the range.
    pub hi: f64,
    /// Index of its first parameter in the channel's slot vector (parameters are consecutive).
    pub u0: usize,
    /// HS3 name of the distribution (for messages and plots).
    pub name: String,
}

/// The normalisation of an atom at the current parameters: ln N with its
/// gradient and packed Hessian, plus the basis integrals of linear shapes.
#[derive(Debug, Clone, Default)]
pub struct Norm {
    /// ln N.
    pub ln_n: f64,
    /// N (linear shapes).
    pub n: f64,
    /// d ln N / dp.
    pub g: Vec<f64>,
    /// Packed d2 ln N / dp dp.
    pub h: Vec<f64>,
    /// Basis integrals over the range divided by N (linear shapes; entry 0 is the fixed term).
    pub ib: Vec<f64>,
}

impl Atom {
    /// Number of parameters.
    pub fn d(&self) -> usize {
        self.shape.n_par()
    }

    /// Normalisation at parameters `p`, or why it does not exist.
    pub fn norm(&self, p: &[f64]) -> Result<Norm, String> {
        if let Some(m) = self.shape.invalid(p) {
            return Err(m);
        }
        let d = self.d();
        let mut out = Norm {
            g: vec![0.0; d],
            h: vec![0.0; d * (d + 1) / 2],
            ..Norm::default()
        };
        if self.shape.is_linear() {
            let mut ib = vec![0.0; d + 1];
            self.shape
                .basis_integrals(self.lo, self.hi, self.lo, self.hi, &mut ib);
            let n = ib[0] + p.iter().zip(&ib[1..]).map(|(c, v)| c * v).sum::<f64>();
            if !(n > 0.0 && n.is_finite()) {
                return Err(format!("the normalisation integral is {n} (not > 0)"));
            }
            ib.iter_mut().for_each(|v| *v /= n);
            for k in 0..d {
                out.g[k] = ib[1 + k];
                for j in 0..=k {
                    out.h[tri(k, j)] = -ib[1 + k] * ib[1 + j];
                }
            }
            out.ln_n = n.ln();
            out.n = n;
            out.ib = ib;
            return Ok(out);
        }
        let r = self.shape.ln_norm(p, self.lo, self.hi);
        if !r.v.is_finite() {
            return Err(format!(
                "the normalisation integral is {} (not > 0 and finite)",
                r.v.exp()
            ));
        }
        debug_assert!(d <= MAX_NL);
        out.ln_n = r.v;
        out.n = r.v.exp();
        for k in 0..d {
            out.g[k] = r.g[k];
            for j in 0..=k {
                out.h[tri(k, j)] = r.h[k][j];
            }
        }
        Ok(out)
    }

    /// Normalised log-density at one point (value only).
    pub fn ln_q(&self, x: f64, p: &[f64], norm: &Norm) -> f64 {
        if !(x >= self.lo && x <= self.hi) && !matches!(self.shape, Shape::Poisson) {
            return f64::NEG_INFINITY;
        }
        self.shape.ln_f(x, p, self.lo, self.hi) - norm.ln_n
    }

    /// Block kernel: `lnq[b]`, and in Grad/Hess mode `g[k * bs + b]` (d ln q / dp_k)
    /// and in Hess mode `h[tri(k,j) * bs + b]`, for the `x.len()` events of the block.
    #[allow(clippy::too_many_arguments)]
    pub fn block(
        &self,
        p: &[f64],
        norm: &Norm,
        x: &[f64],
        mode: Mode,
        bs: usize,
        lnq: &mut [f64],
        g: &mut [f64],
        h: &mut [f64],
    ) {
        let nb = x.len();
        let ln_n = norm.ln_n;
        match &self.shape {
            Shape::Gauss | Shape::LogNormal => {
                let log = matches!(self.shape, Shape::LogNormal);
                let (mu, is) = (p[0], 1.0 / p[1]);
                let is2 = is * is;
                for b in 0..nb {
                    let y = if log { x[b].ln() } else { x[b] };
                    let t = (y - mu) * is;
                    lnq[b] = -0.5 * t * t - ln_n - if log { y } else { 0.0 };
                }
                if mode >= Mode::Grad {
                    let (g0, g1) = (norm.g[0], norm.g[1]);
                    for b in 0..nb {
                        let y = if log { x[b].ln() } else { x[b] };
                        let t = (y - mu) * is;
                        g[b] = t * is - g0;
                        g[bs + b] = t * t * is - g1;
                    }
                }
                if mode == Mode::Hess {
                    let (h0, h1, h2) = (norm.h[0], norm.h[1], norm.h[2]);
                    for b in 0..nb {
                        let y = if log { x[b].ln() } else { x[b] };
                        let t = (y - mu) * is;
                        h[b] = -is2 - h0;
                        h[bs + b] = -2.0 * t * is2 - h1;
                        h[2 * bs + b] = -3.0 * t * t * is2 - h2;
                    }
                }
            }
            Shape::Expo => {
                let (c, lo) = (p[0], self.lo);
                for b in 0..nb {
                    lnq[b] = -c * (x[b] - lo) - ln_n;
                }
                if mode >= Mode::Grad {
                    let g0 = norm.g[0];
                    for b in 0..nb {
                        g[b] = -(x[b] - lo) - g0;
                    }
                }
                if mode == Mode::Hess {
                    let h0 = -norm.h[0];
                    h[..nb].iter_mut().for_each(|v| *v = h0);
                }
            }
            Shape::CrystalBall | Shape::DoubleCB => {
                let cb = CbEval::new(&self.shape, p);
                let d = self.d();
                let mut ge = [0.0; 7];
                let mut he = [0.0; 28];
                for b in 0..nb {
                    let lnf = cb.event(x[b], mode, &mut ge, &mut he);
                    lnq[b] = lnf - ln_n;
                    if mode >= Mode::Grad {
                        for k in 0..d {
                            g[k * bs + b] = ge[k] - norm.g[k];
                        }
                    }
                    if mode == Mode::Hess {
                        for k in 0..d * (d + 1) / 2 {
                            h[k * bs + b] = he[k] - norm.h[k];
                        }
                    }
                }
            }
            Shape::Chebychev(_) | Shape::Bernstein(_) | Shape::Polynomial(_) => {
                let d = self.d();
                let mut bv = [0.0; 32];
                let mut bvec = vec![0.0; if d + 1 > 32 { d + 1 } else { 0 }];
                for b in 0..nb {
                    let basis: &mut [f64] = if d < 32 {
                        &mut bv[..d + 1]
                    } else {
                        &mut bvec[..]
                    };
                    self.shape.basis(x[b], self.lo, self.hi, basis);
                    let mut f = basis[0];
                    for k in 0..d {
                        f += p[k] * basis[1 + k];
                    }
                    lnq[b] = f.ln() - ln_n;
                    if mode >= Mode::Grad {
                        let inv = 1.0 / f;
                        for k in 0..d {
                            basis[1 + k] *= inv;
                            g[k * bs + b] = basis[1 + k] - norm.g[k];
                        }
                        if mode == Mode::Hess {
                            for k in 0..d {
                                for j in 0..=k {
                                    h[tri(k, j) * bs + b] =
                                        -basis[1 + k] * basis[1 + j] - norm.h[tri(k, j)];
                                }
                            }
                        }
                    }
                }
            }
            Shape::Uniform => lnq[..nb].iter_mut().for_each(|v| *v = -ln_n),
            Shape::Histogram(hist) => {
                for b in 0..nb {
                    lnq[b] = match hist.bin(x[b]) {
                        Some(k) => hist.height(k).ln() - ln_n,
                        None => f64::NEG_INFINITY,
                    };
                }
            }
            Shape::Poisson => {
                let lam = p[0];
                let ll = lam.ln();
                for b in 0..nb {
                    lnq[b] = x[b] * ll - lam - libm::lgamma(x[b] + 1.0) - ln_n;
                    if mode >= Mode::Grad {
                        g[b] = x[b] / lam - 1.0;
                    }
                    if mode == Mode::Hess {
                        h[b] = -x[b] / (lam * lam);
                    }
                }
            }
        }
    }
}

/// Crystal Ball per-event evaluation with derivatives in the native parameter order.
struct CbEval {
    c: CbPars<f64>,
    /// Native indices of (sigma, alpha, n) on the left and right sides.
    il: [usize; 3],
    ir: [usize; 3],
    /// Sign of d alpha_eff / d alpha for the one-sided shape's tail.
    sa: f64,
}

impl CbEval {
    fn new(shape: &Shape, p: &[f64]) -> Self {
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

    /// ln f at x; gradient into `g` and packed Hessian into `h` (native order).
    #[inline]
    fn event(&self, x: f64, mode: Mode, g: &mut [f64; 7], h: &mut [f64; 28]) -> f64 {
        let c = &self.c;
        let left = x <= c.m0;
        let (s, a, n, has_tail, idx, st) = if left {
            (c.sl, c.al, c.nl, c.left, self.il, 1.0)
        } else {
            (c.sr, c.ar, c.nr, c.right, self.ir, -1.0)
        };
        let t = (x - c.m0) / s;
        // t' = st * t is the coordinate in which the tail is on the left
        let tp = st * t;
        let tail = has_tail && tp < -a;
        if mode >= Mode::Grad {
            g.iter_mut().for_each(|v| *v = 0.0);
        }
        if mode == Mode::Hess {
            h.iter_mut().for_each(|v| *v = 0.0);
        }
        let is = 1.0 / s;
        // derivatives of t
        let (t_m, t_s) = (-is, -t * is);
        let (t_ms, t_ss) = (is * is, 2.0 * t * is * is);
        let (im, isg, ia, inn) = (0usize, idx[0], idx[1], idx[2]);
        if !tail {
            if mode >= Mode::Grad {
                g[im] = -t * t_m;
                g[isg] = -t * t_s;
            }
            if mode == Mode::Hess {
                h[tri(im, im)] = -t_m * t_m;
                h[tri(isg, im)] = -t_m * t_s - t * t_ms;
                h[tri(isg, isg)] = -t_s * t_s - t * t_ss;
            }
            return -0.5 * t * t;
        }
        let u = n / a - a - tp;
        let ln_f = n * (n / a).ln() - 0.5 * a * a - n * u.ln();
        if mode == Mode::Value {
            return ln_f;
        }
        let iu = 1.0 / u;
        let ia_ = 1.0 / a;
        let q = n * ia_ * ia_ + 1.0; // -du/da
        // F in (t', a', n)
        let f_t = n * iu;
        let f_a = -n * ia_ - a + n * q * iu;
        let f_n = (n * ia_).ln() + 1.0 - u.ln() - n * ia_ * iu;
        // into (t, alpha, n): t' = st t, a' = sa alpha (sa only for the one-sided shape)
        let sa = self.sa;
        let d_t = st * f_t;
        let d_a = sa * f_a;
        g[im] = d_t * t_m;
        g[isg] = d_t * t_s;
        g[ia] = d_a;
        g[inn] = f_n;
        if mode == Mode::Hess {
            let f_tt = n * iu * iu;
            let f_ta = n * q * iu * iu;
            let f_tn = iu - n * ia_ * iu * iu;
            let f_aa =
                n * ia_ * ia_ - 1.0 - 2.0 * n * n * ia_ * ia_ * ia_ * iu + n * q * q * iu * iu;
            let f_an = -ia_ + (2.0 * n * ia_ * ia_ + 1.0) * iu - n * q * ia_ * iu * iu;
            let f_nn = 1.0 / n - 2.0 * ia_ * iu + n * ia_ * ia_ * iu * iu;
            let d_tt = f_tt;
            let d_ta = st * sa * f_ta;
            let d_tn = st * f_tn;
            h[tri(im, im)] = d_tt * t_m * t_m;
            h[tri(isg, im)] = d_tt * t_m * t_s + d_t * t_ms;
            h[tri(isg, isg)] = d_tt * t_s * t_s + d_t * t_ss;
            h[tri(ia, im)] = d_ta * t_m;
            h[tri(ia, isg)] = d_ta * t_s;
            h[tri(inn, im)] = d_tn * t_m;
            h[tri(inn, isg)] = d_tn * t_s;
            h[tri(ia, ia)] = f_aa;
            h[tri(inn, ia)] = sa * f_an;
            h[tri(inn, inn)] = f_nn;
        }
        ln_f
    }
}
