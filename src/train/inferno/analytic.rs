//! The true likelihood's figure of INFERNO's benchmark: the expected
//! uncertainty of s from the unbinned extended likelihood of the known
//! densities, as the half width of its profile interval on Asimov data (the
//! figure the networks are measured by), and as the first-order equivalent
//! from the Fisher information.
//!
//! Both integrate over the nominal signal + background mixture by Monte
//! Carlo: `n` events drawn from a seeded Philox stream, each weighted by
//! `(s + b) / n`, stand for the Asimov data set. The expected twice_nll is
//!
//! ```text
//! twice_nll(s, r, lambda, b) = 2 (s + b) - 2 w sum_i ln(s f_s(x_i) + b f_b(x_i; r, lambda))
//!                              + sum_k ((theta_k - theta_k0) / sigma_k)^2   (constrained nuisances)
//! ```
//!
//! with `f_s`, `f_b` the normalised signal and background densities. The
//! profile fits minimise it over the benchmark's free nuisances by Newton
//! steps on its exact gradient and Hessian.

use super::{Benchmark, LAMBDA0, Nuisance, R0};
use crate::error::{Error, Result};
use crate::fit::linalg::Chol;
use crate::rng::Stream;
use std::f64::consts::PI;

/// Parameters of the true likelihood, in this order.
const S: usize = 0;
const R: usize = 1;
const L: usize = 2;
const B: usize = 3;

/// Events of the nominal mixture and the Asimov weight of each.
struct Sample {
    /// (x0, x1, x2) per event.
    x: Vec<[f64; 3]>,
    /// The normalised signal density at each event (it depends on no parameter).
    fs: Vec<f64>,
    /// `(s + b) / n`.
    w: f64,
}

fn gauss(x: f64, m: f64, v: f64) -> f64 {
    (-(x - m) * (x - m) / (2.0 * v)).exp() / (2.0 * PI * v).sqrt()
}

fn f_sig(x: &[f64; 3]) -> f64 {
    gauss(x[0], 0.0, 1.0) * gauss(x[1], 0.0, 1.0) * 2.0 * (-2.0 * x[2]).exp()
}

fn f_bkg(x: &[f64; 3], r: f64, lambda: f64) -> f64 {
    gauss(x[0], r, 5.0) * gauss(x[1], 0.0, 9.0) * lambda * (-lambda * x[2]).exp()
}

impl Sample {
    fn draw(s: f64, b: f64, n: usize, seed: u64) -> Sample {
        let mut st = Stream::new(seed, 7, 0x616e_6131, 0);
        let frac_s = s / (s + b);
        let x: Vec<[f64; 3]> = (0..n)
            .map(|_| {
                if st.uniform() < frac_s {
                    [st.normal(), st.normal(), -(1.0 - st.uniform()).ln() / 2.0]
                } else {
                    [
                        R0 + 5f64.sqrt() * st.normal(),
                        3.0 * st.normal(),
                        -(1.0 - st.uniform()).ln() / LAMBDA0,
                    ]
                }
            })
            .collect();
        let fs = x.iter().map(f_sig).collect();
        Sample {
            x,
            fs,
            w: (s + b) / n as f64,
        }
    }
}

/// The benchmark's nuisances: which are free, their constraint widths and nominal values.
struct Problem {
    free: [bool; 4],
    width: [Option<f64>; 4],
    nominal: [f64; 4],
}

impl Problem {
    fn new(bm: &Benchmark, s: f64, b: f64) -> Problem {
        let nu = |n: Nuisance| -> (bool, Option<f64>) {
            match n {
                Nuisance::Fixed => (false, None),
                Nuisance::Free => (true, None),
                Nuisance::Constrained(w) => (true, Some(w)),
            }
        };
        let (fr, wr) = nu(bm.r);
        let (fl, wl) = nu(bm.lambda);
        Problem {
            free: [true, fr, fl, bm.b_sigma.is_some()],
            width: [None, wr, wl, bm.b_sigma.map(|k| k * b)],
            nominal: [s, R0, LAMBDA0, b],
        }
    }

    /// twice_nll, its gradient and Hessian (4 x 4, row-major) at `t`.
    fn eval(&self, d: &Sample, t: &[f64; 4]) -> (f64, [f64; 4], [f64; 16]) {
        let (s, r, l, b) = (t[S], t[R], t[L], t[B]);
        let mut sum_ln = 0.0;
        let mut g = [0.0; 4];
        let mut h = [0.0; 16];
        for (x, &fs) in d.x.iter().zip(&d.fs) {
            let fb = f_bkg(x, r, l);
            let lam = s * fs + b * fb;
            let u = (x[0] - r) / 5.0;
            let v = 1.0 / l - x[2];
            // first and second derivatives of lambda
            let d1 = [fs, b * fb * u, b * fb * v, fb];
            let mut d2 = [0.0; 16];
            d2[R * 4 + R] = b * fb * (u * u - 0.2);
            d2[R * 4 + L] = b * fb * u * v;
            d2[L * 4 + L] = b * fb * (v * v - 1.0 / (l * l));
            d2[B * 4 + R] = fb * u;
            d2[B * 4 + L] = fb * v;
            d2[L * 4 + R] = d2[R * 4 + L];
            d2[R * 4 + B] = d2[B * 4 + R];
            d2[L * 4 + B] = d2[B * 4 + L];
            sum_ln += lam.ln();
            let il = 1.0 / lam;
            for j in 0..4 {
                g[j] += d1[j] * il;
                for k in 0..4 {
                    h[j * 4 + k] += d2[j * 4 + k] * il - d1[j] * d1[k] * il * il;
                }
            }
        }
        let mut f = 2.0 * (s + b) - 2.0 * d.w * sum_ln;
        for v in g.iter_mut() {
            *v *= -2.0 * d.w;
        }
        g[S] += 2.0;
        g[B] += 2.0;
        for v in h.iter_mut() {
            *v *= -2.0 * d.w;
        }
        for k in 0..4 {
            if let Some(w) = self.width[k] {
                let z = (t[k] - self.nominal[k]) / w;
                f += z * z;
                g[k] += 2.0 * z / w;
                h[k * 4 + k] += 2.0 / (w * w);
            }
        }
        (f, g, h)
    }

    /// Minimise over the free parameters of `mask` from `t` (Newton with
    /// step halving); the minimum value and point.
    fn minimise(&self, d: &Sample, mut t: [f64; 4], mask: [bool; 4]) -> Result<(f64, [f64; 4])> {
        let idx: Vec<usize> = (0..4).filter(|&k| mask[k]).collect();
        let m = idx.len();
        let mut chol = Chol::new(4);
        let (mut f, mut g, mut h) = self.eval(d, &t);
        for _ in 0..100 {
            if !chol.factor(m, |i, j| h[idx[i] * 4 + idx[j]]) {
                return Err(Error::Numerical(
                    "the true likelihood's Hessian is not positive definite".into(),
                ));
            }
            let mut step: Vec<f64> = idx.iter().map(|&k| -g[k]).collect();
            chol.solve(&mut step);
            let decrement: f64 = -idx.iter().zip(&step).map(|(&k, s)| g[k] * s).sum::<f64>();
            if decrement < 1e-12 {
                return Ok((f, t));
            }
            let mut a = 1.0;
            loop {
                let mut tn = t;
                for (&k, s) in idx.iter().zip(&step) {
                    tn[k] += a * s;
                }
                if tn[L] > 0.0 && tn[B] > 0.0 && tn[S] > -tn[B] {
                    let (fn_, gn, hn) = self.eval(d, &tn);
                    if fn_.is_finite() && fn_ <= f + 1e-12 * f.abs() {
                        (f, g, h, t) = (fn_, gn, hn, tn);
                        break;
                    }
                }
                a *= 0.5;
                if a < 1e-10 {
                    // no decrease along the Newton step: at the minimum to
                    // rounding, or a failure that must not pass as a minimum
                    if decrement < 1e-8 * (1.0 + f.abs()) {
                        return Ok((f, t));
                    }
                    return Err(Error::Numerical(format!(
                        "the true likelihood's profile fit stalled (Newton decrement {decrement:.3e})"
                    )));
                }
            }
        }
        Err(Error::Numerical(
            "the true likelihood's profile fit did not converge in 100 Newton steps".into(),
        ))
    }
}

/// Expected uncertainty of s from the true likelihood: the half width of the
/// profile interval of s (twice_nll rises by 1) on the Asimov data, the
/// benchmark's free nuisances profiled, by Monte Carlo over `n` events of
/// the nominal mixture.
pub fn analytic_profile_sigma_s(
    bm: &Benchmark,
    s: f64,
    b: f64,
    n: usize,
    seed: u64,
) -> Result<f64> {
    let d = Sample::draw(s, b, n, seed);
    let p = Problem::new(bm, s, b);
    let (fmin, tmin) = p.minimise(&d, p.nominal, p.free)?;
    let mut mask = p.free;
    mask[S] = false;
    let prof = |sv: f64| -> Result<f64> {
        let mut t = tmin;
        t[S] = sv;
        Ok(p.minimise(&d, t, mask)?.0 - fmin - 1.0)
    };
    // a first guess of the width from the curvature at the minimum
    let (_, _, h) = p.eval(&d, &tmin);
    let guess = (2.0 / h[0]).sqrt();
    let mut ends = [0.0; 2];
    for (j, dir) in [-1.0f64, 1.0].into_iter().enumerate() {
        let (mut a, mut fa) = (tmin[S], -1.0);
        let mut step = guess;
        let mut bnd = tmin[S] + dir * step;
        let mut fb = prof(bnd)?;
        let mut tries = 0;
        while fb < 0.0 {
            tries += 1;
            if tries > 40 {
                return Err(Error::Numerical(
                    "the true likelihood's profile does not rise by 1".into(),
                ));
            }
            (a, fa) = (bnd, fb);
            step *= 1.6;
            bnd = tmin[S] + dir * step;
            fb = prof(bnd)?;
        }
        ends[j] = crate::infer::limits::brent(prof, a, bnd, fa, fb, 1e-10)?;
    }
    Ok((ends[1] - ends[0]) / 2.0)
}

/// First-order equivalent of [`analytic_profile_sigma_s`]: `sqrt([I^-1]_ss)`
/// from the Fisher information of the true likelihood at the nominal point,
/// `I_ij = int d_i lambda d_j lambda / lambda dx` (by Monte Carlo over the
/// same `n` events), plus the constraint terms.
pub fn analytic_sigma_s(bm: &Benchmark, s: f64, b: f64, n: usize, seed: u64) -> Result<f64> {
    let d = Sample::draw(s, b, n, seed);
    let p = Problem::new(bm, s, b);
    let t = p.nominal;
    let idx: Vec<usize> = (0..4).filter(|&k| p.free[k]).collect();
    let m = idx.len();
    let mut info = vec![0.0; m * m];
    for (x, &fs) in d.x.iter().zip(&d.fs) {
        let fb = f_bkg(x, t[R], t[L]);
        let lam = t[S] * fs + t[B] * fb;
        let d1 = [
            fs,
            t[B] * fb * (x[0] - t[R]) / 5.0,
            t[B] * fb * (1.0 / t[L] - x[2]),
            fb,
        ];
        for i in 0..m {
            for j in 0..m {
                info[i * m + j] += d1[idx[i]] * d1[idx[j]] / (lam * lam);
            }
        }
    }
    for v in info.iter_mut() {
        *v *= d.w;
    }
    for (i, &k) in idx.iter().enumerate() {
        if let Some(w) = p.width[k] {
            info[i * m + i] += 1.0 / (w * w);
        }
    }
    let mut chol = Chol::new(m);
    if !chol.factor(m, |i, j| info[i * m + j]) {
        return Err(Error::Numerical(
            "analytic Fisher information not positive definite".into(),
        ));
    }
    let mut inv = vec![0.0; m * m];
    chol.inverse(&mut inv);
    Ok(inv[0].sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The profile width agrees with the Fisher figure to first order, and
    /// the analytic gradient and Hessian agree with finite differences.
    #[test]
    fn profile_width_near_fisher_and_derivatives_exact() {
        let bm = Benchmark::new(4).unwrap();
        let d = Sample::draw(50.0, 1000.0, 20_000, 3);
        let p = Problem::new(&bm, 50.0, 1000.0);
        let t0 = [48.0, 2.1, 2.9, 990.0];
        let (_, g, h) = p.eval(&d, &t0);
        for k in 0..4 {
            let e = 1e-5 * t0[k].abs();
            let mut tp = t0;
            let mut tm = t0;
            tp[k] += e;
            tm[k] -= e;
            let (fp, gp, _) = p.eval(&d, &tp);
            let (fm, gm, _) = p.eval(&d, &tm);
            let fd = (fp - fm) / (2.0 * e);
            assert!(
                (fd - g[k]).abs() < 1e-5 * (1.0 + g[k].abs()),
                "grad {k}: {fd} vs {}",
                g[k]
            );
            for j in 0..4 {
                let fdh = (gp[j] - gm[j]) / (2.0 * e);
                let hv = h[j * 4 + k];
                assert!(
                    (fdh - hv).abs() < 1e-4 * (1.0 + hv.abs()),
                    "hess {j},{k}: {fdh} vs {hv}"
                );
            }
        }
        let prof = analytic_profile_sigma_s(&bm, 50.0, 1000.0, 20_000, 3).unwrap();
        let fisher = analytic_sigma_s(&bm, 50.0, 1000.0, 20_000, 3).unwrap();
        assert!((prof / fisher - 1.0).abs() < 0.05, "{prof} vs {fisher}");
    }
}
