//! Profile-likelihood test statistics with pyhf's clipping and bound rules.
//!
//! `t_mu = twice_nll(mu, profiled) - twice_nll(free)`, clipped at 0. `q_mu` and
//! `q~_mu` are `t_mu` but 0 when `mu_hat > mu`; `q0` is `t_0` but 0 when
//! `mu_hat < 0`. The "tilde" variants compare with the best fit at mu >= 0:
//! with the POI bounded below at 0 (the usual case, and pyhf's) that is the
//! free fit; with a negative lower bound and `mu_hat < 0` it is the fit at
//! mu = 0 (a warning says so, since pyhf differs there).

use super::Problem;
use crate::error::{Error, Result};
use crate::fit::{FitOptions, FitResult};
use crate::model::Likelihood;
use std::fmt;
use std::str::FromStr;

/// Which test statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestStat {
    /// Discovery: `t_0`, zero when `mu_hat < 0`.
    Q0,
    /// One-sided upper-limit statistic.
    Q,
    /// One-sided, for a POI bounded below at zero.
    QTilde,
    /// Two-sided `t_mu`.
    T,
    /// Two-sided, for a POI bounded below at zero.
    TTilde,
}

impl TestStat {
    /// pyhf's name.
    pub fn name(self) -> &'static str {
        match self {
            TestStat::Q0 => "q0",
            TestStat::Q => "q",
            TestStat::QTilde => "qtilde",
            TestStat::T => "t",
            TestStat::TTilde => "ttilde",
        }
    }

    /// Whether a best fit with `mu_hat` needs the fit at mu = 0 as its
    /// reference: q~ and t~ compare with the best fit at mu >= 0 (Cowan et
    /// al., eq. 16), which below zero (a POI lower bound below 0) is that fit.
    pub fn needs_fit_at_zero(self, mu_hat: f64) -> bool {
        matches!(self, TestStat::QTilde | TestStat::TTilde) && mu_hat < 0.0
    }

    /// The statistic from the fitted POI and the clipped log-likelihood ratio.
    pub fn from_fits(self, mu: f64, mu_hat: f64, t: f64) -> f64 {
        match self {
            TestStat::Q0 => {
                if mu_hat < 0.0 {
                    0.0
                } else {
                    t
                }
            }
            TestStat::Q | TestStat::QTilde => {
                if mu_hat > mu {
                    0.0
                } else {
                    t
                }
            }
            TestStat::T | TestStat::TTilde => t,
        }
    }

    /// Warnings about the configuration (pyhf's, for statistics used outside their assumptions).
    pub fn warnings(self, poi_bounds: (f64, f64), mu: f64) -> Vec<String> {
        let mut w = Vec::new();
        match self {
            TestStat::QTilde | TestStat::TTilde if poi_bounds.0 < 0.0 => w.push(format!(
                "{} with the POI's lower bound at {}: where the best fit has mu_hat < 0, the statistic \
                 compares with the fit at mu = 0 (its definition; pyhf instead uses mu_hat and gives \
                 different numbers there)",
                self.name(),
                poi_bounds.0
            )),
            TestStat::QTilde | TestStat::TTilde if poi_bounds.0 > 0.0 => w.push(format!(
                "{} assumes the POI is bounded below at 0, but its lower bound is {}; the fits use the model's bounds",
                self.name(),
                poi_bounds.0
            )),
            TestStat::Q | TestStat::T if poi_bounds.0 == 0.0 => w.push(format!(
                "{} used with the POI bounded below at 0 ({} is meant for that case)",
                self.name(),
                if self == TestStat::Q { "qtilde" } else { "ttilde" }
            )),
            TestStat::Q0 if mu != 0.0 => w.push(format!("q0 is a test of mu = 0, but mu = {mu} was given")),
            _ => {}
        }
        w
    }
}

impl fmt::Display for TestStat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TestStat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "q0" => Ok(TestStat::Q0),
            "q" | "qmu" => Ok(TestStat::Q),
            "qtilde" | "qmu_tilde" => Ok(TestStat::QTilde),
            "t" | "tmu" => Ok(TestStat::T),
            "ttilde" | "tmu_tilde" => Ok(TestStat::TTilde),
            other => Err(format!(
                "unknown test statistic '{other}' (expected q0, q, qtilde, t or ttilde)"
            )),
        }
    }
}

/// The fits behind one test-statistic value.
#[derive(Debug, Clone)]
pub struct ProfileFits {
    /// The unconditional fit.
    pub free: FitResult,
    /// The fit with the POI fixed at `mu`.
    pub fixed: FitResult,
    /// Tested POI value.
    pub mu: f64,
    /// Fitted POI of the free fit.
    pub mu_hat: f64,
    /// `max(twice_nll(mu) - twice_nll(free), 0)`.
    pub t: f64,
    /// The test statistic.
    pub value: f64,
}

/// Free fit of a problem.
pub fn free_fit<L: Likelihood>(p: &Problem<L>, opts: &FitOptions) -> Result<FitResult> {
    p.fit(&p.spec, opts)
}

/// Fit with the POI fixed at `mu`, started at `start` (or the problem's start).
pub fn fixed_poi_fit<L: Likelihood>(
    p: &Problem<L>,
    mu: f64,
    start: Option<&[f64]>,
    opts: &FitOptions,
) -> Result<FitResult> {
    let mut spec = p.spec.clone();
    if let Some(s) = start {
        spec.init.copy_from_slice(s);
    }
    let spec = spec.fix(p.poi, mu);
    p.fit(&spec, opts)
}

/// Combine a free and a fixed-POI fit into the test statistic.
pub fn combine(
    kind: TestStat,
    poi: usize,
    mu: f64,
    free: FitResult,
    fixed: FitResult,
) -> ProfileFits {
    let mu_hat = free.x[poi];
    let t = (fixed.twice_nll - free.twice_nll).max(0.0);
    let value = kind.from_fits(mu, mu_hat, t);
    ProfileFits {
        free,
        fixed,
        mu,
        mu_hat,
        t,
        value,
    }
}

/// The test statistic at `mu` on the problem's data (reusing `free` if given).
/// Both fits must converge.
pub fn evaluate<L: Likelihood>(
    p: &Problem<L>,
    kind: TestStat,
    mu: f64,
    free: Option<&FitResult>,
    opts: &FitOptions,
) -> Result<ProfileFits> {
    let free = match free {
        Some(f) => f.clone(),
        None => free_fit(p, opts)?,
    };
    super::require_converged(&free, "the free fit")?;
    let fixed = fixed_poi_fit(p, mu, Some(&free.x), opts)?;
    finish_pair(p, kind, mu, free, fixed, opts)
}

/// Check a (free, fixed-POI) pair and form the statistic. A fixed fit below
/// the free fit means the free fit stopped in a local minimum: it is restarted
/// from the better point.
pub fn finish_pair<L: Likelihood>(
    p: &Problem<L>,
    kind: TestStat,
    mu: f64,
    mut free: FitResult,
    fixed: FitResult,
    opts: &FitOptions,
) -> Result<ProfileFits> {
    super::require_converged(&free, "the free fit")?;
    super::require_converged(&fixed, &format!("the fit with the POI fixed at {mu}"))?;
    let tol = 1e-9 * free.twice_nll.abs().max(1.0);
    if fixed.twice_nll < free.twice_nll - tol {
        let mut spec = p.spec.clone();
        spec.init.copy_from_slice(&fixed.x);
        let again = p.fit(&spec, opts)?;
        if again.converged && again.twice_nll < free.twice_nll {
            free = again;
        }
        if fixed.twice_nll < free.twice_nll - tol {
            return Err(Error::Numerical(format!(
                "the fit with the POI fixed at {mu} reached a lower twice_nll ({}) than the free fit ({})",
                fixed.twice_nll, free.twice_nll
            )));
        }
    }
    if kind.needs_fit_at_zero(free.x[p.poi]) {
        // only reachable when the POI's lower bound is negative; with a bound
        // at 0 the free fit is already the best fit at mu >= 0
        let at0 = fixed_poi_fit(p, 0.0, Some(&free.x), opts)?;
        super::require_converged(&at0, "the fit with the POI fixed at 0 (q~ reference)")?;
        let mut pf = combine(kind, p.poi, mu, at0, fixed);
        pf.mu_hat = free.x[p.poi];
        return Ok(pf);
    }
    Ok(combine(kind, p.poi, mu, free, fixed))
}
