//! pyhf's code 4 interpolation, per event.
//!
//! Inside `|alpha| < 1` code 4 is `1 + sum_j a_j alpha^j` (j = 1..6), with
//! `a = M b` for the fixed 6x6 matrix `M` of
//! [`crate::model::histfactory::interp`] and the boundary vector
//! `b = [k+ - 1, k- - 1, k+ ln k+, -k- ln k-, k+ ln^2 k+, k- ln^2 k-]`.
//! Regrouped, `g(alpha) = 1 + b . beta(alpha)` with `beta_m(alpha) =
//! sum_j M[j][m] alpha^(j+1)`: `beta` is the same for every event, so each
//! event costs three six-term dot products (value, first and second
//! derivative) and no transcendental function. Outside, `g = k+^alpha`
//! (`alpha >= 1`) or `k-^(-alpha)` (`alpha <= -1`), as pyhf.
//!
//! Events store `(k+, k-, ln k+, ln k-)`; the branch depends on alpha only,
//! so it is the same for every event of an evaluation.

use crate::model::histfactory::interp::code4_coefficients_matrix;

/// The event-independent part of code 4 at one alpha.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Code4At {
    /// `|alpha| < 1`: `g = 1 + b.beta`, `g' = b.beta1`, `g'' = b.beta2`.
    Poly {
        /// beta(alpha).
        beta: [f64; 6],
        /// d beta / d alpha.
        beta1: [f64; 6],
        /// d^2 beta / d alpha^2.
        beta2: [f64; 6],
    },
    /// `alpha >= 1`: `g = exp(alpha ln k+)`.
    Up(f64),
    /// `alpha <= -1`: `g = exp(-alpha ln k-)`.
    Down(f64),
}

impl Code4At {
    /// Precompute code 4 at `alpha`.
    pub fn new(alpha: f64) -> Self {
        if alpha >= 1.0 {
            return Code4At::Up(alpha);
        }
        if alpha <= -1.0 {
            return Code4At::Down(alpha);
        }
        let m = code4_coefficients_matrix();
        // powers alpha^1..alpha^6 and their derivatives
        let mut p = [0.0; 7];
        p[0] = 1.0;
        for j in 1..7 {
            p[j] = p[j - 1] * alpha;
        }
        let mut beta = [0.0; 6];
        let mut beta1 = [0.0; 6];
        let mut beta2 = [0.0; 6];
        for (j, row) in m.iter().enumerate() {
            // term a_j alpha^(j+1)
            let e = (j + 1) as f64;
            let v = p[j + 1];
            let d1 = e * p[j];
            let d2 = if j == 0 {
                0.0
            } else {
                e * (e - 1.0) * p[j - 1]
            };
            for (mm, coef) in row.iter().enumerate() {
                beta[mm] += coef * v;
                beta1[mm] += coef * d1;
                beta2[mm] += coef * d2;
            }
        }
        Code4At::Poly { beta, beta1, beta2 }
    }

    /// Value, first and second derivative of `g` for one event with ratios
    /// `kp`, `km` and their logarithms `lp`, `lm`.
    #[inline(always)]
    pub fn eval(&self, kp: f64, km: f64, lp: f64, lm: f64) -> (f64, f64, f64) {
        match *self {
            Code4At::Poly {
                ref beta,
                ref beta1,
                ref beta2,
            } => {
                let b = boundary(kp, km, lp, lm);
                let mut g = 1.0;
                let mut g1 = 0.0;
                let mut g2 = 0.0;
                for m in 0..6 {
                    g += b[m] * beta[m];
                    g1 += b[m] * beta1[m];
                    g2 += b[m] * beta2[m];
                }
                (g, g1, g2)
            }
            Code4At::Up(a) => {
                let g = (a * lp).exp();
                (g, lp * g, lp * lp * g)
            }
            Code4At::Down(a) => {
                let g = (-a * lm).exp();
                (g, -lm * g, lm * lm * g)
            }
        }
    }
}

/// The boundary vector `b` of one event.
#[inline(always)]
pub fn boundary(kp: f64, km: f64, lp: f64, lm: f64) -> [f64; 6] {
    let b2 = kp * lp;
    let b3 = -km * lm;
    [kp - 1.0, km - 1.0, b2, b3, b2 * lp, -b3 * lm]
}

/// `e^x` to about one unit in the last place, written so that a loop over
/// events vectorises (no branch, no table): `x = n ln 2 + r`, `|r| <= ln2 / 2`,
/// a degree-13 Taylor polynomial for `e^r`, and `2^n` through the exponent
/// bits. Exact to rounding for `|x| <= 708`; `x` is clamped to that range
/// (the per-event ratios are checked to have `|ln k| <= 700` when read).
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    const SHIFT: f64 = 6755399441055744.0; // 1.5 * 2^52: round to nearest integer
    const INV_LN2: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let x = x.clamp(-708.0, 708.0);
    let t = x.mul_add(INV_LN2, SHIFT);
    let n = t - SHIFT;
    let bits = t.to_bits() as i64 - SHIFT.to_bits() as i64;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let mut p: f64 = 1.0 / 6_227_020_800.0; // 1/13!
    for k in (1..13).rev() {
        p = p.mul_add(r, INV_FACT[k]);
    }
    p = p.mul_add(r, 1.0);
    p * f64::from_bits(((bits + 1023) as u64) << 52)
}

/// 1/k! for k = 0..12.
const INV_FACT: [f64; 13] = [
    1.0,
    1.0,
    0.5,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362880.0,
    1.0 / 3628800.0,
    1.0 / 39916800.0,
    1.0 / 479001600.0,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::histfactory::{Interp, InterpCode};

    #[test]
    fn equals_the_yield_code4_everywhere() {
        let ratios = [
            (1.3, 0.85),
            (0.7, 1.2),
            (1.0, 1.0),
            (2.5, 0.3),
            (1.01, 0.999),
        ];
        for &(kp, km) in &ratios {
            let ip = Interp::multiplicative(InterpCode::Code4, kp, km);
            for i in -40..=40 {
                let a = i as f64 * 0.1 + 0.003 * (i % 3) as f64;
                let (v, d1, d2) = ip.eval(a);
                let (g, g1, g2) = Code4At::new(a).eval(kp, km, f64::ln(kp), f64::ln(km));
                let tol = |x: f64| 1e-13 * (1.0 + x.abs());
                assert!((g - v).abs() < tol(v), "k+ {kp} k- {km} a {a}: {g} vs {v}");
                assert!((g1 - d1).abs() < tol(d1), "d1 at {a}: {g1} vs {d1}");
                assert!((g2 - d2).abs() < 10.0 * tol(d2), "d2 at {a}: {g2} vs {d2}");
            }
        }
    }

    #[test]
    fn fast_exp_is_accurate() {
        let mut worst: f64 = 0.0;
        for i in -200_000..=200_000 {
            let x = i as f64 * 3.3e-4 + 1e-7 * (i % 7) as f64;
            let (a, b) = (exp(x), x.exp());
            worst = worst.max((a - b).abs() / b);
        }
        for x in [
            -700.0, -300.5, -20.0, 20.0, 300.5, 700.0, 1e-300, -1e-300, 0.0,
        ] {
            let (a, b) = (exp(x), f64::exp(x));
            worst = worst.max((a - b).abs() / b);
        }
        assert!(worst < 4.5e-16, "worst relative error {worst:e}");
        assert_eq!(exp(1000.0), exp(708.0));
    }

    #[test]
    fn boundaries_are_exact() {
        let (kp, km) = (1.37_f64, 0.81_f64);
        let (lp, lm) = (kp.ln(), km.ln());
        let at = |a: f64| Code4At::new(a).eval(kp, km, lp, lm).0;
        assert!((at(0.0) - 1.0).abs() < 1e-15);
        assert!((at(1.0 - 1e-12) - kp).abs() < 1e-11);
        assert!((at(-1.0 + 1e-12) - km).abs() < 1e-11);
        assert_eq!(at(1.0), kp.powf(1.0));
    }
}
