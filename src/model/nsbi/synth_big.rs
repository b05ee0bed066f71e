//! Large synthetic unbinned channels for benchmarks: `n` events, three
//! processes with the off-shell coefficient functions `mu - sqrt(mu)`,
//! `sqrt(mu)`, `1 - sqrt(mu)`, and `k` nuisance parameters, each with a code-4
//! yield variation and per-event shape variations (of one process, or of all
//! three). Ratios are smooth functions of two standard normal "observables"
//! drawn from counter-based streams, so the channel is the same for every
//! thread count.

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
    let ratio = |c: usize, x: &[f64; 2]| match c {
        0 => (0.8 * x[0] - 0.32).exp(),
        1 => (0.3 * x[0] + 0.2 * x[1] - 0.065).exp(),
        _ => (-0.4 * x[0] - 0.08).exp(),
    };
    let ratios: Vec<Vec<f64>> = (0..3)
        .map(|c| xs.par_iter().map(|x| ratio(c, x)).collect())
        .collect();
    let mut shapes = Vec::new();
    let mut arrays = Vec::new();
    for k in 0..spec.n_syst {
        let procs: Vec<usize> = if spec.all_processes {
            vec![0, 1, 2]
        } else {
            vec![k % 3]
        };
        let a = 0.02 + 0.004 * (k % 7) as f64;
        let b = 0.015 * ((k % 5) as f64 - 2.0) / 2.0;
        for c in procs {
            let up: Vec<f64> = xs
                .par_iter()
                .map(|x| (a * x[k % 2] + b * x[(k + 1) % 2] * (c as f64 + 1.0) / 3.0).exp())
                .collect();
            let down: Vec<f64> = xs
                .par_iter()
                .map(|x| (-0.9 * a * x[k % 2] - b * x[(k + 1) % 2] * (c as f64 + 1.0) / 3.0).exp())
                .collect();
            shapes.push(ShapeVar {
                process: c,
                par: 1 + k,
                label: format!("sample {c}, modifier alpha_{k}"),
            });
            arrays.push((up, down));
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

/// A synthetic channel (parameters `mu`, `alpha_0`, ...; observed events = the generated ones).
pub fn big_channel(spec: &BigSpec) -> Result<NsbiChannel> {
    let (arrays, shapes) = big_arrays(spec);
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
