//! Pre- and post-fit yields per channel, sample and bin, with uncertainties.
//!
//! Every reported yield is a linear combination `w . nu` of sample-bin yields;
//! its uncertainty is `sqrt(g^T C g)` with `g = w^T J` (J: the analytic Jacobian
//! of the sample-bin yields at the parameters) and C the covariance. Post-fit:
//! the best fit and its full covariance. Pre-fit: the model's initial values
//! and the diagonal matrix of squared pre-fit widths (no correlations).

use super::PostFit;
use super::pulls::prefit_sigmas;
use crate::model::HistFactoryModel;
use crate::model::histfactory::YieldJacobian;

/// Yields of one sample in one channel.
#[derive(Debug, Clone)]
pub struct SampleYields {
    /// Sample name.
    pub name: String,
    /// Yield per bin.
    pub yields: Vec<f64>,
    /// Uncertainty per bin.
    pub errors: Vec<f64>,
    /// Sum over the channel's bins.
    pub sum: f64,
    /// Uncertainty of the sum.
    pub sum_error: f64,
}

/// Yields of one channel.
#[derive(Debug, Clone)]
pub struct ChannelYields {
    /// Channel name.
    pub name: String,
    /// Observed counts per bin.
    pub data: Vec<f64>,
    /// Samples in the model's (sorted) order.
    pub samples: Vec<SampleYields>,
    /// Total expected yield per bin.
    pub total: Vec<f64>,
    /// Uncertainty of the total per bin.
    pub total_errors: Vec<f64>,
    /// Total expected yield of the channel.
    pub sum: f64,
    /// Its uncertainty.
    pub sum_error: f64,
    /// Observed total of the channel.
    pub data_sum: f64,
}

/// Yields of every channel at one parameter point.
#[derive(Debug, Clone)]
pub struct Yields {
    /// Channels in the model's (sorted) order.
    pub channels: Vec<ChannelYields>,
}

/// Standard deviation of `g . nu` for a gradient given by its non-zero entries.
struct Propagator<'a> {
    cov: &'a [f64],
    p: usize,
    g: Vec<f64>,
    nz: Vec<usize>,
    mark: Vec<bool>,
}

impl<'a> Propagator<'a> {
    fn new(cov: &'a [f64], p: usize) -> Self {
        Propagator {
            cov,
            p,
            g: vec![0.0; p],
            nz: Vec::new(),
            mark: vec![false; p],
        }
    }

    fn add_row(&mut self, jac: &YieldJacobian, j: usize) {
        let (pars, d) = jac.row(j);
        for (&i, &x) in pars.iter().zip(d) {
            let i = i as usize;
            if !self.mark[i] {
                self.mark[i] = true;
                self.nz.push(i);
            }
            self.g[i] += x;
        }
    }

    /// sqrt(g^T C g) of what was added since the last call; resets.
    fn take(&mut self) -> f64 {
        let p = self.p;
        let mut v = 0.0;
        for &a in &self.nz {
            let ga = self.g[a];
            let row = &self.cov[a * p..(a + 1) * p];
            let mut s = 0.0;
            for &b in &self.nz {
                s += row[b] * self.g[b];
            }
            v += ga * s;
        }
        for &a in &self.nz {
            self.g[a] = 0.0;
            self.mark[a] = false;
        }
        self.nz.clear();
        v.max(0.0).sqrt()
    }
}

/// Yields at `theta` with uncertainties from the covariance `cov` (row-major P x P).
pub fn yields(model: &HistFactoryModel, theta: &[f64], cov: &[f64]) -> Yields {
    let p = model.n_pars();
    assert_eq!(cov.len(), p * p, "covariance must be P x P");
    let jac = model.sample_bin_jacobian(theta);
    let mut prop = Propagator::new(cov, p);
    let data = &model.observed().main;
    let channels = model
        .channels
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let nb = c.nbins;
            let members: Vec<&crate::model::histfactory::SampleInfo> =
                model.samples.iter().filter(|s| s.channel == ci).collect();
            let samples = members
                .iter()
                .map(|s| {
                    let yields: Vec<f64> = (0..nb).map(|b| jac.values[s.first_sb + b]).collect();
                    let errors: Vec<f64> = (0..nb)
                        .map(|b| {
                            prop.add_row(&jac, s.first_sb + b);
                            prop.take()
                        })
                        .collect();
                    for b in 0..nb {
                        prop.add_row(&jac, s.first_sb + b);
                    }
                    SampleYields {
                        name: s.name.clone(),
                        sum: yields.iter().sum(),
                        sum_error: prop.take(),
                        yields,
                        errors,
                    }
                })
                .collect::<Vec<_>>();
            let total: Vec<f64> = (0..nb)
                .map(|b| members.iter().map(|s| jac.values[s.first_sb + b]).sum())
                .collect();
            let total_errors: Vec<f64> = (0..nb)
                .map(|b| {
                    for s in &members {
                        prop.add_row(&jac, s.first_sb + b);
                    }
                    prop.take()
                })
                .collect();
            for s in &members {
                for b in 0..nb {
                    prop.add_row(&jac, s.first_sb + b);
                }
            }
            let sum_error = prop.take();
            let d = data[c.bin_offset..c.bin_offset + nb].to_vec();
            ChannelYields {
                name: c.name.clone(),
                data_sum: d.iter().sum(),
                data: d,
                samples,
                sum: total.iter().sum(),
                sum_error,
                total,
                total_errors,
            }
        })
        .collect();
    Yields { channels }
}

/// Pre-fit yields: the model's initial values, uncorrelated pre-fit widths
/// (unconstrained and fixed parameters contribute nothing).
pub fn prefit_yields(model: &HistFactoryModel) -> Yields {
    let p = model.n_pars();
    let sig = prefit_sigmas(model, &model.fixed);
    let mut cov = vec![0.0; p * p];
    for i in 0..p {
        cov[i * p + i] = sig[i] * sig[i];
    }
    yields(model, &model.init, &cov)
}

/// Post-fit yields: the best fit and its full covariance.
pub fn postfit_yields(model: &HistFactoryModel, post: &PostFit) -> Yields {
    yields(model, &post.x, &post.covariance)
}
