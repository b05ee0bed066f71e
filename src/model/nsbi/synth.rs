//! An off-shell-like problem with analytic densities, so that every
//! per-event ratio is exact: two-dimensional Gaussians for the signal (S) and
//! background (B) densities and the interference
//! `I(x) = -2 k sqrt(lambda_S(x) lambda_B(x))`, `k < 1`, so that
//!
//! ```text
//! lambda(x | mu) = mu lambda_S + lambda_B + sqrt(mu) I
//!                = (mu - sqrt(mu)) lambda_S + sqrt(mu) lambda_SBI + (1 - sqrt(mu)) lambda_B > 0
//! ```
//!
//! for every `mu >= 0` (`lambda_SBI = lambda_S + lambda_B + I`). The square
//! root of a product of Gaussians is a Gaussian times the Bhattacharyya
//! coefficient, so every yield (and every histogram bin in `x_1`) is closed
//! form. Two nuisance parameters: `alpha_shape` moves the background mean
//! (a per-event shape variation of B and SBI, with the SBI yield change in
//! its yield ratios), `alpha_lumi` scales every yield by 1.05 / 0.95 (code 4).
//! The reference density is `p_ref = (p_S + p_B) / 2`.

use super::coef::{Factor, FnFactor, YieldCode4};
use super::{EventArrays, NsbiChannel, Process, ShapeVar};
use crate::error::Result;
use crate::rng::Stream;
use crate::util::special::normal_cdf;

/// A two-dimensional Gaussian.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gauss2 {
    /// Mean.
    pub mean: [f64; 2],
    /// Covariance `[[a, b], [b, c]]` as `[a, b, c]`.
    pub cov: [f64; 3],
}

impl Gauss2 {
    fn det(&self) -> f64 {
        self.cov[0] * self.cov[2] - self.cov[1] * self.cov[1]
    }
    fn inv(&self) -> [f64; 3] {
        let d = self.det();
        [self.cov[2] / d, -self.cov[1] / d, self.cov[0] / d]
    }
    /// Density at `x`.
    pub fn pdf(&self, x: [f64; 2]) -> f64 {
        let (dx, dy) = (x[0] - self.mean[0], x[1] - self.mean[1]);
        let p = self.inv();
        let q = p[0] * dx * dx + 2.0 * p[1] * dx * dy + p[2] * dy * dy;
        (-0.5 * q).exp() / (2.0 * std::f64::consts::PI * self.det().sqrt())
    }
    /// `sqrt(p1 p2) = bc * Gauss2(mean, cov)`: returns `(bc, the Gaussian)`.
    pub fn sqrt_product(&self, o: &Gauss2) -> (f64, Gauss2) {
        let (p1, p2) = (self.inv(), o.inv());
        // precision of sqrt(p1 p2): (P1 + P2) / 2
        let pr = [
            0.5 * (p1[0] + p2[0]),
            0.5 * (p1[1] + p2[1]),
            0.5 * (p1[2] + p2[2]),
        ];
        let dp = pr[0] * pr[2] - pr[1] * pr[1];
        let cov = [pr[2] / dp, -pr[1] / dp, pr[0] / dp];
        // mean: Pr^-1 (P1 m1 + P2 m2) / 2
        let h = |p: &[f64; 3], m: &[f64; 2]| [p[0] * m[0] + p[1] * m[1], p[1] * m[0] + p[2] * m[1]];
        let (h1, h2) = (h(&p1, &self.mean), h(&p2, &o.mean));
        let hh = [0.5 * (h1[0] + h2[0]), 0.5 * (h1[1] + h2[1])];
        let mean = [
            cov[0] * hh[0] + cov[1] * hh[1],
            cov[1] * hh[0] + cov[2] * hh[1],
        ];
        let g = Gauss2 { mean, cov };
        // bc from the value at one point
        let x = [0.3, -0.2];
        let bc = (self.pdf(x) * o.pdf(x)).sqrt() / g.pdf(x);
        (bc, g)
    }
    /// Probability of `lo <= x_1 < hi`.
    pub fn prob_x1(&self, lo: f64, hi: f64) -> f64 {
        let s = self.cov[0].sqrt();
        normal_cdf((hi - self.mean[0]) / s) - normal_cdf((lo - self.mean[0]) / s)
    }
    /// A draw from two standard normals.
    pub fn draw(&self, z: [f64; 2]) -> [f64; 2] {
        let l11 = self.cov[0].sqrt();
        let l21 = self.cov[1] / l11;
        let l22 = (self.cov[2] - l21 * l21).sqrt();
        [
            self.mean[0] + l11 * z[0],
            self.mean[1] + l21 * z[0] + l22 * z[1],
        ]
    }
}

/// The analytic off-shell-like problem.
#[derive(Debug, Clone, PartialEq)]
pub struct OffShell {
    /// Signal yield at mu = 1.
    pub nu_s: f64,
    /// Background yield.
    pub nu_b: f64,
    /// Interference strength (< 1).
    pub k: f64,
    /// Signal density.
    pub sig: Gauss2,
    /// Background density.
    pub bkg: Gauss2,
    /// Shift of the background mean at `alpha_shape = +-1`.
    pub shift: [f64; 2],
    /// Yield ratios of `alpha_lumi` at +1 and -1.
    pub lumi: (f64, f64),
}

impl Default for OffShell {
    fn default() -> Self {
        OffShell {
            nu_s: 60.0,
            nu_b: 400.0,
            k: 0.9,
            sig: Gauss2 {
                mean: [1.0, 0.5],
                cov: [0.6, 0.15, 0.8],
            },
            bkg: Gauss2 {
                mean: [-0.5, 0.0],
                cov: [1.4, -0.2, 1.1],
            },
            shift: [0.05, 0.02],
            lumi: (1.05, 0.95),
        }
    }
}

/// Process order of the channel: S, SBI, B.
pub const PROCESSES: [&str; 3] = ["S", "SBI", "B"];
/// Parameter order of the channel.
pub const PARAMETERS: [&str; 3] = ["mu", "alpha_shape", "alpha_lumi"];

impl OffShell {
    fn bkg_at(&self, a: f64) -> Gauss2 {
        Gauss2 {
            mean: [
                self.bkg.mean[0] + a * self.shift[0],
                self.bkg.mean[1] + a * self.shift[1],
            ],
            cov: self.bkg.cov,
        }
    }

    /// `(lambda_S, lambda_B, lambda_SBI)` at `x` with the background moved by `a` shifts.
    pub fn lambdas(&self, x: [f64; 2], a: f64) -> (f64, f64, f64) {
        let ls = self.nu_s * self.sig.pdf(x);
        let lb = self.nu_b * self.bkg_at(a).pdf(x);
        (ls, lb, ls + lb - 2.0 * self.k * (ls * lb).sqrt())
    }

    /// SBI yield with the background moved by `a` shifts.
    pub fn nu_sbi(&self, a: f64) -> f64 {
        let (bc, _) = self.sig.sqrt_product(&self.bkg_at(a));
        self.nu_s + self.nu_b - 2.0 * self.k * (self.nu_s * self.nu_b).sqrt() * bc
    }

    /// Expected total yield at `mu` (nuisance parameters at 0).
    pub fn nu(&self, mu: f64) -> f64 {
        let (bc, _) = self.sig.sqrt_product(&self.bkg);
        mu * self.nu_s + self.nu_b - 2.0 * self.k * (mu * self.nu_s * self.nu_b).sqrt() * bc
    }

    /// `p_ref(x)`.
    pub fn p_ref(&self, x: [f64; 2]) -> f64 {
        0.5 * (self.sig.pdf(x) + self.bkg.pdf(x))
    }

    /// Per-event arrays at events `xs` (weights `w`): ratios `r_c = p_c / p_ref`
    /// for S, SBI, B, and the up/down shape ratios of B and SBI.
    pub fn arrays(&self, xs: &[[f64; 2]], w: Option<Vec<f64>>) -> EventArrays {
        let nsbi = [self.nu_sbi(-1.0), self.nu_sbi(0.0), self.nu_sbi(1.0)];
        let mut r: Vec<Vec<f64>> = (0..3).map(|_| Vec::with_capacity(xs.len())).collect();
        let mut sh = vec![(Vec::new(), Vec::new()); 2];
        for &x in xs {
            let pr = self.p_ref(x);
            let (ls, lb, lsbi) = self.lambdas(x, 0.0);
            r[0].push(ls / self.nu_s / pr);
            r[1].push(lsbi / nsbi[1] / pr);
            r[2].push(lb / self.nu_b / pr);
            let (_, lbu, lsu) = self.lambdas(x, 1.0);
            let (_, lbd, lsd) = self.lambdas(x, -1.0);
            // shape-only ratios of varied to nominal densities
            sh[0].0.push(lbu / lb);
            sh[0].1.push(lbd / lb);
            sh[1].0.push((lsu / nsbi[2]) / (lsbi / nsbi[1]));
            sh[1].1.push((lsd / nsbi[0]) / (lsbi / nsbi[1]));
        }
        EventArrays {
            weights: w,
            ratios: r,
            shapes: sh,
        }
    }

    /// The yield ratios of SBI under `alpha_shape` (up, down).
    pub fn sbi_yield_ratios(&self) -> (f64, f64) {
        let n0 = self.nu_sbi(0.0);
        (self.nu_sbi(1.0) / n0, self.nu_sbi(-1.0) / n0)
    }

    /// Coefficient functions of S, SBI and B in `mu` (local parameter 0).
    pub fn coefficient(c: usize) -> Box<dyn Factor> {
        let f: Box<super::coef::FactorFn> = match c {
            // mu - sqrt(mu)
            0 => Box::new(|x, g, h| {
                let s = x[0].sqrt();
                g[0] = 1.0 - 0.5 / s;
                h[0] = 0.25 / (s * x[0]);
                x[0] - s
            }),
            // sqrt(mu)
            1 => Box::new(|x, g, h| {
                let s = x[0].sqrt();
                g[0] = 0.5 / s;
                h[0] = -0.25 / (s * x[0]);
                s
            }),
            // 1 - sqrt(mu)
            _ => Box::new(|x, g, h| {
                let s = x[0].sqrt();
                g[0] = -0.5 / s;
                h[0] = 0.25 / (s * x[0]);
                1.0 - s
            }),
        };
        let label = ["mu - sqrt(mu)", "sqrt(mu)", "1 - sqrt(mu)"][c.min(2)];
        Box::new(FnFactor::new(vec![0], label, f))
    }

    /// The processes with their coefficient functions and yield variations.
    pub fn processes(&self) -> Vec<Process> {
        let (su, sd) = self.sbi_yield_ratios();
        let nus = [self.nu_s, self.nu_sbi(0.0), self.nu_b];
        (0..3)
            .map(|c| {
                let mut factors: Vec<Box<dyn Factor>> = vec![Self::coefficient(c)];
                if c == 1 {
                    factors.push(Box::new(YieldCode4::new(1, su, sd)));
                }
                factors.push(Box::new(YieldCode4::new(2, self.lumi.0, self.lumi.1)));
                Process {
                    name: PROCESSES[c].to_string(),
                    nu: nus[c],
                    factors,
                }
            })
            .collect()
    }

    /// The channel on observed events `obs` (and an optional weighted
    /// reference sample), with mu bounds [0, 10] and nuisance bounds [-5, 5].
    pub fn channel(
        &self,
        obs: &[[f64; 2]],
        obs_w: Option<Vec<f64>>,
        reference: Option<(&[[f64; 2]], Vec<f64>)>,
    ) -> Result<NsbiChannel> {
        let shapes = vec![
            ShapeVar {
                process: 2,
                par: 1,
                label: "sample B, modifier alpha_shape".into(),
            },
            ShapeVar {
                process: 1,
                par: 1,
                label: "sample SBI, modifier alpha_shape".into(),
            },
        ];
        NsbiChannel::new(
            "SR",
            PARAMETERS.iter().map(|s| s.to_string()).collect(),
            vec![1.0, 0.0, 0.0],
            vec![(0.0, 10.0), (-5.0, 5.0), (-5.0, 5.0)],
            vec![false; 3],
            Some(0),
            self.processes(),
            shapes,
            self.arrays(obs, obs_w),
            reference.map(|(x, w)| self.arrays(x, Some(w))),
        )
    }

    /// `n` events from `p_ref` (stream `(seed, 0, purpose 7, i)`), with
    /// weights summing to the expected yield at mu = 1.
    pub fn reference_sample(&self, n: usize, seed: u64) -> (Vec<[f64; 2]>, Vec<f64>) {
        let xs: Vec<[f64; 2]> = (0..n)
            .map(|i| {
                let mut s = Stream::new(seed, 0, 7, i as u32);
                let g = if s.uniform() < 0.5 {
                    &self.sig
                } else {
                    &self.bkg
                };
                g.draw([s.normal(), s.normal()])
            })
            .collect();
        let w = vec![self.nu(1.0) / n as f64; n];
        (xs, w)
    }

    /// Observed events at `mu` (nuisance parameters 0): a Poisson count of
    /// events drawn by rejection from `mu lambda_S + lambda_B`.
    pub fn observed(&self, mu: f64, seed: u64) -> Vec<[f64; 2]> {
        let n = Stream::new(seed, 1, 8, 0).poisson(self.nu(mu)) as usize;
        let fs = mu * self.nu_s / (mu * self.nu_s + self.nu_b);
        let mut out = Vec::with_capacity(n);
        let mut i = 0u32;
        while out.len() < n {
            let mut s = Stream::new(seed, 1, 9, i);
            i += 1;
            let g = if s.uniform() < fs {
                &self.sig
            } else {
                &self.bkg
            };
            let x = g.draw([s.normal(), s.normal()]);
            let (ls, lb, _) = self.lambdas(x, 0.0);
            let env = mu * ls + lb;
            let lam = env - 2.0 * self.k * (mu * ls * lb).sqrt();
            if s.uniform() * env < lam {
                out.push(x);
            }
        }
        out
    }

    /// Expected bin yields of S, SBI and B in bins of `x_1` (`edges`, the
    /// outer bins open to +-infinity).
    pub fn binned_yields(&self, edges: &[f64]) -> [Vec<f64>; 3] {
        let (bc, g) = self.sig.sqrt_product(&self.bkg);
        let nb = edges.len() - 1;
        let mut out = [vec![0.0; nb], vec![0.0; nb], vec![0.0; nb]];
        for b in 0..nb {
            let lo = if b == 0 { f64::NEG_INFINITY } else { edges[b] };
            let hi = if b == nb - 1 {
                f64::INFINITY
            } else {
                edges[b + 1]
            };
            let ps = self.sig.prob_x1(lo, hi);
            let pb = self.bkg.prob_x1(lo, hi);
            let pi = g.prob_x1(lo, hi);
            out[0][b] = self.nu_s * ps;
            out[2][b] = self.nu_b * pb;
            out[1][b] =
                out[0][b] + out[2][b] - 2.0 * self.k * (self.nu_s * self.nu_b).sqrt() * bc * pi;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yields_integrate_the_densities() {
        let m = OffShell::default();
        // Monte Carlo over p_ref: E_ref[r_c] = 1 for each process
        let (xs, w) = m.reference_sample(200_000, 3);
        let a = m.arrays(&xs, Some(w));
        for c in 0..3 {
            let mean = a.ratios[c].iter().sum::<f64>() / xs.len() as f64;
            assert!((mean - 1.0).abs() < 0.02, "process {c}: {mean}");
        }
        let bins = m.binned_yields(&[-10.0, 0.0, 10.0]);
        let tot: f64 = bins[1].iter().sum();
        assert!((tot - m.nu_sbi(0.0)).abs() < 1e-9 * tot);
        assert!((m.nu(1.0) - m.nu_sbi(0.0)).abs() < 1e-9 * tot);
    }
}
