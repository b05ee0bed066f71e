//! Per-event kernels of the one-dimensional densities: ln q = ln f - ln N and its
//! first and second derivatives in the shape's own parameters, over a block of
//! events at a time (contiguous columns, loops the compiler can vectorise).

use super::cb::CbEval;
use super::shapes::{MAX_NL, Shape};

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
        if !(matches!(self.shape, Shape::Poisson) || (x >= self.lo && x <= self.hi)) {
            return f64::NEG_INFINITY;
        }
        self.shape.ln_f(x, p, self.lo, self.hi) - norm.ln_n
    }

    /// Block kernel: `lnq[b]` and, in Grad/Hess mode, `g[k * bs + b]`
    /// (d ln q / dp_k) for the `x.len()` events of the block.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn block(
        &self,
        p: &[f64],
        norm: &Norm,
        x: &[f64],
        mode: Mode,
        bs: usize,
        lnq: &mut [f64],
        g: &mut [f64],
    ) {
        let nb = x.len();
        let ln_n = norm.ln_n;
        let grad = mode >= Mode::Grad;
        match &self.shape {
            Shape::Gauss | Shape::LogNormal => {
                let log = matches!(self.shape, Shape::LogNormal);
                let (mu, is) = (p[0], 1.0 / p[1]);
                if log {
                    for b in 0..nb {
                        let y = x[b].ln();
                        let t = (y - mu) * is;
                        lnq[b] = -0.5 * t * t - ln_n - y;
                    }
                } else {
                    for b in 0..nb {
                        let t = (x[b] - mu) * is;
                        lnq[b] = -0.5 * t * t - ln_n;
                    }
                }
                if grad {
                    let (g0, g1) = (norm.g[0], norm.g[1]);
                    let (ga, gb) = g.split_at_mut(bs);
                    for b in 0..nb {
                        let y = if log { x[b].ln() } else { x[b] };
                        let t = (y - mu) * is;
                        ga[b] = t * is - g0;
                        gb[b] = t * t * is - g1;
                    }
                }
            }
            Shape::Expo => {
                let (c, lo) = (p[0], self.lo);
                for b in 0..nb {
                    lnq[b] = -c * (x[b] - lo) - ln_n;
                }
                if grad {
                    let g0 = norm.g[0];
                    for b in 0..nb {
                        g[b] = -(x[b] - lo) - g0;
                    }
                }
            }
            Shape::CrystalBall | Shape::DoubleCB => {
                let cb = CbEval::new(&self.shape, p);
                cb.block(x, ln_n, grad, &norm.g, self.d(), bs, lnq, g);
            }
            Shape::Chebychev(_) | Shape::Bernstein(_) | Shape::Polynomial(_) => {
                let d = self.d();
                let mut basis = vec![0.0; d + 1];
                for b in 0..nb {
                    self.shape.basis(x[b], self.lo, self.hi, &mut basis);
                    let mut f = basis[0];
                    for k in 0..d {
                        f += p[k] * basis[1 + k];
                    }
                    lnq[b] = f.ln() - ln_n;
                    if grad {
                        let inv = 1.0 / f;
                        for k in 0..d {
                            g[k * bs + b] = basis[1 + k] * inv - norm.g[k];
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
                    if grad {
                        g[b] = x[b] / lam - 1.0;
                    }
                }
            }
        }
    }

    /// `out[tri(k, j)] += sum_b c[b] d2 ln q(x_b) / dp_k dp_j` over the block
    /// (`g`: the gradient rows the block kernel wrote for the same events).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn hess_sum(
        &self,
        p: &[f64],
        norm: &Norm,
        x: &[f64],
        c: &[f64],
        g: &[f64],
        bs: usize,
        out: &mut [f64],
    ) {
        let nb = x.len();
        let d = self.d();
        if d == 0 {
            return;
        }
        let s0: f64 = super::lanes::sum(&c[..nb]);
        for k in 0..d * (d + 1) / 2 {
            out[k] -= s0 * norm.h[k];
        }
        match &self.shape {
            Shape::Gauss | Shape::LogNormal => {
                let log = matches!(self.shape, Shape::LogNormal);
                let (mu, is) = (p[0], 1.0 / p[1]);
                let (mut s1, mut s2) = (0.0, 0.0);
                for b in 0..nb {
                    let y = if log { x[b].ln() } else { x[b] };
                    let t = (y - mu) * is;
                    let ct = c[b] * t;
                    s1 += ct;
                    s2 += ct * t;
                }
                let is2 = is * is;
                out[0] -= s0 * is2;
                out[1] -= 2.0 * s1 * is2;
                out[2] -= 3.0 * s2 * is2;
            }
            Shape::Expo | Shape::Uniform | Shape::Histogram(_) => {}
            Shape::Poisson => {
                let lam = p[0];
                let sx: f64 = (0..nb).map(|b| c[b] * x[b]).sum();
                out[0] -= sx / (lam * lam);
            }
            Shape::CrystalBall | Shape::DoubleCB => {
                let cb = CbEval::new(&self.shape, p);
                cb.hess_block(x, &c[..nb], d, out);
            }
            Shape::Chebychev(_) | Shape::Bernstein(_) | Shape::Polynomial(_) => {
                // d2 ln f = -(b_k/f)(b_j/f) with b_k/f = g_k + I_k/N
                let ib = &norm.ib;
                for k in 0..d {
                    let gk = &g[k * bs..k * bs + nb];
                    for j in 0..=k {
                        let gj = &g[j * bs..j * bs + nb];
                        let mut s = 0.0;
                        for b in 0..nb {
                            s += c[b] * (gk[b] + ib[1 + k]) * (gj[b] + ib[1 + j]);
                        }
                        out[tri(k, j)] -= s;
                    }
                }
            }
        }
    }
}
