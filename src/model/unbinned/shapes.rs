//! The one-dimensional densities ("atoms") and their closed-form integrals.
//!
//! Each shape has an unnormalised density `f(x; p)` and an integral
//! `int_lo^hi f(x; p) dx` written once over [`Real`], so the same code gives the
//! normalisation with exact first and second parameter derivatives ([`D2`]), the
//! CDF for sampling and the curves of plots (`f64`). Conventions follow the HS3
//! 0.2 text and, where HS3 names a ROOT class, ROOT's:
//!
//! | shape | parameters | f(x) |
//! |---|---|---|
//! | gaussian | mean, sigma | exp(-(x-mean)^2 / (2 sigma^2)) |
//! | lognormal | mu, sigma | exp(-(ln x - mu)^2 / (2 sigma^2)) / x |
//! | exponential | c | exp(-c (x - lo)) (HS3 sign: exp(-c x) up to a constant) |
//! | crystalball (RooCBShape) | m0, sigma, alpha, n | Gaussian core, power tail on the left for alpha > 0, on the right for alpha < 0 |
//! | double-sided crystalball (RooCrystalBall) | m0, sigma_L, sigma_R, alpha_L, n_L, alpha_R, n_R | see the HS3 text |
//! | chebychev | a_1..a_n | 1 + sum a_i T_i(z), z = 2 (x - lo)/(hi - lo) - 1 |
//! | bernstein | c_0..c_n | sum c_i C(n,i) z^i (1-z)^(n-i), z = (x - lo)/(hi - lo) |
//! | polynomial | a_0..a_n | sum a_i x^i |
//! | uniform | - | 1 |
//! | poisson | mean | mean^x e^-mean / Gamma(x+1) (a pmf: not range-normalised) |
//! | histogram | - | h_k / width_k in bin k |
//!
//! `lo`, `hi` are the observable's axis range (the normalisation range).

use super::dual::{D2, Real, expm1_over};

/// Largest number of parameters of a non-linear shape (the [`D2`] size used).
pub const MAX_NL: usize = 8;

/// A binned density (ROOT's RooHistPdf with interpolation order 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Hist {
    /// Bin edges (ascending, n+1).
    pub edges: Vec<f64>,
    /// Bin contents (n, non-negative).
    pub contents: Vec<f64>,
    /// True when the bins are of equal width (fast lookup).
    pub regular: bool,
}

impl Hist {
    /// Bin of `x` (the last bin includes its upper edge), or None outside.
    #[inline]
    pub fn bin(&self, x: f64) -> Option<usize> {
        let n = self.contents.len();
        let (lo, hi) = (self.edges[0], self.edges[n]);
        if !(x >= lo && x <= hi) {
            return None;
        }
        if self.regular {
            let k = ((x - lo) / (hi - lo) * n as f64) as usize;
            return Some(k.min(n - 1));
        }
        let k = self.edges.partition_point(|e| *e <= x);
        Some(k.saturating_sub(1).min(n - 1))
    }

    /// Density (content over width) in bin `k`.
    #[inline]
    pub fn height(&self, k: usize) -> f64 {
        self.contents[k] / (self.edges[k + 1] - self.edges[k])
    }

    fn integral(&self, lo: f64, hi: f64) -> f64 {
        let mut s = 0.0;
        for k in 0..self.contents.len() {
            let a = self.edges[k].max(lo);
            let b = self.edges[k + 1].min(hi);
            if b > a {
                s += self.height(k) * (b - a);
            }
        }
        s
    }
}

/// The kind of a one-dimensional density.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Gaussian (HS3 gaussian_dist / normal_dist).
    Gauss,
    /// Log-normal (HS3 lognormal_dist, standard parametrisation).
    LogNormal,
    /// Exponential, HS3 sign exp(-c x).
    Expo,
    /// One-sided Crystal Ball (ROOT RooCBShape).
    CrystalBall,
    /// Double-sided Crystal Ball (ROOT RooCrystalBall).
    DoubleCB,
    /// Chebychev polynomials of the first kind, T0 coefficient 1, `n` coefficients.
    Chebychev(usize),
    /// Bernstein basis of degree `n - 1` (`n` coefficients).
    Bernstein(usize),
    /// Polynomial with `n` coefficients a_0..a_(n-1).
    Polynomial(usize),
    /// Uniform.
    Uniform,
    /// Poisson pmf.
    Poisson,
    /// Piecewise constant density.
    Histogram(Hist),
}

impl Shape {
    /// Number of parameters.
    pub fn n_par(&self) -> usize {
        match self {
            Shape::Gauss | Shape::LogNormal => 2,
            Shape::Expo | Shape::Poisson => 1,
            Shape::CrystalBall => 4,
            Shape::DoubleCB => 7,
            Shape::Chebychev(n) | Shape::Bernstein(n) | Shape::Polynomial(n) => *n,
            Shape::Uniform | Shape::Histogram(_) => 0,
        }
    }

    /// True for shapes linear in their parameters (normalisation is linear too).
    pub fn is_linear(&self) -> bool {
        matches!(
            self,
            Shape::Chebychev(_) | Shape::Bernstein(_) | Shape::Polynomial(_)
        )
    }

    /// Short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Shape::Gauss => "gaussian_dist",
            Shape::LogNormal => "lognormal_dist",
            Shape::Expo => "exponential_dist",
            Shape::CrystalBall => "crystalball_dist",
            Shape::DoubleCB => "crystalball_doublesided_dist",
            Shape::Chebychev(_) => "chebychev_dist",
            Shape::Bernstein(_) => "bernstein_poly_dist",
            Shape::Polynomial(_) => "polynomial_dist",
            Shape::Uniform => "uniform_dist",
            Shape::Poisson => "poisson_dist",
            Shape::Histogram(_) => "histogram_dist",
        }
    }

    /// Why these parameter values are outside the shape's domain, if they are.
    pub fn invalid(&self, p: &[f64]) -> Option<String> {
        let pos = |i: usize, what: &str| -> Option<String> {
            (!(p[i] > 0.0 && p[i].is_finite())).then(|| format!("{what} = {} is not > 0", p[i]))
        };
        if let Some(i) = p.iter().position(|v| !v.is_finite()) {
            return Some(format!("parameter {i} is {}", p[i]));
        }
        match self {
            Shape::Gauss | Shape::LogNormal => pos(1, "sigma"),
            Shape::Poisson => pos(0, "mean"),
            Shape::CrystalBall => pos(1, "sigma")
                .or_else(|| (p[2] == 0.0).then(|| "alpha = 0".to_string()))
                .or_else(|| pos(3, "n")),
            Shape::DoubleCB => pos(1, "sigma_L")
                .or_else(|| pos(2, "sigma_R"))
                .or_else(|| pos(3, "alpha_L"))
                .or_else(|| pos(4, "n_L"))
                .or_else(|| pos(5, "alpha_R"))
                .or_else(|| pos(6, "n_R")),
            _ => None,
        }
    }

    /// Positions of the parameters the minimiser steps in as `1/x`: the
    /// Crystal Ball's tail exponents (the likelihood is closer to quadratic
    /// in `1/n`, the tail tends to a Gaussian's as `1/n -> 0`; `fit::coords`).
    pub fn reciprocal_slots(&self) -> &'static [usize] {
        match self {
            Shape::CrystalBall => &[3],
            Shape::DoubleCB => &[4, 6],
            _ => &[],
        }
    }

    /// Names of the parameters (HS3 keys).
    pub fn par_keys(&self) -> Vec<String> {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        match self {
            Shape::Gauss => v(&["mean", "sigma"]),
            Shape::LogNormal => v(&["mu", "sigma"]),
            Shape::Expo => v(&["c"]),
            Shape::Poisson => v(&["mean"]),
            Shape::CrystalBall => v(&["m0", "sigma", "alpha", "n"]),
            Shape::DoubleCB => v(&[
                "m0", "sigma_L", "sigma_R", "alpha_L", "n_L", "alpha_R", "n_R",
            ]),
            Shape::Chebychev(n) | Shape::Bernstein(n) | Shape::Polynomial(n) => {
                (0..*n).map(|i| format!("coefficients[{i}]")).collect()
            }
            Shape::Uniform | Shape::Histogram(_) => Vec::new(),
        }
    }

    /// ln f(x) (unnormalised) at one point (`lo`, `hi`: the axis range).
    pub fn ln_f(&self, x: f64, p: &[f64], lo: f64, hi: f64) -> f64 {
        match self {
            Shape::Gauss => {
                let t = (x - p[0]) / p[1];
                -0.5 * t * t
            }
            Shape::LogNormal => {
                let y = x.ln();
                let t = (y - p[0]) / p[1];
                -0.5 * t * t - y
            }
            Shape::Expo => -p[0] * (x - lo),
            Shape::CrystalBall | Shape::DoubleCB => {
                let c = CbPars::new(self, p);
                cb_ln_f(&c, x)
            }
            Shape::Uniform => 0.0,
            Shape::Poisson => x * p[0].ln() - p[0] - libm::lgamma(x + 1.0),
            Shape::Histogram(h) => match h.bin(x) {
                Some(k) => h.height(k).ln(),
                None => f64::NEG_INFINITY,
            },
            Shape::Chebychev(_) | Shape::Bernstein(_) | Shape::Polynomial(_) => {
                let mut b = vec![0.0; p.len() + 1];
                self.basis(x, lo, hi, &mut b);
                let f: f64 = b[0] + p.iter().zip(&b[1..]).map(|(c, v)| c * v).sum::<f64>();
                f.ln()
            }
        }
    }

    /// Basis values of a linear shape at `x`: `b[0]` is the fixed term, `b[1+i]`
    /// multiplies coefficient i.
    #[inline]
    pub fn basis(&self, x: f64, lo: f64, hi: f64, b: &mut [f64]) {
        match self {
            Shape::Chebychev(n) => {
                let z = 2.0 * (x - lo) / (hi - lo) - 1.0;
                b[0] = 1.0;
                if *n >= 1 {
                    b[1] = z;
                }
                for i in 2..=*n {
                    b[i] = 2.0 * z * b[i - 1] - b[i - 2];
                }
            }
            Shape::Bernstein(n) => {
                b[0] = 0.0;
                bernstein_basis(*n, (x - lo) / (hi - lo), &mut b[1..=*n]);
            }
            Shape::Polynomial(n) => {
                b[0] = 0.0;
                let mut xp = 1.0;
                for i in 0..*n {
                    b[1 + i] = xp;
                    xp *= x;
                }
            }
            _ => unreachable!("basis of a non-linear shape"),
        }
    }

    /// Integrals of the basis functions over [a, b] within the axis [lo, hi]
    /// (`out[0]`: the fixed term).
    pub fn basis_integrals(&self, a: f64, b: f64, lo: f64, hi: f64, out: &mut [f64]) {
        match self {
            Shape::Chebychev(n) => {
                // antiderivative in z, times dx/dz = (hi - lo)/2
                let za = 2.0 * (a - lo) / (hi - lo) - 1.0;
                let zb = 2.0 * (b - lo) / (hi - lo) - 1.0;
                let (ta, tb) = (cheb_all(*n + 1, za), cheb_all(*n + 1, zb));
                let half = 0.5 * (hi - lo);
                for i in 0..=*n {
                    let anti = |t: &[f64], z: f64| match i {
                        0 => z,
                        1 => 0.5 * z * z,
                        _ => 0.5 * (t[i + 1] / (i + 1) as f64 - t[i - 1] / (i - 1) as f64),
                    };
                    out[i] = half * (anti(&tb, zb) - anti(&ta, za));
                }
            }
            Shape::Bernstein(n) => {
                out[0] = 0.0;
                let l = hi - lo;
                let (za, zb) = ((a - lo) / l, (b - lo) / l);
                let m = *n; // degree m-1 basis, integrals via degree m
                let mut ba = vec![0.0; m + 1];
                let mut bb = vec![0.0; m + 1];
                bernstein_basis(m + 1, za, &mut ba);
                bernstein_basis(m + 1, zb, &mut bb);
                for i in 0..m {
                    // int_0^z B_{i,m-1} = (1/m) sum_{j=i+1}^{m} B_{j,m}(z)
                    let sa: f64 = ba[i + 1..].iter().sum();
                    let sb: f64 = bb[i + 1..].iter().sum();
                    out[1 + i] = l * (sb - sa) / m as f64;
                }
            }
            Shape::Polynomial(n) => {
                out[0] = 0.0;
                let (mut pa, mut pb) = (a, b);
                for i in 0..*n {
                    out[1 + i] = (pb - pa) / (i + 1) as f64;
                    pa *= a;
                    pb *= b;
                }
            }
            _ => unreachable!("basis of a non-linear shape"),
        }
    }

    /// Integral of f over [a, b] (a subrange of the axis [lo, hi]).
    pub fn integral<R: Real>(&self, p: &[R], a: f64, b: f64, lo: f64, hi: f64) -> R {
        match self {
            Shape::Gauss => gauss_integral(p[0], p[1], a, b),
            Shape::LogNormal => {
                let la = if a > 0.0 { a.ln() } else { f64::NEG_INFINITY };
                let lb = if b > 0.0 { b.ln() } else { f64::NEG_INFINITY };
                gauss_integral(p[0], p[1], la, lb)
            }
            Shape::Expo => {
                // int_a^b exp(-c (x - lo)) dx = exp(-c (a - lo)) (1 - e^{-c(b-a)}) / c
                let c = p[0];
                (c * (-(a - lo))).exp() * expm1_over(-c, R::cst(b - a))
            }
            Shape::CrystalBall | Shape::DoubleCB => {
                let c = CbPars::new(self, p);
                cb_integral(&c, a, b)
            }
            Shape::Uniform => R::cst(b - a),
            Shape::Poisson => R::cst(1.0),
            Shape::Histogram(h) => R::cst(h.integral(a, b)),
            Shape::Chebychev(_) | Shape::Bernstein(_) | Shape::Polynomial(_) => {
                let mut ib = vec![0.0; p.len() + 1];
                self.basis_integrals(a, b, lo, hi, &mut ib);
                let mut s = R::cst(ib[0]);
                for (c, v) in p.iter().zip(&ib[1..]) {
                    s = s + *c * *v;
                }
                s
            }
        }
    }

    /// ln of the normalisation over [lo, hi] with exact first and second
    /// derivatives in the parameters (the first `n_par` entries are used).
    pub fn ln_norm(&self, p: &[f64], lo: f64, hi: f64) -> D2<MAX_NL> {
        if let Shape::Expo = self {
            return expo_ln_norm(D2::var(p[0], 0), hi - lo);
        }
        let n = self.n_par();
        debug_assert!(n <= MAX_NL || self.is_linear());
        if self.is_linear() {
            // linear shapes: handled by the caller (gradient = basis integrals)
            let mut ib = vec![0.0; n + 1];
            self.basis_integrals(lo, hi, lo, hi, &mut ib);
            let nv = ib[0] + p.iter().zip(&ib[1..]).map(|(c, v)| c * v).sum::<f64>();
            return D2::cst(nv.ln());
        }
        let vars: Vec<D2<MAX_NL>> = (0..n).map(|i| D2::var(p[i], i)).collect();
        self.integral(&vars, lo, hi, lo, hi).ln()
    }
}

/// ln int_lo^hi exp(-c (x - lo)) dx for a range of length `l`, stable for any c.
fn expo_ln_norm<R: Real>(c: R, l: f64) -> R {
    let u = c * l;
    let uv = u.val();
    let psi = if uv > 1e-4 {
        // ln((1 - e^-u) / u)
        (-(-u).exp_m1()).ln() - u.ln()
    } else if uv < -1e-4 {
        // (1 - e^-u)/u = e^-u (1 - e^u)/(-u)
        -u + (-(u.exp_m1())).ln() - (-u).ln()
    } else {
        // 1 - u/2 + u^2/6 - u^3/24 + u^4/120
        ((((u / 120.0 - 1.0 / 24.0) * u + 1.0 / 6.0) * u - 0.5) * u + 1.0).ln()
    };
    psi + l.ln()
}

/// Bernstein basis B_{i,n-1}(z), i = 0..n-1, into `out` (len n).
pub fn bernstein_basis(n: usize, z: f64, out: &mut [f64]) {
    if n == 0 {
        return;
    }
    // de Casteljau-style build-up: degree 0 .. n-1
    out[0] = 1.0;
    let w = 1.0 - z;
    for d in 1..n {
        out[d] = z * out[d - 1];
        for i in (1..d).rev() {
            out[i] = w * out[i] + z * out[i - 1];
        }
        out[0] *= w;
    }
}

/// T_0..T_n at z.
fn cheb_all(n: usize, z: f64) -> Vec<f64> {
    let mut t = vec![0.0; n + 1];
    t[0] = 1.0;
    if n >= 1 {
        t[1] = z;
    }
    for i in 2..=n {
        t[i] = 2.0 * z * t[i - 1] - t[i - 2];
    }
    t
}

/// int_a^b exp(-(x-m)^2/(2 s^2)) dx, with erfc where erf differences cancel.
pub fn gauss_integral<R: Real>(m: R, s: R, a: f64, b: f64) -> R {
    let k = std::f64::consts::FRAC_1_SQRT_2;
    let c = (std::f64::consts::PI / 2.0).sqrt();
    let za = if a == f64::NEG_INFINITY {
        None
    } else {
        Some((-m + a) / s * k)
    };
    let zb = if b == f64::INFINITY {
        None
    } else {
        Some((-m + b) / s * k)
    };
    let (zav, zbv) = (
        za.map_or(f64::NEG_INFINITY, |z| z.val()),
        zb.map_or(f64::INFINITY, |z| z.val()),
    );
    // pieces: F(z) terms with constant limits for infinite ends
    let diff = if zav > 0.0 {
        // both positive: erfc(za) - erfc(zb)
        let ea = za.map_or(R::cst(2.0), |z| z.erfc());
        let eb = zb.map_or(R::cst(0.0), |z| z.erfc());
        ea - eb
    } else if zbv < 0.0 {
        // both negative: erfc(-zb) - erfc(-za)
        let eb = zb.map_or(R::cst(0.0), |z| (-z).erfc());
        let ea = za.map_or(R::cst(0.0), |z| (-z).erfc());
        eb - ea
    } else {
        let eb = zb.map_or(R::cst(1.0), |z| z.erf());
        let ea = za.map_or(R::cst(-1.0), |z| z.erf());
        eb - ea
    };
    s * diff * c
}

/// Crystal Ball parameters in the double-sided form (a missing tail: alpha = inf).
pub(crate) struct CbPars<R> {
    pub m0: R,
    pub sl: R,
    pub sr: R,
    pub al: R,
    pub nl: R,
    pub ar: R,
    pub nr: R,
    pub left: bool,
    pub right: bool,
}

impl<R: Real> CbPars<R> {
    pub fn new(shape: &Shape, p: &[R]) -> Self {
        match shape {
            Shape::CrystalBall => {
                // RooCBShape: alpha > 0 puts the tail on the left, alpha < 0 on the right
                let a = p[2].val();
                let abs_a = if a < 0.0 { -p[2] } else { p[2] };
                let inf = R::cst(f64::INFINITY);
                CbPars {
                    m0: p[0],
                    sl: p[1],
                    sr: p[1],
                    al: if a >= 0.0 { abs_a } else { inf },
                    nl: p[3],
                    ar: if a < 0.0 { abs_a } else { inf },
                    nr: p[3],
                    left: a >= 0.0,
                    right: a < 0.0,
                }
            }
            _ => CbPars {
                m0: p[0],
                sl: p[1],
                sr: p[2],
                al: p[3],
                nl: p[4],
                ar: p[5],
                nr: p[6],
                left: true,
                right: true,
            },
        }
    }
}

/// ln f of the Crystal Ball at x (value only).
pub(crate) fn cb_ln_f(c: &CbPars<f64>, x: f64) -> f64 {
    if x <= c.m0 {
        let t = (x - c.m0) / c.sl;
        if c.left && t < -c.al {
            let (a, n) = (c.al, c.nl);
            n * (n / a).ln() - 0.5 * a * a - n * (n / a - a - t).ln()
        } else {
            -0.5 * t * t
        }
    } else {
        let t = (x - c.m0) / c.sr;
        if c.right && t > c.ar {
            let (a, n) = (c.ar, c.nr);
            n * (n / a).ln() - 0.5 * a * a - n * (n / a - a + t).ln()
        } else {
            -0.5 * t * t
        }
    }
}

/// Power-tail integral A int u^-n du between u_near (at the junction side) and u_far.
fn tail_integral<R: Real>(a: R, n: R, u_near: R, u_far: R) -> R {
    // ln A = n ln(n/a) - a^2/2; result = A u_near^(1-n) expm1((1-n) ln(u_far/u_near))/(1-n)
    let ln_a = n * (n / a).ln() - a * a * 0.5;
    let one_m_n = -n + 1.0;
    let lead = (ln_a + one_m_n * u_near.ln()).exp();
    lead * expm1_over(one_m_n, (u_far / u_near).ln())
}

fn cb_integral<R: Real>(c: &CbPars<R>, a: f64, b: f64) -> R {
    let m0 = c.m0.val();
    let mut total = R::cst(0.0);
    // left side: x <= m0, sigma_L
    if a < m0 {
        let b1 = b.min(m0);
        let junction = if c.left {
            m0 - c.al.val() * c.sl.val()
        } else {
            f64::NEG_INFINITY
        };
        // tail part [a, min(b1, junction)]
        if c.left && a < junction {
            let hi = b1.min(junction);
            let ta = (-c.m0 + a) / c.sl;
            let th = (-c.m0 + hi) / c.sl;
            let bb = c.nl / c.al - c.al;
            // u = B - t: far end at ta (larger u), near end at th
            let i = tail_integral(c.al, c.nl, bb - th, bb - ta) * c.sl;
            total = total + i;
        }
        let ca = a.max(junction);
        if ca < b1 {
            total = total + gauss_integral(c.m0, c.sl, ca, b1);
        }
    }
    // right side: x > m0, sigma_R
    if b > m0 {
        let a1 = a.max(m0);
        let junction = if c.right {
            m0 + c.ar.val() * c.sr.val()
        } else {
            f64::INFINITY
        };
        let cb = b.min(junction);
        if a1 < cb {
            total = total + gauss_integral(c.m0, c.sr, a1, cb);
        }
        if c.right && b > junction {
            let lo = a1.max(junction);
            let tl = (-c.m0 + lo) / c.sr;
            let tb = (-c.m0 + b) / c.sr;
            let bb = c.nr / c.ar - c.ar;
            let i = tail_integral(c.ar, c.nr, bb + tl, bb + tb) * c.sr;
            total = total + i;
        }
    }
    total
}
