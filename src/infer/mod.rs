//! Inference on top of the likelihood: profile-likelihood test statistics,
//! asymptotic and toy-based CLs, discovery significance, upper limits and scans.
//! Semantics follow pyhf (see `docs/inference.md`).

pub mod asymptotic;
pub mod limits;
pub mod minos;
pub mod neyman;
pub mod neyman_plot;
pub mod scan;
pub mod shards;
pub mod teststat;
pub mod toy_limit;
pub mod toys;

pub use asymptotic::{AsymptoticCalculator, Discovery, HypoTest};
pub use teststat::{ProfileFits, TestStat};

use crate::error::{Error, Result};
use crate::fit::{BatchFitter, Cpu, FitOptions, FitResult, FitSpec};
use crate::model::Likelihood;

/// The problem every calculator works on: a model, its data and the base fit
/// configuration (start values, bounds, fixed parameters) with a POI, and the
/// fitter that runs its fits (the CPU minimiser unless a device session is set).
pub struct Problem<'a, L: Likelihood> {
    /// The model.
    pub model: &'a L,
    /// The (observed) data.
    pub data: &'a L::Data,
    /// Start values, bounds and fixed flags of free fits.
    pub spec: FitSpec,
    /// Index of the POI.
    pub poi: usize,
    /// Where the fits run.
    pub fitter: &'a dyn BatchFitter<L>,
}

impl<L: Likelihood> Clone for Problem<'_, L> {
    fn clone(&self) -> Self {
        Problem {
            model: self.model,
            data: self.data,
            spec: self.spec.clone(),
            poi: self.poi,
            fitter: self.fitter,
        }
    }
}

impl<'a, L: Likelihood> Problem<'a, L> {
    /// The model's own configuration on `data`; errors when it has no POI.
    pub fn new(model: &'a L, data: &'a L::Data) -> Result<Self> {
        let poi = model.poi().ok_or_else(|| {
            Error::input("the model has no parameter of interest (apply the signal patch, or choose --measurement)")
        })?;
        Ok(Problem {
            model,
            data,
            spec: FitSpec::from_model(model),
            poi,
            fitter: &Cpu,
        })
    }

    /// Run the fits of this problem with `fitter` (e.g. a GPU session).
    pub fn with_fitter(mut self, fitter: &'a dyn BatchFitter<L>) -> Self {
        self.fitter = fitter;
        self
    }

    /// Fit `spec` on the problem's data.
    pub fn fit(&self, spec: &FitSpec, opts: &FitOptions) -> Result<FitResult> {
        self.fitter.fit(self.model, self.data, spec, opts)
    }

    /// Fit a batch (one dataset for all members or one per member).
    pub fn fit_batch(
        &self,
        data: &[&L::Data],
        specs: &[FitSpec],
        opts: &FitOptions,
    ) -> Result<Vec<FitResult>> {
        self.fitter.fit_batch(self.model, data, specs, opts)
    }

    /// Same problem on other data.
    pub fn with_data<'b>(&self, data: &'b L::Data) -> Problem<'b, L>
    where
        'a: 'b,
    {
        Problem {
            model: self.model,
            data,
            spec: self.spec.clone(),
            poi: self.poi,
            fitter: self.fitter,
        }
    }

    /// The POI bounds.
    pub fn poi_bounds(&self) -> (f64, f64) {
        self.spec.bounds[self.poi]
    }
}

/// Error for a fit that did not converge where a result depends on it.
pub fn require_converged(r: &FitResult, what: &str) -> Result<()> {
    if r.converged {
        Ok(())
    } else {
        Err(Error::Numerical(format!(
            "{what} did not converge ({}); twice_nll = {}",
            r.status.reason(),
            r.twice_nll
        )))
    }
}

/// Standard normal quantile (inverse CDF), accurate to ~1e-15 relative:
/// Acklam's rational approximation refined by one Halley step on `erfc`.
pub fn normal_quantile(p: f64) -> f64 {
    if !(p > 0.0) {
        return f64::NEG_INFINITY;
    }
    if !(p < 1.0) {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.383_577_518_672_69e2,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    let plow = 0.02425;
    let x = if p < plow {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - plow {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // one Halley step: f(x) = Phi(x) - p
    let e = crate::util::special::normal_cdf(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (0.5 * x * x).exp();
    x - u / (1.0 + 0.5 * x * u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::special::normal_cdf;

    #[test]
    fn quantile_inverts_the_cdf() {
        for &p in &[
            1e-12,
            1e-6,
            0.001,
            0.0227501319,
            0.1,
            0.5,
            0.8413447461,
            0.975,
            0.999999,
        ] {
            let x = normal_quantile(p);
            assert!(
                (normal_cdf(x) - p).abs() < 1e-14 * p.max(1e-3),
                "p {p}: x {x}"
            );
        }
        assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-13);
    }
}
