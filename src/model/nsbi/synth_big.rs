//! Large synthetic unbinned channels for benchmarks: `n` events, three
//! processes with the off-shell coefficient functions `mu - sqrt(mu)`,
//! `sqrt(mu)`, `1 - sqrt(mu)`, and `k` nuisance parameters, each with a code-4
//! yield variation and per-event shape variations (of one process, or of all
//! three). Ratios are smooth functions of two standard normal "observables",
//! and each nuisance tilts along one more (see [`big_arrays`]), all drawn from
//! counter-based streams, so the channel is the same for every thread count.

use super::coef::{Factor, YieldCode4};
use super::synth::OffShell;
use super::{EventArrays, NsbiChannel, Process, ShapeVar};
use crate::error::Result;
use crate::rng::Stream;
use rayon::prelude::*;

/// Shape of a synthetic channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BigSpec {
    /// Events.
    pub n_events: usize,
    /// Nuisance parameters (each with per-event shape variations).
    pub n_syst: usize,
    /// Each nuisance varies the shape of all three processes (else of process `k % 3`).
    pub all_processes: bool,
    /// Seed.
    pub seed: u64,
}

/// The per-event arrays, process yields and shape-variation layout of `spec`.
pub fn big_arrays(spec: &BigSpec) -> (EventArrays, Vec<ShapeVar>) {
    let n = spec.n_events;
    let xs: Vec<[f64; 2]> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut s = Stream::new(spec.seed, 0, 11, i as u32);
            [s.normal(), s.normal()]
        })
        .collect();
    // r_c = exp(u_c . x - |u_c|^2 / 2) has mean 1 under the generating N(0, 1)^2
    let u: [[f64; 2]; 3] = [[0.8, 0.0], [0.3, 0.2], [-0.4, 0.0]];
    let ratio = |c: usize, x: &[f64; 2]| {
        let uu = u[c][0] * u[c][0] + u[c][1] * u[c][1];
        (u[c][0] * x[0] + u[c][1] * x[1] - 0.5 * uu).exp()
    };
    let ratios: Vec<Vec<f64>> = (0..3)
        .map(|c| xs.par_iter().map(|x| ratio(c, x)).collect())
        .collect();
    // Each nuisance k tilts along its own observable z_k ~ N(0, 1), which is
    // independent of x and distributed alike under every process, with
    // ln k+ = a z - a^2 / 2 and ln k- = -a z - a^2 / 2. So E_c[k+] = E_c[k-] = 1,
    // the code-4 polynomial of every variation has mean 1 + O(a^4) at every
    // |alpha| <= 1 (its first and second derivatives at 0 have mean 0), and the
    // variations of one process are independent, so that their product is
    // normalised too: the data drawn at the nominal point are the model's own
    // there, and the Asimov fit starts at its minimum.
    let mut shapes = Vec::new();
    let mut arrays = Vec::new();
    for k in 0..spec.n_syst {
        let z: Vec<f64> = (0..n)
            .into_par_iter()
            .map(|i| Stream::new(spec.seed, 1 + k as u32, 11, i as u32).normal())
            .collect();
        let procs: Vec<usize> = if spec.all_processes {
            vec![0, 1, 2]
        } else {
            vec![k % 3]
        };
        for c in procs {
            let a = (0.02 + 0.004 * (k % 7) as f64) * (1.0 + 0.25 * c as f64);
            let tilt = |s: f64| {
                z.par_iter()
                    .map(|&zi| (s * a * zi - 0.5 * a * a).exp())
                    .collect::<Vec<f64>>()
            };
            shapes.push(ShapeVar {
                process: c,
                par: 1 + k,
                label: format!("sample {c}, modifier alpha_{k}"),
            });
            arrays.push((tilt(1.0), tilt(-1.0)));
        }
    }
    (
        EventArrays {
            weights: None,
            ratios,
            shapes: arrays,
        },
        shapes,
    )
}

/// The processes of a synthetic channel (yields scaled to `n` expected events at mu = 1).
pub fn big_processes(spec: &BigSpec) -> Vec<Process> {
    let scale = spec.n_events as f64 / 1000.0;
    let nus = [60.0 * scale, 400.0 * scale, 540.0 * scale];
    (0..3)
        .map(|c| {
            let mut factors: Vec<Box<dyn Factor>> = vec![OffShell::coefficient(c)];
            for k in 0..spec.n_syst {
                let d = 0.01 + 0.002 * ((k + c) % 5) as f64;
                factors.push(Box::new(YieldCode4::new(1 + k, 1.0 + d, 1.0 - 0.9 * d)));
            }
            Process {
                name: ["S", "SBI", "B"][c].to_string(),
                nu: nus[c],
                factors,
            }
        })
        .collect()
}

/// A synthetic channel (parameters `mu`, `alpha_0`, ...): the generated
/// events weighted to the Asimov dataset at `mu = 1`, nuisance parameters 0
/// (`w_i = lambda_i / n`, so that the fit has a well-defined minimum there).
pub fn big_channel(spec: &BigSpec) -> Result<NsbiChannel> {
    let ch = big_channel_unweighted(spec)?;
    let mut theta = vec![0.0; ch.par_names.len()];
    theta[0] = 1.0;
    let w = super::toys::asimov_weights(&ch, &theta);
    let (mut arrays, shapes) = big_arrays(spec);
    arrays.weights = Some(w);
    build(spec, arrays, shapes)
}

/// The synthetic channel with unit weights on the generated events.
pub fn big_channel_unweighted(spec: &BigSpec) -> Result<NsbiChannel> {
    let (arrays, shapes) = big_arrays(spec);
    build(spec, arrays, shapes)
}

fn build(spec: &BigSpec, arrays: EventArrays, shapes: Vec<ShapeVar>) -> Result<NsbiChannel> {
    let mut names = vec!["mu".to_string()];
    names.extend((0..spec.n_syst).map(|k| format!("alpha_{k}")));
    let p = names.len();
    let mut init = vec![0.0; p];
    init[0] = 1.0;
    let mut bounds = vec![(-5.0, 5.0); p];
    bounds[0] = (0.0, 10.0);
    NsbiChannel::new(
        "big",
        names,
        init,
        bounds,
        vec![false; p],
        Some(0),
        big_processes(spec),
        shapes,
        arrays,
        None,
    )
}

/// The channel with Gaussian constraints on its nuisance parameters, as a model.
pub fn big_model(spec: &BigSpec) -> Result<crate::model::CombinedModel> {
    let ch = big_channel(spec)?;
    let k = spec.n_syst;
    let names: Vec<String> = ch.par_names[1..].to_vec();
    let cons = super::GaussConstraints::new(
        names,
        vec![1.0; k],
        vec![0.0; k],
        vec![0.0; k],
        vec![(-5.0, 5.0); k],
        vec![false; k],
    );
    crate::model::CombinedModel::new(
        vec![Box::new(super::NsbiPart::new(ch)), Box::new(cons)],
        Some("mu"),
        "synthetic NSBI",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Likelihood;

    #[test]
    fn shape_variations_are_normalised_under_every_process() {
        let spec = BigSpec {
            n_events: 200_000,
            n_syst: 6,
            all_processes: true,
            seed: 3,
        };
        let (arr, shapes) = big_arrays(&spec);
        let n = spec.n_events as f64;
        for (e, s) in shapes.iter().enumerate() {
            let r = &arr.ratios[s.process];
            for side in [&arr.shapes[e].0, &arr.shapes[e].1] {
                // E_c[k] = E_ref[r_c k] = 1; sampling error about 3e-3 here
                let m: f64 = r.iter().zip(side).map(|(a, b)| a * b).sum::<f64>() / n;
                let m0: f64 = r.iter().sum::<f64>() / n;
                assert!((m - m0).abs() < 2e-3, "{}: mean {m} against {m0}", s.label);
            }
        }
    }

    #[test]
    fn asimov_fit_stays_at_the_nominal_point() {
        let spec = BigSpec {
            n_events: 50_000,
            n_syst: 20,
            all_processes: false,
            seed: 1,
        };
        let m = big_model(&spec).expect("model");
        let spec_fit = crate::fit::FitSpec::from_model(&m);
        let f = crate::fit::fit(&m, m.observed(), &spec_fit, &Default::default());
        assert!(f.converged, "{:?}", f.status);
        assert!(f.iterations <= 4, "{} iterations", f.iterations);
        assert!((f.x[0] - 1.0).abs() < 0.02, "mu {}", f.x[0]);
        for (i, a) in f.x.iter().enumerate().skip(1) {
            assert!(a.abs() < 0.3, "alpha_{} = {a}", i - 1);
        }
        let start = m.eval(m.init(), m.observed(), &mut m.scratch(), None, None);
        assert!(start - f.twice_nll < 10.0, "{start} -> {}", f.twice_nll);
    }
}
