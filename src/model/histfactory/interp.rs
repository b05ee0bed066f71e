//! Interpolation codes 0, 1, 2, 4 and 4p, with exact first and second derivatives.
//!
//! Each code interpolates a value `I(alpha)` through `I(-1) = I-`, `I(0) = I0`
//! and `I(+1) = I+`. Additive codes (0, 2, 4p) produce the difference
//! `I(alpha) - I0`; multiplicative codes (1, 4) produce the ratio `I(alpha) / I0`.
//! [`Interp`] stores the precomputed coefficients of one (modifier, bin) pair and
//! an affine map `offset + scale * raw` that turns the code's native output into
//! what the model needs (a factor for normsys, an additive delta for histosys).

use std::fmt;
use std::str::FromStr;

/// Interpolation code, as in HistFactory and pyhf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InterpCode {
    /// Piecewise linear (additive).
    Code0,
    /// Piecewise exponential (multiplicative).
    Code1,
    /// Quadratic inside |alpha| <= 1, linear outside (additive), continuous form.
    Code2,
    /// Polynomial inside |alpha| < 1, exponential outside (multiplicative).
    Code4,
    /// Polynomial inside |alpha| <= 1, linear outside (additive).
    Code4p,
}

impl InterpCode {
    /// True for the codes that interpolate ratios (1 and 4).
    pub fn is_multiplicative(self) -> bool {
        matches!(self, InterpCode::Code1 | InterpCode::Code4)
    }
}

impl fmt::Display for InterpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InterpCode::Code0 => "code0",
            InterpCode::Code1 => "code1",
            InterpCode::Code2 => "code2",
            InterpCode::Code4 => "code4",
            InterpCode::Code4p => "code4p",
        })
    }
}

impl FromStr for InterpCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "code0" | "0" => Ok(InterpCode::Code0),
            "code1" | "1" => Ok(InterpCode::Code1),
            "code2" | "2" => Ok(InterpCode::Code2),
            "code4" | "4" => Ok(InterpCode::Code4),
            "code4p" | "4p" => Ok(InterpCode::Code4p),
            other => Err(format!(
                "unknown interpolation code '{other}' (expected code0, code1, code2, code4 or code4p)"
            )),
        }
    }
}

/// Inverse of the 6x6 system that fixes the code-4 polynomial coefficients
/// from value, first and second derivative of the exponential at alpha = +-1.
/// Columns multiply `[k+ - 1, k- - 1, k+ ln k+, -k- ln k-, k+ ln^2 k+, k- ln^2 k-]`.
const CODE4_AINV: [[f64; 6]; 6] = [
    [
        15.0 / 16.0,
        -15.0 / 16.0,
        -7.0 / 16.0,
        -7.0 / 16.0,
        1.0 / 16.0,
        -1.0 / 16.0,
    ],
    [
        3.0 / 2.0,
        3.0 / 2.0,
        -9.0 / 16.0,
        9.0 / 16.0,
        1.0 / 16.0,
        1.0 / 16.0,
    ],
    [
        -5.0 / 8.0,
        5.0 / 8.0,
        5.0 / 8.0,
        5.0 / 8.0,
        -1.0 / 8.0,
        1.0 / 8.0,
    ],
    [
        -3.0 / 2.0,
        -3.0 / 2.0,
        7.0 / 8.0,
        -7.0 / 8.0,
        -1.0 / 8.0,
        -1.0 / 8.0,
    ],
    [
        3.0 / 16.0,
        -3.0 / 16.0,
        -3.0 / 16.0,
        -3.0 / 16.0,
        1.0 / 16.0,
        -1.0 / 16.0,
    ],
    [
        1.0 / 2.0,
        1.0 / 2.0,
        -5.0 / 16.0,
        5.0 / 16.0,
        1.0 / 16.0,
        1.0 / 16.0,
    ],
];

/// The matrix that maps the boundary conditions to the code-4 coefficients.
pub fn code4_coefficients_matrix() -> [[f64; 6]; 6] {
    CODE4_AINV
}

/// The code-4 polynomial coefficients a_1..a_6 for ratios `kp`, `km` (both > 0).
pub fn code4_coefficients(kp: f64, km: f64) -> [f64; 6] {
    let (lp, lm) = (kp.ln(), km.ln());
    let b = [
        kp - 1.0,
        km - 1.0,
        kp * lp,
        -km * lm,
        kp * lp * lp,
        km * lm * lm,
    ];
    let mut a = [0.0; 6];
    for (r, row) in CODE4_AINV.iter().enumerate() {
        a[r] = row.iter().zip(b.iter()).map(|(x, y)| x * y).sum();
    }
    a
}

/// Precomputed interpolation of one (modifier, bin).
///
/// Coefficient layout in `c` by code:
/// - code0: `[d+, d-]`
/// - code1: `[ln k+, ln k-]`
/// - code2: `[a, b]` with a = (d+ - d-)/2, b = (d+ + d-)/2
/// - code4: `[ln k+, ln k-, a1..a6]`
/// - code4p: `[d+, d-, S, A]`
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interp {
    /// The code.
    pub code: InterpCode,
    /// Output is `offset + scale * raw`.
    pub offset: f64,
    /// See `offset`.
    pub scale: f64,
    c: [f64; 8],
}

impl Interp {
    /// Additive code from the deltas `d+ = I+ - I0` and `d- = I0 - I-`.
    pub fn additive(code: InterpCode, dp: f64, dm: f64) -> Self {
        let mut c = [0.0; 8];
        match code {
            InterpCode::Code0 => {
                c[0] = dp;
                c[1] = dm;
            }
            InterpCode::Code2 => {
                c[0] = 0.5 * (dp - dm);
                c[1] = 0.5 * (dp + dm);
            }
            InterpCode::Code4p => {
                c[0] = dp;
                c[1] = dm;
                c[2] = 0.5 * (dp + dm);
                c[3] = 0.0625 * (dp - dm);
            }
            _ => panic!("additive() called with multiplicative code {code}"),
        }
        Interp {
            code,
            offset: 0.0,
            scale: 1.0,
            c,
        }
    }

    /// Multiplicative code from the ratios `k+ = I+/I0`, `k- = I-/I0` (both must be > 0).
    pub fn multiplicative(code: InterpCode, kp: f64, km: f64) -> Self {
        let mut c = [0.0; 8];
        c[0] = kp.ln();
        c[1] = km.ln();
        match code {
            InterpCode::Code1 => {}
            InterpCode::Code4 => {
                let a = code4_coefficients(kp, km);
                c[2..8].copy_from_slice(&a);
            }
            _ => panic!("multiplicative() called with additive code {code}"),
        }
        Interp {
            code,
            offset: 0.0,
            scale: 1.0,
            c,
        }
    }

    /// Apply the output map `offset + scale * raw`.
    pub fn with_map(mut self, offset: f64, scale: f64) -> Self {
        self.offset = offset;
        self.scale = scale;
        self
    }

    /// Raw coefficients (see the type docs for the layout).
    pub fn coefficients(&self) -> &[f64; 8] {
        &self.c
    }

    /// Value and first two derivatives with respect to alpha.
    #[inline(always)]
    pub fn eval(&self, a: f64) -> (f64, f64, f64) {
        let (v, d1, d2) = self.raw(a);
        (
            self.offset + self.scale * v,
            self.scale * d1,
            self.scale * d2,
        )
    }

    /// Value only.
    #[inline(always)]
    pub fn value(&self, a: f64) -> f64 {
        self.offset + self.scale * self.raw_value(a)
    }

    #[inline(always)]
    fn raw_value(&self, a: f64) -> f64 {
        let c = &self.c;
        match self.code {
            InterpCode::Code0 => {
                if a >= 0.0 {
                    a * c[0]
                } else {
                    a * c[1]
                }
            }
            InterpCode::Code1 => {
                if a >= 0.0 {
                    (a * c[0]).exp()
                } else {
                    (-a * c[1]).exp()
                }
            }
            InterpCode::Code2 => {
                let (qa, qb) = (c[0], c[1]);
                if a > 1.0 {
                    (qb + 2.0 * qa) * (a - 1.0) + qa + qb
                } else if a < -1.0 {
                    (qb - 2.0 * qa) * (a + 1.0) + qa - qb
                } else {
                    a * (qa * a + qb)
                }
            }
            InterpCode::Code4 => {
                if a >= 1.0 {
                    (a * c[0]).exp()
                } else if a <= -1.0 {
                    (-a * c[1]).exp()
                } else {
                    1.0 + a * (c[2] + a * (c[3] + a * (c[4] + a * (c[5] + a * (c[6] + a * c[7])))))
                }
            }
            InterpCode::Code4p => {
                if a > 1.0 {
                    a * c[0]
                } else if a < -1.0 {
                    a * c[1]
                } else {
                    let a2 = a * a;
                    a * (c[2] + a * c[3] * (15.0 + a2 * (-10.0 + a2 * 3.0)))
                }
            }
        }
    }

    #[inline(always)]
    fn raw(&self, a: f64) -> (f64, f64, f64) {
        let c = &self.c;
        match self.code {
            InterpCode::Code0 => {
                let d = if a >= 0.0 { c[0] } else { c[1] };
                (a * d, d, 0.0)
            }
            InterpCode::Code1 => {
                let l = if a >= 0.0 { c[0] } else { -c[1] };
                let v = (a * l).exp();
                (v, l * v, l * l * v)
            }
            InterpCode::Code2 => {
                let (qa, qb) = (c[0], c[1]);
                if a > 1.0 {
                    let s = qb + 2.0 * qa;
                    (s * (a - 1.0) + qa + qb, s, 0.0)
                } else if a < -1.0 {
                    let s = qb - 2.0 * qa;
                    (s * (a + 1.0) + qa - qb, s, 0.0)
                } else {
                    (a * (qa * a + qb), 2.0 * qa * a + qb, 2.0 * qa)
                }
            }
            InterpCode::Code4 => {
                if a >= 1.0 || a <= -1.0 {
                    let l = if a >= 1.0 { c[0] } else { -c[1] };
                    let v = (a * l).exp();
                    (v, l * v, l * l * v)
                } else {
                    let p = &c[2..8];
                    let v = 1.0
                        + a * (p[0] + a * (p[1] + a * (p[2] + a * (p[3] + a * (p[4] + a * p[5])))));
                    let d1 = p[0]
                        + a * (2.0 * p[1]
                            + a * (3.0 * p[2]
                                + a * (4.0 * p[3] + a * (5.0 * p[4] + a * 6.0 * p[5]))));
                    let d2 = 2.0 * p[1]
                        + a * (6.0 * p[2]
                            + a * (12.0 * p[3] + a * (20.0 * p[4] + a * 30.0 * p[5])));
                    (v, d1, d2)
                }
            }
            InterpCode::Code4p => {
                if a > 1.0 {
                    (a * c[0], c[0], 0.0)
                } else if a < -1.0 {
                    (a * c[1], c[1], 0.0)
                } else {
                    let (s, aa) = (c[2], c[3]);
                    let a2 = a * a;
                    let v = a * (s + a * aa * (15.0 + a2 * (-10.0 + a2 * 3.0)));
                    let d1 = s + aa * a * (30.0 + a2 * (-40.0 + a2 * 18.0));
                    let d2 = aa * (30.0 + a2 * (-120.0 + a2 * 90.0));
                    (v, d1, d2)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd_check(ip: &Interp, a: f64) {
        let h = 1e-5;
        let (v, d1, d2) = ip.eval(a);
        assert_eq!(v, ip.value(a));
        let (vp, d1p, _) = ip.eval(a + h);
        let (vm, d1m, _) = ip.eval(a - h);
        let fd1 = (vp - vm) / (2.0 * h);
        let fd2 = (d1p - d1m) / (2.0 * h);
        assert!(
            (fd1 - d1).abs() < 1e-6 * (1.0 + d1.abs()),
            "d1 {d1} vs {fd1} at {a} ({:?})",
            ip.code
        );
        assert!(
            (fd2 - d2).abs() < 1e-5 * (1.0 + d2.abs()),
            "d2 {d2} vs {fd2} at {a} ({:?})",
            ip.code
        );
    }

    #[test]
    fn derivatives_match_finite_differences() {
        let codes = [
            Interp::additive(InterpCode::Code0, 0.3, 0.2),
            Interp::additive(InterpCode::Code2, 0.5, -0.1),
            Interp::additive(InterpCode::Code4p, 0.5, 0.1),
            Interp::multiplicative(InterpCode::Code1, 1.2, 0.7),
            Interp::multiplicative(InterpCode::Code4, 1.3, 0.85),
        ];
        for ip in &codes {
            for &a in &[-3.0, -1.5, -0.7, -0.2, 0.13, 0.5, 0.99, 1.6, 2.4] {
                fd_check(ip, a);
            }
        }
    }

    #[test]
    fn code4_matches_exponential_to_second_order_at_boundaries() {
        let (kp, km) = (1.37, 0.81);
        let ip = Interp::multiplicative(InterpCode::Code4, kp, km);
        let p = &ip.coefficients()[2..8];
        let poly = |a: f64| 1.0 + (0..6).map(|i| p[i] * a.powi(i as i32 + 1)).sum::<f64>();
        let dpoly = |a: f64| {
            (0..6)
                .map(|i| (i as f64 + 1.0) * p[i] * a.powi(i as i32))
                .sum::<f64>()
        };
        let ddpoly = |a: f64| {
            (1..6)
                .map(|i| (i as f64 + 1.0) * i as f64 * p[i] * a.powi(i as i32 - 1))
                .sum::<f64>()
        };
        let (lp, lm) = (kp.ln(), km.ln());
        assert!((poly(1.0) - kp).abs() < 1e-14);
        assert!((poly(-1.0) - km).abs() < 1e-14);
        assert!((dpoly(1.0) - kp * lp).abs() < 1e-14);
        assert!((dpoly(-1.0) + km * lm).abs() < 1e-14);
        assert!((ddpoly(1.0) - kp * lp * lp).abs() < 1e-14);
        assert!((ddpoly(-1.0) - km * lm * lm).abs() < 1e-14);
    }

    #[test]
    fn code2_is_continuous_and_code4p_hits_the_templates() {
        let ip = Interp::additive(InterpCode::Code2, 0.5, 0.4);
        for &b in &[-1.0, 1.0] {
            let (l, r) = (ip.value(b - 1e-9), ip.value(b + 1e-9));
            assert!((l - r).abs() < 1e-8, "jump at {b}: {l} vs {r}");
        }
        assert!((ip.value(1.0) - 0.5).abs() < 1e-15);
        assert!((ip.value(-1.0) + 0.4).abs() < 1e-15);
        let ip = Interp::additive(InterpCode::Code4p, 0.5, 0.4);
        assert!((ip.value(1.0) - 0.5).abs() < 1e-15);
        assert!((ip.value(-1.0) + 0.4).abs() < 1e-15);
        assert_eq!(ip.value(0.0), 0.0);
    }

    #[test]
    fn parse_codes() {
        assert_eq!("code4p".parse::<InterpCode>().unwrap(), InterpCode::Code4p);
        assert_eq!("CODE1".parse::<InterpCode>().unwrap(), InterpCode::Code1);
        assert!("code3".parse::<InterpCode>().is_err());
    }
}
