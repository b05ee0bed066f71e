//! Second-order forward-mode numbers for exact derivatives of closed forms.
//!
//! Normalisation integrals (and their parameter derivatives up to second order)
//! are written once, generically over [`Real`], and evaluated either with `f64`
//! (values: CDFs for sampling, plots) or with [`D2`] (value, gradient and Hessian
//! with respect to up to `N` parameters, exact to rounding).

use std::ops::{Add, Div, Mul, Neg, Sub};

/// Numbers the closed forms are written in: `f64` or [`D2`].
pub trait Real:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + Add<f64, Output = Self>
    + Sub<f64, Output = Self>
    + Mul<f64, Output = Self>
    + Div<f64, Output = Self>
{
    /// A constant.
    fn cst(v: f64) -> Self;
    /// The value.
    fn val(&self) -> f64;
    /// Apply a scalar function with value `f`, first and second derivatives `d1`, `d2`.
    fn chain(self, f: f64, d1: f64, d2: f64) -> Self;

    /// e^x
    fn exp(self) -> Self {
        let e = self.val().exp();
        self.chain(e, e, e)
    }
    /// e^x - 1 (accurate near 0)
    fn exp_m1(self) -> Self {
        let x = self.val();
        let e = x.exp();
        self.chain(x.exp_m1(), e, e)
    }
    /// ln x
    fn ln(self) -> Self {
        let x = self.val();
        self.chain(x.ln(), 1.0 / x, -1.0 / (x * x))
    }
    /// ln(1 + x) (accurate near 0)
    fn ln_1p(self) -> Self {
        let x = self.val();
        let d = 1.0 / (1.0 + x);
        self.chain(x.ln_1p(), d, -d * d)
    }
    /// sqrt x
    fn sqrt(self) -> Self {
        let x = self.val();
        let s = x.sqrt();
        self.chain(s, 0.5 / s, -0.25 / (s * x))
    }
    /// erf x
    fn erf(self) -> Self {
        let x = self.val();
        let c = std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp();
        self.chain(libm::erf(x), c, -2.0 * x * c)
    }
    /// erfc x
    fn erfc(self) -> Self {
        let x = self.val();
        let c = std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp();
        self.chain(libm::erfc(x), -c, 2.0 * x * c)
    }
    /// x^k for a constant k
    fn powc(self, k: f64) -> Self {
        let x = self.val();
        if k == 0.0 {
            return Self::cst(1.0);
        }
        let d2 = if k == 1.0 {
            0.0
        } else {
            k * (k - 1.0) * x.powf(k - 2.0)
        };
        self.chain(x.powf(k), k * x.powf(k - 1.0), d2)
    }
    /// x^y = exp(y ln x) (x > 0)
    fn powr(self, y: Self) -> Self {
        (y * self.ln()).exp()
    }
}

impl Real for f64 {
    fn cst(v: f64) -> Self {
        v
    }
    fn val(&self) -> f64 {
        *self
    }
    fn chain(self, f: f64, _d1: f64, _d2: f64) -> Self {
        f
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn powr(self, y: f64) -> Self {
        self.powf(y)
    }
    fn powc(self, k: f64) -> Self {
        self.powf(k)
    }
}

/// A value with its gradient and Hessian with respect to `N` variables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct D2<const N: usize> {
    /// Value.
    pub v: f64,
    /// Gradient.
    pub g: [f64; N],
    /// Hessian (symmetric).
    pub h: [[f64; N]; N],
}

impl<const N: usize> D2<N> {
    /// Variable `i` with value `v`.
    pub fn var(v: f64, i: usize) -> Self {
        let mut d = Self::cst(v);
        d.g[i] = 1.0;
        d
    }
}

impl<const N: usize> Real for D2<N> {
    fn cst(v: f64) -> Self {
        D2 {
            v,
            g: [0.0; N],
            h: [[0.0; N]; N],
        }
    }
    fn val(&self) -> f64 {
        self.v
    }
    fn chain(self, f: f64, d1: f64, d2: f64) -> Self {
        let mut r = Self::cst(f);
        for i in 0..N {
            r.g[i] = d1 * self.g[i];
            for j in 0..N {
                r.h[i][j] = d2 * self.g[i] * self.g[j] + d1 * self.h[i][j];
            }
        }
        r
    }
}

impl<const N: usize> Add for D2<N> {
    type Output = Self;
    fn add(mut self, o: Self) -> Self {
        self.v += o.v;
        for i in 0..N {
            self.g[i] += o.g[i];
            for j in 0..N {
                self.h[i][j] += o.h[i][j];
            }
        }
        self
    }
}

impl<const N: usize> Sub for D2<N> {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        self + (-o)
    }
}

impl<const N: usize> Neg for D2<N> {
    type Output = Self;
    fn neg(mut self) -> Self {
        self.v = -self.v;
        for i in 0..N {
            self.g[i] = -self.g[i];
            for j in 0..N {
                self.h[i][j] = -self.h[i][j];
            }
        }
        self
    }
}

impl<const N: usize> Mul for D2<N> {
    type Output = Self;
    fn mul(self, o: Self) -> Self {
        let mut r = Self::cst(self.v * o.v);
        for i in 0..N {
            r.g[i] = self.g[i] * o.v + self.v * o.g[i];
            for j in 0..N {
                r.h[i][j] = self.h[i][j] * o.v
                    + self.v * o.h[i][j]
                    + self.g[i] * o.g[j]
                    + o.g[i] * self.g[j];
            }
        }
        r
    }
}

impl<const N: usize> Div for D2<N> {
    type Output = Self;
    fn div(self, o: Self) -> Self {
        let ov = o.v;
        self * o.chain(1.0 / ov, -1.0 / (ov * ov), 2.0 / (ov * ov * ov))
    }
}

impl<const N: usize> Add<f64> for D2<N> {
    type Output = Self;
    fn add(mut self, c: f64) -> Self {
        self.v += c;
        self
    }
}

impl<const N: usize> Sub<f64> for D2<N> {
    type Output = Self;
    fn sub(mut self, c: f64) -> Self {
        self.v -= c;
        self
    }
}

impl<const N: usize> Mul<f64> for D2<N> {
    type Output = Self;
    fn mul(mut self, c: f64) -> Self {
        self.v *= c;
        for i in 0..N {
            self.g[i] *= c;
            for j in 0..N {
                self.h[i][j] *= c;
            }
        }
        self
    }
}

impl<const N: usize> Div<f64> for D2<N> {
    type Output = Self;
    fn div(self, c: f64) -> Self {
        self * (1.0 / c)
    }
}

/// `expm1(e d) / e`, continuous at `e = 0` (where it is `d`).
pub fn expm1_over<R: Real>(e: R, d: R) -> R {
    let x = e.val() * d.val();
    if x.abs() < 1e-4 {
        // d (1 + x/2 + x^2/6 + x^3/24 + x^4/120), relative error below 1e-22
        let x = e * d;
        d * (((((x / 120.0 + 1.0 / 24.0) * x + 1.0 / 6.0) * x + 0.5) * x) + 1.0)
    } else {
        (e * d).exp_m1() / e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_quotients_and_functions_are_exact() {
        // f(a, b) = exp(a) * b / (1 + a^2) + erf(b) ln(b)
        let f = |a: D2<2>, b: D2<2>| a.exp() * b / (a * a + 1.0) + b.erf() * b.ln();
        let (a0, b0) = (0.3, 1.7);
        let r = f(D2::var(a0, 0), D2::var(b0, 1));
        let fv = |a: f64, b: f64| a.exp() * b / (a * a + 1.0) + libm::erf(b) * b.ln();
        assert!((r.v - fv(a0, b0)).abs() < 1e-15);
        let h = 1e-5;
        let ga = (fv(a0 + h, b0) - fv(a0 - h, b0)) / (2.0 * h);
        let gb = (fv(a0, b0 + h) - fv(a0, b0 - h)) / (2.0 * h);
        assert!((r.g[0] - ga).abs() < 1e-9 && (r.g[1] - gb).abs() < 1e-9);
        let hab = (fv(a0 + h, b0 + h) - fv(a0 + h, b0 - h) - fv(a0 - h, b0 + h)
            + fv(a0 - h, b0 - h))
            / (4.0 * h * h);
        assert!((r.h[0][1] - hab).abs() < 1e-5, "{} {}", r.h[0][1], hab);
        assert_eq!(r.h[0][1], r.h[1][0]);
    }

    #[test]
    fn expm1_over_is_continuous() {
        let d = 2.5;
        let at0 = expm1_over(0.0, d);
        assert_eq!(at0, d);
        let near: f64 = expm1_over(1e-9, d);
        assert!((near - d * (1.0 + 1e-9 * d / 2.0)).abs() < 1e-15);
        let far: f64 = expm1_over(0.3, d);
        assert!((far - ((0.3f64 * d).exp() - 1.0) / 0.3).abs() < 1e-14);
        // derivative in e at 0 is d^2 / 2
        let r = expm1_over(D2::<1>::var(0.0, 0), D2::cst(d));
        assert!((r.g[0] - d * d / 2.0).abs() < 1e-15);
        assert!((r.h[0][0] - d * d * d / 3.0).abs() < 1e-14);
    }
}
