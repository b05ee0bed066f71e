//! Upper limits: the POI value where CLs falls to `1 - CL`, observed and for
//! each expected band, by Brent's bracketing root finder (pyhf uses TOMS 748,
//! another bracketing method; both converge to the same root) or by a linear
//! scan with interpolation.
//!
//! CLs evaluations are cached, so the six root searches share their fits.

use super::asymptotic::{AsymptoticCalculator, HypoTest};
use crate::error::{Error, Result};
use crate::model::Likelihood;
use serde::Serialize;
use std::cell::RefCell;

/// How to find the limits.
#[derive(Debug, Clone)]
pub enum LimitMethod {
    /// Bracketing root finder on `[lo, hi]` with relative tolerance `rtol`.
    Bracket {
        /// Lower end of the bracket.
        lo: f64,
        /// Upper end.
        hi: f64,
        /// Relative tolerance on the POI.
        rtol: f64,
    },
    /// Evaluate CLs on a grid and interpolate linearly at the crossing.
    Scan {
        /// Grid of POI values, increasing.
        grid: Vec<f64>,
    },
}

/// Observed and expected upper limits.
#[derive(Debug, Clone, Serialize)]
pub struct UpperLimit {
    /// Confidence level.
    pub cl: f64,
    /// Observed limit (None when CLs does not cross `1 - cl` in the range).
    pub obs: Option<f64>,
    /// Expected limits, -2 sigma first.
    pub exp: [Option<f64>; 5],
    /// Every CLs evaluation made, sorted by POI value.
    pub points: Vec<HypoTest>,
    /// Explanations for limits that could not be found.
    pub messages: Vec<String>,
}

/// Brent's method for `f(x) = 0` on `[a, b]` with `f(a) f(b) <= 0`.
pub fn brent(
    mut f: impl FnMut(f64) -> Result<f64>,
    mut a: f64,
    mut b: f64,
    fa: f64,
    fb: f64,
    rtol: f64,
) -> Result<f64> {
    let (mut fa, mut fb) = (fa, fb);
    if fa == 0.0 {
        return Ok(a);
    }
    if fb == 0.0 {
        return Ok(b);
    }
    if fa * fb > 0.0 {
        return Err(Error::Numerical(
            "brent: the bracket does not change sign".into(),
        ));
    }
    let mut c = a;
    let mut fc = fa;
    let mut d = b - a;
    let mut e = d;
    for _ in 0..200 {
        if fb * fc > 0.0 {
            c = a;
            fc = fa;
            d = b - a;
            e = d;
        }
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol = 2.0 * f64::EPSILON * b.abs() + 0.5 * rtol * b.abs().max(1e-12);
        let m = 0.5 * (c - b);
        if m.abs() <= tol || fb == 0.0 {
            return Ok(b);
        }
        if e.abs() >= tol && fa.abs() > fb.abs() {
            let s = fb / fa;
            let (mut p, mut q);
            if a == c {
                p = 2.0 * m * s;
                q = 1.0 - s;
            } else {
                let qq = fa / fc;
                let r = fb / fc;
                p = s * (2.0 * m * qq * (qq - r) - (b - a) * (r - 1.0));
                q = (qq - 1.0) * (r - 1.0) * (s - 1.0);
            }
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if 2.0 * p < (3.0 * m * q - (tol * q).abs()).min((e * q).abs()) {
                e = d;
                d = p / q;
            } else {
                d = m;
                e = m;
            }
        } else {
            d = m;
            e = m;
        }
        a = b;
        fa = fb;
        b += if d.abs() > tol { d } else { tol.copysign(m) };
        fb = f(b)?;
    }
    Err(Error::Numerical(
        "brent: no convergence in 200 iterations".into(),
    ))
}

/// Which CLs value a root search follows.
#[derive(Clone, Copy)]
enum Band {
    Obs,
    Exp(usize),
}

fn cls_of(h: &HypoTest, band: Band) -> f64 {
    match band {
        Band::Obs => h.cls_obs,
        Band::Exp(k) => h.cls_exp[k],
    }
}

/// Upper limits at confidence level `cl` with the asymptotic calculator.
pub fn upper_limit<L: Likelihood>(
    calc: &AsymptoticCalculator<L>,
    cl: f64,
    method: &LimitMethod,
) -> Result<UpperLimit> {
    if !(cl > 0.0 && cl < 1.0) {
        return Err(Error::input(format!(
            "confidence level must lie in (0, 1), got {cl}"
        )));
    }
    let alpha = 1.0 - cl;
    let cache: RefCell<Vec<HypoTest>> = RefCell::new(Vec::new());
    let eval = |mu: f64| -> Result<HypoTest> {
        if let Some(h) = cache.borrow().iter().find(|h| h.mu == mu) {
            return Ok(h.clone());
        }
        let h = calc.hypotest(mu)?;
        cache.borrow_mut().push(h.clone());
        Ok(h)
    };
    let mut messages = Vec::new();
    let bands = [
        Band::Obs,
        Band::Exp(0),
        Band::Exp(1),
        Band::Exp(2),
        Band::Exp(3),
        Band::Exp(4),
    ];
    let mut found = [None; 6];
    match method {
        LimitMethod::Bracket { lo, hi, rtol } => {
            if !(lo < hi) {
                return Err(Error::input(format!("empty bracket [{lo}, {hi}]")));
            }
            let hlo = eval(*lo)?;
            let hhi = eval(*hi)?;
            for (k, band) in bands.iter().enumerate() {
                let flo = cls_of(&hlo, *band) - alpha;
                let fhi = cls_of(&hhi, *band) - alpha;
                let name = band_name(*band);
                if !(flo.is_finite() && fhi.is_finite()) {
                    messages.push(format!(
                        "{name}: CLs is not a number at an end of the bracket [{lo}, {hi}]; no limit"
                    ));
                    continue;
                }
                if flo < 0.0 && fhi < 0.0 {
                    messages.push(format!("{name}: CLs < {} already at the lower end {lo}; the limit lies below the range", round_alpha(alpha)));
                    continue;
                }
                if flo > 0.0 && fhi > 0.0 {
                    messages.push(format!("{name}: CLs > {} still at the upper end {hi}; the limit lies above the range", round_alpha(alpha)));
                    continue;
                }
                let root = brent(
                    |mu| {
                        let v = cls_of(&eval(mu)?, *band) - alpha;
                        if v.is_finite() {
                            Ok(v)
                        } else {
                            Err(Error::Numerical(format!(
                                "{name}: CLs at mu = {mu} is not a number"
                            )))
                        }
                    },
                    *lo,
                    *hi,
                    flo,
                    fhi,
                    *rtol,
                )?;
                found[k] = Some(root);
            }
        }
        LimitMethod::Scan { grid } => {
            if grid.len() < 2 || grid.windows(2).any(|w| !(w[0] < w[1])) {
                return Err(Error::input(
                    "the scan grid needs at least two increasing POI values",
                ));
            }
            let pts: Vec<HypoTest> = grid.iter().map(|&mu| eval(mu)).collect::<Result<_>>()?;
            for (k, band) in bands.iter().enumerate() {
                let v: Vec<f64> = pts.iter().map(|h| cls_of(h, *band) - alpha).collect();
                let cross = v.windows(2).position(|w| w[0] >= 0.0 && w[1] < 0.0);
                match cross {
                    Some(i) => {
                        let (x0, x1) = (grid[i], grid[i + 1]);
                        let (y0, y1) = (v[i], v[i + 1]);
                        found[k] = Some(x0 + (x1 - x0) * y0 / (y0 - y1));
                    }
                    None => messages.push(format!(
                        "{}: CLs does not cross {} on the scanned grid [{}, {}]",
                        band_name(*band),
                        round_alpha(alpha),
                        grid[0],
                        grid[grid.len() - 1]
                    )),
                }
            }
        }
    }
    let mut points = cache.into_inner();
    points.sort_by(|a, b| a.mu.total_cmp(&b.mu));
    Ok(UpperLimit {
        cl,
        obs: found[0],
        exp: [found[1], found[2], found[3], found[4], found[5]],
        points,
        messages,
    })
}

/// 1 - CL for messages, without the rounding noise of the subtraction.
fn round_alpha(alpha: f64) -> f64 {
    (alpha * 1e12).round() / 1e12
}

fn band_name(b: Band) -> String {
    match b {
        Band::Obs => "observed".into(),
        Band::Exp(2) => "expected median".into(),
        Band::Exp(k) => format!("expected {:+} sigma", k as i32 - 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brent_finds_roots() {
        let f = |x: f64| Ok(x * x * x - 2.0 * x - 5.0);
        let r = brent(f, 2.0, 3.0, f(2.0).unwrap(), f(3.0).unwrap(), 1e-12).unwrap();
        assert!((r - 2.0945514815423265).abs() < 1e-11);
        let g = |x: f64| Ok((-x).exp() - 0.05);
        let r = brent(g, 0.0, 10.0, g(0.0).unwrap(), g(10.0).unwrap(), 1e-10).unwrap();
        assert!((r - 20f64.ln()).abs() < 1e-9);
        assert!(brent(g, 0.0, 1.0, g(0.0).unwrap(), g(1.0).unwrap(), 1e-10).is_err());
    }
}
