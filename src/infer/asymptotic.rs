//! Asymptotic CLs and discovery p-values (Cowan, Cranmer, Gross, Vitells 2011),
//! as pyhf's `AsymptoticCalculator` computes them.

use super::teststat::{TestStat, finish_pair, fixed_poi_fit, free_fit};
use super::{Problem, require_converged};
use crate::error::Result;
use crate::fit::{FitOptions, FitResult};
use crate::model::Likelihood;
use crate::util::special::{ln_normal_sf, normal_cdf};
use serde::Serialize;

/// Result of a hypothesis test at one POI value.
#[derive(Debug, Clone, Serialize)]
pub struct HypoTest {
    /// Tested POI value.
    pub mu: f64,
    /// The test statistic used.
    pub test_stat: TestStat,
    /// Observed test statistic.
    pub test_stat_obs: f64,
    /// Test statistic on the Asimov data.
    pub test_stat_asimov: f64,
    /// The asymptotic variable (`sqrt(q) - sqrt(q_A)`, or its q~ form).
    pub t_obs: f64,
    /// Observed CLs (for q0: p0).
    pub cls_obs: f64,
    /// Observed CLs+b.
    pub clsb_obs: f64,
    /// Observed CLb.
    pub clb_obs: f64,
    /// Expected CLs at -2, -1, 0, +1, +2 sigma (smallest first).
    pub cls_exp: [f64; 5],
    /// Expected CLs+b, same order.
    pub clsb_exp: [f64; 5],
    /// Expected CLb, same order.
    pub clb_exp: [f64; 5],
    /// Fitted POI of the free fit on the observed data.
    pub mu_hat: f64,
}

/// Discovery test (q0).
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// Observed p0.
    pub p0_obs: f64,
    /// Median expected p0 (under the signal hypothesis mu = 1).
    pub p0_exp: f64,
    /// Observed significance.
    pub z_obs: f64,
    /// Median expected significance.
    pub z_exp: f64,
    /// Observed q0.
    pub q0_obs: f64,
    /// q0 on the Asimov data at mu = 1.
    pub q0_asimov: f64,
    /// Fitted POI.
    pub mu_hat: f64,
}

/// The asymptotic calculator: caches the fits that do not depend on the tested POI value.
pub struct AsymptoticCalculator<'a, L: Likelihood> {
    problem: Problem<'a, L>,
    kind: TestStat,
    opts: FitOptions,
    free_obs: FitResult,
    asimov_data: L::Data,
    free_asimov: FitResult,
    /// Warnings about the configuration (printed by the CLI).
    pub warnings: Vec<String>,
}

/// Distribution pvalue under a normal shifted by `shift` (pyhf's `AsymptoticTestStatDistribution`).
fn pvalue(t: f64, shift: f64) -> f64 {
    normal_cdf(-(t - shift))
}

impl<'a, L: Likelihood> AsymptoticCalculator<'a, L> {
    /// Fit the observed data, build the Asimov data (at mu' = 0, or 1 for q0) and fit it.
    pub fn new(problem: Problem<'a, L>, kind: TestStat, opts: &FitOptions) -> Result<Self> {
        let opts = FitOptions {
            covariance: false,
            ..opts.clone()
        };
        let free_obs = free_fit(&problem, &opts)?;
        require_converged(&free_obs, "the free fit to the observed data")?;
        let mu_prime = if kind == TestStat::Q0 { 1.0 } else { 0.0 };
        let at_prime = fixed_poi_fit(&problem, mu_prime, Some(&free_obs.x), &opts)?;
        require_converged(
            &at_prime,
            &format!("the fit with the POI fixed at {mu_prime} (Asimov parameters)"),
        )?;
        Self::with_asimov_at(problem, kind, &opts, free_obs, &at_prime.x)
    }

    /// Like [`new`](Self::new) with the free fit to the observed data given and
    /// the Asimov data generated at `pars` instead of the conditional fit
    /// (expected results for other hypotheses, sensitivity studies).
    pub fn with_asimov_at(
        problem: Problem<'a, L>,
        kind: TestStat,
        opts: &FitOptions,
        free_obs: FitResult,
        pars: &[f64],
    ) -> Result<Self> {
        let opts = FitOptions {
            covariance: false,
            ..opts.clone()
        };
        let asimov_data = problem.model.asimov(pars);
        let free_asimov = {
            let pa = problem.with_data(&asimov_data);
            let mut spec = pa.spec.clone();
            spec.init.copy_from_slice(pars);
            pa.fit(&spec, &opts)?
        };
        require_converged(&free_asimov, "the free fit to the Asimov data")?;
        let warnings = kind.warnings(
            problem.poi_bounds(),
            if kind == TestStat::Q0 { 0.0 } else { 1.0 },
        );
        Ok(AsymptoticCalculator {
            problem,
            kind,
            opts,
            free_obs,
            asimov_data,
            free_asimov,
            warnings,
        })
    }

    /// The free fit to the observed data.
    pub fn free_fit(&self) -> &FitResult {
        &self.free_obs
    }

    /// The Asimov dataset.
    pub fn asimov_data(&self) -> &L::Data {
        &self.asimov_data
    }

    /// CLs (obs and expected band) at `mu`: the two fixed-POI fits (observed
    /// and Asimov data) run as one batch.
    pub fn hypotest(&self, mu: f64) -> Result<HypoTest> {
        let p = &self.problem;
        let pa = p.with_data(&self.asimov_data);
        let mut s_obs = p.spec.clone();
        s_obs.init.copy_from_slice(&self.free_obs.x);
        let mut s_asi = p.spec.clone();
        s_asi.init.copy_from_slice(&self.free_asimov.x);
        let specs = [s_obs.fix(p.poi, mu), s_asi.fix(p.poi, mu)];
        let mut fits = p.fit_batch(&[p.data, &self.asimov_data], &specs, &self.opts)?;
        let fixed_asi = fits.pop().expect("two fits");
        let fixed_obs = fits.pop().expect("two fits");
        let obs = finish_pair(
            p,
            self.kind,
            mu,
            self.free_obs.clone(),
            fixed_obs,
            &self.opts,
        )?;
        let asi = finish_pair(
            &pa,
            self.kind,
            mu,
            self.free_asimov.clone(),
            fixed_asi,
            &self.opts,
        )?;
        Ok(self.from_values(mu, obs.value, asi.value, obs.mu_hat))
    }

    /// CLs from the observed and Asimov test statistics.
    pub fn from_values(&self, mu: f64, q: f64, q_a: f64, mu_hat: f64) -> HypoTest {
        let sq = q.max(0.0).sqrt();
        let sqa = q_a.max(0.0).sqrt();
        let t = match self.kind {
            TestStat::QTilde | TestStat::TTilde => {
                if sq <= sqa || q_a <= 0.0 {
                    sq - sqa
                } else {
                    (q - q_a) / (2.0 * sqa)
                }
            }
            _ => sq - sqa,
        };
        let probs = |t: f64| {
            let clsb = pvalue(t, -sqa);
            let clb = pvalue(t, 0.0);
            // far in the tail both underflow: their ratio from the logarithms
            let cls = if clb > 1e-290 {
                clsb / clb
            } else {
                (ln_normal_sf(t + sqa) - ln_normal_sf(t)).exp()
            };
            (clsb, clb, cls)
        };
        let (clsb_obs, clb_obs, cls) = probs(t);
        let mut cls_exp = [0.0; 5];
        let mut clsb_exp = [0.0; 5];
        let mut clb_exp = [0.0; 5];
        for (k, n) in [2.0, 1.0, 0.0, -1.0, -2.0].iter().enumerate() {
            let (a, b, c) = probs(*n);
            clsb_exp[k] = a;
            clb_exp[k] = b;
            cls_exp[k] = c;
        }
        let is_q0 = self.kind == TestStat::Q0;
        HypoTest {
            mu,
            test_stat: self.kind,
            test_stat_obs: q,
            test_stat_asimov: q_a,
            t_obs: t,
            cls_obs: if is_q0 { clsb_obs } else { cls },
            clsb_obs,
            clb_obs,
            cls_exp: if is_q0 { clsb_exp } else { cls_exp },
            clsb_exp,
            clb_exp,
            mu_hat,
        }
    }

    /// Discovery p-value and significance (requires a q0 calculator).
    pub fn discovery(&self) -> Result<Discovery> {
        assert_eq!(self.kind, TestStat::Q0, "discovery needs the q0 statistic");
        let h = self.hypotest(0.0)?;
        let z = |p: f64| -super::normal_quantile(p);
        Ok(Discovery {
            p0_obs: h.clsb_obs,
            p0_exp: h.clsb_exp[2],
            z_obs: z(h.clsb_obs),
            z_exp: z(h.clsb_exp[2]),
            q0_obs: h.test_stat_obs,
            q0_asimov: h.test_stat_asimov,
            mu_hat: h.mu_hat,
        })
    }
}
